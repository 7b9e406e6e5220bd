//! One delivery attempt: the request as sent, and what its outcome means for the task.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use herald_core::id::AttemptId;
use herald_core::model::Trigger;
use herald_core::retry::parse_retry_after;
use herald_core::signing::{self, Scheme, SigningSecrets};
use herald_store::{AttemptRecord, NextStep, Task};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::Instrument;

use super::shaping::{self, Prepared, Shaping, Tools};
use super::snapshot::{EndpointSnapshot, USER_AGENT};
use crate::outbound::OutboundError;

/// The headers of a delivery: `webhook-id` and `webhook-timestamp` always (receivers
/// deduplicate on the id), the endpoint's signature headers (with `svix-*` copies for Standard
/// Webhooks v1 unless turned off), and the endpoint's own headers. Custom headers cannot shadow
/// Herald's: `herald_core::headers::is_reserved` is the one rule for both the API and this.
pub fn delivery_headers(
    snapshot: &EndpointSnapshot,
    msg_id: &str,
    timestamp: i64,
    prepared: &Prepared,
    now: DateTime<Utc>,
    svix_headers: bool,
) -> Result<HeaderMap, String> {
    let body = &prepared.body;
    let config = &snapshot.endpoint.options.signature;
    let secrets = SigningSecrets {
        current: snapshot.secrets.current.as_str(),
        previous: snapshot.secrets.active_previous(now).collect(),
    };
    let signature = signing::sign(config, &secrets, msg_id, timestamp, &body.body)
        .map_err(|e| format!("cannot sign: {e}"))?;
    let mut headers = HeaderMap::new();
    let mut set = |name: &str, value: &str| -> Result<(), String> {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        headers.insert(name, value);
        Ok(())
    };
    // The API refuses reserved names when headers are saved; one saved before a name became
    // reserved is still never sent in place of Herald's own.
    for (name, value) in &snapshot.secrets.headers {
        if !herald_core::headers::is_reserved(name) {
            set(name, value)?;
        }
    }
    // A transformation's headers (checked against the reserved names in `shaping`) come after
    // the endpoint's, so a handler may change one of those for a delivery.
    for (name, value) in &prepared.headers {
        set(name, value)?;
    }
    let timestamp = timestamp.to_string();
    set("content-type", body.content_type)?;
    set("user-agent", USER_AGENT)?;
    set("webhook-id", msg_id)?;
    set("webhook-timestamp", &timestamp)?;
    for (name, value) in &signature {
        set(name, value)?;
    }
    if svix_headers && config.scheme == Scheme::StandardV1 {
        set("svix-id", msg_id)?;
        set("svix-timestamp", &timestamp)?;
        if let Some((_, value)) = signature.first() {
            set("svix-signature", value)?;
        }
    }
    Ok(headers)
}

