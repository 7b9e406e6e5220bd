//! Endpoints: where an application's messages go, how they are delivered and signed.
//!
//! Secrets and header values are sealed with the server's keyring before they reach the store
//! (see `herald_core::crypto`); they exist in the clear only while a request handles them.
//! `options` holds Herald's delivery settings, `secrets` the header and secret routes.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_core::id::EndpointId;
use herald_core::model::{Endpoint, Metadata};
use herald_core::secrets::EndpointSecrets;
use herald_core::validate::{self, Violations};
use herald_store::SerialKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use zeroize::Zeroizing;

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Patch, Query};
use super::pagination::{ListResponse, OrderedPageQuery};
use super::params::{AppPath, EndpointPath};

mod broker;
mod example;
pub(crate) mod kind;
mod options;
pub(crate) mod profile;
mod replay;
mod secrets;
mod transformation;

use options::check_options;
pub use options::{
    DeliveryOptions, EncodingName, EnvelopeName, GraphqlQuery, OrderingMode, ProfileName,
    SchemeName, SignatureSettings,
};
pub use secrets::{
    EndpointHeadersIn, EndpointHeadersOut, EndpointSecretOut, EndpointSecretRotateIn,
};
use secrets::{check_headers, check_secret, fit_secret_to_scheme};
pub(crate) use secrets::{get_headers, get_secret, rotate_secret, update_headers};
pub use transformation::{
    EndpointTransformationOut, EndpointTransformationPatch, EndpointTransformationSimulateIn,
    EndpointTransformationSimulateOut,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(
            get_endpoint,
            update_endpoint,
            patch_endpoint,
            delete_endpoint
        ))
        .merge(replay::router())
        .merge(secrets::router())
        .merge(example::router())
        .merge(transformation::router())
}

/// No `Debug`: it carries the secret and header values.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointIn {
    /// Where deliveries are POSTed; required unless `type` is `polling` (then it must be
    /// left out). Herald: or a broker to publish them to: `mqtt(s)://host/topic?qos=0|1&retain`,
    /// `nats://` or `tls://host/subject`, `amqp(s)://host/vhost?exchange=E&routingKey=K`,
    /// `redis(s)://host/db?stream=S&maxlen=N`. A broker URL's `user:pass@` is stored sealed
    /// and shown as `****@`; sending `****@` back keeps it.
    #[schema(example = "https://example.com/webhook/")]
    #[serde(default)]
    pub url: String,
    /// Herald: `http` (default) or `polling` (see `EndpointType`); fixed at creation.
    #[serde(rename = "type")]
    pub kind: Option<kind::EndpointType>,
    #[serde(default)]
    pub description: String,
    #[schema(max_length = 256, pattern = r"^[a-zA-Z0-9\-_.]+$")]
    pub uid: Option<String>,
    /// Herald: the webhook's name (Kobiton's): 1 to 50 characters, unique within the
    /// application; required with `profile: "kobiton"`. Device status events carry it as
    /// `webhookName`. A PUT without it keeps the current name.
    #[schema(min_length = 1, max_length = 50)]
    pub name: Option<String>,
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
    // Herald's delivery settings (see `DeliveryOptions`), spelled out rather than flattened so
    // that a wrongly typed value is reported at its own location.
    /// Herald: seconds before each retry, e.g. `[900, 1800, 3600]`.
    pub retry_schedule: Option<Vec<u32>>,
    /// Herald: no attempt later than this many seconds after the message.
    pub retry_window_seconds: Option<u32>,
    /// Herald: per-attempt timeout in seconds (1 to 60).
    pub timeout_seconds: Option<u16>,
    /// Herald: attempts in flight at once (1 to 100).
    pub max_concurrency: Option<u16>,
    /// Herald: `unordered` (default) or `fifo`.
    pub ordering: Option<OrderingMode>,
    /// Herald: how deliveries are signed.
    pub signature: Option<SignatureSettings>,
    /// Herald: `json` (default) or `form`.
    pub encoding: Option<EncodingName>,
    /// Herald: `raw` (default), `typed` or `graphql`.
    pub envelope: Option<EnvelopeName>,
    /// Herald: a GraphQL selection over the payload.
    pub graphql: Option<GraphqlQuery>,
    /// Herald: GraphQL selections per event type.
    pub graphql_by_event_type: Option<BTreeMap<String, GraphqlQuery>>,
    /// Herald: a condition on the payload (see `DeliveryOptions`).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Herald: the response statuses that count as delivered (see `DeliveryOptions`).
    pub success_statuses: Option<Vec<u16>>,
    /// Herald: percent by which each delay of `retrySchedule` is spread (see
    /// `DeliveryOptions`).
    pub retry_jitter: Option<u8>,
    /// Herald: a seed system's delivery rules as defaults (see `DeliveryOptions`).
    pub profile: Option<ProfileName>,
}

