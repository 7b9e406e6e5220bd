//! A delivery's request: the endpoint's GraphQL selection (run locally, or by the
//! application's GraphQL API), its envelope, its transformation (JavaScript in the
//! `herald_transform` sandbox, which may also choose the method and URL, add headers or
//! cancel the delivery), then its encoding (`herald_core::shape`). Signing happens after this,
//! over exactly these bytes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use herald_core::secrets::GraphqlApi;
use herald_core::shape::graphql::Query;
use herald_core::shape::{self, MessageFacts, Selected, Shaped};
use herald_store::Task;
use herald_transform::{Method, Outcome, Sandbox, Webhook};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::snapshot::{EndpointSnapshot, USER_AGENT};
use crate::outbound::{Outbound, OutboundError};

/// Largest GraphQL API answer read: it becomes the delivery's content.
const MAX_GRAPHQL_RESPONSE: usize = 1024 * 1024;

/// What one attempt sends, before signing.
pub struct Prepared {
    pub method: Method,
    pub url: String,
    /// The endpoint's URL version when the request goes to the endpoint's URL (the attempt
    /// record then points at the URL history); `None` when a transformation chose another.
    pub url_version: Option<i64>,
    pub body: Shaped,
    /// Headers a transformation added.
    pub headers: BTreeMap<String, String>,
}

/// What shaping decided for one attempt.
pub enum Shaping {
    Send(Prepared),
    /// The transformation set `cancel`: nothing is sent.
    Canceled {
        url: String,
    },
}

/// Builds the request for one attempt. An error fails the attempt (and is retried like any
/// other failure: a GraphQL API that is down now may answer later).
pub async fn request_for(
    tools: &Tools<'_>,
    snapshot: &EndpointSnapshot,
    task: &Task,
    payload: &str,
    sent_at: DateTime<Utc>,
) -> Result<Shaping, String> {
    let endpoint = &snapshot.endpoint;
    let options = &endpoint.options;
    let (payload, selected) = select(tools.outbound, snapshot, task, payload, sent_at).await?;
    let Some(transformation) = &snapshot.transformation else {
        let body = shape::shape(
            options.effective_envelope(),
            options.encoding,
            &facts(task, &payload),
            selected.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        return Ok(Shaping::Send(Prepared {
            method: Method::Post,
            url: endpoint.url.clone(),
            url_version: Some(endpoint.url_version),
            body,
            headers: BTreeMap::new(),
        }));
    };
    let document = shape::document(
        options.effective_envelope(),
        &facts(task, &payload),
        selected.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let webhook = Webhook {
        method: Method::Post,
        url: endpoint.url.clone(),
        event_type: task.event_type.clone(),
        payload: document,
        variables: transformation.variables.clone(),
    };
    let started = std::time::Instant::now();
    let ran = tools
        .sandbox
        .run(transformation.code.clone(), webhook)
        .await;
    // A canceled delivery goes nowhere: what it would have sent is not checked.
    let checked = ran.map_err(|e| e.to_string()).and_then(|outcome| {
        if !outcome.cancel {
            check_outcome(&outcome, &endpoint.url, tools.require_https)?;
        }
        Ok(outcome)
    });
    crate::metrics::transformation_ran(
        match &checked {
            Ok(outcome) if outcome.cancel => "canceled",
            Ok(_) => "sent",
            Err(_) => "failed",
        },
        started.elapsed(),
    );
    let outcome = checked?;
    if outcome.cancel {
        return Ok(Shaping::Canceled { url: outcome.url });
    }
    let url_version = (outcome.url == endpoint.url).then_some(endpoint.url_version);
    Ok(Shaping::Send(Prepared {
        method: outcome.method,
        body: shape::encode(options.encoding, &outcome.payload),
        url: outcome.url,
        url_version,
        headers: outcome.headers,
    }))
}

/// What an attempt uses besides its endpoint.
pub struct Tools<'a> {
    pub outbound: &'a Outbound,
    pub sandbox: &'a Sandbox,
    /// URLs a transformation chooses must be `https`.
    pub require_https: bool,
}

/// The rules a transformation's output must keep, the same as the API's for what it saves: an
/// http(s) URL (https with `--require-https`; where it points is checked by the network policy
/// when it connects), and headers that are valid and not Herald's own.
///
/// A broker endpoint's destination is its URL: its transformation may rewrite the body and add
/// headers, but a different URL or method is refused (never silently ignored).
pub fn check_outcome(
    outcome: &Outcome,
    endpoint_url: &str,
    require_https: bool,
) -> Result<(), String> {
    if herald_core::destination::is_broker_url(endpoint_url) {
        if outcome.url != endpoint_url || outcome.method != herald_transform::Method::Post {
            return Err(
                "a broker endpoint's transformation cannot change the URL or the method: the \
                 endpoint's URL is where it publishes"
                    .into(),
            );
        }
        return check_headers(outcome);
    }
    let url = url::Url::parse(&outcome.url).map_err(|e| {
        format!(
            "the transformation's url {:?} is not a URL: {e}",
            outcome.url
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if !require_https => {}
        scheme => {
            return Err(format!(
                "the transformation's url has scheme {scheme:?}: {} only",
                if require_https {
                    "https"
                } else {
                    "http and https"
                }
            ));
        }
    }
    check_headers(outcome)
}

/// The headers a transformation added: valid, bounded, and not Herald's own.
fn check_headers(outcome: &Outcome) -> Result<(), String> {
    if outcome.headers.len() > MAX_ADDED_HEADERS {
        return Err(format!(
            "the transformation added {} headers; at most {MAX_ADDED_HEADERS}",
            outcome.headers.len()
        ));
    }
    for (name, value) in &outcome.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "the transformation's header {name:?} is not a valid name"
            ));
        }
        if herald_core::headers::is_reserved(name) {
            return Err(format!(
                "the transformation's header {name} is set by Herald and cannot be overridden"
            ));
        }
        if HeaderValue::from_str(value).is_err() || value.len() > 4096 {
            return Err(format!(
                "the transformation's header {name} has an invalid value (visible ASCII, at most \
                 4096 bytes)"
            ));
        }
    }
    Ok(())
}

