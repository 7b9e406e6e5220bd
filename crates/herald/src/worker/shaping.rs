//! A delivery's body: the endpoint's GraphQL selection (run locally, or by the application's
//! GraphQL API), then its envelope and encoding (`herald_core::shape`). Signing happens after
//! this, over exactly these bytes.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use herald_core::secrets::GraphqlApi;
use herald_core::shape::graphql::Query;
use herald_core::shape::{self, MessageFacts, Selected, Shaped};
use herald_store::Task;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::snapshot::{EndpointSnapshot, USER_AGENT};
use crate::outbound::{Outbound, OutboundError};

/// Largest GraphQL API answer read: it becomes the delivery's content.
const MAX_GRAPHQL_RESPONSE: usize = 1024 * 1024;

/// Builds the body for one attempt. An error fails the attempt (and is retried like any other
/// failure: a GraphQL API that is down now may answer later).
pub async fn body_for(
    outbound: &Outbound,
    snapshot: &EndpointSnapshot,
    task: &Task,
    payload: &str,
    sent_at: DateTime<Utc>,
) -> Result<Shaped, String> {
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
    let payload = personalized.as_deref().unwrap_or(payload);
    let selected = match options.selection_for(&task.event_type) {
        None => None,
        Some(selection) => {
            let payload: Value = serde_json::from_str(payload)
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
    let msg = MessageFacts {
        id: task.msg_id.as_str(),
        serial: task.msg_serial,
        event_type: &task.event_type,
        created_at: task.message_created_at,
        payload,
    };
    shape::shape(
        options.effective_envelope(),
        options.encoding,
        &msg,
        selected.as_ref(),
    )
    .map_err(|e| e.to_string())
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
