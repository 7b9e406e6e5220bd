//! The delivery log (a Herald extension): one row per message and endpoint with what happened
//! to it, filtered by time, status, event type and endpoint, in numbered pages with a total.
//!
//! It has the shape of Impilo's webhook log (`content`, `page`, `size`, `total`, `first`,
//! `last`) because the platforms moving to Herald and their customers already read that shape;
//! the Svix-compatible routes cover the same data with iterator paging. Numbered pages shift
//! when new messages arrive between two requests: this log is for looking, the iterator lists
//! are for walking everything.

use axum::extract::State;
use chrono::{DateTime, Utc};
use herald_core::id::EndpointId;
use herald_core::model::DeliveryStatus;
use herald_core::validate::{self, Violations};
use herald_store::{DeliveryLogEntry, DeliveryLogFilter};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::{Principal, ScopedApp};
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::params::AppPath;
use super::status::MessageStatusText;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(app_delivery_log))
        .routes(routes!(delivery_log))
}

const DEFAULT_SIZE: u64 = 50;
const MAX_SIZE: u64 = 250;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DeliveryLogQuery {
    /// Only messages created at or after this time.
    pub start_timestamp: Option<DateTime<Utc>>,
    /// Only messages created at or before this time.
    pub end_timestamp: Option<DateTime<Utc>>,
    /// Only deliveries last attempted at or after this time.
    pub start_last_retry_timestamp: Option<DateTime<Utc>>,
    /// Only deliveries last attempted at or before this time.
    pub end_last_retry_timestamp: Option<DateTime<Utc>>,
    /// Only deliveries in this status: `success`, `pending`, `fail`, `sending` or `canceled`
    /// (or the `MessageStatus` numbers 0 to 4).
    pub status: Option<String>,
    /// Only messages of this event type.
    pub event_type: Option<String>,
    /// Only deliveries to this endpoint (an id, or in an application's log also a uid).
    pub endpoint_id: Option<String>,
    /// The page, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Rows per page, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub size: Option<u64>,
}

/// One message to one endpoint.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryLogRow {
    pub app_id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// The endpoint's URL.
    pub url: String,
    /// The message's payload; `null` once deleted (retention or expunge).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
    /// When the message was created.
    pub create_timestamp: DateTime<Utc>,
    /// The status code of the last attempt's response (0: no response); `null` before the
    /// first attempt.
    pub last_response_status: Option<u16>,
    /// Attempts made so far.
    pub retry_attempts: u32,
    /// When the last attempt was made.
    pub last_retry_timestamp: Option<DateTime<Utc>>,
    pub status: MessageStatusText,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt: Option<DateTime<Utc>>,
}

impl From<DeliveryLogEntry> for DeliveryLogRow {
    fn from(e: DeliveryLogEntry) -> Self {
        Self {
            app_id: e.app_id.into_string(),
            msg_id: e.msg_id.into_string(),
            endpoint_id: e.endpoint_id.into_string(),
            event_type: e.event_type,
            url: e.url,
            payload: e.payload.and_then(|p| RawValue::from_string(p).ok()),
            create_timestamp: e.created_at,
            last_response_status: e.last_status_code,
            retry_attempts: e.attempts,
            last_retry_timestamp: e.last_attempt_at,
            status: e.status.into(),
            next_attempt: e
                .next_attempt_at
                .filter(|_| e.status == DeliveryStatus::Pending),
        }
    }
}

/// A page of the delivery log.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeliveryLogOut {
    pub content: Vec<DeliveryLogRow>,
    /// This page's number, from 1.
    pub page: u64,
    /// The page size asked for.
    pub size: u64,
    /// Rows matching the filters, on every page.
    pub total: u64,
    /// Whether this is the first page.
    pub first: bool,
    /// Whether no rows follow this page.
    pub last: bool,
}

fn parse_status(text: &str) -> Option<DeliveryStatus> {
    match text {
        "success" | "0" => Some(DeliveryStatus::Success),
        "pending" | "1" => Some(DeliveryStatus::Pending),
        "fail" | "2" => Some(DeliveryStatus::Fail),
        "sending" | "3" => Some(DeliveryStatus::Sending),
        "canceled" | "4" => Some(DeliveryStatus::Canceled),
        _ => None,
    }
}

/// Checks the query; returns the filter (without application or endpoint), the page and the
/// size.
/// Checks a numbered page request (Impilo's lists use it too); returns the page and its size.
pub(super) fn check_page(v: &mut Violations, page: Option<u64>, size: Option<u64>) -> (u64, u64) {
    let page = page.unwrap_or(1);
    if page == 0 {
        v.value(&["query", "page"], "pages are numbered from 1");
    }
    let size = size.unwrap_or(DEFAULT_SIZE);
    if !(1..=MAX_SIZE).contains(&size) {
        v.value(
            &["query", "size"],
            format!("must be between 1 and {MAX_SIZE}"),
        );
    }
    (page.max(1), size)
}

