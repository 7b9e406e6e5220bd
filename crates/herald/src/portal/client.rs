//! The in-process client of the JSON API that every page uses, and the refusals it reads
//! (the error pages they become are `error`'s).
//!
//! A request goes through the API's authenticated router exactly as one from the network
//! would (authentication, scoping, read-only refusals, validation), only without a socket.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::api::error::{HttpErrorOut, HttpValidationError};

/// The API, as one session's token sees it.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: String,
}

/// What the API refused, and why, in its own words.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub detail: String,
    /// Validation errors: the location in the body (without the leading `body`) and message.
    pub fields: Vec<(Vec<String>, String)>,
}

impl Api {
    pub fn new(router: Router, token: String) -> Self {
        Self { router, token }
    }

    /// The raw response, for answers passed on as they are (exports).
    pub async fn raw(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        // A path the pages built badly is the portal's fault: a 500 naming it, not a panic.
        let request = match request.body(body) {
            Ok(request) => request,
            Err(e) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the portal built an invalid request for {path}: {e}"),
                )
                    .into_response();
            }
        };
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Calls the API: the answer's bytes when it succeeded, otherwise the refusal.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<axum::body::Bytes, Refusal> {
        let response = self.raw(method, path, body).await;
        if response.status().is_success() {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map_err(|e| Refusal::internal(format!("reading the API's answer: {e}")))
        } else {
            Err(Refusal::of(response).await)
        }
    }

    /// Calls the API for its effect (a change, a deletion, a resend): the answer is not read.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), Refusal> {
        self.call(method, path, body).await.map(drop)
    }

    /// Calls the API and reads its answer as one of the API's own wire types: a field the API
    /// renamed or dropped is an error here, never a blank on a page. The answer is parsed from
    /// its bytes (not through a `Value`), so that payloads the API sends as raw JSON
    /// (`Box<RawValue>`) arrive as sent.
    pub async fn send_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Refusal> {
        let bytes = self.call(method, path, body).await?;
        let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(text).map_err(|e| {
            Refusal::internal(format!(
                "the API's answer to {path} is not what the portal expects: {e}"
            ))
        })
    }

    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, Refusal> {
        self.send_as(Method::GET, path, None).await
    }

    pub async fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, Refusal> {
        self.send_as(Method::POST, path, Some(body)).await
    }

    /// The status alone (health checks answer 204 or 503).
    pub async fn status(&self, path: &str) -> StatusCode {
        self.raw(Method::GET, path, None).await.status()
    }
}

impl Refusal {
    pub fn internal(detail: String) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail,
            fields: Vec::new(),
        }
    }

    /// The refusal a failed answer carries.
    pub async fn of(response: Response) -> Self {
        let status = response.status();
        let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(bytes) => bytes,
            Err(e) => return Self::internal(format!("reading the API's answer: {e}")),
        };
        // Kept as a `Value`: a refusal may come from outside the API's handlers (a rejection
        // of the router, plain text), and every shape of it must still show its words.
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Self::from_answer(status, &value)
    }

    fn from_answer(status: StatusCode, body: &Value) -> Self {
        // The API's own two error shapes (see `api::error`): invalid fields, or a detail.
        if let Ok(invalid) = HttpValidationError::deserialize(body) {
            let fields = invalid
                .detail
                .into_iter()
                .map(|item| {
                    let loc = match item.loc.split_first() {
                        Some((first, rest)) if first == "body" => rest.to_vec(),
                        _ => item.loc,
                    };
                    (loc, item.msg)
                })
                .collect();
            return Self {
                status,
                detail: "Some fields need attention.".to_owned(),
                fields,
            };
        }
        let detail = match HttpErrorOut::deserialize(body) {
            Ok(error) => error.detail,
            // Not from the API's handlers (a rejection of the router): its text, if any.
            Err(_) => body.as_str().unwrap_or("").to_owned(),
        };
        Self {
            status,
            detail,
            fields: Vec::new(),
        }
    }

    /// Every message, field locations first, for places without a form to point into.
    pub fn messages(&self) -> Vec<String> {
        if self.fields.is_empty() {
            return vec![self.detail.clone()];
        }
        self.fields
            .iter()
            .map(|(loc, msg)| {
                if loc.is_empty() {
                    msg.clone()
                } else {
                    format!("{}: {msg}", loc.join("."))
                }
            })
            .collect()
    }
}

