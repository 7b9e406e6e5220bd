//! `/api/v1/app/{app_id}/integration`: integrations (Svix's), named credentials that a third
//! party uses to manage one application's endpoints. Each has one key, an ordinary API key of
//! kind `integration` (listed under `GET /api/v1/api-key`, revocable there), limited by
//! `auth::authenticate` to that application's endpoint routes and to reading its event types
//! (feature-flagged ones only with the integration's flags). Rotating issues a new key and
//! ends the old one at once; deleting the integration deletes its key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::id::IntegrationId;
use herald_core::model::{Integration, KeyKind, Role};
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::api_key::{NewKey, mint};
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::pagination::{ListResponse, OrderedPageQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations, create_integration))
        .routes(routes!(
            get_integration,
            update_integration,
            delete_integration
        ))
        .routes(routes!(rotate_integration_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationIn {
    #[schema(example = "Zapier")]
    pub name: String,
    /// The feature-flagged event types the integration may see (at most 5 flags).
    pub feature_flags: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationOut {
    #[schema(example = "integ_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub name: String,
    pub feature_flags: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Integration> for IntegrationOut {
    fn from(i: Integration) -> Self {
        Self {
            id: i.id.into_string(),
            name: i.name,
            feature_flags: i.feature_flags,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// The answer of a creation: the integration, and its key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationCreatedOut {
    #[serde(flatten)]
    pub integration: IntegrationOut,
    /// The integration's key (Herald extension; `…/key/rotate` issues another).
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationKeyOut {
    /// A bearer token for this application's endpoint routes; shown only here.
    pub key: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IntegrationPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The integration's id.
    pub integ_id: String,
}

fn check(body: &IntegrationIn) -> ApiResult<()> {
    let mut v = Violations::new();
    let length = body.name.chars().count();
    if length == 0 || length > 256 {
        v.value(&["body", "name"], "must be 1 to 256 characters");
    }
    if let Some(flags) = &body.feature_flags {
        validate::identifier_list(&mut v, &["body", "featureFlags"], flags, 256, Some(5));
    }
    v.finish()?;
    Ok(())
}

/// A console session cannot mint credentials that would outlive it.
fn may_mint(scoped: &ScopedApp) -> ApiResult<()> {
    if scoped.principal.is_console_session() {
        return Err(ApiError::forbidden(
            "a console session cannot issue integration keys: use an API key or the admin token",
        ));
    }
    Ok(())
}

/// The key an integration gets. Issued by a key limited to the application, it cannot outlive
/// that key: it expires with it and is deleted when it is revoked (`parent_id`). An unscoped
/// admin's integration keys live until rotated or deleted.
async fn new_key(
    state: &AppState,
    scoped: &ScopedApp,
    integration: &Integration,
) -> ApiResult<(herald_core::model::ApiKey, String)> {
    let (expires_at, parent_id) = match (&scoped.principal.app_id, &scoped.principal.key_id) {
        (Some(_), Some(creator)) => {
            let creator_key = state
                .store
                .get_api_key(creator)
                .await?
                .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
            (creator_key.expires_at, Some(creator_key.id))
        }
        _ => (None, None),
    };
    Ok(mint(NewKey {
        name: format!("integration: {}", integration.name),
        role: Role::App,
        kind: KeyKind::Integration,
        app_id: Some(integration.app_id.clone()),
        expires_at,
        parent_id,
        feature_flags: integration.feature_flags.clone().unwrap_or_default(),
        created_at: integration.updated_at,
    }))
}

async fn load(state: &AppState, scoped: &ScopedApp, id: &str) -> ApiResult<Integration> {
    let not_found = ApiError::NotFound("integration not found");
    let id = IntegrationId::parse(id).ok_or(not_found)?;
    state
        .store
        .get_integration(&scoped.app.id, &id)
        .await?
        .ok_or(ApiError::NotFound("integration not found"))
}

/// List the application's integrations.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/integration", tag = "Integration",
    operation_id = "v1.integration.list",
    params(("app_id" = String, Path, description = "The application's id or uid"), OrderedPageQuery),
    responses((status = 200, body = ListResponse<IntegrationOut>)))]
async fn list_integrations(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Query(query): Query<OrderedPageQuery>,
) -> ApiResult<axum::Json<ListResponse<IntegrationOut>>> {
    let params = query.params()?;
    let page = state
        .store
        .list_integrations(&scoped.app.id, &params)
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |i| i.id.as_str().to_owned(),
        IntegrationOut::from,
    )))
}

/// Create an integration with its key (the answer's `key`, shown only here).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/integration", tag = "Integration",
    operation_id = "v1.integration.create",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = IntegrationIn,
    responses((status = 201, body = IntegrationCreatedOut)))]
