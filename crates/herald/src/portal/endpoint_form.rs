//! The endpoint form: every field of an endpoint, as HTML controls named after the API's body
//! fields (so the API's error locations point at them), and the JSON bodies built from it.
//!
//! Values the browser could not check are passed to the API as typed, text where a number was
//! expected included, so that the API's own message names the field. Only text that is not
//! JSON at all is refused here, since it cannot be sent.

use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::session::Ctx;
use super::view::{self, Errors, field};
use crate::api::endpoint::EndpointOut;

/// The field names the form has; errors at other locations are shown above it.
pub const FIELDS: &[&str] = &[
    "type",
    "url",
    "description",
    "uid",
    "name",
    "profile",
    "eventTypes",
    "channels",
    "disabled",
    "throttleRate",
    "metadata",
    "secret",
    "retrySchedule",
    "retryWindowSeconds",
    "timeoutSeconds",
    "maxConcurrency",
    "ordering",
    "signature",
    "signature.scheme",
    "signature.header",
    "signature.prefix",
    "encoding",
    "envelope",
    "filter",
    "graphql",
    "graphql.variables",
    "graphqlByEventType",
];

#[derive(Debug, Default, Deserialize)]
pub struct EndpointForm {
    /// `http` or `polling` (chosen on creation only; empty: http).
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub uid: String,
    /// The webhook's name (Kobiton's).
    #[serde(default)]
    pub name: String,
    /// A seed system's rules (`ideavate`, `impilo`, `kobiton`; empty: none).
    #[serde(default)]
    pub profile: String,
    /// Ticked event types.
    #[serde(default, rename = "eventTypes")]
    pub event_types: Vec<String>,
    /// More event types or patterns (`reading.*`), comma-separated.
    #[serde(default)]
    pub patterns: String,
    #[serde(default)]
    pub channels: String,
    #[serde(default)]
    pub disabled: Option<String>,
    #[serde(default, rename = "throttleRate")]
    pub throttle_rate: String,
    #[serde(default)]
    pub metadata: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default, rename = "retrySchedule")]
    pub retry_schedule: String,
    #[serde(default, rename = "retryWindowSeconds")]
    pub retry_window_seconds: String,
    #[serde(default, rename = "timeoutSeconds")]
    pub timeout_seconds: String,
    #[serde(default, rename = "maxConcurrency")]
    pub max_concurrency: String,
    #[serde(default)]
    pub ordering: String,
    #[serde(default, rename = "signature.scheme")]
    pub scheme: String,
    #[serde(default, rename = "signature.header")]
    pub sig_header: String,
    #[serde(default, rename = "signature.prefix")]
    pub sig_prefix: String,
    #[serde(default)]
    pub encoding: String,
    #[serde(default)]
    pub envelope: String,
    #[serde(default)]
    pub filter: String,
    #[serde(default, rename = "graphql.query")]
    pub graphql_query: String,
    #[serde(default, rename = "graphql.variables")]
    pub graphql_variables: String,
    #[serde(default, rename = "graphqlByEventType")]
    pub graphql_by_event_type: String,
}

/// A JSON field of the endpoint, indented, or "" when it has none.
fn json_text<T: Serialize>(v: Option<&T>) -> String {
    v.map(view::pretty).unwrap_or_default()
}

