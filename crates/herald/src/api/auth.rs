//! Who is calling, and what they may touch.
//!
//! Every `/api/v1` route except health and the OpenAPI document goes through [`authenticate`]:
//! it turns the bearer token into a [`Principal`] (401 when missing or unknown), applies the
//! token's rate limit (429 with `Retry-After`, `--api-rate-limit`), refuses writes
//! by read-only principals (403) centrally so that no handler can forget, and stores the
//! principal in the request for handlers and the idempotency layer.
//!
//! Application scoping is enforced where the application is loaded: the [`ScopedApp`]
//! extractor answers 404, not 403, for another application's resources, so that an app-scoped
//! token cannot even learn which application ids exist.

use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use herald_core::id::{ApiKeyId, AppId};
use herald_core::model::{Application, KeyKind, Role};
use herald_core::token;

use super::AppState;
use super::error::{ApiError, ApiResult};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `None` for the admin token from the environment or the generated one.
    pub key_id: Option<ApiKeyId>,
    pub kind: Option<KeyKind>,
    pub role: Role,
    /// Set when the token is limited to one application.
    pub app_id: Option<AppId>,
    /// The feature flags a portal token carries (see `event_type::visible_to`).
    pub feature_flags: Vec<String>,
}

impl Principal {
    pub fn admin_token() -> Self {
        Self {
            key_id: None,
            kind: None,
            role: Role::Admin,
            app_id: None,
            feature_flags: Vec::new(),
        }
    }

    /// Routes that manage the whole installation (API keys, creating applications, the event
    /// type catalogue) need an unscoped admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.role == Role::Admin && self.app_id.is_none() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this operation needs an admin token; the token in use is limited",
            ))
        }
    }

    /// A customer's token from `app-portal-access`: limited to one application, and to what a
    /// customer needs there.
    pub fn is_portal_customer(&self) -> bool {
        self.kind == Some(KeyKind::Portal) && self.app_id.is_some()
    }

    /// A session of the operator's console (`/admin`): a portal-kind key of no application.
    pub fn is_console_session(&self) -> bool {
        self.kind == Some(KeyKind::Portal) && self.app_id.is_none()
    }

    /// Full access to what the token reaches: not read-only, not a customer's portal token.
    /// Only such tokens read custom header values.
    pub fn has_full_access(&self) -> bool {
        self.role != Role::ReadOnly && !self.is_portal_customer()
    }

    pub fn may_see_app(&self, app: &AppId) -> bool {
        self.app_id.as_ref().is_none_or(|own| own == app)
    }

    /// Identifies the caller for idempotency keys: two tokens never share a key space.
    pub fn scope(&self) -> String {
        self.key_id
            .as_ref()
            .map_or_else(|| "admin".to_owned(), |id| id.as_str().to_owned())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized("missing bearer token"))
    }
}

/// The caller, who must be an unscoped admin. As an extractor it runs before the body is read,
/// so a limited token gets 403 without learning anything from the body's validation.
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require_admin()?;
        Ok(Admin(principal))
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl AppState {
    /// Resolves a presented token. Every comparison of secret material is constant-time.
    pub async fn principal_for(&self, presented: &str) -> ApiResult<Option<Principal>> {
        if let Some((key_id, secret)) = token::parse_api_token(presented) {
            let Some(key) = self.store.get_api_key(&key_id).await? else {
                return Ok(None);
            };
            if !token::hash_matches(secret.as_bytes(), &key.secret_hash) {
                return Ok(None);
            }
            if key
                .expires_at
                .is_some_and(|at| at <= herald_core::time::now())
            {
                return Ok(None);
            }
            return Ok(Some(Principal {
                key_id: Some(key.id),
                kind: Some(key.kind),
                role: key.role,
                app_id: key.app_id,
                feature_flags: key.feature_flags,
            }));
        }
        Ok(
            token::hash_matches(presented.as_bytes(), &self.admin_token_hash)
                .then(Principal::admin_token),
        )
    }
}

/// The header Impilo's API takes its key in (see `super::impilo`).
pub const IMPILO_KEY_HEADER: &str = "Impilo-API-Key";
/// The route prefix on which [`IMPILO_KEY_HEADER`] authenticates.
pub const IMPILO_PREFIX: &str = "/api/v3/";

