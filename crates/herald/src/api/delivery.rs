//! Where messages went: the endpoints a message was sent to, the messages an endpoint was sent,
//! an endpoint's statistics, and deleting a message's payload. Each answer is read from the
//! delivery queue's own rows, so it shows exactly what the engine did.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::model::DeliveryStatus;
use herald_core::page::Order;
use herald_core::validate::{self, Violations};
use herald_store::{Destination, EndpointMessageFilter, SentMessage};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Query, comma_list, query_bool};
use super::message::MessageOut;
use super::pagination::{ListResponse, PageQuery};
use super::params::{EndpointPath, MessagePath};
use super::status::{MessageStatus, MessageStatusText, reported};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_destinations))
        .routes(routes!(list_sent_messages))
        .routes(routes!(endpoint_stats))
        .routes(routes!(attempt_stats))
        .routes(routes!(expunge_message_content))
}

/// When the next attempt is due; only a pending delivery has one (while an attempt is in flight
/// the queue holds its lease expiry instead).
fn next_attempt(status: DeliveryStatus, at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    at.filter(|_| status == DeliveryStatus::Pending)
}

/// An endpoint a message was sent to, with the state of that delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageEndpointOut {
    #[schema(example = "ep_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub disabled: bool,
    pub throttle_rate: Option<u16>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status: MessageStatus,
    pub status_text: MessageStatusText,
    pub next_attempt: Option<DateTime<Utc>>,
}

impl From<Destination> for MessageEndpointOut {
    /// As Svix reports it: a canceled delivery reads as a success.
    fn from(d: Destination) -> Self {
        let e = d.endpoint;
        let status = reported(d.status, false);
        Self {
            id: e.id.into_string(),
            uid: e.uid,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            channels: e.channels,
            disabled: e.disabled,
            throttle_rate: e.rate_limit,
            created_at: e.created_at,
            updated_at: e.updated_at,
            status: status.into(),
            status_text: status.into(),
            next_attempt: next_attempt(d.status, d.next_attempt_at),
        }
    }
}

/// A message sent to an endpoint, with the state of that delivery.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut {
    #[schema(example = "msg_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub timestamp: DateTime<Utc>,
    pub status: MessageStatus,
    pub status_text: MessageStatusText,
    pub next_attempt: Option<DateTime<Utc>>,
}

impl EndpointMessageOut {
    fn new(s: SentMessage, with_content: bool, expanded_statuses: bool) -> Self {
        let m = MessageOut::new(s.message, with_content);
        let status = reported(s.status, expanded_statuses);
        Self {
            id: m.id,
            event_type: m.event_type,
            event_id: m.event_id,
            channels: m.channels,
            payload: m.payload,
            timestamp: m.timestamp,
            status: status.into(),
            status_text: status.into(),
            next_attempt: next_attempt(s.status, s.next_attempt_at),
        }
    }
}

/// List the endpoints a message was sent to, with each delivery's status and next attempt.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint", tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-attempted-destinations",
    params(MessagePath, PageQuery),
    responses((status = 200, body = ListResponse<MessageEndpointOut>)))]
async fn list_destinations(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<MessagePath>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<ListResponse<MessageEndpointOut>>> {
    let params = query.params(Order::Ascending)?;
    let message = super::message::load(&state, &scoped, &path.msg_id).await?;
    let page = state
        .store
        .list_destinations(&scoped.app.id, &message.id, &params)
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |d| d.endpoint.id.as_str().to_owned(),
        MessageEndpointOut::from,
    )))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SentMessagesQuery {
    /// Number of items per page (up to 250; 0 or absent: 50).
    pub limit: Option<u64>,
    /// An `iterator` or `prevIterator` from an earlier answer.
    pub iterator: Option<String>,
    /// Only messages on this channel.
    pub channel: Option<String>,
    /// Only messages with this tag.
    pub tag: Option<String>,
    /// Only messages whose delivery to this endpoint has this status.
    #[param(value_type = Option<MessageStatus>)]
    pub status: Option<MessageStatus>,
    /// Only messages created before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only messages created after this time.
    pub after: Option<DateTime<Utc>>,
    /// Include payloads (default true).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_content: Option<bool>,
    /// Only these event types (repeat the parameter or separate with commas).
    #[serde(default, deserialize_with = "comma_list")]
    pub event_types: Vec<String>,
    /// Report canceled deliveries as 4 (canceled); without it they read as 0 (success), as
    /// in Svix.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub expanded_statuses: Option<bool>,
}

/// List the messages sent to an endpoint, newest first, with each delivery's status and next
/// attempt.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg", tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-attempted-messages",
    params(EndpointPath, SentMessagesQuery),
    responses((status = 200, body = ListResponse<EndpointMessageOut>)))]
