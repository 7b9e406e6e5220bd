//! Sending an endpoint messages again, as background tasks (see [`crate::tasks`]): `recover`
//! (its failed deliveries), `replay-missing` (messages it never got) and `bulk-replay` (a
//! window of what it got, filtered). Each answers 202 with the task to follow.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::background::BackgroundTaskType;
use herald_core::model::Endpoint;
use herald_core::validate::{self, Violations};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::super::AppState;
use super::super::auth::ScopedApp;
use super::super::background_task::BackgroundTaskStarted;
use super::super::error::{ApiError, ApiResult};
use super::super::extract::Json;
use super::super::params::EndpointPath;
use super::super::status::{MessageStatus, StatusCodeClass};
use crate::tasks::{BulkReplayParams, WindowParams};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(recover))
        .routes(routes!(replay_missing))
        .routes(routes!(bulk_replay))
}

/// A window of message creation times (`RecoverIn`, `ReplayIn`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// Messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time (default: now).
    pub until: Option<DateTime<Utc>>,
}

/// The window `[since, until)`, checked: `until` defaults to now and may not precede `since`.
fn window(since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> ApiResult<WindowParams> {
    let until = until.unwrap_or_else(herald_core::time::now);
    if until < since {
        return Err(ApiError::invalid(
            &["body", "until"],
            "must not be before `since`",
        ));
    }
    Ok(WindowParams { since, until })
}

/// The endpoint of the path, which must be enabled: a disabled endpoint's deliveries would be
/// canceled as soon as they were due.
async fn enabled_endpoint(state: &AppState, scoped: &ScopedApp, id: &str) -> ApiResult<Endpoint> {
    let endpoint = super::load(state, scoped, id).await?;
    super::kind::refuse_deliveries(&endpoint)?;
    if endpoint.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        ));
    }
    Ok(endpoint)
}

async fn start(
    state: &AppState,
    task: BackgroundTaskType,
    endpoint: Endpoint,
    params: impl serde::Serialize,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    let params = serde_json::to_value(params)
        .map_err(|e| ApiError::Internal(format!("task parameters: {e}")))?;
    let started = state
        .tasks
        .start(task, Some(endpoint.app_id), Some(endpoint.id), params)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(started.into())))
}

/// Re-send the failed messages of a time window to an endpoint (for instance after it was
/// disabled and enabled again), as a background task (`endpoint.recover`; its `data`:
/// `messagesSent`).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", tag = "Endpoint",
    operation_id = "v1.endpoint.recover",
    params(EndpointPath),
    request_body = RecoverIn,
    responses((status = 202, body = BackgroundTaskStarted, description = "The task that queues the failed messages again")))]
async fn recover(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<RecoverIn>,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    start_window(
        &state,
        &scoped,
        &path,
        body,
        BackgroundTaskType::EndpointRecover,
    )
    .await
}

/// Send an endpoint the messages of a time window that it never got (created while it was
/// disabled, before it existed, or before its filters took them), matching its filters as they
/// are now; each once. A background task (`endpoint.replay`; its `data`: `messagesSent`, and
/// `messagesSkipped` for messages whose payload is gone).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing", tag = "Endpoint",
    operation_id = "v1.endpoint.replay-missing",
    params(EndpointPath),
    request_body = RecoverIn,
    responses((status = 202, body = BackgroundTaskStarted, description = "The task that sends the missing messages")))]
async fn replay_missing(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<RecoverIn>,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    start_window(
        &state,
        &scoped,
        &path,
        body,
        BackgroundTaskType::EndpointReplay,
    )
    .await
}

/// `recover` and `replay-missing`: a task over a window of an enabled endpoint's messages.
async fn start_window(
    state: &AppState,
    scoped: &ScopedApp,
    path: &EndpointPath,
    body: RecoverIn,
    task: BackgroundTaskType,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    let window = window(body.since, body.until)?;
    let endpoint = enabled_endpoint(state, scoped, &path.endpoint_id).await?;
    start(state, task, endpoint, window).await
}

/// Which of an endpoint's messages a bulk replay sends again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkReplayIn {
    /// Messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time (default: now).
    pub until: Option<DateTime<Utc>>,
    /// Only messages of these event types.
    pub event_types: Option<Vec<String>>,
    /// Only messages on this channel.
    pub channel: Option<String>,
    /// Only messages with this tag.
    pub tag: Option<String>,
    /// Only messages whose delivery to this endpoint has this status.
    pub status: Option<MessageStatus>,
    /// Only messages whose delivery's last response is of this class (`0`: none yet).
    pub status_code_class: Option<StatusCodeClass>,
}

/// Send a time window of an endpoint's messages again (whatever their outcome, or filtered by
/// status, status code class, event types, channel and tag), each once per replay. A
/// background task (`endpoint.bulk-replay`; its `data`: `messagesSent`, and `messagesSkipped`
/// for messages whose payload is gone).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay", tag = "Endpoint",
    operation_id = "v1.endpoint.bulk-replay",
    params(EndpointPath),
    request_body = BulkReplayIn,
    responses((status = 202, body = BackgroundTaskStarted, description = "The task that sends the messages again")))]
async fn bulk_replay(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<BulkReplayIn>,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    let window = window(body.since, body.until)?;
    let event_types = body.event_types.unwrap_or_default();
    let mut v = Violations::new();
    for (i, et) in event_types.iter().enumerate() {
        validate::identifier(&mut v, &["body", "eventTypes", &i.to_string()], et, 256);
    }
    if let Some(channel) = &body.channel {
        validate::channel(&mut v, &["body", "channel"], channel);
    }
    if let Some(tag) = &body.tag {
        validate::channel(&mut v, &["body", "tag"], tag);
    }
    v.finish()?;
    let endpoint = enabled_endpoint(&state, &scoped, &path.endpoint_id).await?;
    let params = BulkReplayParams {
        since: window.since,
        until: window.until,
        event_types,
        channel: body.channel,
        tag: body.tag,
        status: body.status.map(|s| s as u8),
        status_code_class: body.status_code_class.map(StatusCodeClass::code),
    };
    start(
        &state,
        BackgroundTaskType::EndpointBulkReplay,
        endpoint,
        params,
    )
    .await
}
