//! Polling endpoints' consumers: Svix's message poller (`GET /api/v1/app/{app}/poller/{sink}`
//! and its server-tracked consumers, `…/consumer/{consumer_id}` and `…/seek`).
//!
//! A polling endpoint (`"type": "polling"`, see `api::endpoint::kind`) gets no delivery task:
//! each publish stores an entry for it in the publish transaction (`herald_store::PollStore`),
//! so a message acknowledged to its publisher is already there to read. Readers read entries in
//! commit order after a position, which the `iterator` carries (opaque: base64url of
//! `xid:seq`, see `read.rs`).
//!
//! **Consumers and acknowledgement (at-least-once).** Svix does not document when a
//! consumer's position moves, so Herald follows the rule that never loses a message: a
//! consumer's stored position moves only when the consumer acknowledges, by sending the
//! `iterator` of an answer with its next poll (or by a seek). A poll without `iterator` reads
//! from the stored position again. A consumer that crashes after reading a batch, before
//! acknowledging it, therefore gets that batch again: it may see a message twice, never miss
//! one. Two consumers keep two positions and each reads every message.
//!
//! **Long poll.** `wait` (seconds, 0 to 30) makes an empty answer wait for a message: the
//! reader waits on the poll bell that every publish rings (`crate::wakeup`; on Postgres other
//! nodes' publishes ring it through the store's wake-up subscription on worker nodes) and
//! checks again every 250 ms anyway, for what no bell announces (another node's publish seen by
//! an API-only node, an entry held back by the commit horizon).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herald_core::model::{Endpoint, EndpointKind, Role};
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};

mod read;

use read::{Filter, IteratorText as _, Position, Request};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(poll))
        .routes(routes!(consumer_poll))
        .routes(routes!(consumer_seek))
}

/// `/api/v1/app/{app_id}/poller/{sink_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PollerPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The polling endpoint's id or uid (Svix calls it the sink).
    pub sink_id: String,
}

/// `/api/v1/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConsumerPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The polling endpoint's id or uid.
    pub sink_id: String,
    /// The consumer's name, chosen by the consumer (1 to 256 of `a-zA-Z0-9-_.`).
    pub consumer_id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PollQuery {
    /// Messages per answer (1 to 250, default 50).
    pub limit: Option<u32>,
    /// The `iterator` of an earlier answer: read what comes after it. Without it, reading
    /// starts at the first message the endpoint collected (or at `after`).
    pub iterator: Option<String>,
    /// Only messages of this event type.
    pub event_type: Option<String>,
    /// Only messages on this channel.
    pub channel: Option<String>,
    /// Without `iterator`: start with the first message created after this time.
    pub after: Option<DateTime<Utc>>,
    /// Herald: long poll. Seconds (0 to 30, default 0) to wait for a message when there is none
    /// yet; the answer comes as soon as one is published.
    pub wait: Option<u32>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsumerPollQuery {
    /// Messages per answer (1 to 250, default 50).
    pub limit: Option<u32>,
    /// The `iterator` of the consumer's previous answer: acknowledges everything up to it (the
    /// consumer's stored position moves there) and reads what comes after. Without it, the
    /// consumer reads from its stored position (again).
    pub iterator: Option<String>,
    /// Herald: long poll (see the poll route).
    pub wait: Option<u32>,
}

/// One message as a poller reads it. `headers` carry the Standard Webhooks signature of this
/// message, made with the endpoint's secret over `payload` serialised as compact JSON, exactly
/// as it appears in this answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollingEndpointMessageOut {
    #[schema(example = "msg_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: String,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// When the message was created.
    pub timestamp: DateTime<Utc>,
    /// `webhook-id`, `webhook-timestamp` (now) and `webhook-signature`.
    pub headers: BTreeMap<String, String>,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub deliver_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollingEndpointOut {
    pub data: Vec<PollingEndpointMessageOut>,
    /// Where this answer ends: pass it to read on (and, for a consumer, to acknowledge).
    pub iterator: String,
    /// Whether this answer reached the end of what there is to read now.
    pub done: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollingEndpointConsumerSeekIn {
    /// The consumer's next read starts with the first message created after this time.
    pub after: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollingEndpointConsumerSeekOut {
    /// The consumer's new position.
    pub iterator: String,
}

/// The polling endpoint named by the path (404 for an HTTP endpoint).
async fn polling_endpoint(state: &AppState, scoped: &ScopedApp, id: &str) -> ApiResult<Endpoint> {
    let endpoint = super::endpoint::load(state, scoped, id).await?;
    if endpoint.options.kind != EndpointKind::Polling {
        return Err(ApiError::NotFound("not a polling endpoint"));
    }
    Ok(endpoint)
}

/// `limit` and `wait`, checked.
fn check_limits(v: &mut Violations, limit: Option<u32>, wait: Option<u32>) -> (u32, u32) {
    let limit = limit.unwrap_or(50);
    if !(1..=250).contains(&limit) {
        v.value(&["query", "limit"], "must be between 1 and 250");
    }
    let wait = wait.unwrap_or(0);
    if wait > 30 {
        v.value(&["query", "wait"], "a long poll waits 30 seconds at most");
    }
    (limit, wait)
}

/// Reads the messages a polling endpoint collected, after `iterator`.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/poller/{sink_id}", tag = "Message Poller",
    operation_id = "v1.message.poller.poll",
    params(PollerPath, PollQuery),
    responses((status = 200, body = PollingEndpointOut)))]
pub(crate) async fn poll(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<PollerPath>,
    Query(query): Query<PollQuery>,
) -> ApiResult<axum::Json<PollingEndpointOut>> {
    let mut v = Violations::new();
    let (limit, wait) = check_limits(&mut v, query.limit, query.wait);
    let iterator = query
        .iterator
        .as_deref()
        .map(|text| Position::parse(&mut v, text));
    if query.iterator.is_some() && query.after.is_some() {
        v.value(
            &["query", "after"],
            "`after` chooses where a read starts; with `iterator` it would be ignored: send one",
        );
    }
    v.finish()?;
    let endpoint = polling_endpoint(&state, &scoped, &path.sink_id).await?;
    let from = match (iterator.flatten(), query.after) {
        (Some(position), _) => position,
        (None, Some(after)) => state.store.poll_position_after(&endpoint.id, after).await?,
        (None, None) => Position::default(),
    };
    let filter = Filter {
        event_type: query.event_type,
        channel: query.channel,
    };
    let answer = read::read(
        &state,
        &endpoint,
        Request {
            from,
            limit,
            wait,
            filter,
        },
        "poll",
    )
    .await?;
    Ok(axum::Json(answer))
}

/// Reads a polling endpoint's messages as a consumer whose position Herald keeps: from the
/// consumer's acknowledged position, or after `iterator`, which it acknowledges.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}",
    tag = "Message Poller", operation_id = "v1.message.poller.consumer-poll",
    params(ConsumerPath, ConsumerPollQuery),
    responses((status = 200, body = PollingEndpointOut)))]
