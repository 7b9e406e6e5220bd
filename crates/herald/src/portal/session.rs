//! Sessions of the portal and the console: the cookies, signing in and out, the page context
//! every handler starts from ([`Ctx`]), and the CSRF guard.
//!
//! A session cookie holds a portal-kind API key: the customer's portal token, or a key minted
//! for an operator at sign-in. Who the session is, and what it may do, is decided by the API
//! for every call; the context only resolves the token to know which application a customer
//! belongs to and whether to show the sign-in page instead.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_core::model::{KeyKind, Role};
use herald_core::token;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::client::{Api, Internal, PageResult, PortalError, seg};
use super::view;
use crate::api::AppState;
use crate::api::api_key::{self, NewKey};
use crate::api::auth::Principal;

/// Which half of the site a request is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `/portal`: one application's customer.
    Portal,
    /// `/admin`: the operator.
    Admin,
}

impl Area {
    pub fn base(self) -> &'static str {
        match self {
            Area::Portal => "/portal",
            Area::Admin => "/admin",
        }
    }

    fn cookie(self) -> &'static str {
        match self {
            Area::Portal => "herald_portal",
            Area::Admin => "herald_admin",
        }
    }

    fn of_path(path: &str) -> Option<Area> {
        let under = |base: &str| {
            path.strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/portal") {
            Some(Area::Portal)
        } else if under("/admin") {
            Some(Area::Admin)
        } else {
            None
        }
    }

    /// Whether a resolved token may hold a session here: customers' sessions are limited to
    /// their application, operators' are not limited to any.
    fn admits(self, principal: &Principal) -> bool {
        principal.kind == Some(KeyKind::Portal)
            && match self {
                Area::Portal => principal.app_id.is_some(),
                Area::Admin => principal.app_id.is_none(),
            }
    }
}

/// The random cookie the sign-in forms are checked against (there is no session yet).
const PRE_SESSION: &str = "herald_csrf";
const FLASH: &str = "herald_flash";
/// Operators' sessions last this long.
const CONSOLE_SESSION_HOURS: i64 = 12;
/// The largest form the portal reads.
const FORM_LIMIT: usize = 2 * 1024 * 1024;

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie values are base62 or base64url")
}

fn secure(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

/// The CSRF token of a session: derived from its secret token, so a page of another site can
/// neither read nor compute it.
fn csrf_for(session_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(token::sha256(
        format!("herald-portal-csrf\0{session_token}").as_bytes(),
    ))
}

/// What every signed-in page starts from.
pub struct Ctx {
    pub area: Area,
    pub api: Api,
    pub csrf: String,
    pub principal: Principal,
    /// A message from the previous request (after a redirect).
    pub flash: Option<String>,
    secure: bool,
}

impl Ctx {
    /// `/portal/app/{app}` or `/admin/app/{app}`.
    pub fn app_base(&self, app: &str) -> String {
        format!("{}/app/{}", self.area.base(), seg(app))
    }

    pub fn read_only(&self) -> bool {
        self.principal.role == Role::ReadOnly
    }

    pub fn fail(&self, refusal: super::client::Refusal) -> PortalError {
        PortalError::refused(self.area, refusal)
    }

    pub fn error(&self, status: StatusCode, message: impl Into<String>) -> PortalError {
        PortalError::new(self.area, status, message)
    }

    /// A 303 to `to`, with a message shown on the next page.
    pub fn redirect(&self, to: &str, flash: &str) -> Response {
        let mut response = Redirect::to(to).into_response();
        let value = URL_SAFE_NO_PAD.encode(flash.as_bytes());
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(FLASH, &value, self.secure, Some(60)),
        );
        response
    }

    /// A page in the layout, clearing the message it shows.
    pub fn page(&self, title: &str, body: maud::Markup) -> Response {
        self.page_with(StatusCode::OK, title, body)
    }

    /// A page with a form: 422 when the form was refused.
    pub fn form_page(&self, errors: &view::Errors, title: &str, body: maud::Markup) -> Response {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        self.page_with(status, title, body)
    }

    pub fn page_with(&self, status: StatusCode, title: &str, body: maud::Markup) -> Response {
        let mut response = (status, view::page(self, title, body)).into_response();
        if self.flash.is_some() {
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(FLASH, "", self.secure, Some(0)),
            );
        }
        response
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let area = parts
            .extensions
            .get::<Area>()
            .copied()
            .unwrap_or(Area::Portal);
        let internal = parts
            .extensions
            .get::<Internal>()
            .cloned()
            .expect("the portal router carries the API");
        let signed_out = || PortalError::new(area, StatusCode::UNAUTHORIZED, "signed out");
        let token = cookie(&parts.headers, area.cookie()).ok_or_else(signed_out)?;
        let principal = state
            .principal_for(token)
            .await
            .map_err(|e| PortalError::new(area, e.status(), e.to_string()))?
            .filter(|p| area.admits(p))
            .ok_or_else(signed_out)?;
        let flash = cookie(&parts.headers, FLASH)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok());
        Ok(Ctx {
            area,
            api: Api::new(&internal, token.to_owned()),
            csrf: csrf_for(token),
            principal,
            flash,
            secure: secure(state),
        })
    }
}

