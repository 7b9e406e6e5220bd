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

/// Free-form string labels (`metadata` in the API), kept sorted by key; Herald stores them and
/// never interprets them.
pub type Metadata = BTreeMap<String, String>;

/// The id of the reserved application whose endpoints are the operational webhook endpoints
/// (created by a migration). It is the smallest id there is, so no generated id can take it; the
/// store hides it from the application API.
pub const OPERATIONAL_APP_ID: &str = "app_0000000000000000000000";

/// [`OPERATIONAL_APP_ID`] as a typed id.
pub fn operational_app_id() -> AppId {
    AppId::from_trusted(OPERATIONAL_APP_ID.to_owned())
}

/// An application: the tenant whose endpoints receive its messages (`Application` of the Svix API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// The application's id (`app_…`), assigned by Herald and stable for its lifetime.
    pub id: AppId,
    /// The caller's own unique name for the application (`uid`), usable wherever its id is; 1 to
    /// 256 identifier characters, unique among applications.
    pub uid: Option<String>,
    /// Human-readable name shown in the API and the portal.
    pub name: String,
    /// `throttleRate` of the API: messages per second across the application's endpoints.
    pub rate_limit: Option<u16>,
    /// Labels the caller attached (`metadata`).
    pub metadata: Metadata,
    /// The GraphQL API that runs endpoints' selections remotely, if any.
    pub graphql_api: Option<SealedGraphqlApi>,
    /// Kobiton's numeric organisation id (`orgId`), carried by device status events.
    pub org_id: Option<i64>,
    /// When the application was created.
    pub created_at: DateTime<Utc>,
    /// When the application was last changed.
    pub updated_at: DateTime<Utc>,
}

/// An application's GraphQL API as stored: the URL in the clear (like endpoint URLs), the
/// request headers, which usually carry credentials, sealed like endpoint headers.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedGraphqlApi {
    /// The GraphQL endpoint's URL (http or https).
    pub url: String,
    /// Sealed JSON object of header names and values; `None` for no headers.
    pub headers: Option<Vec<u8>>,
}

impl std::fmt::Debug for SealedGraphqlApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedGraphqlApi({}, headers redacted)", self.url)
    }
}

/// A kind of message an application may publish, from the shared catalogue (`EventType` of the
/// Svix API).
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    /// The event type's name (`user.signup`), its key: identifier characters only, up to 256.
    pub name: String,
    /// What the event means, for people reading the catalogue.
    pub description: String,
    /// Retired (`archived`): left out of listings unless `include_archived` is asked for; creating
    /// it again revives it.
    pub archived: bool,
    /// Marked `deprecated` for subscribers; still published and delivered as usual.
    pub deprecated: bool,
    /// Svix's `featureFlags`: when set, the event type is visible to a portal token only if
    /// the token carries one of them (admin and API keys see every event type).
    pub feature_flags: Option<Vec<String>>,
    /// Svix's `groupName`: a label to group event types by, stored and returned as given.
    pub group_name: Option<String>,
    /// JSON schemas by version, as given (`{"1": {...}}`).
    pub schemas: Option<serde_json::Value>,
    /// When the event type was created (kept when an archived type is revived).
    pub created_at: DateTime<Utc>,
    /// When the event type was last changed.
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
    /// Whether deliveries to the endpoint keep publish order; unordered by default.
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
    /// The response statuses that count as delivered; `None`: any 2xx (or the profile's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_statuses: Option<Vec<u16>>,
    /// How much (percent, either way) each delay of `retry_schedule` is spread; `None`: not at
    /// all, the schedule is exact. The server's schedule is always spread by 20 %.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_jitter: Option<u8>,
    /// A seed system whose delivery rules the endpoint follows where it sets nothing itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// How the endpoint gets its messages: pushed over HTTP (the default) or collected for its
    /// consumers to poll. Kept with the options so that it needs no column of its own.
    #[serde(skip_serializing_if = "is_default")]
    pub kind: EndpointKind,
}

/// How an endpoint gets its messages (the API's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// Herald POSTs each message to the endpoint's URL.
    #[default]
    Http,
    /// A polling endpoint: no URL, no delivery tasks; the publish stores a poll entry per
    /// message and the endpoint's consumers read them (`GET …/poller/{endpoint}`).
    Polling,
}

impl EndpointKind {
    /// The name in the API (`type`) and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            EndpointKind::Http => "http",
            EndpointKind::Polling => "polling",
        }
    }
}

