//! Herald's delivery settings of an endpoint: the extension fields next to the Svix ones.

use std::collections::BTreeMap;

use herald_core::filter::Filter;
use herald_core::model::{EndpointOptions, Ordering, Profile};
use herald_core::shape::graphql::Query;
use herald_core::shape::{Encoding, Envelope, GraphqlSelection};
use herald_core::signing::{Scheme, SignatureConfig};
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Herald's delivery settings of an endpoint (extension fields; absent means the default).
/// Not a request body (`EndpointIn` spells these fields out), so no `deny_unknown_fields`:
/// flattened into `EndpointOut`, it must not close that object's schema.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOptions {
    /// Herald: seconds to wait before each retry, e.g. `[900, 1800, 3600]` (at most 50 entries
    /// of at most 7 days). Default: the server's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<u32>>,
    /// Herald: no attempt later than this many seconds after the message (e.g. 259200 for 72 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub retry_window_seconds: Option<u32>,
    /// Herald: per-attempt timeout covering connect, request and response (1 to 60; default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60)]
    pub timeout_seconds: Option<u16>,
    /// Herald: attempts in flight at once (1 to 100; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrency: Option<u16>,
    /// Herald: `unordered` (default) or `fifo`: one attempt at a time, in publish order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<OrderingMode>,
    /// Herald: how deliveries are signed (default: Standard Webhooks `standard-v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureSettings>,
    /// Herald: `json` (default) or `form` (`application/x-www-form-urlencoded`, nested values
    /// in bracket notation: `device[id]=1`, `tags[0]=a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<EncodingName>,
    /// Herald: `raw` (the payload as published; default), `typed`
    /// (`{"id", "type", "payload"}`) or `graphql` (`{"webhook", "query", "data"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeName>,
    /// Herald: a GraphQL query selecting what each delivery carries, evaluated against the
    /// payload (or sent to the application's `graphqlApi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphql: Option<GraphqlQuery>,
    /// Herald: GraphQL queries for particular event types, used instead of `graphql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphql_by_event_type: Option<BTreeMap<String, GraphqlQuery>>,
    /// Herald: a condition on the payload; messages that do not meet it are not sent to this
    /// endpoint. Dotted paths with `$eq $ne $in $nin $gt $gte $lt $lte $exists $and $or $not`,
    /// e.g. `{"device.kind": {"$in": ["private", "local"]}, "battery": {"$lt": 20}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Herald: how much each delay of `retrySchedule` is spread, in percent either way (0 to
    /// 50). Default: none, a given schedule is exact (the server's schedule is spread by 20 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 50)]
    pub retry_jitter: Option<u8>,
    /// Herald: the response statuses that count as delivered, e.g. `[200]` (1 to 20 codes from
    /// 100 to 599); any other answer is a failed attempt. Default: any 2xx (or the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_statuses: Option<Vec<u16>>,
    /// Herald: a seed system's delivery rules as this endpoint's defaults. `ideavate`: a 30 s
    /// timeout, only 200 counts as delivered, and retries for 72 hours (a schedule filling the
    /// window). `impilo`: the `typed` envelope (`id` = the message's `serial`), the
    /// application's webhook secret in `Impilo-Webhook-Secret` instead of a signature, and
    /// retries after exactly 15, 30 and 60 minutes. `kobiton`: a `name` is required, and the
    /// URL and description are at most 512 characters. The endpoint's own `timeoutSeconds`,
    /// `successStatuses`, `retryWindowSeconds`, `retrySchedule`, `envelope` (other than
    /// `raw`) and `signature` win over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileName>,
}

/// A seed system's delivery rules (`profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileName {
    Ideavate,
    Impilo,
    Kobiton,
}

impl From<ProfileName> for Profile {
    fn from(p: ProfileName) -> Self {
        match p {
            ProfileName::Ideavate => Profile::Ideavate,
            ProfileName::Impilo => Profile::Impilo,
            ProfileName::Kobiton => Profile::Kobiton,
        }
    }
}

impl From<Profile> for ProfileName {
    fn from(p: Profile) -> Self {
        match p {
            Profile::Ideavate => ProfileName::Ideavate,
            Profile::Impilo => ProfileName::Impilo,
            Profile::Kobiton => ProfileName::Kobiton,
        }
    }
}

