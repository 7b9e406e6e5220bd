//! Impilo's webhook API (`/api/v3/…`, issue 24): the routes Impilo's customers and their
//! scripts already call, served from the same applications, endpoints and messages as the
//! Svix API, so that a platform moving to Herald changes nothing for them.
//!
//! - Authentication is Impilo's header, `Impilo-API-Key: <key>`, with an API key limited to
//!   one application (`auth::authenticate` reads it on these routes, besides a bearer token);
//!   the application is the key's.
//! - A webhook is an endpoint with `profile: "impilo"` and one event type: its `id` is the
//!   endpoint's `serial`. It delivers as Impilo's do with nothing else set: the typed envelope
//!   (`{"id": <message serial>, "type", "payload"}`), the application's webhook secret in
//!   `Impilo-Webhook-Secret`, retries after exactly 15, 30 and 60 minutes.
//! - `webhook-secret` sets (or generates) that one secret of the application.
//! - `webhook/logs` is the delivery log in Impilo's record shape: `retryAttempts` counts the
//!   attempts after the first, and `lastRetryTimestamp` is the last of those.
//!
//! Unknown body fields and query parameters are refused (422), as everywhere in Herald.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, SecondsFormat, Utc};
use herald_core::model::{Endpoint, Profile};
use herald_core::page::{Cursor, ListParams, Order};
use herald_core::validate::{self, Violations};
use herald_store::DeliveryLogFilter;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use zeroize::Zeroizing;

use super::AppState;
use super::auth::{Principal, ScopedApp};
use super::delivery_log;
use super::endpoint::{self, EndpointIn, profile};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(webhook_logs))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(set_webhook_secret))
}

/// The caller's application: Impilo's keys belong to one.
pub struct ImpiloApp(ScopedApp);

impl FromRequestParts<AppState> for ImpiloApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Some(app_id) = principal.app_id.clone() else {
            return Err(ApiError::forbidden(
                "Impilo's API needs an API key limited to one application (role app); the \
                 application is the key's",
            ));
        };
        let app = state
            .store
            .get_app(app_id.as_str())
            .await?
            .ok_or(ApiError::NotFound("application not found"))?;
        Ok(Self(ScopedApp { app, principal }))
    }
}

/// The webhook named by the path, of the caller's application. As an extractor it runs
/// before the body is read, so another application's key gets 404 whatever it sends.
pub struct OwnWebhook {
    scoped: ScopedApp,
    endpoint: Endpoint,
}

impl FromRequestParts<AppState> for OwnWebhook {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let ImpiloApp(scoped) = ImpiloApp::from_request_parts(parts, state).await?;
        let Path(path) = Path::<WebhookPath>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("webhook not found"))?;
        let endpoint = state
            .store
            .get_endpoint_by_serial(&scoped.app.id, path.webhook_id)
            .await?
            .filter(|e| e.options.profile == Some(Profile::Impilo))
            .ok_or(ApiError::NotFound("webhook not found"))?;
        Ok(Self { scoped, endpoint })
    }
}

/// A webhook to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpiloWebhookIn {
    /// The event type, e.g. `order.status` (one of the application's event types).
    #[serde(rename = "type")]
    #[schema(example = "order.status")]
    pub event_type: String,
    #[schema(example = "https://impilo.health")]
    pub url: String,
}

/// A webhook as Impilo shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImpiloWebhookOut {
    #[serde(rename = "type")]
    #[schema(example = "order.status")]
    pub event_type: String,
    pub url: String,
    /// The webhook's id: the endpoint's `serial`.
    #[schema(example = 123)]
    pub id: i64,
}

impl From<&Endpoint> for ImpiloWebhookOut {
    fn from(e: &Endpoint) -> Self {
        Self {
            event_type: e
                .event_types
                .as_ref()
                .and_then(|types| types.first())
                .cloned()
                .unwrap_or_default(),
            url: e.url.clone(),
            id: e.serial,
        }
    }
}

/// `/api/v3/webhook/{webhook_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// The webhook's id (the endpoint's `serial`).
    pub webhook_id: i64,
}