/// A form body (`application/x-www-form-urlencoded`), repeated names collected into lists.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = PortalError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let area = req
            .extensions()
            .get::<Area>()
            .copied()
            .unwrap_or(Area::Portal);
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e| PortalError::new(area, StatusCode::BAD_REQUEST, e.to_string()))?;
        serde_html_form::from_bytes(&bytes)
            .map(Form)
            .map_err(|e| PortalError::new(area, StatusCode::BAD_REQUEST, e.to_string()))
    }
}

/// Refuses state-changing requests that do not prove they come from the portal's own pages
/// (see the module documentation of `portal`). Runs before any handler, so no handler can
/// forget it.
pub async fn csrf_guard(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_owned();
    let Some(area) = Area::of_path(&path) else {
        return next.run(req).await;
    };
    let refuse = |why: &str| {
        PortalError::new(
            area,
            StatusCode::FORBIDDEN,
            format!("{why} Reload the page and try again."),
        )
        .into_response()
    };
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"));
    if cross_site {
        return refuse("This form was sent from another site.");
    }
    let signing_in = path.ends_with("/session");
    let expected = if signing_in {
        cookie(req.headers(), PRE_SESSION).map(str::to_owned)
    } else {
        cookie(req.headers(), area.cookie()).map(csrf_for)
    };
    let Some(expected) = expected else {
        return refuse("There is no session for this form.");
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return PortalError::new(
            area,
            StatusCode::PAYLOAD_TOO_LARGE,
            "This form is too large.",
        )
        .into_response();
    };
    let presented = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == "_csrf")
                .map(|(_, v)| v.into_owned())
        });
    if !presented
        .is_some_and(|p| token::hash_matches(p.as_bytes(), &token::sha256(expected.as_bytes())))
    {
        return refuse("This form's security token is missing or out of date.");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The pre-session CSRF token, and the cookie to set when the browser has none yet.
pub fn pre_session(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, PRE_SESSION) {
        Some(existing) => (existing.to_owned(), None),
        None => {
            let fresh = token::random_base62(32);
            let set = set_cookie(PRE_SESSION, &fresh, secure(state), None);
            (fresh, Some(set))
        }
    }
}

