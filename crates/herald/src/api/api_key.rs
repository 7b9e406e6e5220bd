//! API keys (a Herald addition) and the Svix authentication routes: application portal access
//! and logout.
//!
//! A key's token is shown once, in the answer that creates it; only a hash is stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use herald_core::id::ApiKeyId;
use herald_core::model::{ApiKey, KeyKind, Role};
use herald_core::page::Order;
use herald_core::token;
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::application::{ApplicationIn, find_or_create};
use super::auth::{Admin, Principal};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, OptionalJson, Query};
use super::pagination::{ListResponse, PageQuery};
use super::params::AppPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(get_api_key, delete_api_key))
        .routes(routes!(app_portal_access))
        .routes(routes!(logout))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApiKeyRole {
    /// Everything.
    Admin,
    /// Everything within one application (`appId`), and reading the event type catalogue.
    App,
    /// Reading only; limited to one application when `appId` is set.
    ReadOnly,
}

impl From<ApiKeyRole> for Role {
    fn from(r: ApiKeyRole) -> Self {
        match r {
            ApiKeyRole::Admin => Role::Admin,
            ApiKeyRole::App => Role::App,
            ApiKeyRole::ReadOnly => Role::ReadOnly,
        }
    }
}

impl From<Role> for ApiKeyRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => ApiKeyRole::Admin,
            Role::App => ApiKeyRole::App,
            Role::ReadOnly => ApiKeyRole::ReadOnly,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyIn {
    /// A label for people; defaults to the role.
    #[serde(default)]
    pub name: Option<String>,
    pub role: ApiKeyRole,
    /// The application (id or uid) an `app` key is limited to; optional for `read-only`.
    pub app_id: Option<String>,
    /// When the key stops working; never when omitted.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyOut {
    #[schema(example = "key_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub name: String,
    pub role: ApiKeyRole,
    pub app_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created key, with its token: the only time the token is shown. No `Debug`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreatedOut {
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// Bearer token; store it now, it cannot be read again.
    pub token: String,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.into_string(),
            name: k.name,
            role: k.role.into(),
            app_id: k.app_id.map(|a| a.into_string()),
            created_at: k.created_at,
            expires_at: k.expires_at,
        }
    }
}

/// Stores a new key and returns it with its token.
async fn issue(
    state: &AppState,
    name: String,
    role: Role,
    kind: KeyKind,
    app_id: Option<herald_core::id::AppId>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> ApiResult<(ApiKey, String)> {
    let issued = token::issue_api_token();
    let key = ApiKey {
        id: issued.key_id,
        name,
        role,
        kind,
        app_id,
        secret_hash: issued.secret_hash,
        created_at,
        expires_at,
    };
    state.store.create_api_key(&key).await?;
    Ok((key, issued.token.to_string()))
}

/// Create an API key (admin only). The answer holds the token; it is not shown again.
#[utoipa::path(post, path = "/api/v1/api-key", tag = "Authentication", operation_id = "herald.api-key.create",
    request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyCreatedOut)))]
async fn create_api_key(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, axum::Json<ApiKeyCreatedOut>)> {
    let role = Role::from(body.role);
    let mut v = Violations::new();
    let name = body.name.unwrap_or_else(|| role.as_str().to_owned());
    if name.chars().count() > 256 {
        v.value(&["body", "name"], "must be at most 256 characters");
    }
    match (role, &body.app_id) {
        (Role::App, None) => v.value(
            &["body", "appId"],
            "an `app` key needs the application it is limited to",
        ),
        (Role::Admin, Some(_)) => v.value(
            &["body", "appId"],
            "an `admin` key cannot be limited to an application; use role `app`",
        ),
        _ => {}
    }
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        v.value(&["body", "expiresAt"], "must be in the future");
    }
    v.finish()?;
    let app_id = match &body.app_id {
        Some(app) => Some(
            state
                .store
                .get_app(app)
                .await?
                .ok_or_else(|| ApiError::invalid(&["body", "appId"], "no such application"))?
                .id,
        ),
        None => None,
    };
    let (key, token) = issue(
        &state,
        name,
        role,
        KeyKind::Api,
        app_id,
        herald_core::time::now(),
        body.expires_at,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ApiKeyCreatedOut {
            key: key.into(),
            token,
        }),
    ))
}