async fn create_integration(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Json(body): Json<IntegrationIn>,
) -> ApiResult<(StatusCode, axum::Json<IntegrationCreatedOut>)> {
    check(&body)?;
    may_mint(&scoped)?;
    let now = herald_core::time::now();
    let mut integration = Integration {
        id: IntegrationId::generate_at(now),
        app_id: scoped.app.id.clone(),
        name: body.name,
        feature_flags: body.feature_flags,
        key_id: None,
        created_at: now,
        updated_at: now,
    };
    let (key, token) = new_key(&state, &scoped, &integration).await?;
    integration.key_id = Some(key.id.clone());
    state.store.create_integration(&integration, &key).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IntegrationCreatedOut {
            integration: integration.into(),
            key: token,
        }),
    ))
}

/// Get an integration.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/integration/{integ_id}", tag = "Integration",
    operation_id = "v1.integration.get",
    params(IntegrationPath),
    responses((status = 200, body = IntegrationOut)))]
async fn get_integration(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<IntegrationPath>,
) -> ApiResult<axum::Json<IntegrationOut>> {
    Ok(axum::Json(
        load(&state, &scoped, &path.integ_id).await?.into(),
    ))
}

/// Update an integration's name and feature flags (its key's flags follow).
#[utoipa::path(put, path = "/api/v1/app/{app_id}/integration/{integ_id}", tag = "Integration",
    operation_id = "v1.integration.update",
    params(IntegrationPath),
    request_body = IntegrationIn,
    responses((status = 200, body = IntegrationOut)))]
async fn update_integration(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<IntegrationPath>,
    Json(body): Json<IntegrationIn>,
) -> ApiResult<axum::Json<IntegrationOut>> {
    check(&body)?;
    let mut integration = load(&state, &scoped, &path.integ_id).await?;
    integration.name = body.name;
    integration.feature_flags = body.feature_flags;
    integration.updated_at = herald_core::time::now();
    if !state.store.update_integration(&integration).await? {
        return Err(ApiError::NotFound("integration not found"));
    }
    Ok(axum::Json(integration.into()))
}

/// Delete an integration and its key.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/integration/{integ_id}", tag = "Integration",
    operation_id = "v1.integration.delete",
    params(IntegrationPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_integration(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<IntegrationPath>,
) -> ApiResult<StatusCode> {
    let integration = load(&state, &scoped, &path.integ_id).await?;
    if !state
        .store
        .delete_integration(&scoped.app.id, &integration.id)
        .await?
    {
        return Err(ApiError::NotFound("integration not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new key for the integration; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/integration/{integ_id}/key/rotate", tag = "Integration",
    operation_id = "v1.integration.rotate-key",
    params(IntegrationPath),
    responses((status = 200, body = IntegrationKeyOut)))]
async fn rotate_integration_key(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<IntegrationPath>,
) -> ApiResult<axum::Json<IntegrationKeyOut>> {
    may_mint(&scoped)?;
    let mut integration = load(&state, &scoped, &path.integ_id).await?;
    integration.updated_at = herald_core::time::now();
    let (key, token) = new_key(&state, &scoped, &integration).await?;
    integration.key_id = Some(key.id.clone());
    if !state
        .store
        .rotate_integration_key(&integration, &key)
        .await?
    {
        return Err(ApiError::NotFound("integration not found"));
    }
    Ok(axum::Json(IntegrationKeyOut { key: token }))
}