/// Numbered pages, as Impilo's lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The page, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Rows per page, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub size: Option<u64>,
}

/// Checks a page request; returns the page and its size.
fn page_of(page: Option<u64>, size: Option<u64>) -> ApiResult<(u64, u64)> {
    let mut v = Violations::new();
    let checked = delivery_log::check_page(&mut v, page, size);
    v.finish()?;
    Ok(checked)
}

/// A page of Impilo's lists: `content`, `page`, `size`, `total`, `first`, `last`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImpiloPage<T> {
    pub content: Vec<T>,
    pub page: u64,
    pub size: u64,
    pub total: u64,
    pub first: bool,
    pub last: bool,
}

impl<T> ImpiloPage<T> {
    fn new(content: Vec<T>, page: u64, size: u64, total: u64) -> Self {
        Self {
            content,
            page,
            size,
            total,
            first: page == 1,
            last: (page - 1).saturating_mul(size).saturating_add(size) >= total,
        }
    }
}

/// The application's Impilo webhooks: its endpoints with `profile: "impilo"`, oldest first.
async fn impilo_endpoints(state: &AppState, scoped: &ScopedApp) -> ApiResult<Vec<Endpoint>> {
    // An application has at most `--max-endpoints-per-app` endpoints: read them all.
    let mut all = Vec::new();
    let mut params = ListParams::first(250, Order::Ascending);
    loop {
        let page = state.store.list_endpoints(&scoped.app.id, &params).await?;
        let done = page.done();
        let last = page.items.last().map(|e| e.id.as_str().to_owned());
        all.extend(
            page.items
                .into_iter()
                .filter(|e| e.options.profile == Some(Profile::Impilo)),
        );
        match last {
            Some(key) if !done => params.cursor = Some(Cursor::after(key)),
            _ => return Ok(all),
        }
    }
}

/// Checks `type`: an event type of the catalogue (`POST /api/v1/event-type/import` with
/// `{"catalog": "impilo"}` loads Impilo's).
async fn check_type(state: &AppState, event_type: &str) -> ApiResult<()> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "type"], event_type, 256);
    v.finish()?;
    if state.store.get_event_type(event_type).await?.is_none() {
        return Err(ApiError::invalid(
            &["body", "type"],
            format!(
                "no event type {event_type:?}; import Impilo's catalogue first (POST \
                 /api/v1/event-type/import {{\"catalog\": \"impilo\"}})"
            ),
        ));
    }
    Ok(())
}

/// Create a webhook (Impilo's `POST /api/v3/webhook`).
#[utoipa::path(post, path = "/api/v3/webhook", tag = "Impilo", operation_id = "impilo.webhook.create",
    security(("ImpiloApiKey" = [])),
    request_body = ImpiloWebhookIn,
    responses((status = 200, body = ImpiloWebhookOut)))]
async fn create_webhook(
    State(state): State<AppState>,
    ImpiloApp(scoped): ImpiloApp,
    Json(body): Json<ImpiloWebhookIn>,
) -> ApiResult<axum::Json<ImpiloWebhookOut>> {
    check_type(&state, &body.event_type).await?;
    let mut input: EndpointIn = serde_json::from_value(serde_json::json!({
        "url": body.url,
        "filterTypes": [body.event_type],
        "profile": "impilo",
    }))
    .map_err(|e| ApiError::Internal(format!("cannot build the endpoint: {e}")))?;
    let delivery = input.delivery();
    let (mut created, secrets) = endpoint::prepare(
        &state,
        &scoped.app.id,
        herald_core::id::EndpointId::generate(),
        input,
        delivery,
        None,
    )?;
    endpoint::store_new(&state, &mut created, secrets).await?;
    state.operational.poke();
    Ok(axum::Json(ImpiloWebhookOut::from(&created)))
}