/// One path segment, percent-encoded, for building API and page paths from what a browser
/// sent (so that no value can add segments).
pub fn seg(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let dots_only = value.chars().all(|c| c == '.');
    for b in value.bytes() {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b':');
        if plain || (b == b'.' && !dots_only) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, leaving out empty values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    let s = s.finish();
    if s.is_empty() { s } else { format!("?{s}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_add_path_parts() {
        assert_eq!(seg("ep_1Ab-x.y"), "ep_1Ab-x.y");
        assert_eq!(seg("a/b"), "a%2Fb");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("x?y#z"), "x%3Fy%23z");
        assert_eq!(seg("team:qa"), "team:qa");
    }

    /// Reads `answer` as `T` the way the portal does and writes it back: the API's answer must
    /// survive the round trip unchanged (raw payloads, flattened options, absent fields).
    fn round_trip<T: DeserializeOwned + serde::Serialize>(answer: Value) {
        let text = answer.to_string();
        let typed: T = serde_json::from_slice(text.as_bytes()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), answer);
    }

    #[test]
    fn the_api_answers_read_back_as_its_types() {
        use crate::api::{attempt, delivery_log, endpoint, inbox, message, pagination};
        let at = "2026-03-10T16:15:50Z";
        round_trip::<pagination::ListResponse<message::MessageOut>>(serde_json::json!({
            "data": [{"id": "msg_1", "eventType": "a.b", "eventId": null, "channels": ["c"],
                "payload": {"z": [1, {"y": null}], "a": "x"}, "timestamp": at, "serial": 7}],
            "iterator": "it", "prevIterator": null, "done": false}));
        round_trip::<endpoint::EndpointOut>(serde_json::json!({
            "id": "ep_1", "uid": null, "serial": 3, "name": "Lab hook", "type": "http", "url": "https://x",
            "description": "", "eventTypes": null,
            "channels": null, "disabled": false, "throttleRate": 5, "metadata": {"k": "v"},
            "createdAt": at, "updatedAt": at, "retrySchedule": [5, 60], "ordering": "fifo",
            "signature": {"scheme": "hmac-sha256-hex", "header": "X-Sig", "prefix": "sha256="},
            "envelope": "typed", "graphqlByEventType": {"a": {"query": "{ a }"}},
            "filter": {"battery": {"$lt": 20}}}));
        round_trip::<attempt::MessageAttemptOut>(serde_json::json!({
            "id": "atmpt_1", "msgId": "msg_1", "endpointId": "ep_1", "url": "https://x",
            "response": "", "responseStatusCode": 0, "responseDurationMs": 12, "status": 2,
            "statusText": "fail", "timestamp": at, "triggerType": 1, "error": "timeout",
            "requestHeaders": {"content-type": "application/json"}}));
        round_trip::<delivery_log::DeliveryLogOut>(serde_json::json!({
            "content": [{"appId": "app_1", "msgId": "msg_1", "endpointId": "ep_1",
                "eventType": "a.b", "url": "https://x", "payload": null, "createTimestamp": at,
                "lastResponseStatus": null, "retryAttempts": 0, "lastRetryTimestamp": null,
                "status": "pending", "nextAttempt": at}],
            "page": 1, "size": 50, "total": 1, "first": true, "last": true}));
        round_trip::<inbox::entries::InboxEntryOut>(serde_json::json!({
            "id": "entry_1", "key": "k", "path": "a/b", "method": "PUT", "receivedAt": at,
            "sourceAddress": null, "encoding": "text", "headers": {"x": "y"},
            "value": "plain text"}));
    }

    #[test]
    fn validation_errors_keep_their_body_locations() {
        let body = serde_json::json!({"detail": [
            {"loc": ["body", "url"], "msg": "bad", "type": "value_error"},
            {"loc": ["query", "x"], "msg": "worse", "type": "value_error"}
        ]});
        let r = Refusal::from_answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
        assert_eq!(r.fields[0].0, vec!["url"]);
        assert_eq!(r.messages(), vec!["url: bad", "query.x: worse"]);
        let r = Refusal::from_answer(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"code": "not_found", "detail": "endpoint not found"}),
        );
        assert_eq!(r.messages(), vec!["endpoint not found"]);
    }
}
