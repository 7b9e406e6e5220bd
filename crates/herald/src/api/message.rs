//! Messages: the events a producer publishes to an application.
//!
//! The payload is kept exactly as it arrived (the text of the `payload` JSON value), so what a
//! receiver gets and what the producer sent are the same bytes.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use herald_core::id::MessageId;
use herald_core::model::Message;
use herald_core::page::Order;
use herald_core::validate::{self, Violations};
use herald_store::{MessageFilter, SerialKind};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::application::{ApplicationIn, find_or_create};
use super::auth::{PathInScope, Principal, ScopedApp};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query, comma_list, query_bool};
use super::idempotency::{IdempotencyClaim, RecordedWithEffect};
use super::pagination::{ListResponse, PageQuery};
use super::params::{AppPath, MessagePath};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, create_message))
        .routes(routes!(get_message))
        .routes(routes!(precheck_active))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessagePrecheckIn {
    pub event_type: String,
    pub channels: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePrecheckOut {
    /// Whether an enabled endpoint of the application would get such a message (an endpoint's
    /// payload `filter` is not applied: there is no payload yet).
    pub active: bool,
}

/// Whether a message of this event type and these channels would go to any enabled endpoint,
/// so that a producer can skip building events nobody receives.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/precheck/active", tag = "Message",
    operation_id = "v1.message.precheck",
    params(AppPath),
    request_body = MessagePrecheckIn,
    responses((status = 200, body = MessagePrecheckOut)))]
async fn precheck_active(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Json(body): Json<MessagePrecheckIn>,
) -> ApiResult<axum::Json<MessagePrecheckOut>> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "eventType"], &body.event_type, 256);
    if let Some(channels) = &body.channels {
        validate::channel_list(&mut v, &["body", "channels"], channels, 5);
    }
    v.finish()?;
    let mut params =
        herald_core::page::ListParams::first(herald_core::page::MAX_LIMIT, Order::Ascending);
    loop {
        let page = state.store.list_endpoints(&scoped.app.id, &params).await?;
        if page.items.iter().any(|e| {
            herald_core::routing::endpoint_may_match(e, &body.event_type, body.channels.as_deref())
        }) {
            return Ok(axum::Json(MessagePrecheckOut { active: true }));
        }
        match (page.more_in_scan_direction, page.items.last()) {
            (true, Some(last)) => {
                params.cursor = Some(herald_core::page::Cursor {
                    key: last.id.as_str().to_owned(),
                    backwards: false,
                });
            }
            _ => return Ok(axum::Json(MessagePrecheckOut { active: false })),
        }
    }
}

/// Days a payload is kept when the message does not say (the Svix default).
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

/// No `Debug`: payloads are customer data and stay out of logs.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageIn {
    #[schema(
        example = "user.signup",
        max_length = 256,
        pattern = r"^[a-zA-Z0-9\-_.]+$"
    )]
    pub event_type: String,
    /// The event's data: a JSON object, delivered byte for byte.
    #[schema(value_type = Object, example = json!({"email": "test@example.com", "username": "test_user"}))]
    pub payload: Box<RawValue>,
    /// Optional unique identifier: a second message with the same `eventId` in the application
    /// is refused with 409.
    #[schema(max_length = 256, pattern = r"^[a-zA-Z0-9\-_.]+$")]
    pub event_id: Option<String>,
    /// Channels endpoints can filter by (at most 5).
    pub channels: Option<Vec<String>>,
    /// Days to keep the payload (5 to 90, default 90).
    #[schema(minimum = 5, maximum = 90)]
    pub payload_retention_period: Option<i64>,
    /// Creates the application alongside the message when the path names none.
    pub application: Option<ApplicationIn>,
    /// Tags to list the message by (`tag=` on message and attempt lists): at most 5, each 1
    /// to 128 letters, digits, `-`, `_`, `.` or `:`.
    pub tags: Option<Vec<String>>,
    /// Holds every delivery of the message until this time, at most 5 days ahead (a time
    /// already past delivers at once). Kept in the queue, so it survives restarts.
    pub deliver_at: Option<DateTime<Utc>>,
}

/// How far ahead `deliverAt` may be.
pub const MAX_SCHEDULE_DAYS: i64 = 5;

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    #[schema(example = "msg_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub timestamp: DateTime<Utc>,
    /// The message's tags; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// When the message's deliveries start, if it was scheduled (`deliverAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<DateTime<Utc>>,
    /// Herald: the message's number, unique across the server: the `id` of the `typed`
    /// envelope (Impilo's). Numbers increase on each node; several nodes interleave theirs,
    /// and there are gaps.
    #[serde(default)]
    pub serial: i64,
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is JSON")
}