impl EndpointIn {
    /// Herald's delivery settings given in the body.
    pub(crate) fn delivery(&mut self) -> DeliveryOptions {
        DeliveryOptions {
            retry_schedule: self.retry_schedule.take(),
            retry_window_seconds: self.retry_window_seconds,
            timeout_seconds: self.timeout_seconds,
            max_concurrency: self.max_concurrency,
            ordering: self.ordering,
            signature: self.signature.take(),
            encoding: self.encoding,
            envelope: self.envelope,
            graphql: self.graphql.take(),
            graphql_by_event_type: self.graphql_by_event_type.take(),
            filter: self.filter.take(),
            success_statuses: self.success_statuses.take(),
            retry_jitter: self.retry_jitter,
            profile: self.profile,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPatch {
    /// The endpoint's URL (see `EndpointIn.url`; a broker URL's `****@` keeps its credentials).
    pub url: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub uid: Patch<String>,
    /// Herald: see `EndpointIn`; `null` removes the name.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
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
    /// Herald: replaces the signature settings (see `EndpointIn`).
    pub signature: Option<SignatureSettings>,
    pub encoding: Option<EncodingName>,
    pub envelope: Option<EnvelopeName>,
    /// Herald: `null` removes the selection.
    #[serde(default)]
    #[schema(value_type = Option<GraphqlQuery>)]
    pub graphql: Patch<GraphqlQuery>,
    /// Herald: replaces the per-event-type selections; `null` removes them.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, GraphqlQuery>>)]
    pub graphql_by_event_type: Patch<BTreeMap<String, GraphqlQuery>>,
    /// Herald: `null` removes the filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Patch<serde_json::Value>,
    /// Herald: `null` restores any 2xx (or the profile's).
    #[serde(default)]
    #[schema(value_type = Option<Vec<u16>>)]
    pub success_statuses: Patch<Vec<u16>>,
    /// Herald: `null` makes `retrySchedule` exact again.
    #[serde(default)]
    #[schema(value_type = Option<u8>)]
    pub retry_jitter: Patch<u8>,
    /// Herald: `null` removes the profile.
    #[serde(default)]
    #[schema(value_type = Option<ProfileName>)]
    pub profile: Patch<ProfileName>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    #[schema(example = "ep_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub uid: Option<String>,
    /// Herald: the endpoint's number, unique across the server and never reused: Impilo's
    /// webhook `id` and Kobiton's `webhookId`.
    pub serial: i64,
    /// Herald: the webhook's name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where deliveries go; a broker URL's credentials show as `****@`.
    pub url: String,
    pub description: String,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub disabled: bool,
    pub throttle_rate: Option<u16>,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Herald: `http` or `polling`; a polling endpoint's `url` is where it is polled.
    #[serde(rename = "type")]
    pub kind: kind::EndpointType,
    #[serde(flatten)]
    pub delivery: DeliveryOptions,
}

impl From<Endpoint> for EndpointOut {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.into_string(),
            uid: e.uid,
            serial: e.serial,
            name: e.name,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            channels: e.channels,
            disabled: e.disabled,
            throttle_rate: e.rate_limit,
            metadata: e.metadata,
            created_at: e.created_at,
            updated_at: e.updated_at,
            kind: e.options.kind.into(),
            delivery: DeliveryOptions::from_options(&e.options),
        }
    }
}

/// Checks an endpoint's fields, at the locations of the request body.
fn check_endpoint(v: &mut Violations, e: &Endpoint, state: &AppState) {
    let limits = &state.limits;
    if e.options.kind == herald_core::model::EndpointKind::Polling {
        kind::check_polling_url(state, v, e);
        kind::refuse_delivery_settings(v, e);
    } else {
        validate::delivery_url(v, &["body", "url"], &e.url, limits);
        super::check_destination(state, v, &["body", "url"], &e.url);
        broker::refuse_http_only_settings(v, e);
    }
    validate::description(v, &["body", "description"], &e.description, limits);
    if let Some(uid) = &e.uid {
        validate::uid(v, &["body", "uid"], uid);
    }
    if let Some(types) = &e.event_types {
        validate::event_type_patterns(v, &["body", "eventTypes"], types);
    }
    if let Some(channels) = &e.channels {
        validate::channel_list(v, &["body", "channels"], channels, 10);
    }
    validate::rate(v, &["body", "throttleRate"], e.rate_limit);
    validate::metadata(v, &["body", "metadata"], &e.metadata);
    check_options(v, &e.options);
    profile::check(v, e, &state.limits);
}

pub(super) async fn load(state: &AppState, scoped: &ScopedApp, id: &str) -> ApiResult<Endpoint> {
    state
        .store
        .get_endpoint(&scoped.app.id, id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))
}