/// List the application's webhooks (Impilo's `GET /api/v3/webhook`), oldest first.
#[utoipa::path(get, path = "/api/v3/webhook", tag = "Impilo", operation_id = "impilo.webhook.list",
    security(("ImpiloApiKey" = [])),
    params(PageQuery),
    responses((status = 200, body = ImpiloPage<ImpiloWebhookOut>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    ImpiloApp(scoped): ImpiloApp,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<ImpiloPage<ImpiloWebhookOut>>> {
    let (page, size) = page_of(query.page, query.size)?;
    let all = impilo_endpoints(&state, &scoped).await?;
    let total = all.len() as u64;
    let content = all
        .iter()
        .skip(usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(ImpiloWebhookOut::from)
        .collect();
    Ok(axum::Json(ImpiloPage::new(content, page, size, total)))
}

/// Get a webhook.
#[utoipa::path(get, path = "/api/v3/webhook/{webhook_id}", tag = "Impilo", operation_id = "impilo.webhook.get",
    security(("ImpiloApiKey" = [])),
    params(WebhookPath),
    responses((status = 200, body = ImpiloWebhookOut)))]
async fn get_webhook(webhook: OwnWebhook) -> ApiResult<axum::Json<ImpiloWebhookOut>> {
    Ok(axum::Json(ImpiloWebhookOut::from(&webhook.endpoint)))
}

/// Replace a webhook's type and URL.
#[utoipa::path(put, path = "/api/v3/webhook/{webhook_id}", tag = "Impilo", operation_id = "impilo.webhook.update",
    security(("ImpiloApiKey" = [])),
    params(WebhookPath),
    request_body = ImpiloWebhookIn,
    responses((status = 200, body = ImpiloWebhookOut)))]
async fn update_webhook(
    State(state): State<AppState>,
    OwnWebhook {
        scoped: _,
        endpoint: mut found,
    }: OwnWebhook,
    Json(body): Json<ImpiloWebhookIn>,
) -> ApiResult<axum::Json<ImpiloWebhookOut>> {
    check_type(&state, &body.event_type).await?;
    found.url = body.url;
    found.event_types = Some(vec![body.event_type]);
    endpoint::check_and_save(&state, &mut found).await?;
    Ok(axum::Json(ImpiloWebhookOut::from(&found)))
}

/// Delete a webhook.
#[utoipa::path(delete, path = "/api/v3/webhook/{webhook_id}", tag = "Impilo", operation_id = "impilo.webhook.delete",
    security(("ImpiloApiKey" = [])),
    params(WebhookPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_webhook(
    State(state): State<AppState>,
    OwnWebhook {
        scoped,
        endpoint: found,
    }: OwnWebhook,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_endpoint(&scoped.app.id, &found.id)
        .await?
    {
        state.operational.poke();
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The application's webhook secret: given, or generated when the body is `{}`. No `Debug`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecretIn {
    /// The secret (1 to 256 visible ASCII characters); generated when omitted.
    pub secret: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookSecretOut {
    /// The secret every Impilo webhook of the application sends in `Impilo-Webhook-Secret`.
    pub secret: String,
}

/// Set the application's webhook secret (Impilo's `POST /api/v3/webhook-secret`): the one
/// secret all its Impilo webhooks send in `Impilo-Webhook-Secret`, from their next delivery.
#[utoipa::path(post, path = "/api/v3/webhook-secret", tag = "Impilo", operation_id = "impilo.webhook-secret.set",
    security(("ImpiloApiKey" = [])),
    request_body = WebhookSecretIn,
    responses((status = 200, body = WebhookSecretOut)))]
async fn set_webhook_secret(
    State(state): State<AppState>,
    ImpiloApp(scoped): ImpiloApp,
    Json(body): Json<WebhookSecretIn>,
) -> ApiResult<axum::Json<WebhookSecretOut>> {
    if let Some(secret) = &body.secret
        && (secret.is_empty()
            || secret.len() > 256
            || !secret.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ApiError::invalid(
            &["body", "secret"],
            "must be 1 to 256 visible ASCII characters (it is sent as a header value)",
        ));
    }
    let secret = Zeroizing::new(body.secret.unwrap_or_else(profile::new_webhook_secret));
    state
        .store
        .set_webhook_secret(&scoped.app.id, &state.keyring.seal(secret.as_bytes()), true)
        .await?;
    Ok(axum::Json(WebhookSecretOut {
        secret: secret.to_string(),
    }))
}

