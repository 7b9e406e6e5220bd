//! API keys (a Herald addition) and the Svix authentication routes: application portal access,
//! expiring an application's portal tokens, and logout.
//!
//! A key's token is shown once, in the answer that creates it; only a hash is stored. Every
//! credential is a key: API keys (`kind: api`), customers' portal tokens and console sessions
//! (`kind: portal`); all are listed by `GET /api/v1/api-key` and revoked at once by `DELETE`.

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
        .routes(routes!(expire_all))
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// What a key was made for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyKind {
    /// Created with `POST /api/v1/api-key`.
    Api,
    /// A customer's portal token (`app-portal-access`, with `appId`) or an operator's console
    /// session (no `appId`, with `parentId`: the key signed in with).
    Portal,
    /// The key of an integration (`…/app/{app}/integration`): that application's endpoints
    /// only.
    Integration,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyOut {
    #[schema(example = "key_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub name: String,
    pub role: ApiKeyRole,
    pub kind: ApiKeyKind,
    pub app_id: Option<String>,
    /// For a console session: the key its operator signed in with (revoking that key ends the
    /// session). Not set for one signed in with the admin token.
    pub parent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// For a portal token: the feature flags whose event types it sees (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_flags: Vec<String>,
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
            kind: k.kind.into(),
            app_id: k.app_id.map(|a| a.into_string()),
            parent_id: k.parent_id.map(|p| p.into_string()),
            created_at: k.created_at,
            expires_at: k.expires_at,
            feature_flags: k.feature_flags,
        }
    }
}

impl From<KeyKind> for ApiKeyKind {
    fn from(k: KeyKind) -> Self {
        match k {
            KeyKind::Api => ApiKeyKind::Api,
            KeyKind::Portal => ApiKeyKind::Portal,
            KeyKind::Integration => ApiKeyKind::Integration,
        }
    }
}

/// What a new key is.
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub kind: KeyKind,
    pub app_id: Option<herald_core::id::AppId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub parent_id: Option<ApiKeyId>,
    /// For a portal token: the feature flags whose event types it sees.
    pub feature_flags: Vec<String>,
    /// When it is issued: the instant its lifetime was counted from, so that a key given "7
    /// days" lives exactly 7 days.
    pub created_at: DateTime<Utc>,
}

/// Stores a new key and returns it with its token.
pub async fn issue(state: &AppState, new: NewKey) -> ApiResult<(ApiKey, String)> {
    let (key, token) = mint(new);
    state.store.create_api_key(&key).await?;
    Ok((key, token))
}

/// A new key and its token, not stored yet (for callers that store it in a transaction of
/// their own, as integrations do).
pub fn mint(new: NewKey) -> (ApiKey, String) {
    let issued = token::issue_api_token();
    let key = ApiKey {
        id: issued.key_id,
        name: new.name,
        role: new.role,
        kind: new.kind,
        app_id: new.app_id,
        secret_hash: issued.secret_hash,
        created_at: new.created_at,
        expires_at: new.expires_at,
        parent_id: new.parent_id,
        feature_flags: new.feature_flags,
    };
    (key, issued.token.to_string())
}

/// Create an API key (admin only). The answer holds the token; it is not shown again.
#[utoipa::path(post, path = "/api/v1/api-key", tag = "Authentication", operation_id = "herald.api-key.create",
    request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyCreatedOut)))]
async fn create_api_key(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Json(body): Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, axum::Json<ApiKeyCreatedOut>)> {
    // A key made by a session would outlive the session and the revocation of the credential
    // it was signed in with.
    if principal.is_console_session() {
        return Err(ApiError::forbidden(
            "a console session cannot create API keys: use an admin API key or the admin token",
        ));
    }
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
        NewKey {
            name,
            role,
            kind: KeyKind::Api,
            app_id,
            expires_at: body.expires_at,
            parent_id: None,
            feature_flags: Vec::new(),
            created_at: herald_core::time::now(),
        },
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

/// List every credential (API keys, portal tokens, console sessions), without their tokens.
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

/// Revoke a key (an API key, a portal token or a console session); it stops working at once,
/// and so do the console sessions signed in with it.
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPortalAccessIn {
    /// Creates the application when the path names none.
    pub application: Option<ApplicationIn>,
    /// Seconds until the token expires (3600 to 604800, default 604800: 7 days).
    pub expiry: Option<i64>,
    /// A token that can read but not change anything.
    #[serde(default)]
    pub read_only: bool,
    /// The event types gated by these feature flags become visible to the token (at most 10).
    #[serde(default)]
    pub feature_flags: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
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
    if !body.feature_flags.is_empty() {
        validate::identifier_list(
            &mut v,
            &["body", "featureFlags"],
            &body.feature_flags,
            256,
            Some(10),
        );
    }
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
        NewKey {
            name: "portal".into(),
            role,
            kind: KeyKind::Portal,
            app_id: Some(app.id),
            expires_at: Some(now + Duration::seconds(expiry)),
            parent_id: None,
            feature_flags: body.feature_flags,
            created_at: now,
        },
    )
    .await?;
    Ok(axum::Json(AppPortalAccessOut {
        url: format!("{}/portal#key={token}", state.public_url),
        token,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationTokenExpireIn {
    /// Seconds until the tokens stop working (0 to 604800; default 0: at once).
    pub expiry: Option<i64>,
    /// Not supported: Herald's portal tokens carry no session id. Sending it is a 422, so that
    /// no token is left working by mistake.
    pub session_ids: Option<Vec<String>>,
}

/// Expire every portal token of an application (admin only): at once, or after `expiry`
/// seconds. API keys of the application are not touched.
#[utoipa::path(post, path = "/api/v1/auth/app/{app_id}/expire-all", tag = "Authentication",
    operation_id = "v1.authentication.expire-all",
    params(AppPath),
    request_body = ApplicationTokenExpireIn,
    responses((status = 204, description = "The application's portal tokens expire")))]
async fn expire_all(
    State(state): State<AppState>,
    _admin: Admin,
    Path(app_id): Path<String>,
    OptionalJson(body): OptionalJson<ApplicationTokenExpireIn>,
) -> ApiResult<StatusCode> {
    let mut v = Violations::new();
    let expiry = body.expiry.unwrap_or(0);
    validate::range(
        &mut v,
        &["body", "expiry"],
        expiry,
        0,
        DEFAULT_PORTAL_EXPIRY,
    );
    if body.session_ids.is_some() {
        v.value(
            &["body", "sessionIds"],
            "not supported: Herald's portal tokens carry no session id; leave it out to expire \
             every portal token of the application",
        );
    }
    v.finish()?;
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ApiError::NotFound("application not found"))?;
    let now = herald_core::time::now();
    state
        .store
        .expire_portal_keys(&app.id, now + Duration::seconds(expiry), now)
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
