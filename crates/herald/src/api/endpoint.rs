//! Endpoints: where an application's messages go, with their secret and custom headers.
//!
//! Secrets and header values are sealed with the server's keyring before they reach the store
//! (see `herald_core::crypto`); they exist in the clear only while a request handles them.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use herald_core::id::EndpointId;
use herald_core::model::{Endpoint, EndpointOptions, Metadata, Ordering};
use herald_core::secrets::EndpointSecrets;
use herald_core::token;
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use zeroize::Zeroizing;

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, OptionalJson, Patch, Query};
use super::pagination::{ListResponse, OrderedPageQuery};
use super::params::{AppPath, EndpointPath};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(
            get_endpoint,
            update_endpoint,
            patch_endpoint,
            delete_endpoint
        ))
        .routes(routes!(get_headers, update_headers, patch_headers))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(recover))
}

/// No `Debug`: it carries the secret and header values.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    #[schema(example = "https://example.com/webhook/")]
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[schema(max_length = 256, pattern = r"^[a-zA-Z0-9\-_.]+$")]
    pub uid: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    /// Event types this endpoint receives (omit for all). Also accepted as `filterTypes`.
    #[serde(alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    /// Channels this endpoint listens to (omit for all).
    pub channels: Option<Vec<String>>,
    /// Maximum messages per second. Also accepted as `rateLimit`.
    #[serde(alias = "rateLimit")]
    #[schema(minimum = 1)]
    pub throttle_rate: Option<u16>,
    pub metadata: Option<Metadata>,
    /// The signing secret (`whsec_` + base64); generated when omitted.
    #[schema(pattern = r"^(whsec_)?[a-zA-Z0-9+/=]{32,100}$")]
    pub secret: Option<String>,
    /// Custom headers sent with every delivery.
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub delivery: DeliveryOptions,
}

/// Herald's delivery settings of an endpoint (extension fields; absent means the default).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOptions {
    /// Herald: seconds to wait before each retry, e.g. `[900, 1800, 3600]` (at most 50 entries
    /// of at most 7 days). Default: the server's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<u32>>,
    /// Herald: no attempt later than this many seconds after the message (e.g. 259200 for 72 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub retry_window_seconds: Option<u32>,
    /// Herald: per-attempt timeout covering connect, request and response (1 to 60; default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60)]
    pub timeout_seconds: Option<u16>,
    /// Herald: attempts in flight at once (1 to 100; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrency: Option<u16>,
    /// Herald: `unordered` (default) or `fifo`: one attempt at a time, in publish order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<OrderingMode>,
}

/// Delivery order of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderingMode {
    Unordered,
    Fifo,
}

impl DeliveryOptions {
    fn into_options(self) -> EndpointOptions {
        EndpointOptions {
            retry_schedule: self.retry_schedule,
            retry_window_seconds: self.retry_window_seconds,
            timeout_seconds: self.timeout_seconds,
            max_concurrency: self.max_concurrency,
            ordering: match self.ordering {
                Some(OrderingMode::Fifo) => Ordering::Fifo,
                _ => Ordering::Unordered,
            },
        }
    }

    fn from_options(o: &EndpointOptions) -> Self {
        Self {
            retry_schedule: o.retry_schedule.clone(),
            retry_window_seconds: o.retry_window_seconds,
            timeout_seconds: o.timeout_seconds,
            max_concurrency: o.max_concurrency,
            ordering: Some(match o.ordering {
                Ordering::Fifo => OrderingMode::Fifo,
                Ordering::Unordered => OrderingMode::Unordered,
            }),
        }
    }
}