impl MessageOut {
    pub fn new(m: Message, with_content: bool) -> Self {
        let payload = match m.payload {
            Some(text) if with_content => {
                RawValue::from_string(text).unwrap_or_else(|_| empty_object())
            }
            _ => empty_object(),
        };
        Self {
            id: m.id.into_string(),
            event_type: m.event_type,
            event_id: m.event_id,
            channels: m.channels,
            payload,
            timestamp: m.created_at,
            tags: m.tags,
            deliver_at: m.deliver_at,
            serial: m.serial,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WithContentQuery {
    /// Include the payload (default true).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListQuery {
    /// Number of items per page (1 to 250, default 50).
    pub limit: Option<u64>,
    /// An `iterator` or `prevIterator` from an earlier answer.
    pub iterator: Option<String>,
    /// Only messages on this channel.
    pub channel: Option<String>,
    /// Only messages with this tag.
    pub tag: Option<String>,
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
}

fn check(v: &mut Violations, body: &MessageIn, now: DateTime<Utc>) {
    validate::identifier(v, &["body", "eventType"], &body.event_type, 256);
    if !body.payload.get().trim_start().starts_with('{') {
        v.push(
            &["body", "payload"],
            "must be a JSON object",
            "type_error.dict",
        );
    }
    if let Some(event_id) = &body.event_id {
        validate::identifier(v, &["body", "eventId"], event_id, 256);
    }
    if let Some(channels) = &body.channels {
        validate::channel_list(v, &["body", "channels"], channels, 5);
    }
    if let Some(days) = body.payload_retention_period {
        validate::range(v, &["body", "payloadRetentionPeriod"], days, 5, 90);
    }
    if let Some(tags) = &body.tags {
        validate::channel_list(v, &["body", "tags"], tags, 5);
    }
    if let Some(at) = body.deliver_at
        && at > now + Duration::days(MAX_SCHEDULE_DAYS)
    {
        v.push(
            &["body", "deliverAt"],
            format!("must be at most {MAX_SCHEDULE_DAYS} days in the future"),
            "value_error.datetime.range",
        );
    }
    if let Some(app) = &body.application
        && let Err(ApiError::Validation(items)) = app.validate()
    {
        for item in items {
            let mut loc: Vec<&str> = vec!["body", "application"];
            loc.extend(item.loc.iter().skip(1).map(String::as_str));
            v.push(&loc, item.msg, &item.kind);
        }
    }
}

/// Publish a message to an application.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg", tag = "Message", operation_id = "v1.message.create",
    params(AppPath, WithContentQuery),
    request_body = MessageIn,
    responses((status = 202, body = MessageOut, description = "Accepted: stored and queued for delivery")))]
async fn create_message(
    State(state): State<AppState>,
    principal: Principal,
    _: PathInScope,
    claim: Option<Extension<IdempotencyClaim>>,
    Path(app_id): Path<String>,
    Query(query): Query<WithContentQuery>,
    Json(body): Json<MessageIn>,
) -> ApiResult<Response> {
    let id = MessageId::generate();
    let created_at = id.timestamp().unwrap_or_else(herald_core::time::now);
    let mut v = Violations::new();
    check(&mut v, &body, created_at);
    v.finish()?;
    let app = find_or_create(&state, &principal, &app_id, body.application).await?;
    // The server's setting bounds what a message may ask for.
    let retention = Duration::days(
        body.payload_retention_period
            .unwrap_or(DEFAULT_RETENTION_DAYS),
    )
    .min(state.payload_retention);
    let message = Message {
        id,
        app_id: app.id,
        serial: state.store.next_serial(SerialKind::Message).await?,
        event_type: body.event_type,
        event_id: body.event_id,
        channels: body.channels,
        payload: Some(body.payload.get().to_owned()),
        created_at,
        payload_expires_at: created_at + retention,
        // A time already past is no schedule.
        deliver_at: body.deliver_at.filter(|at| *at > created_at),
        tags: body.tags,
    };
    // The answer is known before the message is stored, so that an `Idempotency-Key` can
    // commit with it (see `idempotency`).
    let with_content = query.with_content.unwrap_or(true);
    let answer = serde_json::to_vec(&MessageOut::new(message.clone(), with_content))
        .map_err(|e| ApiError::Internal(format!("cannot encode the answer: {e}")))?;
    let (matched, recorded) = match claim {
        Some(Extension(claim)) => {
            let completion = claim.completion(&state, StatusCode::ACCEPTED, &answer);
            let matched = state
                .store
                .create_message_idempotent(&message, &completion)
                .await?;
            (matched, true)
        }
        None => (state.store.create_message(&message).await?, false),
    };
    crate::metrics::message_published(&state.event_type_labels, &message.event_type);
    state.wakeup.endpoints(matched);
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response();
    if recorded {
        response.extensions_mut().insert(RecordedWithEffect);
    }
    Ok(response)
}

/// List an application's messages, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg", tag = "Message", operation_id = "v1.message.list",
    params(AppPath, MessageListQuery),
    responses((status = 200, body = ListResponse<MessageOut>)))]
async fn list_messages(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Query(query): Query<MessageListQuery>,
) -> ApiResult<axum::Json<ListResponse<MessageOut>>> {
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
    let filter = MessageFilter {
        event_types: query.event_types,
        channel: query.channel,
        tag: query.tag,
        before: query.before,
        after: query.after,
    };
    let with_content = query.with_content.unwrap_or(true);
    let page = state
        .store
        .list_messages(&scoped.app.id, &filter, &params)
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |m| m.id.as_str().to_owned(),
        |m| MessageOut::new(m, with_content),
    )))
}

/// Load a message of the application by id, or else by `eventId`.
pub async fn load(
    state: &AppState,
    scoped: &ScopedApp,
    id_or_event_id: &str,
) -> ApiResult<Message> {
    let found = match MessageId::parse(id_or_event_id) {
        Some(id) => state.store.get_message(&scoped.app.id, &id).await?,
        None => None,
    };
    let found = match found {
        Some(m) => Some(m),
        None => {
            state
                .store
                .get_message_by_event_id(&scoped.app.id, id_or_event_id)
                .await?
        }
    };
    found.ok_or(ApiError::NotFound("message not found"))
}

/// Get a message by id or `eventId`.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}", tag = "Message", operation_id = "v1.message.get",
    params(MessagePath,
           WithContentQuery),
    responses((status = 200, body = MessageOut)))]
async fn get_message(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<MessagePath>,
    Query(query): Query<WithContentQuery>,
) -> ApiResult<axum::Json<MessageOut>> {
    let message = load(&state, &scoped, &path.msg_id).await?;
    Ok(axum::Json(MessageOut::new(
        message,
        query.with_content.unwrap_or(true),
    )))
}