/// The headers of a request as the attempt's record keeps them: a JSON object, with the values
/// that are secrets at rest (custom header values, the `static-header` secret) replaced, and
/// those a transformation added (made from its variables, which are secrets too).
pub fn recorded_headers(
    snapshot: &EndpointSnapshot,
    headers: &HeaderMap,
    added: &BTreeMap<String, String>,
) -> String {
    let config = &snapshot.endpoint.options.signature;
    let secret_header = (config.scheme == Scheme::StaticHeader)
        .then(|| config.header_name())
        .flatten();
    let hidden = |name: &str| {
        secret_header.is_some_and(|h| h.eq_ignore_ascii_case(name))
            || snapshot
                .secrets
                .headers
                .keys()
                .chain(added.keys())
                .any(|k| k.eq_ignore_ascii_case(name))
    };
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| {
            let value = if hidden(name.as_str()) {
                "(hidden: stored encrypted with the endpoint)".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), serde_json::Value::String(value))
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Makes the attempt and returns its record, with the task's next step decided. Everything it
/// logs is inside one `attempt` span naming the message, the endpoint and the attempt (never
/// the URL, headers or bodies, which may carry credentials or customer data).
pub async fn run(
    tools: &Tools<'_>,
    snapshot: &EndpointSnapshot,
    task: &Task,
    svix_headers: bool,
) -> AttemptRecord {
    let id = AttemptId::generate();
    let span = tracing::info_span!(
        "attempt",
        msg_id = %task.msg_id,
        endpoint_id = %snapshot.endpoint.id,
        attempt_id = %id,
        attempt = task.attempts + 1,
    );
    let record = attempt(tools, snapshot, task, svix_headers, id)
        .instrument(span.clone())
        .await;
    span.in_scope(|| match (&record.next, &record.error) {
        (NextStep::Done, _) => tracing::debug!(
            status = record.status_code,
            duration_ms = record.duration_ms,
            "delivered"
        ),
        (next, Some(error)) => tracing::info!(
            duration_ms = record.duration_ms,
            %error,
            next = ?next,
            "attempt failed"
        ),
        (next, None) => tracing::info!(
            status = record.status_code,
            duration_ms = record.duration_ms,
            next = ?next,
            "attempt failed"
        ),
    });
    record
}

async fn attempt(
    tools: &Tools<'_>,
    snapshot: &EndpointSnapshot,
    task: &Task,
    svix_headers: bool,
    id: AttemptId,
) -> AttemptRecord {
    let started_at = herald_core::time::now();
    let clock = Instant::now();
    let endpoint = &snapshot.endpoint;
    let mut record = AttemptRecord {
        id,
        delivery_id: task.delivery_id,
        msg_id: task.msg_id.clone(),
        endpoint_id: endpoint.id.clone(),
        app_id: endpoint.app_id.clone(),
        url: endpoint.url.clone(),
        url_version: Some(endpoint.url_version),
        status_code: 0,
        response: String::new(),
        duration_ms: 0,
        trigger: if task.manual {
            Trigger::Manual
        } else {
            Trigger::Scheduled
        },
        error: None,
        request_headers: None,
        request_body: None,
        started_at,
        next: NextStep::Exhausted,
    };
    let Some(payload) = &task.payload else {
        record.error = Some("the message payload was deleted (retention or expunge)".into());
        return record;
    };
    // Shaping may ask a GraphQL API and run the transformation; signing covers exactly the
    // shaped bytes. A failure in any fails the attempt and is retried on the schedule.
    let request = match shaping::request_for(tools, snapshot, task, payload, started_at).await {
        Ok(Shaping::Send(prepared)) => delivery_headers(
            snapshot,
            task.msg_id.as_str(),
            started_at.timestamp(),
            &prepared,
            started_at,
            svix_headers,
        )
        .map(|headers| (headers, prepared)),
        Ok(Shaping::Canceled { url }) => {
            record.url = url;
            record.url_version = None;
            record.error = Some("canceled by the endpoint's transformation (cancel = true)".into());
            record.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
            record.next = NextStep::Canceled;
            return record;
        }
        Err(e) => Err(e),
    };
    if let Ok((headers, prepared)) = &request {
        record.request_headers = Some(recorded_headers(snapshot, headers, &prepared.headers));
        if prepared.body.body != payload.as_bytes() {
            record.request_body = Some(String::from_utf8_lossy(&prepared.body.body).into_owned());
        }
        if prepared.url_version.is_none() {
            record.url.clone_from(&prepared.url);
            record.url_version = None;
        }
    }
    let timed_out = |e: OutboundError| match e {
        OutboundError::Timeout(_) => format!("timed out after {}s", snapshot.timeout.as_secs()),
        other => other.to_string(),
    };
    let result = match request {
        Ok((headers, prepared)) => match herald_core::destination::parse(&endpoint.url) {
            Ok(Some(broker)) => publish(tools, snapshot, task, &broker, headers, prepared)
                .await
                .map(Answer::Broker)
                .map_err(timed_out),
            _ => tools
                .outbound
                .send(
                    prepared.method.as_str(),
                    &prepared.url,
                    headers,
                    Bytes::from(prepared.body.body),
                    snapshot.timeout,
                )
                .await
                .map(Answer::Http)
                .map_err(timed_out),
        },
        Err(e) => Err(e),
    };
    record.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut retry_after = None;
    let succeeded = match result {
        // The broker acknowledged: no HTTP status (0), its acknowledgement as the response.
        Ok(Answer::Broker(ack)) => {
            record.response = ack;
            true
        }
        Ok(Answer::Http(response)) => {
            record.status_code = response.status;
            record.response = String::from_utf8_lossy(&response.body).into_owned();
            if matches!(response.status, 429 | 503) {
                retry_after = response
                    .headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, started_at));
            }
            if response.status == 410 {
                record.next = NextStep::DisableEndpoint;
                return record;
            }
            // Any 2xx, or the endpoint's (or its profile's) `successStatuses`.
            snapshot
                .endpoint
                .options
                .counts_as_delivered(response.status)
        }
        Err(e) => {
            record.error = Some(e);
            false
        }
    };
    record.next = if succeeded {
        NextStep::Done
    } else {
        match snapshot.retry.next_attempt(
            task.attempts + 1,
            task.message_created_at,
            herald_core::time::now(),
            retry_after,
            rand::random::<f64>(),
        ) {
            Some(at) => NextStep::RetryAt(at),
            None => NextStep::Exhausted,
        }
    };
    record
}