/// Checks the delivery settings, at the locations of the request body.
fn check_options(v: &mut Violations, o: &EndpointOptions) {
    if let Some(schedule) = &o.retry_schedule {
        let as_durations: Vec<std::time::Duration> = schedule
            .iter()
            .map(|s| std::time::Duration::from_secs(u64::from(*s)))
            .collect();
        if let Err(msg) = herald_core::retry::check_schedule(&as_durations) {
            v.value(&["body", "retrySchedule"], msg);
        }
    }
    if let Some(window) = o.retry_window_seconds {
        validate::range(
            v,
            &["body", "retryWindowSeconds"],
            i64::from(window),
            1,
            2_592_000,
        );
    }
    if let Some(timeout) = o.timeout_seconds {
        validate::range(v, &["body", "timeoutSeconds"], i64::from(timeout), 1, 60);
    }
    if let Some(n) = o.max_concurrency {
        validate::range(v, &["body", "maxConcurrency"], i64::from(n), 1, 100);
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub uid: Patch<String>,
    pub disabled: Option<bool>,
    #[serde(default, alias = "filterTypes")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Patch<Vec<String>>,
    #[serde(default, alias = "rateLimit")]
    #[schema(value_type = Option<u16>)]
    pub throttle_rate: Patch<u16>,
    pub metadata: Option<Metadata>,
    /// Herald: see `EndpointIn`; `null` restores the default.
    #[serde(default)]
    #[schema(value_type = Option<Vec<u32>>)]
    pub retry_schedule: Patch<Vec<u32>>,
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub retry_window_seconds: Patch<u32>,
    #[serde(default)]
    #[schema(value_type = Option<u16>)]
    pub timeout_seconds: Patch<u16>,
    #[serde(default)]
    #[schema(value_type = Option<u16>)]
    pub max_concurrency: Patch<u16>,
    pub ordering: Option<OrderingMode>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    #[schema(example = "ep_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub disabled: bool,
    pub throttle_rate: Option<u16>,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub delivery: DeliveryOptions,
}

impl From<Endpoint> for EndpointOut {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.into_string(),
            uid: e.uid,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            channels: e.channels,
            disabled: e.disabled,
            throttle_rate: e.rate_limit,
            metadata: e.metadata,
            created_at: e.created_at,
            updated_at: e.updated_at,
            delivery: DeliveryOptions::from_options(&e.options),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EndpointHeadersIn {
    pub headers: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
pub struct EndpointHeadersPatchIn {
    /// Headers to set; `null` removes a header.
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointHeadersOut {
    /// Header values, except sensitive ones.
    pub headers: BTreeMap<String, String>,
    /// Names of headers whose values are not shown (credentials).
    pub sensitive: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointSecretOut {
    #[schema(example = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]
    pub key: String,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    /// The new secret; generated when omitted.
    pub key: Option<String>,
    /// How long the previous secret keeps signing too (0 to 604800, default 86400).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<i64>,
}

/// Checks an endpoint's fields, at the locations of the request body.
fn check_endpoint(v: &mut Violations, e: &Endpoint, limits: &validate::Limits) {
    validate::endpoint_url(v, &["body", "url"], &e.url, limits);
    validate::description(v, &["body", "description"], &e.description, limits);
    if let Some(uid) = &e.uid {
        validate::uid(v, &["body", "uid"], uid);
    }
    if let Some(types) = &e.event_types {
        validate::identifier_list(v, &["body", "eventTypes"], types, 256, None);
    }
    if let Some(channels) = &e.channels {
        validate::identifier_list(v, &["body", "channels"], channels, 128, Some(10));
    }
    validate::rate(v, &["body", "throttleRate"], e.rate_limit);
    validate::metadata(v, &["body", "metadata"], &e.metadata);
    check_options(v, &e.options);
}

/// Headers Herald sets itself on deliveries; an endpoint may not override them.
fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("webhook-")
        || name.starts_with("svix-")
        || matches!(
            name.as_str(),
            "content-type"
                | "content-length"
                | "host"
                | "user-agent"
                | "connection"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "keep-alive"
                | "proxy-connection"
        )
}

/// Header names whose values are credentials and are not shown back.
fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "password",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|s| name.contains(s))
}

const MAX_HEADERS: usize = 20;

fn check_headers<'a>(
    v: &mut Violations,
    headers: impl Iterator<Item = (&'a String, Option<&'a String>)>,
) {
    let mut count = 0;
    for (name, value) in headers {
        count += 1;
        let loc = ["body", "headers", name.as_str()];
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.value(&loc, "not a valid HTTP header name");
        } else if is_reserved_header(name) {
            v.value(
                &loc,
                "this header is set by Herald and cannot be overridden",
            );
        }
        if let Some(value) = value
            && (HeaderValue::from_str(value).is_err() || value.len() > 4096)
        {
            v.value(
                &loc,
                "not a valid HTTP header value (visible ASCII, at most 4096 bytes)",
            );
        }
    }
    if count > MAX_HEADERS {
        v.value(
            &["body", "headers"],
            format!("at most {MAX_HEADERS} headers"),
        );
    }
}

fn check_secret(v: &mut Violations, loc: &[&str], secret: Option<&str>) -> Option<String> {
    match secret.map(token::normalize_endpoint_secret) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(msg)) => {
            v.value(loc, msg);
            None
        }
    }
}