async fn list_sent_messages(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Query(query): Query<SentMessagesQuery>,
) -> ApiResult<axum::Json<ListResponse<EndpointMessageOut>>> {
    let params = PageQuery {
        limit: query.limit,
        iterator: query.iterator,
    }
    .params(Order::Descending)?;
    let mut v = Violations::new();
    validate::list_filters(&mut v, &query.event_types, query.channel.as_deref());
    if let Some(tag) = &query.tag {
        validate::channel(&mut v, &["query", "tag"], tag);
    }
    v.finish()?;
    let endpoint = super::endpoint::load(&state, &scoped, &path.endpoint_id).await?;
    let filter = EndpointMessageFilter {
        status: query.status.map(DeliveryStatus::from),
        event_types: query.event_types,
        channel: query.channel,
        tag: query.tag,
        status_code_class: None,
        before: query.before,
        after: query.after,
    };
    let with_content = query.with_content.unwrap_or(true);
    let expanded = query.expanded_statuses.unwrap_or(false);
    let page = state
        .store
        .list_sent_messages(&endpoint.id, &filter, &params)
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |s| s.message.id.as_str().to_owned(),
        |s| EndpointMessageOut::new(s, with_content, expanded),
    )))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Count messages created at or after this time (default: no bound).
    pub since: Option<DateTime<Utc>>,
    /// ... and before this time (default: no bound).
    pub until: Option<DateTime<Utc>>,
}

/// An endpoint's deliveries by status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    /// Deliveries canceled: their endpoint was disabled while they waited (or their retry
    /// came due on a disabled endpoint), or their message's content was expunged.
    pub canceled: u64,
}

/// Get an endpoint's statistics: how many of its deliveries are in each status.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", tag = "Endpoint",
    operation_id = "v1.endpoint.get-stats",
    params(EndpointPath, StatsQuery),
    responses((status = 200, body = EndpointStats)))]
async fn endpoint_stats(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Query(query): Query<StatsQuery>,
) -> ApiResult<axum::Json<EndpointStats>> {
    if let (Some(since), Some(until)) = (query.since, query.until)
        && until < since
    {
        return Err(ApiError::invalid(
            &["query", "until"],
            "must not be before `since`",
        ));
    }
    let endpoint = super::endpoint::load(&state, &scoped, &path.endpoint_id).await?;
    let stats = state
        .store
        .endpoint_stats(&endpoint.id, query.since, query.until)
        .await?;
    Ok(axum::Json(EndpointStats {
        success: stats.success,
        pending: stats.pending,
        sending: stats.sending,
        fail: stats.fail,
        canceled: stats.canceled,
    }))
}

/// Attempt statistics of an endpoint over a window (`since` floored and `until` raised to
/// the hour; by default the 28 days up to now, at most 90 days).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointAttemptStats {
    /// Attempts in the window that succeeded.
    pub success: u64,
    /// Attempts in the window that failed.
    pub fail: u64,
    /// Deliveries canceled, of messages created in the window (an attempt itself is never
    /// canceled).
    pub canceled: u64,
    /// Herald: the same attempts by UTC day, oldest first; days without attempts are left out.
    pub days: Vec<AttemptDayOut>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptDayOut {
    /// Midnight UTC that starts the day.
    pub day: DateTime<Utc>,
    pub success: u64,
    pub fail: u64,
}

const MAX_STATS_DAYS: i64 = 90;
const DEFAULT_STATS_DAYS: i64 = 28;

/// Get an endpoint's attempt statistics: successes and failures over a window, and by day.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats", tag = "Endpoint",
    operation_id = "v1.endpoint.get-attempt-stats",
    params(EndpointPath, StatsQuery),
    responses((status = 200, body = EndpointAttemptStats)))]
async fn attempt_stats(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Query(query): Query<StatsQuery>,
) -> ApiResult<axum::Json<EndpointAttemptStats>> {
    use chrono::{DurationRound, TimeDelta};
    let hour = TimeDelta::hours(1);
    let until = query.until.unwrap_or_else(herald_core::time::now);
    // Raised to the next hour unless already on one.
    let until =
        until.duration_trunc(hour).map_or(
            until,
            |floor| {
                if floor == until { floor } else { floor + hour }
            },
        );
    let since = query
        .since
        .unwrap_or(until - TimeDelta::days(DEFAULT_STATS_DAYS));
    let since = since.duration_trunc(hour).unwrap_or(since);
    if until < since {
        return Err(ApiError::invalid(
            &["query", "until"],
            "must not be before `since`",
        ));
    }
    if until - since > TimeDelta::days(MAX_STATS_DAYS) {
        return Err(ApiError::invalid(
            &["query", "since"],
            format!("the window is at most {MAX_STATS_DAYS} days"),
        ));
    }
    let endpoint = super::endpoint::load(&state, &scoped, &path.endpoint_id).await?;
    let days = state.store.attempt_days(&endpoint.id, since, until).await?;
    let canceled = state
        .store
        .endpoint_stats(&endpoint.id, Some(since), Some(until))
        .await?
        .canceled;
    Ok(axum::Json(EndpointAttemptStats {
        success: days.iter().map(|d| d.success).sum(),
        fail: days.iter().map(|d| d.fail).sum(),
        canceled,
        days: days
            .into_iter()
            .map(|d| AttemptDayOut {
                day: d.day,
                success: d.success,
                fail: d.fail,
            })
            .collect(),
    }))
}

/// Delete a message's payload (for instance when it was sent with sensitive content by
/// mistake). The message, its deliveries and attempts stay; it can no longer be sent.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/content", tag = "Message",
    operation_id = "v1.message.expunge-content",
    params(MessagePath),
    responses((status = 204, description = "Deleted")))]
async fn expunge_message_content(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<MessagePath>,
) -> ApiResult<StatusCode> {
    let message = super::message::load(&state, &scoped, &path.msg_id).await?;
    if !state
        .store
        .expunge_message_content(&scoped.app.id, &message.id)
        .await?
    {
        return Err(ApiError::NotFound("message not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