/// The body's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingName {
    Json,
    Form,
}

/// What wraps the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeName {
    Raw,
    Typed,
    Graphql,
}

/// A GraphQL query and its fixed variables.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphqlQuery {
    #[schema(example = "query($full: Boolean = false) { device { id name @include(if: $full) } }")]
    pub query: String,
    /// Variables for the query; they take precedence over payload values of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Map<String, Value>>,
}

impl From<GraphqlQuery> for GraphqlSelection {
    fn from(q: GraphqlQuery) -> Self {
        GraphqlSelection {
            query: q.query,
            variables: q.variables.unwrap_or_default(),
        }
    }
}

impl From<&GraphqlSelection> for GraphqlQuery {
    fn from(s: &GraphqlSelection) -> Self {
        GraphqlQuery {
            query: s.query.clone(),
            variables: (!s.variables.is_empty()).then(|| s.variables.clone()),
        }
    }
}

impl From<EncodingName> for Encoding {
    fn from(e: EncodingName) -> Self {
        match e {
            EncodingName::Json => Encoding::Json,
            EncodingName::Form => Encoding::Form,
        }
    }
}

impl From<EnvelopeName> for Envelope {
    fn from(e: EnvelopeName) -> Self {
        match e {
            EnvelopeName::Raw => Envelope::Raw,
            EnvelopeName::Typed => Envelope::Typed,
            EnvelopeName::Graphql => Envelope::Graphql,
        }
    }
}

/// The signature scheme of an endpoint's deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeName {
    /// Standard Webhooks, HMAC-SHA256 (`webhook-signature: v1,…`), with a `whsec_` secret.
    #[default]
    StandardV1,
    /// Standard Webhooks, Ed25519 (`v1a,…`): the secret is a `whsk_` private key, receivers
    /// verify with its `whpk_` public key.
    StandardV1a,
    /// Lowercase hex HMAC-SHA1 of the body in `X-Signature` (Ideavate).
    HmacSha1Hex,
    /// `sha256=<hex HMAC-SHA256 of the body>` in `X-Signature-256`.
    HmacSha256Hex,
    /// The secret itself in `Impilo-Webhook-Secret` (Impilo). The weakest choice.
    StaticHeader,
    /// No signature.
    None,
}

impl From<SchemeName> for Scheme {
    fn from(s: SchemeName) -> Self {
        match s {
            SchemeName::StandardV1 => Scheme::StandardV1,
            SchemeName::StandardV1a => Scheme::StandardV1a,
            SchemeName::HmacSha1Hex => Scheme::HmacSha1Hex,
            SchemeName::HmacSha256Hex => Scheme::HmacSha256Hex,
            SchemeName::StaticHeader => Scheme::StaticHeader,
            SchemeName::None => Scheme::None,
        }
    }
}

impl From<Scheme> for SchemeName {
    fn from(s: Scheme) -> Self {
        match s {
            Scheme::StandardV1 => SchemeName::StandardV1,
            Scheme::StandardV1a => SchemeName::StandardV1a,
            Scheme::HmacSha1Hex => SchemeName::HmacSha1Hex,
            Scheme::HmacSha256Hex => SchemeName::HmacSha256Hex,
            Scheme::StaticHeader => SchemeName::StaticHeader,
            Scheme::None => SchemeName::None,
        }
    }
}

/// Herald's `signature` endpoint field.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureSettings {
    #[serde(default)]
    pub scheme: SchemeName,
    /// The header of `hmac-sha1-hex` (default `X-Signature`), `hmac-sha256-hex`
    /// (`X-Signature-256`) or `static-header` (`Impilo-Webhook-Secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Text before the hex digest (`hmac-sha256-hex`: `sha256=` by default; `hmac-sha1-hex`:
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl From<SignatureSettings> for SignatureConfig {
    fn from(s: SignatureSettings) -> Self {
        SignatureConfig {
            scheme: s.scheme.into(),
            header: s.header,
            prefix: s.prefix,
        }
    }
}

