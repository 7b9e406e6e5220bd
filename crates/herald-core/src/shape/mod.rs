//! Payload shaping: turning a published message into the exact bytes an endpoint receives.
//!
//! The steps run in a fixed order, and signing comes after all of them, so a signature always
//! covers the bytes sent:
//!
//! 1. **Selection** (optional): a GraphQL query picks fields of the payload, evaluated locally
//!    ([`graphql`]) or by the application's GraphQL API (the worker does that IO and hands the
//!    result in as a [`Selected`]).
//! 2. **Envelope**: `raw` (the payload, or the selected data, as is), `typed`
//!    (`{"id", "type", "payload"}`, Impilo), or `graphql` (Ideavate's
//!    `{"webhook", "query", "data"}`).
//! 3. **Encoding**: JSON, or `application/x-www-form-urlencoded` ([`form`]).
//!
//! An endpoint's **transformation** (JavaScript, run by the worker in the `herald-transform`
//! sandbox) sits between 2 and 3: it gets the [`document`] as `webhook.payload`, and what it
//! returns is [`encode`]d. So a transformation sees exactly what would have been sent, and
//! its output is still form-encoded when the endpoint asks for that.
//!
//! The default (`raw`, JSON, no selection) sends the published bytes untouched.

pub mod form;
pub mod graphql;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The body's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `application/json` (the default): the document serialized as JSON.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: the document flattened into form fields ([`form`]).
    Form,
}

impl Encoding {
    /// The `Content-Type` header value for the encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// What wraps the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// The payload (or the selected data) as is (the default).
    #[default]
    Raw,
    /// `{"id", "type", "payload"}`: the message's serial (an integer), its event type and the
    /// content (Impilo).
    Typed,
    /// `{"webhook": {"id", "trigger", "date"}, "query": {"api", "query", "variables"}, "data"}`
    /// (Ideavate): the message, the selection that ran, and its data.
    Graphql,
}

/// A GraphQL query an endpoint runs over its messages, with fixed variables.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlSelection {
    /// The GraphQL query text (an operation whose selection set picks fields of the payload).
    pub query: String,
    /// Variables the endpoint fixes; they override same-named variables taken from the payload.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variables: Map<String, Value>,
}

/// Where a selection ran, for the `graphql` envelope's `query.api`.
pub const LOCAL_API: &str = "herald:payload";

/// The outcome of a selection: the `data`, and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// `herald:payload` when evaluated locally, else the URL of the API that answered.
    pub api: String,
    /// The query text that ran.
    pub query: String,
    /// The variables it ran with (taken from the payload, then the configured ones).
    pub variables: Map<String, Value>,
    /// The `data` of the answer: what the envelope carries instead of the payload.
    pub data: Value,
}

/// The message facts shaping needs.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    /// The message's id (`msg_…`): `webhook.id` of the `graphql` envelope.
    pub id: &'a str,
    /// The message's serial: `id` of the `typed` envelope, an integer as Impilo sends it.
    pub serial: i64,
    /// The message's event type: `type` of the `typed` envelope, `webhook.trigger` of the
    /// `graphql` one.
    pub event_type: &'a str,
    /// When the message was published: `webhook.date` of the `graphql` envelope (RFC 3339,
    /// milliseconds).
    pub created_at: DateTime<Utc>,
    /// The payload JSON exactly as published.
    pub payload: &'a str,
}

/// A body ready to sign and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    /// The bytes to send (and sign).
    pub body: Vec<u8>,
    /// The `Content-Type` to send them with.
    pub content_type: &'static str,
}

/// Why a message could not be shaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The stored payload does not parse as JSON (serde's message); only shapes that rewrite the
    /// payload need to parse it.
    #[error("the stored payload is not valid JSON: {0}")]
    Payload(String),
}

/// Runs a selection locally against the payload.
pub fn select_locally(
    selection: &GraphqlSelection,
    payload: &Value,
) -> Result<Selected, graphql::QueryError> {
    let query = graphql::Query::parse(&selection.query)?;
    let variables = query.variables(payload, &selection.variables);
    let data = query.evaluate(payload, &variables)?;
    Ok(Selected {
        api: LOCAL_API.to_owned(),
        query: selection.query.clone(),
        variables,
        data,
    })
}

