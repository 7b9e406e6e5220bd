//! Message attempts: every HTTP request Herald made for a message, listed by endpoint or by
//! message, one by one, with their response bodies (which can be deleted), and manual resends.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::id::AttemptId;
use herald_core::model::DeliveryStatus;
use herald_core::page::Order;
use herald_core::validate::{self, Violations};
use herald_store::{Attempt, AttemptFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Query, comma_list, query_bool};
use super::message::MessageOut;
use super::pagination::{ListResponse, PageQuery};
use super::params::{AttemptPath, EndpointPath, MessageEndpointPath, MessagePath};
use super::status::{MessageAttemptTriggerType, MessageStatus, MessageStatusText, StatusCodeClass};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(resend))
        .routes(routes!(list_by_endpoint))
        .routes(routes!(list_by_msg))
        .routes(routes!(get_attempt))
        .routes(routes!(expunge_content))
}

/// An empty JSON object (`EmptyResponse`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct EmptyResponse {}

/// Resend a message to an endpoint now, as a manual attempt. Failures are retried on the
/// endpoint's schedule.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    tag = "Message", operation_id = "v1.message-attempt.resend",
    params(MessageEndpointPath),
    responses((status = 202, body = EmptyResponse, description = "Queued")))]
async fn resend(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<MessageEndpointPath>,
) -> ApiResult<(StatusCode, axum::Json<EmptyResponse>)> {
    let message = super::message::load(&state, &scoped, &path.msg_id).await?;
    let endpoint = state
        .store
        .get_endpoint(&scoped.app.id, &path.endpoint_id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))?;
    super::endpoint::kind::refuse_deliveries(&endpoint)?;
    if endpoint.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        ));
    }
    if message.payload.is_none() {
        return Err(ApiError::Conflict(
            "the message's payload was deleted; it cannot be sent again".into(),
        ));
    }
    state
        .store
        .requeue(&message, &endpoint.id, herald_core::time::now())
        .await?;
    state.wakeup.endpoints([endpoint.id]);
    Ok((StatusCode::ACCEPTED, axum::Json(EmptyResponse {})))
}

/// One HTTP request made to deliver a message to an endpoint. No `Debug`: response bodies
/// and the embedded message are customer data and stay out of logs.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptOut {
    #[schema(example = "atmpt_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    /// The URL the request went to.
    pub url: String,
    /// The response body (the first 20,000 bytes); empty when none was received, when it was
    /// deleted, or with `with_content=false`.
    pub response: String,
    /// The response's status code; 0 when no response was received.
    pub response_status_code: u16,
    /// Response duration in milliseconds.
    pub response_duration_ms: i64,
    pub status: MessageStatus,
    pub status_text: MessageStatusText,
    /// When the attempt started.
    pub timestamp: DateTime<Utc>,
    pub trigger_type: MessageAttemptTriggerType,
    /// Herald: why no response was received (timeout, refused connection, TLS error, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Herald, on the single-attempt route: the request's headers as sent (custom header
    /// values and `static-header` secrets replaced); absent when no request was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub request_headers: Option<serde_json::Value>,
    /// Herald, on the single-attempt route: the body sent, when shaping made it differ from
    /// the message's payload (absent: the payload byte for byte, or deleted with the response
    /// body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// The attempt's message, without its payload, on lists asked `with_msg=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<MessageOut>,
}

impl MessageAttemptOut {
    pub fn new(a: Attempt, with_content: bool) -> Self {
        let status = if a.success {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Fail
        };
        Self {
            id: a.id.into_string(),
            msg_id: a.msg_id.into_string(),
            endpoint_id: a.endpoint_id.into_string(),
            url: a.url,
            response: a.response.filter(|_| with_content).unwrap_or_default(),
            response_status_code: a.status_code,
            response_duration_ms: a.duration_ms,
            status: status.into(),
            status_text: status.into(),
            timestamp: a.created_at,
            trigger_type: a.trigger.into(),
            error: a.error,
            request_headers: None,
            request_body: None,
            msg: None,
        }
    }

    /// With the request as sent (the single-attempt route).
    fn with_request(a: Attempt) -> Self {
        let headers = a
            .request_headers
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok());
        let body = a.request_body.clone();
        Self {
            request_headers: headers,
            request_body: body,
            ..Self::new(a, true)
        }
    }
}

/// The filters both attempt lists share.
struct CommonFilter {
    status: Option<MessageStatus>,
    status_code_class: Option<StatusCodeClass>,
    channel: Option<String>,
    tag: Option<String>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    event_types: Vec<String>,
}

