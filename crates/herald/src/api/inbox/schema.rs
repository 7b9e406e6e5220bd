//! The request and answer bodies of `/api/v1/inbox`: what a caller sends to create and change
//! an inbox, and what it is shown of one (never its token's hash nor its verification secret).

use chrono::{DateTime, Utc};
use herald_core::id::AppId;
use herald_core::inbox::{Forward, Inbox};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::AppState;
use super::super::endpoint::SchemeName;
use super::super::extract::Patch;

/// How an inbox checks what it receives. No `Debug`: it holds the secret.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationIn {
    /// Any scheme Herald signs with; the sender signs, the inbox verifies.
    pub scheme: SchemeName,
    /// The shared secret (`whsec_…` for `standard-v1`), or for `standard-v1a` the sender's
    /// public key `whpk_…`. Stored encrypted, never shown.
    pub secret: Option<String>,
    /// The signature header of the hex and static schemes, when not the default.
    pub header: Option<String>,
    /// The text before the hex digest, when not the default.
    pub prefix: Option<String>,
    /// Largest accepted age of a `webhook-timestamp`, in seconds (default 300; 0: no check).
    pub tolerance_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationOut {
    pub scheme: SchemeName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub tolerance_seconds: u32,
}

/// Where a forwarded write's event type comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventTypeFrom {
    /// The path written to, `/` turned into `.` (`factory/blessing` → `factory.blessing`).
    Path,
    /// The request header named by `header`.
    Header,
    /// Always `eventType`.
    Fixed,
}

/// Forwarding: every accepted write also becomes a message of the inbox's application, which
/// Herald signs and delivers to the application's endpoints.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardSettings {
    pub event_type_from: EventTypeFrom,
    /// With `eventTypeFrom: header`: the header carrying the event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// With `eventTypeFrom: fixed`: the event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

impl From<&Forward> for ForwardSettings {
    fn from(f: &Forward) -> Self {
        match f {
            Forward::Path => Self {
                event_type_from: EventTypeFrom::Path,
                header: None,
                event_type: None,
            },
            Forward::Header { header } => Self {
                event_type_from: EventTypeFrom::Header,
                header: Some(header.clone()),
                event_type: None,
            },
            Forward::Fixed { event_type } => Self {
                event_type_from: EventTypeFrom::Fixed,
                header: None,
                event_type: Some(event_type.clone()),
            },
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboxIn {
    /// Names the inbox in `/in/{app}/{name}/…`: unique within its application (or among the
    /// inboxes of no application, which are at `/in/{name}/…`).
    #[schema(example = "factory", max_length = 256, pattern = r"^[a-zA-Z0-9\-_.]+$")]
    pub name: String,
    /// The application (id or uid) the inbox belongs to; needed for forwarding. App-scoped
    /// tokens may only create inboxes of their application (the default for them).
    pub app_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Check a signature on every request; failures get 401 and are counted, not stored.
    pub verification: Option<VerificationIn>,
    /// Largest accepted body in bytes (at most the server's `--max-body-bytes`, its default).
    pub max_body_bytes: Option<u32>,
    /// Accepted requests per second, per Herald node (bursts of up to one second's worth). For
    /// tokenless writes to a `publicWrite` inbox: per source address (10 when not set).
    pub rate_limit: Option<u32>,
    /// Accept writes (POST, PUT, PATCH, DELETE) without the token, as a Firebase database
    /// under the write rule `auth == null`; limited per source address. Reads and exports
    /// still need the token or an API key. Default false.
    #[serde(default)]
    pub public_write: bool,
    pub forward: Option<ForwardSettings>,
    /// Request headers not kept with entries (besides `Authorization`, `Cookie`,
    /// `Proxy-Authorization` and `X-Api-Key`, which never are); at most 32.
    #[serde(default)]
    pub drop_headers: Vec<String>,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboxPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Admin only; `null` detaches the inbox from its application.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub app_id: Patch<String>,
    /// Replaces the verification setting (a new secret is needed); `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<VerificationIn>)]
    pub verification: Patch<VerificationIn>,
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub max_body_bytes: Patch<u32>,
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Patch<u32>,
    /// Accept writes without the token (see `InboxIn.publicWrite`); `null` is refused.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub public_write: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<ForwardSettings>)]
    pub forward: Patch<ForwardSettings>,
    /// Replaces the headers not kept with entries.
    pub drop_headers: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxOut {
    #[schema(example = "inbox_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub name: String,
    pub app_id: Option<String>,
    pub description: String,
    /// Where senders write: append paths, e.g. `{ingestUrl}/blessing.json`.
    pub ingest_url: String,
    pub verification: Option<VerificationOut>,
    pub max_body_bytes: Option<u32>,
    pub rate_limit: Option<u32>,
    /// Whether writes without the token are accepted (limited per source address).
    pub public_write: bool,
    pub forward: Option<ForwardSettings>,
    /// Request headers not kept with entries, besides the credential headers.
    pub drop_headers: Vec<String>,
    /// Requests refused because their signature did not verify.
    pub rejected_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A created inbox with its ingest token: the only time the token is shown. No `Debug`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxCreatedOut {
    #[serde(flatten)]
    pub inbox: InboxOut,
    /// The ingest token: `?token=…` or `Authorization: Bearer …` on `/in/…` requests.
    pub token: String,
}

/// A new ingest token. No `Debug`.
#[derive(Serialize, ToSchema)]
pub struct InboxTokenOut {
    pub token: String,
}

impl InboxOut {
    pub(super) fn new(state: &AppState, inbox: Inbox) -> Self {
        let ingest_url = match &inbox.app_id {
            Some(app) => format!("{}/in/{app}/{}", state.public_url, inbox.name),
            None => format!("{}/in/{}", state.public_url, inbox.name),
        };
        Self {
            ingest_url,
            id: inbox.id.into_string(),
            name: inbox.name,
            app_id: inbox.app_id.map(AppId::into_string),
            description: inbox.description,
            verification: inbox.verification.map(|v| {
                let shown = super::super::endpoint::SignatureSettings::from(&v.config.signature);
                VerificationOut {
                    scheme: shown.scheme,
                    header: shown.header,
                    prefix: shown.prefix,
                    tolerance_seconds: v.config.tolerance_seconds,
                }
            }),
            max_body_bytes: inbox.max_body_bytes,
            rate_limit: inbox.rate_limit,
            public_write: inbox.public_write,
            forward: inbox.forward.as_ref().map(ForwardSettings::from),
            drop_headers: inbox.drop_headers,
            rejected_count: inbox.rejected_count,
            created_at: inbox.created_at,
            updated_at: inbox.updated_at,
        }
    }
}