/// Builds the body an endpoint receives. `selected` is the selection's outcome when the
/// endpoint has a query for this event type.
pub fn shape(
    envelope: Envelope,
    encoding: Encoding,
    msg: &MessageFacts<'_>,
    selected: Option<&Selected>,
) -> Result<Shaped, ShapeError> {
    if envelope == Envelope::Raw && encoding == Encoding::Json && selected.is_none() {
        return Ok(Shaped {
            body: msg.payload.as_bytes().to_vec(),
            content_type: encoding.content_type(),
        });
    }
    Ok(encode(encoding, &document(envelope, msg, selected)?))
}

/// The document an endpoint's body encodes: the selection's data or the payload, in its
/// envelope (steps 1 and 2). A transformation runs over this, between steps 2 and 3.
pub fn document(
    envelope: Envelope,
    msg: &MessageFacts<'_>,
    selected: Option<&Selected>,
) -> Result<Value, ShapeError> {
    let content = match selected {
        Some(s) => s.data.clone(),
        None => {
            serde_json::from_str(msg.payload).map_err(|e| ShapeError::Payload(e.to_string()))?
        }
    };
    Ok(match envelope {
        Envelope::Raw => content,
        Envelope::Typed => json!({"id": msg.serial, "type": msg.event_type, "payload": content}),
        Envelope::Graphql => json!({
            "webhook": {
                "id": msg.id,
                "trigger": msg.event_type,
                "date": msg.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            "query": {
                "api": selected.map_or(LOCAL_API, |s| s.api.as_str()),
                // A string, as Ideavate's shape has it: empty when no query ran.
                "query": selected.map_or("", |s| s.query.as_str()),
                "variables": selected.map(|s| s.variables.clone()).unwrap_or_default(),
            },
            "data": content,
        }),
    })
}

/// Encodes a document (step 3).
pub fn encode(encoding: Encoding, document: &Value) -> Shaped {
    let body = match encoding {
        Encoding::Json => serde_json::to_vec(document).expect("a JSON value serializes"),
        Encoding::Form => form::encode(document).into_bytes(),
    };
    Shaped {
        body,
        content_type: encoding.content_type(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &str) -> MessageFacts<'_> {
        MessageFacts {
            id: "msg_1",
            serial: 57638473,
            event_type: "reading.weight",
            created_at: "2026-11-23T10:00:00.250Z".parse().unwrap(),
            payload,
        }
    }

    fn text(s: Shaped) -> String {
        String::from_utf8(s.body).unwrap()
    }

    #[test]
    fn raw_json_keeps_the_published_bytes() {
        let payload = "{ \"b\":1,  \"a\" : [1.50] }";
        let s = shape(Envelope::Raw, Encoding::Json, &msg(payload), None).unwrap();
        assert_eq!(s.body, payload.as_bytes());
        assert_eq!(s.content_type, "application/json");
    }

    #[test]
    fn envelopes_and_encodings() {
        let m = msg(r#"{"weight": 81.5, "unit": "kg"}"#);
        assert_eq!(
            text(shape(Envelope::Typed, Encoding::Json, &m, None).unwrap()),
            r#"{"id":57638473,"type":"reading.weight","payload":{"weight":81.5,"unit":"kg"}}"#
        );
        let form = shape(Envelope::Typed, Encoding::Form, &m, None).unwrap();
        assert_eq!(form.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            text(form),
            "id=57638473&type=reading.weight&payload%5Bweight%5D=81.5&payload%5Bunit%5D=kg"
        );
        assert_eq!(
            text(shape(Envelope::Raw, Encoding::Form, &m, None).unwrap()),
            "weight=81.5&unit=kg"
        );
        let selection = GraphqlSelection {
            query: "{ w: weight }".into(),
            variables: Map::new(),
        };
        let selected =
            select_locally(&selection, &serde_json::from_str(m.payload).unwrap()).unwrap();
        assert_eq!(
            text(shape(Envelope::Graphql, Encoding::Json, &m, Some(&selected)).unwrap()),
            r#"{"webhook":{"id":"msg_1","trigger":"reading.weight","date":"2026-11-23T10:00:00.250Z"},"query":{"api":"herald:payload","query":"{ w: weight }","variables":{}},"data":{"w":81.5}}"#
        );
        assert_eq!(
            text(shape(Envelope::Raw, Encoding::Json, &m, Some(&selected)).unwrap()),
            r#"{"w":81.5}"#
        );
        let no_query = text(shape(Envelope::Graphql, Encoding::Json, &m, None).unwrap());
        assert!(no_query.contains(r#""query":{"api":"herald:payload","query":"","variables":{}},"data":{"weight":81.5,"unit":"kg"}"#), "{no_query}");
    }
}