/// A seed system's delivery rules, as an endpoint's defaults (`profile`). An endpoint's own
/// settings win over its profile's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Ideavate: answer 200 within 30 seconds; anything else is retried for 72 hours.
    Ideavate,
    /// Impilo: the typed envelope (`{"id": <message serial>, "type", "payload"}`), the
    /// application's webhook secret in `Impilo-Webhook-Secret`, retries after 15, 30 and 60
    /// minutes exactly.
    Impilo,
    /// Kobiton: a webhook `name` is required (at most 50 characters), the URL and the
    /// description are at most 512 characters.
    Kobiton,
}

/// The header Impilo sends its webhook secret in.
pub const IMPILO_SECRET_HEADER: &str = "Impilo-Webhook-Secret";

impl Profile {
    /// The profile's name in the API and the catalogue of event types it goes with.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Ideavate => "ideavate",
            Profile::Impilo => "impilo",
            Profile::Kobiton => "kobiton",
        }
    }

    /// The per-attempt timeout the profile asks for, in seconds.
    pub fn timeout_seconds(self) -> Option<u16> {
        match self {
            Profile::Ideavate => Some(30),
            Profile::Impilo | Profile::Kobiton => None,
        }
    }

    /// The statuses the profile counts as delivered.
    pub fn success_statuses(self) -> Option<&'static [u16]> {
        match self {
            Profile::Ideavate => Some(&[200]),
            Profile::Impilo | Profile::Kobiton => None,
        }
    }

    /// How long after a message the profile keeps retrying it, in seconds.
    pub fn retry_window_seconds(self) -> Option<u32> {
        match self {
            Profile::Ideavate => Some(72 * 3600),
            Profile::Impilo | Profile::Kobiton => None,
        }
    }

    /// The exact delays between attempts the profile asks for, in seconds.
    pub fn retry_schedule(self) -> Option<&'static [u32]> {
        match self {
            Profile::Impilo => Some(&[900, 1800, 3600]),
            Profile::Ideavate | Profile::Kobiton => None,
        }
    }

    /// The envelope the profile wraps payloads in, where the endpoint keeps the default.
    pub fn envelope(self) -> Option<Envelope> {
        match self {
            Profile::Impilo => Some(Envelope::Typed),
            Profile::Ideavate | Profile::Kobiton => None,
        }
    }

    /// Whether deliveries carry the application's webhook secret in `Impilo-Webhook-Secret`
    /// (where the endpoint keeps the default signature) instead of being signed with the
    /// endpoint's own secret.
    pub fn sends_application_secret(self) -> bool {
        self == Profile::Impilo
    }

    /// The longest URL and description the profile accepts, in characters.
    pub fn max_url_and_description(self) -> Option<usize> {
        match self {
            Profile::Kobiton => Some(512),
            Profile::Ideavate | Profile::Impilo => None,
        }
    }

    /// Whether an endpoint with the profile must have a `name`.
    pub fn requires_name(self) -> bool {
        self == Profile::Kobiton
    }
}

impl EndpointOptions {
    /// The GraphQL selection that applies to an event type, if any.
    pub fn selection_for(&self, event_type: &str) -> Option<&GraphqlSelection> {
        self.graphql_by_event_type
            .get(event_type)
            .or(self.graphql.as_ref())
    }

    /// The per-attempt timeout in effect: the endpoint's, else its profile's (`None`: the
    /// server's default).
    pub fn effective_timeout_seconds(&self) -> Option<u16> {
        self.timeout_seconds
            .or_else(|| self.profile.and_then(Profile::timeout_seconds))
    }

    /// The delays between attempts the endpoint or its profile gives (exact unless
    /// `retry_jitter`); `None`: the server's schedule or a filled window.
    pub fn effective_retry_schedule(&self) -> Option<&[u32]> {
        self.retry_schedule
            .as_deref()
            .or_else(|| self.profile.and_then(Profile::retry_schedule))
    }

    /// The envelope in effect: the endpoint's, else (where it keeps `raw`) its profile's.
    pub fn effective_envelope(&self) -> Envelope {
        match (self.envelope, self.profile.and_then(Profile::envelope)) {
            (Envelope::Raw, Some(profile)) => profile,
            (own, _) => own,
        }
    }

    /// Whether deliveries carry the application's webhook secret in `Impilo-Webhook-Secret`
    /// rather than a signature by the endpoint's secret: the profile asks for it and the
    /// endpoint keeps the default signature.
    pub fn sends_application_secret(&self) -> bool {
        self.profile.is_some_and(Profile::sends_application_secret)
            && is_default_signature(&self.signature)
    }