async fn load(state: &AppState, scoped: &ScopedApp, id: &str) -> ApiResult<Endpoint> {
    state
        .store
        .get_endpoint(&scoped.app.id, id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))
}

async fn load_secrets(state: &AppState, endpoint: &Endpoint) -> ApiResult<EndpointSecrets> {
    let sealed = state
        .store
        .get_endpoint_secrets(&endpoint.id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))?;
    EndpointSecrets::open(&state.keyring, &sealed)
        .map_err(|e| ApiError::Internal(format!("cannot open the secrets of {}: {e}", endpoint.id)))
}

/// Validates and stores a new endpoint built from `body`.
async fn create(
    state: &AppState,
    scoped: &ScopedApp,
    body: EndpointIn,
    uid_fallback: Option<String>,
) -> ApiResult<Endpoint> {
    let now = herald_core::time::now();
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        app_id: scoped.app.id.clone(),
        uid: body.uid.or(uid_fallback),
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        channels: body.channels,
        disabled: body.disabled,
        rate_limit: body.throttle_rate,
        metadata: body.metadata.unwrap_or_default(),
        options: body.delivery.into_options(),
        created_at: now,
        updated_at: now,
    };
    let mut v = Violations::new();
    check_endpoint(&mut v, &endpoint, &state.limits);
    let secret = check_secret(&mut v, &["body", "secret"], body.secret.as_deref());
    let headers = body.headers.unwrap_or_default();
    check_headers(&mut v, headers.iter().map(|(k, val)| (k, Some(val))));
    v.finish()?;
    let secret = secret.map_or_else(token::generate_endpoint_secret, Zeroizing::new);
    let secrets = EndpointSecrets::new(secret, headers);
    state
        .store
        .create_endpoint(&endpoint, &secrets.seal(&state.keyring))
        .await?;
    Ok(endpoint)
}

/// List an application's endpoints.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint", operation_id = "v1.endpoint.list",
    params(AppPath, OrderedPageQuery),
    responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list_endpoints(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Query(query): Query<OrderedPageQuery>,
) -> ApiResult<axum::Json<ListResponse<EndpointOut>>> {
    let params = query.params()?;
    let page = state.store.list_endpoints(&scoped.app.id, &params).await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |e| e.id.as_str().to_owned(),
        EndpointOut::from,
    )))
}

/// Create an endpoint.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint", operation_id = "v1.endpoint.create",
    params(AppPath),
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut)))]
async fn create_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Json(body): Json<EndpointIn>,
) -> ApiResult<(StatusCode, axum::Json<EndpointOut>)> {
    let endpoint = create(&state, &scoped, body, None).await?;
    Ok((StatusCode::CREATED, axum::Json(endpoint.into())))
}

/// Get an endpoint by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.get",
    params(EndpointPath),
    responses((status = 200, body = EndpointOut)))]
async fn get_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointOut>> {
    Ok(axum::Json(
        load(&state, &scoped, &path.endpoint_id).await?.into(),
    ))
}

/// Replace an endpoint's settings, or create it with this uid when it does not exist.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.update",
    params(EndpointPath),
    request_body = EndpointIn,
    responses(
        (status = 200, body = EndpointOut, description = "Updated"),
        (status = 201, body = EndpointOut, description = "Created"),
    ))]
async fn update_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointIn>,
) -> ApiResult<Response> {
    let id = path.endpoint_id;
    let Some(mut endpoint) = state.store.get_endpoint(&scoped.app.id, &id).await? else {
        if EndpointId::parse(&id).is_some() {
            return Err(ApiError::NotFound("endpoint not found"));
        }
        let mut v = Violations::new();
        validate::uid(&mut v, &["path", "endpoint_id"], &id);
        if body.uid.as_deref().is_some_and(|uid| uid != id) {
            v.value(
                &["body", "uid"],
                "must match the uid in the path when creating",
            );
        }
        v.finish()?;
        let endpoint = create(&state, &scoped, body, Some(id)).await?;
        return Ok((StatusCode::CREATED, axum::Json(EndpointOut::from(endpoint))).into_response());
    };
    endpoint.url = body.url;
    endpoint.description = body.description;
    // As for applications, a PUT without a uid keeps the endpoint's uid.
    if body.uid.is_some() {
        endpoint.uid = body.uid;
    }
    endpoint.disabled = body.disabled;
    endpoint.event_types = body.event_types;
    endpoint.channels = body.channels;
    endpoint.rate_limit = body.throttle_rate;
    endpoint.metadata = body.metadata.unwrap_or_default();
    endpoint.options = body.delivery.into_options();
    let mut v = Violations::new();
    check_endpoint(&mut v, &endpoint, &state.limits);
    v.finish()?;
    endpoint.updated_at = herald_core::time::now();
    state.store.update_endpoint(&endpoint).await?;
    Ok(axum::Json(EndpointOut::from(endpoint)).into_response())
}