impl CommonFilter {
    fn into_filter(self) -> ApiResult<AttemptFilter> {
        let mut v = Violations::new();
        validate::list_filters(&mut v, &self.event_types, self.channel.as_deref());
        if let Some(tag) = &self.tag {
            validate::channel(&mut v, &["query", "tag"], tag);
        }
        v.finish()?;
        Ok(AttemptFilter {
            status: self.status.map(DeliveryStatus::from),
            status_code_class: self.status_code_class.map(StatusCodeClass::code),
            event_types: self.event_types,
            channel: self.channel,
            tag: self.tag,
            before: self.before,
            after: self.after,
            ..Default::default()
        })
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsByEndpointQuery {
    /// Number of items per page (up to 250; 0 or absent: 50).
    pub limit: Option<u64>,
    /// An `iterator` or `prevIterator` from an earlier answer.
    pub iterator: Option<String>,
    /// Only attempts with this status (attempts are 0 success or 2 fail).
    #[param(value_type = Option<MessageStatus>)]
    pub status: Option<MessageStatus>,
    /// Only attempts whose response status is in this class (0: no response).
    #[param(value_type = Option<StatusCodeClass>)]
    pub status_code_class: Option<StatusCodeClass>,
    /// Only attempts of messages on this channel.
    pub channel: Option<String>,
    /// Only attempts of messages with this tag.
    pub tag: Option<String>,
    /// Embed each attempt's message (without its payload) as `msg`.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_msg: Option<bool>,
    /// Accepted as in Svix; it changes nothing here: an attempt is a request that was made,
    /// 0 (success) or 2 (fail), never canceled (`status=4` lists none).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub expanded_statuses: Option<bool>,
    /// Only attempts made before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only attempts made after this time.
    pub after: Option<DateTime<Utc>>,
    /// Include response bodies (default true).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_content: Option<bool>,
    /// Only attempts of messages of these event types (repeat the parameter or separate with
    /// commas).
    #[serde(default, deserialize_with = "comma_list")]
    pub event_types: Vec<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsByMsgQuery {
    /// Number of items per page (up to 250; 0 or absent: 50).
    pub limit: Option<u64>,
    /// An `iterator` or `prevIterator` from an earlier answer.
    pub iterator: Option<String>,
    /// Only attempts with this status (attempts are 0 success or 2 fail).
    #[param(value_type = Option<MessageStatus>)]
    pub status: Option<MessageStatus>,
    /// Only attempts whose response status is in this class (0: no response).
    #[param(value_type = Option<StatusCodeClass>)]
    pub status_code_class: Option<StatusCodeClass>,
    /// Only attempts of messages on this channel.
    pub channel: Option<String>,
    /// Only attempts of messages with this tag.
    pub tag: Option<String>,
    /// Embed each attempt's message (without its payload) as `msg`.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_msg: Option<bool>,
    /// Accepted as in Svix; it changes nothing here: an attempt is a request that was made,
    /// 0 (success) or 2 (fail), never canceled (`status=4` lists none).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub expanded_statuses: Option<bool>,
    /// Only attempts to this endpoint (id or uid).
    pub endpoint_id: Option<String>,
    /// Only attempts made before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only attempts made after this time.
    pub after: Option<DateTime<Utc>>,
    /// Include response bodies (default true).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_content: Option<bool>,
    /// Only attempts of messages of these event types.
    #[serde(default, deserialize_with = "comma_list")]
    pub event_types: Vec<String>,
}

fn attempt_page(
    page: herald_core::page::Page<Attempt>,
    params: &herald_core::page::ListParams,
    with_content: bool,
) -> ListResponse<MessageAttemptOut> {
    ListResponse::new(
        page,
        params,
        |a| a.id.as_str().to_owned(),
        |a| MessageAttemptOut::new(a, with_content),
    )
}

/// List the attempts made to an endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-by-endpoint",
    params(EndpointPath, AttemptsByEndpointQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_by_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Query(query): Query<AttemptsByEndpointQuery>,
) -> ApiResult<axum::Json<ListResponse<MessageAttemptOut>>> {
    let params = PageQuery {
        limit: query.limit,
        iterator: query.iterator,
    }
    .params(Order::Descending)?;
    let mut filter = CommonFilter {
        status: query.status,
        status_code_class: query.status_code_class,
        channel: query.channel,
        tag: query.tag,
        before: query.before,
        after: query.after,
        event_types: query.event_types,
    }
    .into_filter()?;
    let endpoint = super::endpoint::load(&state, &scoped, &path.endpoint_id).await?;
    filter.endpoint = Some(endpoint.id);
    let page = state
        .store
        .list_attempts(&scoped.app.id, &filter, &params)
        .await?;
    let mut answer = attempt_page(page, &params, query.with_content.unwrap_or(true));
    if query.with_msg.unwrap_or(false) {
        let mut loaded: Vec<MessageOut> = Vec::new();
        for attempt in &mut answer.data {
            if let Some(msg) = loaded.iter().find(|m| m.id == attempt.msg_id) {
                attempt.msg = Some(msg.clone());
                continue;
            }
            let Some(id) = herald_core::id::MessageId::parse(&attempt.msg_id) else {
                continue;
            };
            if let Some(message) = state.store.get_message(&scoped.app.id, &id).await? {
                let out = MessageOut::new(message, false);
                attempt.msg = Some(out.clone());
                loaded.push(out);
            }
        }
    }
    Ok(axum::Json(answer))
}

/// List the attempts made for a message, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-by-msg",
    params(MessagePath, AttemptsByMsgQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_by_msg(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<MessagePath>,
    Query(query): Query<AttemptsByMsgQuery>,
) -> ApiResult<axum::Json<ListResponse<MessageAttemptOut>>> {
    let params = PageQuery {
        limit: query.limit,
        iterator: query.iterator,
    }
    .params(Order::Descending)?;
    let mut filter = CommonFilter {
        status: query.status,
        status_code_class: query.status_code_class,
        channel: query.channel,
        tag: query.tag,
        before: query.before,
        after: query.after,
        event_types: query.event_types,
    }
    .into_filter()?;
    let message = super::message::load(&state, &scoped, &path.msg_id).await?;
    filter.msg = Some(message.id.clone());
    if let Some(endpoint) = &query.endpoint_id {
        match state.store.get_endpoint(&scoped.app.id, endpoint).await? {
            Some(endpoint) => filter.endpoint = Some(endpoint.id),
            // No such endpoint: no attempt was made to it.
            None => {
                return Ok(axum::Json(attempt_page(
                    params.finish(Vec::new()),
                    &params,
                    true,
                )));
            }
        }
    }
    let page = state
        .store
        .list_attempts(&scoped.app.id, &filter, &params)
        .await?;
    let mut answer = attempt_page(page, &params, query.with_content.unwrap_or(true));
    if query.with_msg.unwrap_or(false) {
        let out = MessageOut::new(message, false);
        for attempt in &mut answer.data {
            attempt.msg = Some(out.clone());
        }
    }
    Ok(axum::Json(answer))
}

async fn load_attempt(
    state: &AppState,
    scoped: &ScopedApp,
    path: &AttemptPath,
) -> ApiResult<(herald_core::model::Message, Attempt)> {
    let message = super::message::load(state, scoped, &path.msg_id).await?;
    let id = AttemptId::parse(&path.attempt_id).ok_or(ApiError::NotFound("attempt not found"))?;
    let attempt = state
        .store
        .get_attempt(&scoped.app.id, &message.id, &id)
        .await?
        .ok_or(ApiError::NotFound("attempt not found"))?;
    Ok((message, attempt))
}

/// Get one attempt.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", tag = "Message Attempt",
    operation_id = "v1.message-attempt.get",
    params(AttemptPath),
    responses((status = 200, body = MessageAttemptOut)))]
async fn get_attempt(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<AttemptPath>,
) -> ApiResult<axum::Json<MessageAttemptOut>> {
    let (_, attempt) = load_attempt(&state, &scoped, &path).await?;
    Ok(axum::Json(MessageAttemptOut::with_request(attempt)))
}

/// Delete an attempt's response body (for instance when an endpoint answered with sensitive
/// data). The attempt itself stays.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content", tag = "Message Attempt",
    operation_id = "v1.message-attempt.expunge-content",
    params(AttemptPath),
    responses((status = 204, description = "Deleted")))]
async fn expunge_content(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<AttemptPath>,
) -> ApiResult<StatusCode> {
    let (message, attempt) = load_attempt(&state, &scoped, &path).await?;
    if !state
        .store
        .expunge_attempt_content(&scoped.app.id, &message.id, &attempt.id)
        .await?
    {
        return Err(ApiError::NotFound("attempt not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