impl From<&SignatureConfig> for SignatureSettings {
    /// The settings in effect, defaults filled in, so a reader sees the actual header.
    fn from(c: &SignatureConfig) -> Self {
        let hex = matches!(c.scheme, Scheme::HmacSha1Hex | Scheme::HmacSha256Hex);
        Self {
            scheme: c.scheme.into(),
            header: c.header_name().map(str::to_owned),
            prefix: (hex && !c.digest_prefix().is_empty()).then(|| c.digest_prefix().to_owned()),
        }
    }
}

/// Delivery order of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderingMode {
    Unordered,
    Fifo,
}

impl From<OrderingMode> for Ordering {
    fn from(o: OrderingMode) -> Self {
        match o {
            OrderingMode::Fifo => Ordering::Fifo,
            OrderingMode::Unordered => Ordering::Unordered,
        }
    }
}

impl DeliveryOptions {
    /// The settings of a new endpoint: these, defaults for what is absent.
    pub fn into_options(self) -> EndpointOptions {
        let mut options = EndpointOptions::default();
        self.apply_to(&mut options);
        options
    }

    /// Sets what is present and leaves the rest. A PUT uses this too: clients that do not know
    /// Herald's fields (the Svix SDKs) must not reset them by leaving them out.
    pub fn apply_to(self, options: &mut EndpointOptions) {
        if self.retry_schedule.is_some() {
            options.retry_schedule = self.retry_schedule;
        }
        if self.retry_window_seconds.is_some() {
            options.retry_window_seconds = self.retry_window_seconds;
        }
        if self.timeout_seconds.is_some() {
            options.timeout_seconds = self.timeout_seconds;
        }
        if self.max_concurrency.is_some() {
            options.max_concurrency = self.max_concurrency;
        }
        if let Some(ordering) = self.ordering {
            options.ordering = ordering.into();
        }
        if let Some(signature) = self.signature {
            options.signature = signature.into();
        }
        if let Some(encoding) = self.encoding {
            options.encoding = encoding.into();
        }
        if let Some(envelope) = self.envelope {
            options.envelope = envelope.into();
        }
        if let Some(graphql) = self.graphql {
            options.graphql = Some(graphql.into());
        }
        if let Some(by_type) = self.graphql_by_event_type {
            options.graphql_by_event_type =
                by_type.into_iter().map(|(k, q)| (k, q.into())).collect();
        }
        if self.filter.is_some() {
            options.filter = self.filter;
        }
        if self.success_statuses.is_some() {
            options.success_statuses = self.success_statuses;
        }
        if self.retry_jitter.is_some() {
            options.retry_jitter = self.retry_jitter;
        }
        if let Some(profile) = self.profile {
            options.profile = Some(profile.into());
        }
    }

    pub fn from_options(o: &EndpointOptions) -> Self {
        Self {
            retry_schedule: o.retry_schedule.clone(),
            retry_window_seconds: o.retry_window_seconds,
            timeout_seconds: o.timeout_seconds,
            max_concurrency: o.max_concurrency,
            ordering: Some(match o.ordering {
                Ordering::Fifo => OrderingMode::Fifo,
                Ordering::Unordered => OrderingMode::Unordered,
            }),
            signature: Some(SignatureSettings::from(&o.signature)),
            encoding: Some(match o.encoding {
                Encoding::Json => EncodingName::Json,
                Encoding::Form => EncodingName::Form,
            }),
            envelope: Some(match o.envelope {
                Envelope::Raw => EnvelopeName::Raw,
                Envelope::Typed => EnvelopeName::Typed,
                Envelope::Graphql => EnvelopeName::Graphql,
            }),
            graphql: o.graphql.as_ref().map(GraphqlQuery::from),
            graphql_by_event_type: (!o.graphql_by_event_type.is_empty()).then(|| {
                o.graphql_by_event_type
                    .iter()
                    .map(|(k, s)| (k.clone(), GraphqlQuery::from(s)))
                    .collect()
            }),
            filter: o.filter.clone(),
            success_statuses: o.success_statuses.clone(),
            retry_jitter: o.retry_jitter,
            profile: o.profile.map(ProfileName::from),
        }
    }
}