/// Partially update an endpoint.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.patch",
    params(EndpointPath),
    request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut)))]
async fn patch_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<axum::Json<EndpointOut>> {
    let mut endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    if let Some(url) = patch.url {
        endpoint.url = url;
    }
    if let Some(description) = patch.description {
        endpoint.description = description;
    }
    if let Some(disabled) = patch.disabled {
        endpoint.disabled = disabled;
    }
    if let Some(metadata) = patch.metadata {
        endpoint.metadata = metadata;
    }
    endpoint.uid = patch.uid.apply(endpoint.uid);
    endpoint.event_types = patch.event_types.apply(endpoint.event_types);
    endpoint.channels = patch.channels.apply(endpoint.channels);
    endpoint.rate_limit = patch.throttle_rate.apply(endpoint.rate_limit);
    let options = &mut endpoint.options;
    options.retry_schedule = patch.retry_schedule.apply(options.retry_schedule.take());
    options.retry_window_seconds = patch
        .retry_window_seconds
        .apply(options.retry_window_seconds);
    options.timeout_seconds = patch.timeout_seconds.apply(options.timeout_seconds);
    options.max_concurrency = patch.max_concurrency.apply(options.max_concurrency);
    if let Some(ordering) = patch.ordering {
        options.ordering = match ordering {
            OrderingMode::Fifo => Ordering::Fifo,
            OrderingMode::Unordered => Ordering::Unordered,
        };
    }
    let mut v = Violations::new();
    check_endpoint(&mut v, &endpoint, &state.limits);
    v.finish()?;
    endpoint.updated_at = herald_core::time::now();
    state.store.update_endpoint(&endpoint).await?;
    Ok(axum::Json(endpoint.into()))
}

/// Delete an endpoint.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.delete",
    params(EndpointPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<StatusCode> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    state
        .store
        .delete_endpoint(&scoped.app.id, &endpoint.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the custom headers sent with every delivery.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    operation_id = "v1.endpoint.get-headers",
    params(EndpointPath),
    responses((status = 200, body = EndpointHeadersOut)))]
async fn get_headers(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointHeadersOut>> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let secrets = load_secrets(&state, &endpoint).await?;
    let (sensitive, visible): (BTreeMap<_, _>, BTreeMap<_, _>) = secrets
        .headers
        .into_iter()
        .partition(|(name, _)| is_sensitive_header(name));
    Ok(axum::Json(EndpointHeadersOut {
        headers: visible,
        sensitive: sensitive.into_keys().collect(),
    }))
}

/// Changes an endpoint's secrets or headers: read, `change`, write back if nobody changed them
/// in between (compare-and-swap on their version), else start over. `change` may refuse.
async fn modify_secrets(
    state: &AppState,
    endpoint: &herald_core::model::Endpoint,
    mut change: impl FnMut(&mut EndpointSecrets) -> ApiResult<()>,
) -> ApiResult<()> {
    for _ in 0..5 {
        let mut secrets = load_secrets(state, endpoint).await?;
        change(&mut secrets)?;
        if state
            .store
            .set_endpoint_secrets(&endpoint.id, &secrets.seal(&state.keyring))
            .await?
        {
            return Ok(());
        }
    }
    Err(ApiError::Conflict(
        "the endpoint's secrets are being changed concurrently; retry".into(),
    ))
}

