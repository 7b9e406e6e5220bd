//! The operator's operational webhook endpoints (`/api/v1/operational-webhook/endpoint`, as in
//! Svix's cloud API; admin tokens only). They are endpoints of the reserved application (see
//! [`crate::operational`]), so each route is the endpoint route of the same name applied to
//! that application: same shapes, validation, secrets and rotation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::DateTime;
use herald_core::model::{Application, OPERATIONAL_APP_ID, Role, operational_app_id};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::{Principal, ScopedApp};
use super::endpoint::{self, EndpointIn, EndpointOut, EndpointPatch};
use super::endpoint::{
    EndpointHeadersIn, EndpointHeadersOut, EndpointSecretOut, EndpointSecretRotateIn,
};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, OptionalJson, Query};
use super::pagination::{ListResponse, OrderedPageQuery};
use super::params::EndpointPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, patch, delete))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(get_headers, update_headers))
}

/// `/api/v1/operational-webhook/endpoint/{endpoint_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OperationalEndpointPath {
    /// The endpoint's id or uid.
    pub endpoint_id: String,
}

impl OperationalEndpointPath {
    fn in_reserved_app(self) -> Path<EndpointPath> {
        Path(EndpointPath {
            app_id: OPERATIONAL_APP_ID.to_owned(),
            endpoint_id: self.endpoint_id,
        })
    }
}

/// The reserved application, as the endpoint routes expect it. Only unscoped admin tokens
/// reach it; read-only admin tokens may read. An extractor, so that it runs before the body is
/// read.
struct Reserved(ScopedApp);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Reserved {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        reserved(principal).map(Reserved)
    }
}

fn reserved(principal: Principal) -> ApiResult<ScopedApp> {
    if principal.app_id.is_some() || !matches!(principal.role, Role::Admin | Role::ReadOnly) {
        return Err(ApiError::forbidden(
            "operational webhooks need an admin token; the token in use is limited",
        ));
    }
    Ok(ScopedApp {
        app: Application {
            id: operational_app_id(),
            uid: None,
            name: "Herald operational webhooks".into(),
            rate_limit: None,
            metadata: Default::default(),
            graphql_api: None,
            org_id: None,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        },
        principal,
    })
}

/// List the operational webhook endpoints.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.list",
    params(OrderedPageQuery),
    responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    query: Query<OrderedPageQuery>,
) -> ApiResult<axum::Json<ListResponse<EndpointOut>>> {
    endpoint::list_endpoints(state, scoped, query).await
}

/// Create an operational webhook endpoint. It receives `endpoint.created`, `endpoint.updated`,
/// `endpoint.deleted`, `endpoint.disabled`, `message.attempt.failing`,
/// `message.attempt.exhausted` and `message.attempt.recovered` (or those in its
/// `eventTypes`), signed with its own secret.
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.create",
    request_body = EndpointIn,
    responses((status = 201, body = EndpointOut)))]
async fn create(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    body: Json<EndpointIn>,
) -> ApiResult<(StatusCode, axum::Json<EndpointOut>)> {
    endpoint::create_endpoint(state, scoped, body).await
}

/// Get an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.get",
    params(OperationalEndpointPath),
    responses((status = 200, body = EndpointOut)))]
async fn get(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
) -> ApiResult<axum::Json<EndpointOut>> {
    endpoint::get_endpoint(state, scoped, path.in_reserved_app()).await
}

/// Replace an operational webhook endpoint's settings (or create it with this uid).
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.update",
    params(OperationalEndpointPath),
    request_body = EndpointIn,
    responses(
        (status = 200, body = EndpointOut, description = "Updated"),
        (status = 201, body = EndpointOut, description = "Created"),
    ))]
async fn update(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
    body: Json<EndpointIn>,
) -> ApiResult<Response> {
    endpoint::update_endpoint(state, scoped, path.in_reserved_app(), body).await
}

/// Partially update an operational webhook endpoint.
#[utoipa::path(patch, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.patch",
    params(OperationalEndpointPath),
    request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut)))]
async fn patch(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
    body: Json<EndpointPatch>,
) -> ApiResult<axum::Json<EndpointOut>> {
    endpoint::patch_endpoint(state, scoped, path.in_reserved_app(), body).await
}

/// Delete an operational webhook endpoint.
#[utoipa::path(delete, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.delete",
    params(OperationalEndpointPath),
    responses((status = 204, description = "Deleted")))]
async fn delete(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
) -> ApiResult<StatusCode> {
    endpoint::delete_endpoint(state, scoped, path.in_reserved_app()).await
}

/// Get an operational webhook endpoint's signing secret.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.get-secret",
    params(OperationalEndpointPath),
    responses((status = 200, body = EndpointSecretOut)))]
async fn get_secret(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
) -> ApiResult<axum::Json<EndpointSecretOut>> {
    endpoint::get_secret(state, scoped, path.in_reserved_app()).await
}

/// Rotate an operational webhook endpoint's signing secret (the previous one keeps signing
/// for the grace period).
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.rotate-secret",
    params(OperationalEndpointPath),
    request_body = EndpointSecretRotateIn,
    responses((status = 200, body = EndpointSecretOut, description = "Rotated")))]
async fn rotate_secret(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
    body: OptionalJson<EndpointSecretRotateIn>,
) -> ApiResult<axum::Json<EndpointSecretOut>> {
    endpoint::rotate_secret(state, scoped, path.in_reserved_app(), body).await
}

/// Get the custom headers sent with every operational webhook to this endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.get-headers",
    params(OperationalEndpointPath),
    responses((status = 200, body = EndpointHeadersOut)))]
async fn get_headers(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
) -> ApiResult<axum::Json<EndpointHeadersOut>> {
    endpoint::get_headers(state, scoped, path.in_reserved_app()).await
}

/// Replace the custom headers sent with every operational webhook to this endpoint.
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", tag = "Operational Webhook",
    operation_id = "v1.operational-webhook.endpoint.update-headers",
    params(OperationalEndpointPath),
    request_body = EndpointHeadersIn,
    responses((status = 204, description = "Replaced")))]
async fn update_headers(
    state: State<AppState>,
    Reserved(scoped): Reserved,
    Path(path): Path<OperationalEndpointPath>,
    body: Json<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    endpoint::update_headers(state, scoped, path.in_reserved_app(), body).await
}