fn number_text<N: ToString>(v: Option<N>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

fn list_text<T: ToString>(v: Option<&[T]>) -> String {
    v.map(|a| {
        a.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

fn name_text<T: Serialize>(v: Option<&T>) -> String {
    v.map(view::wire).unwrap_or_default()
}

/// Text as a JSON number when it is one, otherwise as the text (for the API to refuse).
fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Some(t.parse::<u64>().map_or_else(|_| json!(t), |n| json!(n)))
}

fn list(text: &str) -> Option<Vec<String>> {
    let items: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

impl EndpointForm {
    /// The form showing an endpoint as the API describes it.
    pub fn from_endpoint(e: &EndpointOut) -> Self {
        let d = &e.delivery;
        let sig = d.signature.as_ref();
        let graphql = d.graphql.as_ref();
        Self {
            kind: view::wire(&e.kind),
            url: e.url.clone(),
            description: e.description.clone(),
            uid: e.uid.clone().unwrap_or_default(),
            name: e.name.clone().unwrap_or_default(),
            profile: name_text(d.profile.as_ref()),
            event_types: e.event_types.clone().unwrap_or_default(),
            patterns: String::new(),
            channels: list_text(e.channels.as_deref()),
            disabled: e.disabled.then(|| "on".into()),
            throttle_rate: number_text(e.throttle_rate),
            metadata: json_text(Some(&e.metadata).filter(|m| !m.is_empty())),
            secret: String::new(),
            retry_schedule: list_text(d.retry_schedule.as_deref()),
            retry_window_seconds: number_text(d.retry_window_seconds),
            timeout_seconds: number_text(d.timeout_seconds),
            max_concurrency: number_text(d.max_concurrency),
            ordering: name_text(d.ordering.as_ref()),
            scheme: name_text(sig.map(|s| &s.scheme)),
            sig_header: sig.and_then(|s| s.header.clone()).unwrap_or_default(),
            sig_prefix: sig.and_then(|s| s.prefix.clone()).unwrap_or_default(),
            encoding: name_text(d.encoding.as_ref()),
            envelope: name_text(d.envelope.as_ref()),
            // The filter is the customer's own condition document (a `Value` in the API too).
            filter: json_text(d.filter.as_ref().filter(|f| !f.is_null())),
            graphql_query: graphql.map(|g| g.query.clone()).unwrap_or_default(),
            graphql_variables: json_text(graphql.and_then(|g| g.variables.as_ref())),
            graphql_by_event_type: json_text(d.graphql_by_event_type.as_ref()),
        }
    }

    /// Event types and patterns together; `None` means every event type.
    fn all_event_types(&self) -> Option<Vec<String>> {
        let mut all = self.event_types.clone();
        all.extend(list(&self.patterns).unwrap_or_default());
        all.dedup();
        (!all.is_empty()).then_some(all)
    }

    fn json_field(errors: &mut Errors, name: &str, text: &str) -> Option<Value> {
        let t = optional(text)?;
        match serde_json::from_str(t) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.add(name, format!("is not valid JSON ({e})"));
                None
            }
        }
    }

    /// The fields every body has, as `(name, value)`: `None` where the form left it empty.
    fn values(&self, errors: &mut Errors) -> Vec<(&'static str, Option<Value>)> {
        let graphql = optional(&self.graphql_query).map(|q| {
            let mut g = Map::new();
            g.insert("query".into(), json!(q));
            if let Some(vars) =
                Self::json_field(errors, "graphql.variables", &self.graphql_variables)
            {
                g.insert("variables".into(), vars);
            }
            Value::Object(g)
        });
        let mut signature = Map::new();
        signature.insert(
            "scheme".into(),
            json!(optional(&self.scheme).unwrap_or("standard-v1")),
        );
        if let Some(h) = optional(&self.sig_header) {
            signature.insert("header".into(), json!(h));
        }
        if let Some(p) = optional(&self.sig_prefix) {
            signature.insert("prefix".into(), json!(p));
        }
        let retry = list(&self.retry_schedule).map(|items| {
            Value::Array(
                items
                    .iter()
                    .map(|i| number(i).unwrap_or(Value::Null))
                    .collect(),
            )
        });
        vec![
            ("uid", optional(&self.uid).map(|u| json!(u))),
            ("name", optional(&self.name).map(|n| json!(n))),
            ("profile", optional(&self.profile).map(|p| json!(p))),
            ("eventTypes", self.all_event_types().map(|t| json!(t))),
            ("channels", list(&self.channels).map(|c| json!(c))),
            ("throttleRate", number(&self.throttle_rate)),
            ("retrySchedule", retry),
            ("retryWindowSeconds", number(&self.retry_window_seconds)),
            ("timeoutSeconds", number(&self.timeout_seconds)),
            ("maxConcurrency", number(&self.max_concurrency)),
            ("ordering", optional(&self.ordering).map(|o| json!(o))),
            ("signature", Some(Value::Object(signature))),
            ("encoding", optional(&self.encoding).map(|e| json!(e))),
            ("envelope", optional(&self.envelope).map(|e| json!(e))),
            ("filter", Self::json_field(errors, "filter", &self.filter)),
            ("graphql", graphql),
            (
                "graphqlByEventType",
                Self::json_field(errors, "graphqlByEventType", &self.graphql_by_event_type),
            ),
        ]
    }

    fn common(&self, body: &mut Map<String, Value>, errors: &mut Errors) {
        body.insert("url".into(), json!(self.url.trim()));
        body.insert("description".into(), json!(self.description));
        body.insert("disabled".into(), json!(self.disabled.is_some()));
        let metadata = Self::json_field(errors, "metadata", &self.metadata);
        body.insert("metadata".into(), metadata.unwrap_or_else(|| json!({})));
    }

    /// The `POST …/endpoint` body: empty fields left out (the defaults apply).
    pub fn create_body(&self) -> Result<Value, Errors> {
        let mut errors = Errors::default();
        let mut body = Map::new();
        self.common(&mut body, &mut errors);
        for (name, value) in self.values(&mut errors) {
            if let Some(v) = value {
                body.insert(name.into(), v);
            }
        }
        if let Some(secret) = optional(&self.secret) {
            body.insert("secret".into(), json!(secret));
        }
        if let Some(kind) = optional(&self.kind) {
            body.insert("type".into(), json!(kind));
        }
        if errors.is_empty() {
            Ok(Value::Object(body))
        } else {
            Err(errors)
        }
    }

    /// The `PATCH …/endpoint/{id}` body: every field, empty ones as `null` (the default again).
    pub fn patch_body(&self) -> Result<Value, Errors> {
        let mut errors = Errors::default();
        let mut body = Map::new();
        self.common(&mut body, &mut errors);
        for (name, value) in self.values(&mut errors) {
            body.insert(name.into(), value.unwrap_or(Value::Null));
        }
        // `null` is not a value these three take: leaving them out keeps them.
        for name in ["ordering", "encoding", "envelope"] {
            if body[name].is_null() {
                body.remove(name);
            }
        }
        if errors.is_empty() {
            Ok(Value::Object(body))
        } else {
            Err(errors)
        }
    }
}

fn select(
    id: &str,
    name: &str,
    described: &str,
    current: &str,
    options: &[(&str, &str)],
) -> Markup {
    html! {
        select id=(id) name=(name) aria-describedby=(described) {
            @for (value, text) in options {
                option value=(value) selected[*value == current] { (text) }
            }
        }
    }
}

fn text(id: &str, name: &str, described: &str, value: &str) -> Markup {
    html! { input id=(id) name=(name) type="text" value=(value) aria-describedby=(described); }
}

fn number_input(id: &str, name: &str, described: &str, value: &str, min: u32, max: u32) -> Markup {
    html! {
        input id=(id) name=(name) type="number" inputmode="numeric" min=(min) max=(max)
            value=(value) aria-describedby=(described);
    }
}

fn json_area(id: &str, name: &str, described: &str, value: &str, rows: u32) -> Markup {
    html! {
        textarea.mono id=(id) name=(name) rows=(rows) data-json="" spellcheck="false"
            aria-describedby=(described) { (value) }
    }
}

/// The form. `catalogue` lists the event types to offer as toggles; `creating` adds the
/// secret field.
pub fn render(
    ctx: &Ctx,
    form: &EndpointForm,
    errors: &Errors,
    catalogue: &[(String, String)],
    action: &str,
    creating: bool,
) -> Markup {
    // An endpoint following a seed system's rules is offered that system's event types only.
    let of_profile = optional(&form.profile)
        .and_then(herald_core::catalog::find)
        .map(|c| {
            c.event_types
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        });
    let catalogue: Vec<&(String, String)> = catalogue
        .iter()
        .filter(|(name, _)| of_profile.as_ref().is_none_or(|names| names.contains(name)))
        .collect();
    let known: Vec<&str> = catalogue.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<&str> = form
        .event_types
        .iter()
        .map(String::as_str)
        .filter(|t| !known.contains(t))
        .collect();
    let patterns = if form.patterns.is_empty() {
        extra.join(", ")
    } else {
        form.patterns.clone()
    };
    let e = errors;
    html! {
        (errors.summary())
        form.endpoint method="post" action=(action) {
            (view::csrf(ctx))
            fieldset {
                legend { "Where and what" }
                @if creating {
                    (field(e, "type", "Type", "HTTP: Herald POSTs each message to the URL. Polling: no URL; your consumers read the messages (for receivers behind NAT or firewalls).", |id, d| select(id, "type", d, &form.kind, &[
                        ("http", "HTTP (Herald delivers to a URL)"),
                        ("polling", "Polling (consumers read it)"),
                    ])))
                }
                (field(e, "url", "URL", "Where deliveries are sent (https recommended), or a broker: mqtt(s)://, nats:// or tls://, amqp(s)://, redis(s)://; leave empty for a polling endpoint.", |id, d| html! {
                    input id=(id) name="url" type="url" required[!creating && form.kind != "polling"] value=(form.url) aria-describedby=(d)
                        placeholder="https://example.com/webhooks";
                }))
                (field(e, "description", "Description", "For people; shown in lists.", |id, d| html! {
                    textarea id=(id) name="description" rows="2" maxlength="512" aria-describedby=(d) { (form.description) }
                }))
                (field(e, "uid", "UID", "Optional name of your own: letters, digits, - _ .", |id, d| html! {
                    input id=(id) name="uid" type="text" pattern="[a-zA-Z0-9\\-_.]+" maxlength="256"
                        value=(form.uid) aria-describedby=(d);
                }))
                (field(e, "name", "Webhook name", "Up to 50 characters, unique in the application; sent as webhookName (required with the Kobiton profile).", |id, d| html! {
                    input id=(id) name="name" type="text" maxlength="50" value=(form.name) aria-describedby=(d);
                }))
                (field(e, "profile", "Profile", "A seed system's delivery rules; its catalogue's event types are offered below.", |id, d| select(id, "profile", d, &form.profile, &[
                    ("", "None"),
                    ("ideavate", "Ideavate: 30 s, only 200, retries for 72 h"),
                    ("impilo", "Impilo: typed envelope, Impilo-Webhook-Secret, 15/30/60 min"),
                    ("kobiton", "Kobiton: named webhook, 512-character URL"),
                ])))
                fieldset.toggles aria-describedby="f-eventTypes-d" {
                    legend { "Event types" }
                    @if catalogue.is_empty() { p.hint { "No event types are defined yet." } }
                    @if of_profile.is_some() {
                        p.hint { "The event types of the " (form.profile) " catalogue (the endpoint's profile)." }
                    }
                    @for (name, description) in catalogue.iter().copied() {
                        @let id = format!("et-{}", name.replace('.', "-"));
                        div.toggle {
                            input id=(id) type="checkbox" name="eventTypes" value=(name)
                                checked[form.event_types.contains(name)];
                            label for=(id) { code { (name) } @if !description.is_empty() { " — " (description) } }
                        }
                    }
                    div.hint id="f-eventTypes-d" {
                        "Leave every box unticked to receive all event types."
                        @for msg in e.of("eventTypes") { span.field-error { " " (msg) } }
                    }
                }
                (field(e, "patterns", "More event types or patterns", "Comma-separated, e.g. reading.* (matches reading.weight).", |id, d| text(id, "patterns", d, &patterns)))
                (field(e, "channels", "Channels", "Comma-separated; only messages on one of these channels (empty: all).", |id, d| text(id, "channels", d, &form.channels)))
                (field(e, "filter", "Filter", "JSON condition on the payload, e.g. {\"battery\": {\"$lt\": 20}} (empty: none).", |id, d| json_area(id, "filter", d, &form.filter, 3)))
                div.field.check {
                    input #f-disabled type="checkbox" name="disabled" checked[form.disabled.is_some()];
                    label for="f-disabled" { "Disabled (receives nothing)" }
                }
            }
            fieldset {
                legend { "Signing" }
                (field(e, "signature.scheme", "Signature scheme", "How receivers verify deliveries.", |id, d| select(id, "signature.scheme", d, &form.scheme, &[
                    ("standard-v1", "Standard Webhooks, HMAC-SHA256 (standard-v1)"),
                    ("standard-v1a", "Standard Webhooks, Ed25519 (standard-v1a)"),
                    ("hmac-sha1-hex", "Hex HMAC-SHA1 in a header (hmac-sha1-hex)"),
                    ("hmac-sha256-hex", "Hex HMAC-SHA256 in a header (hmac-sha256-hex)"),
                    ("static-header", "The secret itself in a header (static-header, weakest)"),
                    ("none", "No signature (none)"),
                ])))
                (field(e, "signature.header", "Signature header", "For the hex and static-header schemes (empty: the scheme's default).", |id, d| text(id, "signature.header", d, &form.sig_header)))
                (field(e, "signature.prefix", "Digest prefix", "For the hex schemes, e.g. sha256= (empty: the default).", |id, d| text(id, "signature.prefix", d, &form.sig_prefix)))
                @if creating {
                    (field(e, "secret", "Secret", "Empty: one is generated.", |id, d| html! {
                        input id=(id) name="secret" type="text" autocomplete="off" value=(form.secret) aria-describedby=(d);
                    }))
                }
            }
            fieldset {
                legend { "Delivery" }
                (field(e, "encoding", "Encoding", "The body's media type.", |id, d| select(id, "encoding", d, &form.encoding, &[
                    ("json", "JSON (application/json)"),
                    ("form", "Form (application/x-www-form-urlencoded)"),
                ])))
                (field(e, "envelope", "Envelope", "What wraps the payload.", |id, d| select(id, "envelope", d, &form.envelope, &[
                    ("raw", "None: the payload as published"),
                    ("typed", "Typed: {id, type, payload}"),
                    ("graphql", "GraphQL: {webhook, query, data}"),
                ])))
                (field(e, "retrySchedule", "Retry schedule", "Seconds before each retry, comma-separated, e.g. 5, 300, 1800 (empty: the server's).", |id, d| html! {
                    input id=(id) name="retrySchedule" type="text" pattern="\\s*\\d+(\\s*,\\s*\\d+)*\\s*"
                        value=(form.retry_schedule) aria-describedby=(d);
                }))
                (field(e, "retryWindowSeconds", "Retry window (seconds)", "No attempt later than this after the message (empty: none).", |id, d| number_input(id, "retryWindowSeconds", d, &form.retry_window_seconds, 1, 2_592_000)))
                (field(e, "timeoutSeconds", "Timeout (seconds)", "Per attempt, 1 to 60 (empty: the server's).", |id, d| number_input(id, "timeoutSeconds", d, &form.timeout_seconds, 1, 60)))
                (field(e, "maxConcurrency", "Concurrency", "Attempts in flight at once, 1 to 100 (empty: 10).", |id, d| number_input(id, "maxConcurrency", d, &form.max_concurrency, 1, 100)))
                (field(e, "throttleRate", "Rate limit (messages per second)", "Empty: no limit.", |id, d| number_input(id, "throttleRate", d, &form.throttle_rate, 1, 65535)))
                (field(e, "ordering", "Ordering", "FIFO sends one at a time in publish order.", |id, d| select(id, "ordering", d, &form.ordering, &[
                    ("unordered", "Unordered"),
                    ("fifo", "FIFO"),
                ])))
            }
            details.advanced open[!form.graphql_query.is_empty() || !form.graphql_by_event_type.is_empty() || !form.metadata.is_empty()] {
                summary { "GraphQL selection and metadata" }
                (field(e, "graphql", "GraphQL query", "Selects what each delivery carries (empty: the whole payload).", |id, d| html! {
                    textarea.mono id=(id) name="graphql.query" rows="4" spellcheck="false" aria-describedby=(d) { (form.graphql_query) }
                }))
                (field(e, "graphql.variables", "GraphQL variables", "JSON object (optional).", |id, d| json_area(id, "graphql.variables", d, &form.graphql_variables, 2)))
                (field(e, "graphqlByEventType", "GraphQL per event type", "JSON: {\"EventType\": {\"query\": …}} (optional).", |id, d| json_area(id, "graphqlByEventType", d, &form.graphql_by_event_type, 3)))
                (field(e, "metadata", "Metadata", "JSON object of strings (optional).", |id, d| json_area(id, "metadata", d, &form.metadata, 2)))
            }
            div.actions {
                button.primary type="submit" { @if creating { "Create endpoint" } @else { "Save changes" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_left_out_on_create_and_null_on_patch() {
        let form = EndpointForm {
            url: " https://example.com/h ".into(),
            event_types: vec!["a.b".into()],
            patterns: "reading.*, ".into(),
            timeout_seconds: "abc".into(),
            retry_schedule: "5, 60".into(),
            ..Default::default()
        };
        let create = form.create_body().unwrap();
        assert_eq!(create["url"], "https://example.com/h");
        assert_eq!(create["eventTypes"], json!(["a.b", "reading.*"]));
        assert_eq!(create["timeoutSeconds"], "abc", "the API names the field");
        assert_eq!(create["retrySchedule"], json!([5, 60]));
        assert!(create.get("filter").is_none());
        assert_eq!(create["signature"], json!({"scheme": "standard-v1"}));
        let patch = form.patch_body().unwrap();
        assert!(patch["filter"].is_null() && patch.get("filter").is_some());
        assert!(patch.get("ordering").is_none());
    }

    #[test]
    fn text_that_is_not_json_is_refused_at_its_field() {
        let form = EndpointForm {
            filter: "{nope".into(),
            ..Default::default()
        };
        let errors = form.create_body().unwrap_err();
        assert_eq!(errors.of("filter").len(), 1);
    }

    #[test]
    fn an_endpoint_fills_the_form() {
        let e: EndpointOut = serde_json::from_value(
            json!({"id": "ep_1", "uid": null, "serial": 1, "type": "http",
            "url": "https://x", "description": "", "eventTypes": ["a"], "channels": null,
            "throttleRate": null, "metadata": {}, "createdAt": "2026-03-10T16:15:50Z",
            "updatedAt": "2026-03-10T16:15:50Z", "retrySchedule": [1, 2],
            "signature": {"scheme": "hmac-sha1-hex", "header": "X-Signature"},
            "filter": {"a": 1}, "disabled": true}),
        )
        .unwrap();
        let form = EndpointForm::from_endpoint(&e);
        assert_eq!(form.retry_schedule, "1, 2");
        assert_eq!(form.scheme, "hmac-sha1-hex");
        assert!(form.disabled.is_some());
        assert!(form.filter.contains("\"a\": 1"));
    }
}