    /// The retry window in effect: the endpoint's, else its profile's.
    pub fn effective_retry_window_seconds(&self) -> Option<u32> {
        self.retry_window_seconds
            .or_else(|| self.profile.and_then(Profile::retry_window_seconds))
    }

    /// Whether a response with `status` delivers: one of the endpoint's `successStatuses`, else
    /// of its profile's, else any 2xx.
    pub fn counts_as_delivered(&self, status: u16) -> bool {
        match (
            &self.success_statuses,
            self.profile.and_then(Profile::success_statuses),
        ) {
            (Some(own), _) => own.contains(&status),
            (None, Some(profile)) => profile.contains(&status),
            (None, None) => (200..300).contains(&status),
        }
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
    /// Delivered: the endpoint answered with a 2xx status.
    Success = 0,
    /// Not delivered yet: waiting for its next attempt.
    Pending = 1,
    /// Given up: the last attempt failed and no more are scheduled.
    Fail = 2,
    /// An attempt is in flight right now.
    Sending = 3,
    /// Will not be attempted: its endpoint was disabled while it waited (or its retry was
    /// due on a disabled endpoint), or its message's content was expunged before it went.
    /// Svix's lists report it as success unless asked for `expanded_statuses`.
    Canceled = 4,
}

impl DeliveryStatus {
    /// The status for its stored integer code (the enum's discriminant); `None` for an unknown
    /// code.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => DeliveryStatus::Success,
            1 => DeliveryStatus::Pending,
            2 => DeliveryStatus::Fail,
            3 => DeliveryStatus::Sending,
            4 => DeliveryStatus::Canceled,
            _ => return None,
        })
    }

    /// The lowercase name the API uses for the status (`success`, `pending`, `fail`, `sending`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Success => "success",
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Fail => "fail",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Canceled => "canceled",
        }
    }
}

/// Why an attempt was made (`MessageAttemptTriggerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Made by the worker on the retry schedule (`0` on the wire).
    Scheduled = 0,
    /// Asked for by a person through a resend (`1` on the wire).
    Manual = 1,
}

/// An endpoint's transformation (`…/endpoint/{id}/transformation`): JavaScript whose
/// `handler(webhook)` may rewrite each delivery (run by the `herald-transform` sandbox). Its
/// variables are secrets and are stored sealed, apart from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transformation {
    /// The code; empty when none was saved.
    pub code: String,
    /// Whether deliveries run it. Never true without code.
    pub enabled: bool,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// An application's webhook destination (`Endpoint` of the Svix API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's id (`ep_…`), stable for its lifetime.
    pub id: EndpointId,
    /// The application the endpoint belongs to.
    pub app_id: AppId,
    /// The caller's own unique name for the endpoint within its application (`uid`); usable in
    /// place of its id.
    pub uid: Option<String>,
    /// The endpoint's number, unique across the server and never reused (Kobiton's and
    /// Impilo's integer webhook id). Drawn by the caller from `SerialStore` before creating.
    pub serial: i64,
    /// Kobiton's webhook name: at most 50 characters, unique within the application.
    pub name: Option<String>,
    /// Where deliveries are POSTed: an absolute http or https URL.
    pub url: String,
    /// Which of the URLs the endpoint has had `url` is: set by the store, which bumps it when
    /// the URL changes. An attempt names the URL it was sent to by it instead of a copy.
    pub url_version: i64,
    /// Free text describing the endpoint; empty when not given.
    pub description: String,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    /// `None`: every message regardless of its channels.
    pub channels: Option<Vec<String>>,
    /// Disabled by the caller or after failing deliveries for too long: routing skips it, so
    /// messages published meanwhile are not sent to it.
    pub disabled: bool,
    /// `rateLimit` of the API: at most this many attempts per second; `None` falls back to the
    /// application's `rate_limit` (`throttleRate`), and then to no limit.
    pub rate_limit: Option<u16>,
    /// Labels the caller attached (`metadata`).
    pub metadata: Metadata,
    /// Herald's extra delivery settings (retries, timeout, ordering, signing, shaping, filter).
    pub options: EndpointOptions,
    /// When the endpoint was created.
    pub created_at: DateTime<Utc>,
    /// When the endpoint was last changed.
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
    /// A broker URL's credentials (`user:pass`, as written in the URL): sealed text.
    pub credentials: Option<Vec<u8>>,
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
    /// The secret itself, in the same `whsec_…` form as the current one.
    pub key: String,
    /// When the secret stops signing deliveries.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreviousSecret(redacted, expires {})", self.expires_at)
    }
}