/// Validates and stores a new endpoint built from `body`.
async fn create(
    state: &AppState,
    scoped: &ScopedApp,
    body: EndpointIn,
    delivery: DeliveryOptions,
    uid_fallback: Option<String>,
) -> ApiResult<Endpoint> {
    let (mut endpoint, secrets) = prepare(
        state,
        &scoped.app.id,
        EndpointId::generate(),
        body,
        delivery,
        uid_fallback,
    )?;
    store_new(state, &mut endpoint, secrets).await?;
    Ok(endpoint)
}

/// An endpoint and its secrets built from `body` and validated, not stored yet.
pub(crate) fn prepare(
    state: &AppState,
    app_id: &herald_core::id::AppId,
    id: EndpointId,
    body: EndpointIn,
    delivery: DeliveryOptions,
    uid_fallback: Option<String>,
) -> ApiResult<(Endpoint, EndpointSecrets)> {
    let now = herald_core::time::now();
    let mut endpoint = Endpoint {
        id,
        app_id: app_id.clone(),
        uid: body.uid.or(uid_fallback),
        // Numbered when stored (`store_new`): a body checked and refused takes no number.
        serial: 0,
        name: body.name,
        url: body.url,
        url_version: 0,
        description: body.description,
        event_types: body.event_types,
        channels: body.channels,
        disabled: body.disabled,
        rate_limit: body.throttle_rate,
        metadata: body.metadata.unwrap_or_default(),
        options: delivery.into_options(),
        created_at: now,
        updated_at: now,
    };
    let mut v = Violations::new();
    kind::settle_new(state, &mut v, &mut endpoint, body.kind);
    check_endpoint(&mut v, &endpoint, state);
    let credentials = broker::take_credentials(&mut endpoint);
    broker::check_new(&mut v, &credentials);
    let scheme = endpoint.options.signature.scheme;
    let secret = check_secret(&mut v, &["body", "secret"], scheme, body.secret.as_deref());
    let headers = body.headers.unwrap_or_default();
    kind::refuse_headers(&mut v, &endpoint, !headers.is_empty());
    check_headers(
        &mut v,
        endpoint.options.signature.header_name(),
        headers.iter().map(|(k, val)| (k, Some(val))),
    );
    v.finish()?;
    let secret = secret.map_or_else(|| scheme.generate_secret(), Zeroizing::new);
    let mut secrets = EndpointSecrets::new(secret, headers);
    if let herald_core::destination::GivenCredentials::New(userinfo) = credentials {
        secrets.credentials = Some(Zeroizing::new(userinfo));
    }
    Ok((endpoint, secrets))
}

/// Numbers and stores an endpoint [`prepare`]d, within the server's limit of endpoints per
/// application.
pub(crate) async fn store_new(
    state: &AppState,
    endpoint: &mut Endpoint,
    secrets: EndpointSecrets,
) -> ApiResult<()> {
    profile::ensure_webhook_secret(state, endpoint).await?;
    endpoint.serial = state.store.next_serial(SerialKind::Endpoint).await?;
    let max = state.limits.max_endpoints_per_app;
    let created = state
        .store
        .create_endpoint_within(endpoint, &secrets.seal(&state.keyring), max as u64)
        .await?;
    if !created {
        return Err(ApiError::invalid(
            &["body"],
            format!(
                "this application already has {max} endpoints, the most this server allows \
                 (--max-endpoints-per-app)"
            ),
        ));
    }
    Ok(())
}

/// List an application's endpoints.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint", operation_id = "v1.endpoint.list",
    params(AppPath, OrderedPageQuery),
    responses((status = 200, body = ListResponse<EndpointOut>)))]
pub(crate) async fn list_endpoints(
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
pub(crate) async fn create_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Json(mut body): Json<EndpointIn>,
) -> ApiResult<(StatusCode, axum::Json<EndpointOut>)> {
    let delivery = body.delivery();
    let endpoint = create(&state, &scoped, body, delivery, None).await?;
    state.operational.poke();
    Ok((StatusCode::CREATED, axum::Json(endpoint.into())))
}

/// Get an endpoint by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.get",
    params(EndpointPath),
    responses((status = 200, body = EndpointOut)))]