fn with_cookie(mut response: Response, set: Option<HeaderValue>) -> Response {
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

/// `GET /portal`: the entry page. Its script takes the token from the link's fragment, posts
/// it, and removes it from the address bar; without script, the token can be pasted.
pub async fn portal_entry(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (csrf, set) = pre_session(&state, &headers);
    let mut continue_to = None;
    if let Some(token) = cookie(&headers, Area::Portal.cookie())
        && let Ok(Some(p)) = state.principal_for(token).await
        && Area::Portal.admits(&p)
    {
        continue_to = p.app_id.map(|app| format!("/portal/app/{app}/endpoint"));
    }
    let page = view::portal_entry(&csrf, continue_to.as_deref(), None);
    with_cookie((StatusCode::OK, page).into_response(), set)
}

#[derive(Deserialize)]
pub struct PortalSignIn {
    #[serde(default)]
    key: String,
}

/// `POST /portal/session`: a portal token becomes the session cookie.
pub async fn portal_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PortalSignIn>,
) -> PageResult {
    let key = form.key.trim();
    let principal = state
        .principal_for(key)
        .await
        .map_err(|e| PortalError::new(Area::Portal, e.status(), e.to_string()))?
        .filter(|p| Area::Portal.admits(p));
    let Some(app) = principal.and_then(|p| p.app_id) else {
        let (csrf, set) = pre_session(&state, &headers);
        let page = view::portal_entry(
            &csrf,
            None,
            Some("This link is not valid or has expired. Ask for a new one."),
        );
        return Ok(with_cookie(
            (StatusCode::UNAUTHORIZED, page).into_response(),
            set,
        ));
    };
    let mut response = Redirect::to(&format!("/portal/app/{app}/endpoint")).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(Area::Portal.cookie(), key, secure(&state), None),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct AdminSignIn {
    #[serde(default)]
    token: String,
}

/// `POST /admin/session`: the admin token or an unscoped API key is exchanged for a session
/// key of the same role, which is what the cookie holds. The session is tied to the key signed
/// in with (its `parent_id`): revoking that key ends it, and it never outlives it. A session's
/// own token cannot sign in again, so a session cannot extend itself.
pub async fn admin_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<AdminSignIn>,
) -> PageResult {
    let area = Area::Admin;
    let principal = state
        .principal_for(form.token.trim())
        .await
        .map_err(|e| PortalError::new(area, e.status(), e.to_string()))?
        .filter(|p| p.app_id.is_none() && !p.is_console_session());
    let Some(principal) = principal else {
        let (csrf, set) = pre_session(&state, &headers);
        let page = view::admin_sign_in(
            &csrf,
            Some("That is not the admin token or an unscoped API key."),
        );
        return Ok(with_cookie(
            (StatusCode::UNAUTHORIZED, page).into_response(),
            set,
        ));
    };
    let now = herald_core::time::now();
    let source = principal
        .key_id
        .as_ref()
        .map_or_else(|| "admin token".to_owned(), |id| id.as_str().to_owned());
    let mut expires_at = now + chrono::Duration::hours(CONSOLE_SESSION_HOURS);
    if let Some(id) = &principal.key_id
        && let Some(signer_expiry) = state
            .store
            .get_api_key(id)
            .await
            .map_err(|e| PortalError::new(area, StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
            .and_then(|k| k.expires_at)
    {
        expires_at = expires_at.min(signer_expiry);
    }
    let new = NewKey {
        name: format!("console session ({source})"),
        role: principal.role,
        kind: KeyKind::Portal,
        app_id: None,
        expires_at: Some(expires_at),
        parent_id: principal.key_id.clone(),
    };
    let (_, token) = api_key::issue(&state, new)
        .await
        .map_err(|e| PortalError::new(area, e.status(), e.to_string()))?;
    let mut response = Redirect::to("/admin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(area.cookie(), &token, secure(&state), None),
    );
    Ok(response)
}

/// `POST /portal/logout`, `POST /admin/logout`: the session's key is revoked through the API's
/// logout route and the cookie cleared.
pub async fn sign_out(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    ctx.api
        .send(Method::POST, "/api/v1/auth/logout", None)
        .await
        .map_err(|r| ctx.fail(r))?;
    let mut response = Redirect::to(ctx.area.base()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(ctx.area.cookie(), "", secure(&state), Some(0)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_by_path() {
        assert_eq!(Area::of_path("/portal"), Some(Area::Portal));
        assert_eq!(Area::of_path("/portal/app/x"), Some(Area::Portal));
        assert_eq!(Area::of_path("/admin/session"), Some(Area::Admin));
        assert_eq!(Area::of_path("/portals"), None);
        assert_eq!(Area::of_path("/api/v1/app"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("herald_portal_x=1; herald_portal=tok; other=2"),
        );
        assert_eq!(cookie(&h, "herald_portal"), Some("tok"));
        assert_eq!(cookie(&h, "herald_admin"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a"), csrf_for("a"));
    }
}