/// Checks the delivery settings, at the locations of the request body.
pub fn check_options(v: &mut Violations, o: &EndpointOptions) {
    if let Some(schedule) = &o.retry_schedule {
        let as_durations: Vec<std::time::Duration> = schedule
            .iter()
            .map(|s| std::time::Duration::from_secs(u64::from(*s)))
            .collect();
        if let Err(msg) = herald_core::retry::check_schedule(&as_durations) {
            v.value(&["body", "retrySchedule"], msg);
        }
    }
    if let Some(window) = o.retry_window_seconds {
        validate::range(
            v,
            &["body", "retryWindowSeconds"],
            i64::from(window),
            1,
            2_592_000,
        );
    }
    if let Some(timeout) = o.timeout_seconds {
        validate::range(v, &["body", "timeoutSeconds"], i64::from(timeout), 1, 60);
    }
    if let Some(n) = o.max_concurrency {
        validate::range(v, &["body", "maxConcurrency"], i64::from(n), 1, 100);
    }
    if let Some(jitter) = o.retry_jitter {
        validate::range(v, &["body", "retryJitter"], i64::from(jitter), 0, 50);
        if o.effective_retry_schedule().is_none() {
            v.value(
                &["body", "retryJitter"],
                "spreads a `retrySchedule` (or the profile's); the server's schedule is always \
                 spread by 20 %",
            );
        }
    }
    if let Some(statuses) = &o.success_statuses {
        let loc = ["body", "successStatuses"];
        if statuses.is_empty() || statuses.len() > 20 {
            v.value(&loc, "give 1 to 20 status codes (leave it out for any 2xx)");
        }
        for (i, code) in statuses.iter().enumerate() {
            let index = i.to_string();
            validate::range(
                v,
                &["body", "successStatuses", &index],
                i64::from(*code),
                100,
                599,
            );
            if statuses[..i].contains(code) {
                v.value(&["body", "successStatuses", &index], "listed twice");
            }
        }
    }
    check_signature(v, &o.signature);
    if let Some(selection) = &o.graphql {
        check_query(v, &["body", "graphql", "query"], &selection.query);
    }
    if o.graphql_by_event_type.len() > 100 {
        v.value(&["body", "graphqlByEventType"], "at most 100 event types");
    }
    for (event_type, selection) in &o.graphql_by_event_type {
        validate::identifier(
            v,
            &["body", "graphqlByEventType", event_type],
            event_type,
            256,
        );
        check_query(
            v,
            &["body", "graphqlByEventType", event_type, "query"],
            &selection.query,
        );
    }
    if let Some(filter) = &o.filter {
        if let Err(e) = Filter::parse(filter) {
            let mut loc = vec!["body", "filter"];
            loc.extend(e.location.iter().map(String::as_str));
            v.value(&loc, e.message);
        } else if filter.to_string().len() > 16 * 1024 {
            v.value(&["body", "filter"], "longer than 16 KiB");
        }
    }
}

/// A query that does not parse is refused with the parser's line and column.
fn check_query(v: &mut Violations, loc: &[&str], query: &str) {
    if let Err(e) = Query::parse(query) {
        v.push(loc, e.to_string(), "value_error.graphql");
    }
}

fn check_signature(v: &mut Violations, s: &SignatureConfig) {
    let single = s.scheme.default_header().is_some();
    let hex = matches!(s.scheme, Scheme::HmacSha1Hex | Scheme::HmacSha256Hex);
    if let Some(header) = &s.header {
        let loc = ["body", "signature", "header"];
        if !single {
            v.value(
                &loc,
                "only hmac-sha1-hex, hmac-sha256-hex and static-header use a header name",
            );
        } else if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
            || header.len() > 128
        {
            v.value(&loc, "not a valid HTTP header name");
        } else if herald_core::headers::is_reserved(header) {
            v.value(&loc, "this header is set by Herald itself");
        }
    }
    if let Some(prefix) = &s.prefix {
        let loc = ["body", "signature", "prefix"];
        if !hex {
            v.value(&loc, "only the hex schemes take a prefix");
        } else if prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            v.value(&loc, "at most 64 visible ASCII characters");
        }
    }
}
