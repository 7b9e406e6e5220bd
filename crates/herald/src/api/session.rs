//! Who a token is, and the operator's console sessions (Herald additions, under
//! "Authentication").
//!
//! The portal and the console are clients of this API like any other (see `portal`): they
//! learn whom a cookie's token belongs to with `GET /api/v1/auth/whoami`, and the console's
//! sign-in exchanges the operator's credential for a session key with
//! `POST /api/v1/auth/console-session`. Both run behind the same authentication middleware as
//! every route, so the pages cannot decide anything about a token the API would decide
//! differently.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::model::KeyKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::api_key::{ApiKeyKind, ApiKeyRole, NewKey, issue};
use super::auth::Principal;
use super::error::{ApiError, ApiResult};

/// Console sessions last this long at most (and never past the key signed in with).
pub const CONSOLE_SESSION_HOURS: i64 = 12;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(console_session))
}

/// The token that made the request, as the API sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmIOut {
    /// The key's id; not set for the admin token.
    pub key_id: Option<String>,
    /// What the key was made for; not set for the admin token.
    pub kind: Option<ApiKeyKind>,
    pub role: ApiKeyRole,
    /// The application the token is limited to, if any.
    pub app_id: Option<String>,
}

impl From<&Principal> for WhoAmIOut {
    fn from(p: &Principal) -> Self {
        Self {
            key_id: p.key_id.as_ref().map(|id| id.as_str().to_owned()),
            kind: p.kind.map(ApiKeyKind::from),
            role: p.role.into(),
            app_id: p.app_id.as_ref().map(|a| a.as_str().to_owned()),
        }
    }
}

/// Describe the token that makes this request: its key, kind, role and application scope.
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "Authentication",
    operation_id = "herald.authentication.whoami",
    responses((status = 200, body = WhoAmIOut)))]
async fn whoami(principal: Principal) -> axum::Json<WhoAmIOut> {
    axum::Json(WhoAmIOut::from(&principal))
}

/// A console session: the token the console's cookie holds. No `Debug`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSessionOut {
    /// The session key's id (listed with the API keys, revoked like them).
    pub id: String,
    /// Bearer token of the session; shown only here.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Exchange the admin token or an unscoped API key for a console session key of the same
/// role, lasting 12 hours and never past the key signed in with. The session is tied to that
/// key (its `parentId`): revoking the key ends it. A session's own token cannot open another,
/// so a session cannot extend itself; tokens limited to an application cannot open one.
#[utoipa::path(post, path = "/api/v1/auth/console-session", tag = "Authentication",
    operation_id = "herald.authentication.console-session",
    responses((status = 201, body = ConsoleSessionOut)))]
async fn console_session(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<(StatusCode, axum::Json<ConsoleSessionOut>)> {
    if principal.app_id.is_some() || principal.is_console_session() {
        return Err(ApiError::forbidden(
            "a console session is opened with the admin token or an API key of no application",
        ));
    }
    let now = herald_core::time::now();
    let mut expires_at = now + chrono::Duration::hours(CONSOLE_SESSION_HOURS);
    if let Some(id) = &principal.key_id
        && let Some(signer_expiry) = state
            .store
            .get_api_key(id)
            .await?
            .and_then(|k| k.expires_at)
    {
        expires_at = expires_at.min(signer_expiry);
    }
    let source = principal
        .key_id
        .as_ref()
        .map_or_else(|| "admin token".to_owned(), |id| id.as_str().to_owned());
    let new = NewKey {
        name: format!("console session ({source})"),
        role: principal.role,
        kind: KeyKind::Portal,
        app_id: None,
        expires_at: Some(expires_at),
        parent_id: principal.key_id.clone(),
        feature_flags: Vec::new(),
        created_at: now,
    };
    let (key, token) = issue(&state, new).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ConsoleSessionOut {
            id: key.id.into_string(),
            token,
            expires_at,
        }),
    ))
}