/// What a destination answered.
enum Answer {
    Http(crate::outbound::OutboundResponse),
    /// The broker's acknowledgement, described.
    Broker(String),
}

/// Publishes a delivery to a broker endpoint: the body as an HTTP endpoint would get it, the
/// headers in the broker's framing (`outbound::brokers`). A transformation cannot have
/// changed the URL or method (`shaping::check_outcome`).
async fn publish(
    tools: &Tools<'_>,
    snapshot: &EndpointSnapshot,
    task: &Task,
    broker: &herald_core::destination::BrokerUrl,
    headers: HeaderMap,
    prepared: Prepared,
) -> Result<String, OutboundError> {
    let endpoint = &snapshot.endpoint;
    let masked = url::Url::parse(&endpoint.url)
        .is_ok_and(|u| u.username() == herald_core::destination::CREDENTIALS_MASK);
    let credentials = masked
        .then_some(snapshot.secrets.credentials.as_ref())
        .flatten()
        .map(|userinfo| herald_core::destination::Credentials::from_userinfo(userinfo));
    let message = crate::outbound::brokers::BrokerMessage {
        id: task.msg_id.as_str(),
        content_type: prepared.body.content_type,
        headers: headers
            .iter()
            .filter(|(name, _)| {
                *name != reqwest::header::CONTENT_TYPE && *name != reqwest::header::USER_AGENT
            })
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Bytes::from(prepared.body.body),
    };
    tools
        .outbound
        .brokers()
        .publish(broker, credentials, &message, snapshot.timeout)
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use herald_core::id::{AppId, EndpointId};
    use herald_core::model::Endpoint;
    use herald_core::retry::RetryPolicy;
    use herald_core::secrets::EndpointSecrets;
    use herald_core::shape::Shaped;

    use super::*;

    /// A custom header stored under a reserved name (saved before the name became reserved, or
    /// written to the database by hand) is never sent in place of Herald's own.
    #[test]
    fn stored_headers_never_shadow_herald_s() {
        let now = herald_core::time::now();
        let snapshot = EndpointSnapshot {
            endpoint: Endpoint {
                id: EndpointId::generate(),
                app_id: AppId::generate(),
                uid: None,
                serial: 1,
                name: None,
                url: "https://example.com/hook".into(),
                url_version: 0,
                description: String::new(),
                event_types: None,
                channels: None,
                disabled: false,
                rate_limit: None,
                metadata: BTreeMap::new(),
                options: Default::default(),
                created_at: now,
                updated_at: now,
            },
            secrets: EndpointSecrets {
                current: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned().into(),
                previous: Vec::new(),
                headers: BTreeMap::from([
                    ("Webhook-Id".to_owned(), "forged".to_owned()),
                    ("Host".to_owned(), "elsewhere.example".to_owned()),
                    ("x-tenant".to_owned(), "acme".to_owned()),
                ]),
                credentials: None,
                version: 0,
            },
            graphql_api: None,
            app_rate: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(15),
            transformation: None,
        };
        let prepared = Prepared {
            method: herald_transform::Method::Post,
            url: snapshot.endpoint.url.clone(),
            url_version: Some(0),
            body: Shaped {
                body: b"{}".to_vec(),
                content_type: "application/json",
            },
            headers: BTreeMap::new(),
        };
        let headers = delivery_headers(&snapshot, "msg_1", 1, &prepared, now, true).unwrap();
        assert_eq!(headers["webhook-id"], "msg_1");
        assert!(headers.get("host").is_none());
        assert_eq!(headers["x-tenant"], "acme");
    }
}