pub(crate) async fn consumer_poll(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<ConsumerPath>,
    Query(query): Query<ConsumerPollQuery>,
) -> ApiResult<axum::Json<PollingEndpointOut>> {
    let mut v = Violations::new();
    check_consumer_id(&mut v, &path.consumer_id);
    let (limit, wait) = check_limits(&mut v, query.limit, query.wait);
    let iterator = query
        .iterator
        .as_deref()
        .map(|text| Position::parse(&mut v, text));
    v.finish()?;
    let endpoint = polling_endpoint(&state, &scoped, &path.sink_id).await?;
    let store = &state.store;
    let from = match iterator.flatten() {
        // Acknowledging moves the consumer's position: a write, which would let a read-only
        // key make a consumer skip messages it never processed.
        Some(_) if scoped.principal.role == Role::ReadOnly => {
            return Err(ApiError::forbidden(
                "this token is read-only: it may read a consumer's messages (without `iterator`) \
                 but not acknowledge them",
            ));
        }
        Some(acknowledged) => {
            store
                .set_poll_cursor(&endpoint.id, &path.consumer_id, acknowledged)
                .await?;
            acknowledged
        }
        None => store
            .poll_cursor(&endpoint.id, &path.consumer_id)
            .await?
            .unwrap_or_default(),
    };
    let request = Request {
        from,
        limit,
        wait,
        filter: Filter::default(),
    };
    Ok(axum::Json(
        read::read(&state, &endpoint, request, "consumer").await?,
    ))
}

/// Sets a consumer's position: its next read starts with the first message created after
/// `after`.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/poller/{sink_id}/consumer/{consumer_id}/seek",
    tag = "Message Poller", operation_id = "v1.message.poller.consumer-seek",
    params(ConsumerPath),
    request_body = PollingEndpointConsumerSeekIn,
    responses((status = 200, body = PollingEndpointConsumerSeekOut)))]
pub(crate) async fn consumer_seek(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<ConsumerPath>,
    Json(body): Json<PollingEndpointConsumerSeekIn>,
) -> ApiResult<axum::Json<PollingEndpointConsumerSeekOut>> {
    let mut v = Violations::new();
    check_consumer_id(&mut v, &path.consumer_id);
    v.finish()?;
    let endpoint = polling_endpoint(&state, &scoped, &path.sink_id).await?;
    let position = state
        .store
        .poll_position_after(&endpoint.id, body.after)
        .await?;
    state
        .store
        .set_poll_cursor(&endpoint.id, &path.consumer_id, position)
        .await?;
    Ok(axum::Json(PollingEndpointConsumerSeekOut {
        iterator: Position::encode(position),
    }))
}

fn check_consumer_id(v: &mut Violations, consumer_id: &str) {
    validate::uid(v, &["path", "consumer_id"], consumer_id);
}