pub(crate) async fn get_endpoint(
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
pub(crate) async fn update_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(mut body): Json<EndpointIn>,
) -> ApiResult<Response> {
    let id = path.endpoint_id;
    let delivery = body.delivery();
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
        let endpoint = create(&state, &scoped, body, delivery, Some(id)).await?;
        state.operational.poke();
        return Ok((StatusCode::CREATED, axum::Json(EndpointOut::from(endpoint))).into_response());
    };
    endpoint.url = body.url;
    kind::keep_poller_url(&state, &mut endpoint);
    endpoint.description = body.description;
    // As for applications, a PUT without a uid (or a name) keeps the endpoint's.
    if body.uid.is_some() {
        endpoint.uid = body.uid;
    }
    if body.name.is_some() {
        endpoint.name = body.name;
    }
    endpoint.disabled = body.disabled;
    endpoint.event_types = body.event_types;
    endpoint.channels = body.channels;
    endpoint.rate_limit = body.throttle_rate;
    endpoint.metadata = body.metadata.unwrap_or_default();
    let scheme_before = endpoint.options.signature.scheme;
    delivery.apply_to(&mut endpoint.options);
    let mut v = Violations::new();
    kind::check_unchanged(&mut v, &endpoint, body.kind);
    check_endpoint(&mut v, &endpoint, &state);
    v.finish()?;
    save(&state, &mut endpoint, scheme_before).await?;
    Ok(axum::Json(EndpointOut::from(endpoint)).into_response())
}

/// Checks and stores an endpoint changed by another face of the API (Impilo's), and reports
/// the change as the Svix routes do.
pub(crate) async fn check_and_save(state: &AppState, endpoint: &mut Endpoint) -> ApiResult<()> {
    let mut v = Violations::new();
    check_endpoint(&mut v, endpoint, state);
    v.finish()?;
    let scheme_before = endpoint.options.signature.scheme;
    save(state, endpoint, scheme_before).await?;
    Ok(())
}

/// Stores a changed endpoint; when its signature scheme changed, a secret that does not fit the
/// new scheme is replaced. A broker URL's credentials go to the sealed secrets.
async fn save(
    state: &AppState,
    endpoint: &mut Endpoint,
    scheme_before: herald_core::signing::Scheme,
) -> ApiResult<()> {
    endpoint.updated_at = herald_core::time::now();
    profile::ensure_webhook_secret(state, endpoint).await?;
    let credentials = broker::take_credentials(endpoint);
    broker::check_kept(state, endpoint, &credentials).await?;
    // `endpoint.updated` (and `endpoint.disabled`) are committed with the change.
    state.store.update_endpoint(endpoint).await?;
    state.operational.poke();
    broker::store_credentials(state, endpoint, credentials).await?;
    if endpoint.options.signature.scheme != scheme_before {
        fit_secret_to_scheme(state, endpoint).await?;
    }
    Ok(())
}

/// Partially update an endpoint.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.patch",
    params(EndpointPath),
    request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut)))]
pub(crate) async fn patch_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<axum::Json<EndpointOut>> {
    let mut endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    if let Some(url) = patch.url {
        endpoint.url = url;
        kind::keep_poller_url(&state, &mut endpoint);
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
    endpoint.name = patch.name.apply(endpoint.name);
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
        options.ordering = ordering.into();
    }
    let scheme_before = options.signature.scheme;
    if let Some(signature) = patch.signature {
        options.signature = signature.into();
    }
    if let Some(encoding) = patch.encoding {
        options.encoding = encoding.into();
    }
    if let Some(envelope) = patch.envelope {
        options.envelope = envelope.into();
    }
    match patch.graphql {
        Patch::Absent => {}
        Patch::Null => options.graphql = None,
        Patch::Value(query) => options.graphql = Some(query.into()),
    }
    match patch.graphql_by_event_type {
        Patch::Absent => {}
        Patch::Null => options.graphql_by_event_type.clear(),
        Patch::Value(queries) => {
            options.graphql_by_event_type =
                queries.into_iter().map(|(k, q)| (k, q.into())).collect();
        }
    }
    options.filter = patch.filter.apply(options.filter.take());
    options.success_statuses = patch
        .success_statuses
        .apply(options.success_statuses.take());
    options.retry_jitter = patch.retry_jitter.apply(options.retry_jitter);
    options.profile = patch
        .profile
        .apply(options.profile.map(ProfileName::from))
        .map(Into::into);
    let mut v = Violations::new();
    check_endpoint(&mut v, &endpoint, &state);
    v.finish()?;
    save(&state, &mut endpoint, scheme_before).await?;
    Ok(axum::Json(endpoint.into()))
}

/// Delete an endpoint.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint", operation_id = "v1.endpoint.delete",
    params(EndpointPath),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_endpoint(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<StatusCode> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    if state
        .store
        .delete_endpoint(&scoped.app.id, &endpoint.id)
        .await?
    {
        state.operational.poke();
    }
    Ok(StatusCode::NO_CONTENT)
}