/// List API keys (without their tokens).
#[utoipa::path(get, path = "/api/v1/api-key", tag = "Authentication", operation_id = "herald.api-key.list",
    params(PageQuery),
    responses((status = 200, body = ListResponse<ApiKeyOut>)))]
async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<ListResponse<ApiKeyOut>>> {
    if principal.app_id.is_some() {
        return Err(ApiError::forbidden(
            "API keys are managed with an unscoped token",
        ));
    }
    let params = query.params(Order::Ascending)?;
    let page = state.store.list_api_keys(&params).await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |k| k.id.as_str().to_owned(),
        ApiKeyOut::from,
    )))
}

async fn load_key(state: &AppState, principal: &Principal, id: &str) -> ApiResult<ApiKey> {
    if principal.app_id.is_some() {
        return Err(ApiError::forbidden(
            "API keys are managed with an unscoped token",
        ));
    }
    let id = ApiKeyId::parse(id).ok_or(ApiError::NotFound("API key not found"))?;
    state
        .store
        .get_api_key(&id)
        .await?
        .filter(|k| k.kind == KeyKind::Api)
        .ok_or(ApiError::NotFound("API key not found"))
}

/// Get an API key (without its token).
#[utoipa::path(get, path = "/api/v1/api-key/{key_id}", tag = "Authentication", operation_id = "herald.api-key.get",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 200, body = ApiKeyOut)))]
async fn get_api_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiKeyOut>> {
    Ok(axum::Json(load_key(&state, &principal, &id).await?.into()))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-key/{key_id}", tag = "Authentication", operation_id = "herald.api-key.delete",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked")))]
async fn delete_api_key(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = load_key(&state, &principal, &id).await?;
    state.store.delete_api_key(&key.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessIn {
    /// Creates the application when the path names none.
    pub application: Option<ApplicationIn>,
    /// Seconds until the token expires (3600 to 604800, default 604800: 7 days).
    pub expiry: Option<i64>,
    /// A token that can read but not change anything.
    #[serde(default)]
    pub read_only: bool,
    /// Accepted for compatibility; Herald has no feature flags.
    #[serde(default)]
    pub feature_flags: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AppPortalAccessOut {
    /// Open this to enter the portal; the token travels in the fragment, never to a log.
    pub url: String,
    /// A bearer token limited to the application.
    pub token: String,
}

const DEFAULT_PORTAL_EXPIRY: i64 = 7 * 24 * 3600;

/// Get a portal link and token for one application (admin only: a limited token cannot mint
/// tokens, or a portal session could renew itself forever).
#[utoipa::path(post, path = "/api/v1/auth/app-portal-access/{app_id}", tag = "Authentication",
    operation_id = "v1.authentication.app-portal-access",
    params(AppPath),
    request_body = AppPortalAccessIn,
    responses((status = 200, body = AppPortalAccessOut)))]
async fn app_portal_access(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Path(app_id): Path<String>,
    OptionalJson(body): OptionalJson<AppPortalAccessIn>,
) -> ApiResult<axum::Json<AppPortalAccessOut>> {
    let expiry = body.expiry.unwrap_or(DEFAULT_PORTAL_EXPIRY);
    let mut v = Violations::new();
    validate::range(
        &mut v,
        &["body", "expiry"],
        expiry,
        3600,
        DEFAULT_PORTAL_EXPIRY,
    );
    v.finish()?;
    let app = find_or_create(&state, &principal, &app_id, body.application).await?;
    let role = if body.read_only {
        Role::ReadOnly
    } else {
        Role::App
    };
    let now = herald_core::time::now();
    let (_, token) = issue(
        &state,
        "portal".into(),
        role,
        KeyKind::Portal,
        Some(app.id),
        now,
        Some(now + Duration::seconds(expiry)),
    )
    .await?;
    Ok(axum::Json(AppPortalAccessOut {
        url: format!("{}/portal#key={token}", state.public_url),
        token,
    }))
}

/// End a portal session: its token stops working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "Authentication", operation_id = "v1.authentication.logout",
    responses((status = 204, description = "Logged out")))]
async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<StatusCode> {
    match (&principal.key_id, principal.kind) {
        (Some(id), Some(KeyKind::Portal)) => {
            state.store.delete_api_key(id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::forbidden(
            "only portal tokens log out; revoke API keys with DELETE /api/v1/api-key/{key_id}",
        )),
    }
}