/// The authentication middleware (see the module documentation).
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Impilo's API (`/api/v3/…`) takes its key in its own header too.
    let impilo_key = || {
        req.uri()
            .path()
            .starts_with(IMPILO_PREFIX)
            .then(|| req.headers().get(IMPILO_KEY_HEADER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    let presented = bearer(req.headers())
        .or_else(impilo_key)
        .ok_or(ApiError::Unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (on /api/v3 also              `Impilo-API-Key: <key>`)",
        ))?;
    let principal = state
        .principal_for(presented)
        .await?
        .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
    let now = std::time::Instant::now();
    if state.api_limiter.len() > 4096 {
        // A bucket idle for a second is full again: forgetting it changes nothing.
        state.api_limiter.forget_idle(Duration::from_secs(1), now);
    }
    if state.api_rate_limit > 0
        && let Err(wait) = state
            .api_limiter
            .take(&principal.scope(), state.api_rate_limit, now)
    {
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "this token may make {} requests per second (see --api-rate-limit)",
                state.api_rate_limit
            ),
            retry_after: herald_core::rate::retry_after_secs(wait),
        });
    }
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    if principal.role == Role::ReadOnly
        && !reading
        && !READ_ONLY_MAY_POST.contains(&req.uri().path())
    {
        return Err(ApiError::forbidden("this token is read-only"));
    }
    if principal.is_portal_customer() && !reading {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or_default();
        if !customer_may_change(req.method(), route) {
            return Err(ApiError::forbidden(
                "a portal token manages its application's endpoints, resends and recovers; it \
                 cannot change the application, publish, or create inboxes or keys",
            ));
        }
    }
    if principal.kind == Some(KeyKind::Integration) {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or_default();
        if !integration_may(req.method(), route) {
            return Err(ApiError::forbidden(
                "an integration's key manages its application's endpoints, and reads its event                  types; nothing else",
            ));
        }
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// What an integration's key may reach: its application's endpoints (every route under them),
/// and reading the application and the event types it can subscribe to. Routes added later
/// are refused unless they fall under these.
fn integration_may(method: &Method, route: &str) -> bool {
    let reading = matches!(*method, Method::GET | Method::HEAD);
    route == "/api/v1/app/{app_id}/endpoint"
        || route.starts_with("/api/v1/app/{app_id}/endpoint/")
        || (reading
            && matches!(
                route,
                "/api/v1/app/{app_id}"
                    | "/api/v1/event-type"
                    | "/api/v1/event-type/{event_type_name}"
            ))
}

/// The writes a read-only token may make: ending its own session, and opening a console
/// session of its own (read-only) role.
const READ_ONLY_MAY_POST: &[&str] = &["/api/v1/auth/logout", "/api/v1/auth/console-session"];

/// The changes a customer's portal token may make: what the customer needs to manage their own
/// endpoints and deliveries. Everything else that writes (the application itself, publishing,
/// inboxes, devices, keys, expunging content, and any route added later) is refused, so the
/// list can only be widened on purpose.
const CUSTOMER_CHANGES: &[(Method, &str)] = &[
    (Method::POST, "/api/v1/app/{app_id}/endpoint"),
    (Method::PUT, "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    (Method::PATCH, "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    (
        Method::DELETE,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
    ),
    (
        Method::PUT,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    ),
    (
        Method::PATCH,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
    ),
    (
        Method::PATCH,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation/simulate",
    ),
    (
        Method::POST,
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    ),
    (Method::POST, "/api/v1/auth/logout"),
];

fn customer_may_change(method: &Method, route: &str) -> bool {
    CUSTOMER_CHANGES
        .iter()
        .any(|(m, r)| m == method && *r == route)
}

/// The application named by the `{app_id}` path segment (an id or a uid), loaded and checked
/// against the caller's scope.
pub struct ScopedApp {
    pub app: Application,
    pub principal: Principal,
}

impl FromRequestParts<AppState> for ScopedApp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let app_id = path_app_id(parts, state).await?;
        let app = state
            .store
            .get_app(&app_id)
            .await?
            .filter(|app| principal.may_see_app(&app.id))
            .ok_or(ApiError::NotFound("application not found"))?;
        Ok(Self { app, principal })
    }
}

/// For a token limited to one application: 404 unless the `{app_id}` path segment names that
/// application. Routes that may create the application they name (PUT, a message with an
/// inline `application`) cannot load it with [`ScopedApp`]; this extractor gives them the same
/// answer before the body is read, so another application's token learns nothing from its
/// validation. Unscoped tokens pass unchecked (the handler decides).
pub struct PathInScope;

impl FromRequestParts<AppState> for PathInScope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Some(own) = &principal.app_id else {
            return Ok(PathInScope);
        };
        let named = path_app_id(parts, state).await?;
        match state.store.get_app(&named).await? {
            Some(app) if &app.id == own => Ok(PathInScope),
            _ => Err(ApiError::NotFound("application not found")),
        }
    }
}

/// The `{app_id}` path segment.
async fn path_app_id(parts: &mut Parts, state: &AppState) -> ApiResult<String> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    params
        .iter()
        .find(|(name, _)| *name == "app_id")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::Internal("route without {app_id}".into()))
}