/// A published message: one event for one application, fanned out to its matching endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's id (`msg_…`); its time part is the message's creation time.
    pub id: MessageId,
    /// The application that published the message.
    pub app_id: AppId,
    /// The message's number, unique across the server (the `id` of Impilo's typed envelope).
    /// Drawn by the caller from `SerialStore` before storing.
    pub serial: i64,
    /// The event type's name (`eventType`), which endpoints' `event_types` filter on.
    pub event_type: String,
    /// The publisher's own id for the event (`eventId`), unique within the application; the
    /// message can be looked up by it. `None` when not given.
    pub event_id: Option<String>,
    /// The channels the message is published on; `None` when none were given, in which case only
    /// endpoints without a channel filter receive it.
    pub channels: Option<Vec<String>>,
    /// The payload JSON exactly as published; `None` once expunged or past retention.
    pub payload: Option<String>,
    /// When the message was published.
    pub created_at: DateTime<Utc>,
    /// When the payload is deleted by retention.
    pub payload_expires_at: DateTime<Utc>,
    /// When the message's deliveries may start (`deliverAt`); `None`: at once.
    pub deliver_at: Option<DateTime<Utc>>,
    /// Free-form tags the message can be listed by (`tags`); `None` when none were given.
    pub tags: Option<Vec<String>>,
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
    /// The name the token format and the API use (`admin`, `app`, `read-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::App => "app",
            Role::ReadOnly => "read-only",
        }
    }

    /// Parses the name [`Role::as_str`] gives; `None` for anything else.
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
    /// Created through the API-key routes; lives until it is revoked or expires.
    Api,
    /// Issued as an application portal or console session; always expires, and ends on logout.
    Portal,
    /// The key of an integration (`…/app/{app}/integration`): manages that application's
    /// endpoints only, until rotated or deleted with its integration.
    Integration,
}

impl KeyKind {
    /// The name stored for the kind (`api`, `portal`, `integration`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Portal => "portal",
            KeyKind::Integration => "integration",
        }
    }

    /// Parses the name [`KeyKind::as_str`] gives; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(KeyKind::Api),
            "portal" => Some(KeyKind::Portal),
            "integration" => Some(KeyKind::Integration),
            _ => None,
        }
    }
}

/// A bearer credential as stored: who it is, what it may do, and a hash of its secret (never
/// the secret itself).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's id (`key_…`); the token `hk_<id body>_<secret>` carries its body.
    pub id: ApiKeyId,
    /// A label for people managing keys.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// How the key was issued.
    pub kind: KeyKind,
    /// Set for `Role::App`.
    pub app_id: Option<AppId>,
    /// SHA-256 of the token's secret; a presented token is checked against it in constant time.
    pub secret_hash: Vec<u8>,
    /// When the key was issued.
    pub created_at: DateTime<Utc>,
    /// When the key stops working; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The key a console session was minted from (the credential its operator signed in
    /// with): revoking that key ends the session.
    pub parent_id: Option<ApiKeyId>,
    /// The feature flags a portal token carries (`featureFlags` on `app-portal-access`): it
    /// sees the event types gated by these flags. Empty for every other key.
    pub feature_flags: Vec<String>,
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

/// A third party's integration with one application (Svix's integrations): a name, the
/// feature flags it may see, and the API key it works with, which manages that application's
/// endpoints only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// `integ_…`.
    pub id: crate::id::IntegrationId,
    /// The application it works on.
    pub app_id: AppId,
    /// A label for people.
    pub name: String,
    /// The feature-flagged event types it may see.
    pub feature_flags: Option<Vec<String>>,
    /// Its current key; `None` once that key was revoked (rotating issues a new one).
    pub key_id: Option<ApiKeyId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed (its key rotated included).
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_gives_defaults_that_the_endpoints_own_settings_override() {
        let mut o = EndpointOptions::default();
        assert!(o.counts_as_delivered(204) && !o.counts_as_delivered(301));
        assert_eq!(o.effective_timeout_seconds(), None);
        o.profile = Some(Profile::Ideavate);
        assert!(o.counts_as_delivered(200) && !o.counts_as_delivered(204));
        assert_eq!(o.effective_timeout_seconds(), Some(30));
        assert_eq!(o.effective_retry_window_seconds(), Some(259_200));
        o.success_statuses = Some(vec![200, 202]);
        o.timeout_seconds = Some(5);
        o.retry_window_seconds = Some(60);
        assert!(o.counts_as_delivered(202));
        assert_eq!(o.effective_timeout_seconds(), Some(5));
        assert_eq!(o.effective_retry_window_seconds(), Some(60));
    }
}