async fn change_headers(
    state: &AppState,
    scoped: &ScopedApp,
    id: &str,
    change: impl Fn(&mut BTreeMap<String, String>),
) -> ApiResult<StatusCode> {
    let endpoint = load(state, scoped, id).await?;
    modify_secrets(state, &endpoint, |secrets| {
        change(&mut secrets.headers);
        if secrets.headers.len() > MAX_HEADERS {
            return Err(ApiError::invalid(
                &["body", "headers"],
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the custom headers.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    operation_id = "v1.endpoint.update-headers",
    params(EndpointPath),
    request_body = EndpointHeadersIn,
    responses((status = 204, description = "Replaced")))]
async fn update_headers(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    let mut v = Violations::new();
    check_headers(&mut v, body.headers.iter().map(|(k, val)| (k, Some(val))));
    v.finish()?;
    change_headers(&state, &scoped, &path.endpoint_id, |headers| {
        headers.clone_from(&body.headers)
    })
    .await
}

/// Set or remove (`null`) some custom headers.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    operation_id = "v1.endpoint.patch-headers",
    params(EndpointPath),
    request_body = EndpointHeadersPatchIn,
    responses((status = 204, description = "Updated")))]
async fn patch_headers(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointHeadersPatchIn>,
) -> ApiResult<StatusCode> {
    let mut v = Violations::new();
    check_headers(
        &mut v,
        body.headers.iter().map(|(k, val)| (k, val.as_ref())),
    );
    v.finish()?;
    change_headers(&state, &scoped, &path.endpoint_id, |headers| {
        for (name, value) in &body.headers {
            match value {
                Some(value) => {
                    headers.insert(name.clone(), value.clone());
                }
                None => {
                    headers.remove(name);
                }
            }
        }
    })
    .await
}

/// Get the endpoint's signing secret.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", tag = "Endpoint",
    operation_id = "v1.endpoint.get-secret",
    params(EndpointPath),
    responses((status = 200, body = EndpointSecretOut)))]
async fn get_secret(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointSecretOut>> {
    // A signing secret lets its holder forge deliveries: reading it is a privilege of tokens
    // that may change the endpoint, not of read-only ones.
    if scoped.principal.role == herald_core::model::Role::ReadOnly {
        return Err(ApiError::forbidden(
            "read-only tokens cannot read signing secrets",
        ));
    }
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let secrets = load_secrets(&state, &endpoint).await?;
    Ok(axum::Json(EndpointSecretOut {
        key: secrets.current.to_string(),
    }))
}

/// Rotate the signing secret. The previous secret keeps signing for the grace period.
///
/// Answers 200 with the new secret (the reference API answers 204 with no body; the current
/// official SDKs read the new secret from the body, older ones ignore it).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Endpoint",
    operation_id = "v1.endpoint.rotate-secret",
    params(EndpointPath),
    request_body = EndpointSecretRotateIn,
    responses((status = 200, body = EndpointSecretOut, description = "Rotated")))]
async fn rotate_secret(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    OptionalJson(body): OptionalJson<EndpointSecretRotateIn>,
) -> ApiResult<axum::Json<EndpointSecretOut>> {
    let mut v = Violations::new();
    let key = check_secret(&mut v, &["body", "key"], body.key.as_deref());
    let grace = body.grace_period_seconds.unwrap_or(86_400);
    validate::range(&mut v, &["body", "gracePeriodSeconds"], grace, 0, 604_800);
    v.finish()?;
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let new = key.map_or_else(token::generate_endpoint_secret, Zeroizing::new);
    let now = herald_core::time::now();
    modify_secrets(&state, &endpoint, |secrets| {
        secrets.rotate(new.clone(), now, now + Duration::seconds(grace));
        Ok(())
    })
    .await?;
    Ok(axum::Json(EndpointSecretOut {
        key: new.to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverIn {
    /// Re-send failed messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time (default: now).
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundTaskStatus {
    Running,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum BackgroundTaskType {
    #[serde(rename = "endpoint.recover")]
    EndpointRecover,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverOut {
    pub id: String,
    pub status: BackgroundTaskStatus,
    pub task: BackgroundTaskType,
    pub updated_at: DateTime<Utc>,
}

/// Re-send the failed messages of a time window to an endpoint (for instance after it was
/// disabled and enabled again).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", tag = "Endpoint",
    operation_id = "v1.endpoint.recover",
    params(EndpointPath),
    request_body = RecoverIn,
    responses((status = 202, body = RecoverOut, description = "The failed messages are queued again")))]
async fn recover(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<RecoverIn>,
) -> ApiResult<(StatusCode, axum::Json<RecoverOut>)> {
    let now = herald_core::time::now();
    let until = body.until.unwrap_or(now);
    if until < body.since {
        return Err(ApiError::invalid(
            &["body", "until"],
            "must not be before `since`",
        ));
    }
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    if endpoint.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        ));
    }
    let count = state
        .store
        .recover(&endpoint.id, body.since, until, now)
        .await?;
    tracing::info!(endpoint = %endpoint.id, count, "recovering failed messages");
    state.wakeup.endpoints([endpoint.id]);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RecoverOut {
            id: format!("qtask_{}", herald_core::token::random_base62(22)),
            status: BackgroundTaskStatus::Running,
            task: BackgroundTaskType::EndpointRecover,
            updated_at: now,
        }),
    ))
}