/// Impilo's log parameters, exactly.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct WebhookLogQuery {
    /// Only messages created at or after this time.
    pub start_timestamp: Option<DateTime<Utc>>,
    /// Only messages created at or before this time.
    pub end_timestamp: Option<DateTime<Utc>>,
    /// Only deliveries retried, the last retry at or after this time.
    pub start_last_retry_timestamp: Option<DateTime<Utc>>,
    /// Only deliveries retried, the last retry at or before this time.
    pub end_last_retry_timestamp: Option<DateTime<Utc>>,
    /// The page, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Rows per page, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub size: Option<u64>,
}

/// One message to one webhook, as Impilo's log shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookLogRecord {
    /// The webhook's id (the endpoint's `serial`).
    pub webhook_id: i64,
    /// The message's event type.
    pub webhook_type: String,
    /// The webhook's URL.
    pub webhook_url: String,
    /// The message's payload as JSON text; `null` once deleted (retention or expunge).
    pub payload: Option<String>,
    /// When the message was created.
    #[serde(serialize_with = "seconds")]
    #[schema(value_type = String, example = "2023-08-22T14:15:30Z")]
    pub create_timestamp: DateTime<Utc>,
    /// The status code of the last response (0: no response); `null` before the first attempt.
    pub last_response_status: Option<u16>,
    /// Attempts after the first.
    pub retry_attempts: u32,
    /// When the last retry was made; `null` before the first retry.
    #[serde(serialize_with = "seconds_or_null")]
    #[schema(value_type = Option<String>, example = "2023-08-22T14:15:30Z")]
    pub last_retry_timestamp: Option<DateTime<Utc>>,
}

/// Impilo's timestamps: RFC 3339 in UTC, to the second (`2023-08-22T14:15:30Z`).
fn seconds<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn seconds_or_null<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => seconds(at, s),
        None => s.serialize_none(),
    }
}

/// The application's webhook log (Impilo's `GET /api/v3/webhook/logs`): one record per
/// message and webhook, newest first.
#[utoipa::path(get, path = "/api/v3/webhook/logs", tag = "Impilo", operation_id = "impilo.webhook.logs",
    security(("ImpiloApiKey" = [])),
    params(WebhookLogQuery),
    responses((status = 200, body = ImpiloPage<WebhookLogRecord>)))]
async fn webhook_logs(
    State(state): State<AppState>,
    ImpiloApp(scoped): ImpiloApp,
    Query(query): Query<WebhookLogQuery>,
) -> ApiResult<axum::Json<ImpiloPage<WebhookLogRecord>>> {
    let mut v = Violations::new();
    let (page, size) = delivery_log::check_page(&mut v, query.page, query.size);
    delivery_log::check_windows(
        &mut v,
        (query.start_timestamp, query.end_timestamp),
        (
            query.start_last_retry_timestamp,
            query.end_last_retry_timestamp,
        ),
    );
    v.finish()?;
    let retried =
        query.start_last_retry_timestamp.is_some() || query.end_last_retry_timestamp.is_some();
    let filter = DeliveryLogFilter {
        app: Some(scoped.app.id.clone()),
        created_from: query.start_timestamp,
        created_to: query.end_timestamp,
        last_attempt_from: query.start_last_retry_timestamp,
        last_attempt_to: query.end_last_retry_timestamp,
        // The last attempt is a retry only after the first.
        min_attempts: retried.then_some(2),
        ..Default::default()
    };
    let offset = (page - 1).saturating_mul(size);
    let found = state.store.delivery_log(&filter, offset, size).await?;
    let content = found
        .entries
        .into_iter()
        .map(|e| WebhookLogRecord {
            webhook_id: e.endpoint_serial,
            webhook_type: e.event_type,
            webhook_url: e.url,
            payload: e.payload,
            create_timestamp: e.created_at,
            last_response_status: e.last_status_code,
            retry_attempts: e.attempts.saturating_sub(1),
            last_retry_timestamp: e.last_attempt_at.filter(|_| e.attempts >= 2),
        })
        .collect();
    Ok(axum::Json(ImpiloPage::new(
        content,
        page,
        size,
        found.total,
    )))
}