/// Checks that no time window ends before it starts: creation (`endTimestamp`) and last
/// attempt (`endLastRetryTimestamp`).
pub(super) fn check_windows(
    v: &mut Violations,
    created: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    last_retry: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) {
    for ((from, to), loc) in [
        (created, "endTimestamp"),
        (last_retry, "endLastRetryTimestamp"),
    ] {
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            v.value(&["query", loc], "must not be before the start");
        }
    }
}

fn check(query: &DeliveryLogQuery) -> ApiResult<(DeliveryLogFilter, u64, u64)> {
    let mut v = Violations::new();
    let (page, size) = check_page(&mut v, query.page, query.size);
    let status = match &query.status {
        None => None,
        Some(text) => {
            let parsed = parse_status(&text.to_ascii_lowercase());
            if parsed.is_none() {
                v.value(
                    &["query", "status"],
                    "expected success, pending, fail, sending or canceled",
                );
            }
            parsed
        }
    };
    if let Some(event_type) = &query.event_type {
        validate::identifier(&mut v, &["query", "eventType"], event_type, 256);
    }
    check_windows(
        &mut v,
        (query.start_timestamp, query.end_timestamp),
        (
            query.start_last_retry_timestamp,
            query.end_last_retry_timestamp,
        ),
    );
    v.finish()?;
    let filter = DeliveryLogFilter {
        created_from: query.start_timestamp,
        created_to: query.end_timestamp,
        last_attempt_from: query.start_last_retry_timestamp,
        last_attempt_to: query.end_last_retry_timestamp,
        status,
        event_type: query.event_type.clone(),
        ..Default::default()
    };
    Ok((filter, page, size))
}

async fn answer(
    state: &AppState,
    filter: Option<DeliveryLogFilter>,
    page: u64,
    size: u64,
) -> ApiResult<axum::Json<DeliveryLogOut>> {
    let offset = (page - 1).saturating_mul(size);
    let found = match &filter {
        Some(filter) => state.store.delivery_log(filter, offset, size).await?,
        // The endpoint named does not exist: nothing was delivered to it.
        None => herald_store::DeliveryLogPage {
            entries: Vec::new(),
            total: 0,
        },
    };
    Ok(axum::Json(DeliveryLogOut {
        page,
        size,
        total: found.total,
        first: page == 1,
        last: offset.saturating_add(size) >= found.total,
        content: found
            .entries
            .into_iter()
            .map(DeliveryLogRow::from)
            .collect(),
    }))
}

/// An application's delivery log: one row per message and endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/delivery-log", tag = "Delivery Log",
    operation_id = "herald.delivery-log.list-by-app",
    params(AppPath, DeliveryLogQuery),
    responses((status = 200, body = DeliveryLogOut)))]
async fn app_delivery_log(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Query(query): Query<DeliveryLogQuery>,
) -> ApiResult<axum::Json<DeliveryLogOut>> {
    let (mut filter, page, size) = check(&query)?;
    filter.app = Some(scoped.app.id.clone());
    if let Some(endpoint) = &query.endpoint_id {
        match state.store.get_endpoint(&scoped.app.id, endpoint).await? {
            Some(endpoint) => filter.endpoint = Some(endpoint.id),
            None => return answer(&state, None, page, size).await,
        }
    }
    answer(&state, Some(filter), page, size).await
}

/// The delivery log of every application (admin tokens only): one row per message and
/// endpoint, newest first. It includes the deliveries of operational webhooks.
#[utoipa::path(get, path = "/api/v1/delivery-log", tag = "Delivery Log",
    operation_id = "herald.delivery-log.list",
    params(DeliveryLogQuery),
    responses((status = 200, body = DeliveryLogOut)))]
async fn delivery_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<DeliveryLogQuery>,
) -> ApiResult<axum::Json<DeliveryLogOut>> {
    if principal.app_id.is_some() {
        return Err(ApiError::forbidden(
            "the server-wide delivery log needs an admin token; the token in use is limited \
             to one application",
        ));
    }
    let (mut filter, page, size) = check(&query)?;
    if let Some(endpoint) = &query.endpoint_id {
        filter.endpoint = Some(EndpointId::parse(endpoint).ok_or_else(|| {
            ApiError::invalid(&["query", "endpointId"], "not an endpoint id (ep_…)")
        })?);
    }
    answer(&state, Some(filter), page, size).await
}
