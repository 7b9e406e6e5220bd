//! Domain records as Herald stores and reasons about them.
//!
//! These are deliberately separate from the API's `…In`, `…Out` and `…Patch` types: the wire
//! shapes follow the Svix API, while these follow what the engine needs (sealed secrets, typed
//! ids, options the API spreads over extension fields).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{ApiKeyId, AppId, EndpointId, MessageId};
use crate::shape::{Encoding, Envelope, GraphqlSelection};

pub type Metadata = BTreeMap<String, String>;

/// The id of the reserved application whose endpoints are the operational webhook endpoints
/// (created by a migration). It is the smallest id there is, so no generated id can take it; the
/// store hides it from the application API.
pub const OPERATIONAL_APP_ID: &str = "app_0000000000000000000000";

/// [`OPERATIONAL_APP_ID`] as a typed id.
pub fn operational_app_id() -> AppId {
    AppId::from_trusted(OPERATIONAL_APP_ID.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: AppId,
    pub uid: Option<String>,
    pub name: String,
    /// `throttleRate` of the API: messages per second across the application's endpoints.
    pub rate_limit: Option<u16>,
    pub metadata: Metadata,
    /// The GraphQL API that runs endpoints' selections remotely, if any.
    pub graphql_api: Option<SealedGraphqlApi>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An application's GraphQL API as stored: the URL in the clear (like endpoint URLs), the
/// request headers, which usually carry credentials, sealed like endpoint headers.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedGraphqlApi {
    pub url: String,
    /// Sealed JSON object of header names and values; `None` for no headers.
    pub headers: Option<Vec<u8>>,
}

impl std::fmt::Debug for SealedGraphqlApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedGraphqlApi({}, headers redacted)", self.url)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub feature_flag: Option<String>,
    /// JSON schemas by version, as given (`{"1": {...}}`).
    pub schemas: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Herald's per-endpoint delivery settings beyond the Svix fields. Stored as one JSON document so
/// that new settings need no schema migration; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointOptions {
    /// Delays in seconds between attempts; `None` uses the server's schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<u32>>,
    /// No attempt later than this many seconds after the message was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_window_seconds: Option<u32>,
    /// Per-attempt timeout (connect, request and response); `None` uses the server default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u16>,
    /// Attempts in flight at once; `None` means the default of 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u16>,
    pub ordering: Ordering,
    /// How deliveries are signed (Standard Webhooks by default).
    #[serde(skip_serializing_if = "is_default_signature")]
    pub signature: crate::signing::SignatureConfig,
    /// The body's media type (JSON by default).
    #[serde(skip_serializing_if = "is_default")]
    pub encoding: Encoding,
    /// What wraps the payload (nothing by default).
    #[serde(skip_serializing_if = "is_default")]
    pub envelope: Envelope,
    /// A GraphQL selection run over every message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graphql: Option<GraphqlSelection>,
    /// GraphQL selections for particular event types, instead of `graphql`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub graphql_by_event_type: BTreeMap<String, GraphqlSelection>,
    /// A condition on the payload (see [`crate::filter`]), checked at fan-out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
}

impl EndpointOptions {
    /// The GraphQL selection that applies to an event type, if any.
    pub fn selection_for(&self, event_type: &str) -> Option<&GraphqlSelection> {
        self.graphql_by_event_type
            .get(event_type)
            .or(self.graphql.as_ref())
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_default_signature(config: &crate::signing::SignatureConfig) -> bool {
    *config == crate::signing::SignatureConfig::default()
}

/// Whether an endpoint receives its messages strictly in publish order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Messages are delivered concurrently (up to `maxConcurrency`); a failing message does not
    /// hold back the others.
    #[default]
    Unordered,
    /// One attempt at a time, in publish order; a failing message holds back the ones after it
    /// (only on this endpoint).
    Fifo,
}

/// Attempts in flight per endpoint unless the endpoint says otherwise.
pub const DEFAULT_MAX_CONCURRENCY: u16 = 10;

/// The delivery state of one message for one endpoint (`MessageStatus` of the Svix API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
}

impl DeliveryStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => DeliveryStatus::Success,
            1 => DeliveryStatus::Pending,
            2 => DeliveryStatus::Fail,
            3 => DeliveryStatus::Sending,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Success => "success",
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Fail => "fail",
            DeliveryStatus::Sending => "sending",
        }
    }
}

/// Why an attempt was made (`MessageAttemptTriggerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled = 0,
    Manual = 1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: AppId,
    pub uid: Option<String>,
    pub url: String,
    /// Which of the URLs the endpoint has had `url` is: set by the store, which bumps it when
    /// the URL changes. An attempt names the URL it was sent to by it instead of a copy.
    pub url_version: i64,
    pub description: String,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    /// `None`: every message regardless of its channels.
    pub channels: Option<Vec<String>>,
    pub disabled: bool,
    pub rate_limit: Option<u16>,
    pub metadata: Metadata,
    pub options: EndpointOptions,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint's secrets as stored: every value sealed by [`crate::crypto::Keyring`].
#[derive(Clone, PartialEq, Eq)]
pub struct SealedEndpointSecrets {
    /// The current signing secret.
    pub secret: Vec<u8>,
    /// Previous secrets that still sign during their rotation grace period: sealed JSON
    /// `[{"key": …, "expiresAt": …}]`.
    pub previous: Option<Vec<u8>>,
    /// Custom headers: sealed JSON object.
    pub headers: Option<Vec<u8>>,
    /// Bumped by every change; a change based on an older version is refused.
    pub version: i64,
}

impl std::fmt::Debug for SealedEndpointSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedEndpointSecrets(redacted)")
    }
}

/// A secret superseded by a rotation, valid for signing until `expires_at`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecret {
    pub key: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreviousSecret(redacted, expires {})", self.expires_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    /// The payload JSON exactly as published; `None` once expunged or past retention.
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the payload is deleted by retention.
    pub payload_expires_at: DateTime<Utc>,
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything within one application, and reading the event type catalogue.
    App,
    /// Reading everything, changing nothing.
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::App => "app",
            Role::ReadOnly => "read-only",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "app" => Some(Role::App),
            "read-only" => Some(Role::ReadOnly),
            _ => None,
        }
    }
}

/// How a key came to be: created through the API-key routes, or issued as a portal session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Api,
    Portal,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Portal => "portal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(KeyKind::Api),
            "portal" => Some(KeyKind::Portal),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    pub kind: KeyKind,
    /// Set for `Role::App`.
    pub app_id: Option<AppId>,
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key a console session was minted from (the credential its operator signed in
    /// with): revoking that key ends the session.
    pub parent_id: Option<ApiKeyId>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("kind", &self.kind)
            .field("app_id", &self.app_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