/// Most headers a transformation may add (as many as an endpoint's custom headers).
const MAX_ADDED_HEADERS: usize = 20;

fn facts<'t>(task: &'t Task, payload: &'t str) -> MessageFacts<'t> {
    MessageFacts {
        id: task.msg_id.as_str(),
        serial: task.msg_serial,
        event_type: &task.event_type,
        created_at: task.message_created_at,
        payload,
    }
}

/// Personalises the payload (device events) and runs the endpoint's GraphQL selection, if any.
async fn select<'a>(
    outbound: &Outbound,
    snapshot: &EndpointSnapshot,
    task: &Task,
    payload: &'a str,
    sent_at: DateTime<Utc>,
) -> Result<(Cow<'a, str>, Option<Selected>), String> {
    let options = &snapshot.endpoint.options;
    // Device status events name the webhook that receives them (Kobiton's `webhookId` and
    // `webhookName`) and the time the callback is sent (`creationTime`): filled here, per
    // endpoint and per attempt, before anything else sees the payload.
    let personalized = herald_core::device::names_its_webhook(&task.event_type)
        .then(|| {
            let endpoint = &snapshot.endpoint;
            let name = match &endpoint.name {
                Some(name) => name.as_str(),
                None if !endpoint.description.is_empty() => endpoint.description.as_str(),
                None => endpoint.uid.as_deref().unwrap_or(endpoint.id.as_str()),
            };
            herald_core::device::personalize(payload, endpoint.serial, name, sent_at)
        })
        .flatten();
    let payload = match personalized {
        Some(own) => Cow::Owned(own),
        None => Cow::Borrowed(payload),
    };
    let selected = match options.selection_for(&task.event_type) {
        None => None,
        Some(selection) => {
            let payload: Value = serde_json::from_str(&payload)
                .map_err(|e| format!("the stored payload is not valid JSON: {e}"))?;
            Some(match &snapshot.graphql_api {
                Some(api) => {
                    let query = Query::parse(&selection.query)
                        .map_err(|e| format!("the endpoint's GraphQL query is invalid: {e}"))?;
                    let variables = query.variables(&payload, &selection.variables);
                    let data = remote_query(
                        outbound,
                        api,
                        &selection.query,
                        &variables,
                        snapshot.timeout,
                    )
                    .await?;
                    Selected {
                        api: api.url.clone(),
                        query: selection.query.clone(),
                        variables,
                        data,
                    }
                }
                None => shape::select_locally(selection, &payload)
                    .map_err(|e| format!("the endpoint's GraphQL query is invalid: {e}"))?,
            })
        }
    };
    Ok((payload, selected))
}

/// Sends the query to the application's GraphQL API through the same guarded client as
/// deliveries, and returns its `data`. An HTTP failure, a non-2xx answer, a body that is not
/// a GraphQL response or a response with `errors` is an error, recorded on the attempt.
async fn remote_query(
    outbound: &Outbound,
    api: &GraphqlApi,
    query: &str,
    variables: &serde_json::Map<String, Value>,
    timeout: Duration,
) -> Result<Value, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &api.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        headers.insert(name, value);
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    headers.insert("user-agent", HeaderValue::from_static(USER_AGENT));
    let body = serde_json::to_vec(&serde_json::json!({"query": query, "variables": variables}))
        .expect("a JSON value serializes");
    let response = outbound
        .post_capped(
            &api.url,
            headers,
            Bytes::from(body),
            timeout,
            MAX_GRAPHQL_RESPONSE,
        )
        .await
        .map_err(|e| match e {
            OutboundError::Timeout(_) => format!(
                "GraphQL API {}: timed out after {}s",
                api.url,
                timeout.as_secs()
            ),
            other => format!("GraphQL API {}: {other}", api.url),
        })?;
    let excerpt =
        || String::from_utf8_lossy(&response.body[..response.body.len().min(500)]).into_owned();
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "GraphQL API {} answered {}: {}",
            api.url,
            response.status,
            excerpt()
        ));
    }
    if response.truncated {
        return Err(format!(
            "GraphQL API {} answered more than {MAX_GRAPHQL_RESPONSE} bytes",
            api.url
        ));
    }
    let answer: Value = serde_json::from_slice(&response.body).map_err(|e| {
        format!(
            "GraphQL API {} answered something other than JSON ({e}): {}",
            api.url,
            excerpt()
        )
    })?;
    if let Some(errors) = answer.get("errors").and_then(Value::as_array)
        && !errors.is_empty()
    {
        let messages: Vec<&str> = errors
            .iter()
            .map(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            })
            .collect();
        return Err(format!(
            "GraphQL API {} answered errors: {}",
            api.url,
            messages.join("; ")
        ));
    }
    match answer.get("data") {
        Some(data) if data.is_object() => Ok(data.clone()),
        _ => Err(format!(
            "GraphQL API {} answered without `data`: {}",
            api.url,
            excerpt()
        )),
    }
}
