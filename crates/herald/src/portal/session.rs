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
use herald_core::token;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::PortalState;
use super::area::Area;
use super::client::{Api, Refusal, seg};
use super::error::{PageResult, PortalError};
use super::view;
use crate::api::api_key::ApiKeyRole;
use crate::api::session::{ConsoleSessionOut, WhoAmIOut};

/// The random cookie the sign-in forms are checked against (there is no session yet).
const PRE_SESSION: &str = "herald_csrf";
const FLASH: &str = "herald_flash";
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

fn secure(state: &PortalState) -> bool {
    state.secure_cookies
}

/// Who `token` is, as the API says (`GET /api/v1/auth/whoami`): `None` for a token the API
/// does not accept.
async fn whoami(state: &PortalState, token: &str) -> Result<Option<WhoAmIOut>, Refusal> {
    if token.is_empty() {
        return Ok(None);
    }
    match state
        .api_as(token)
        .get_as::<WhoAmIOut>("/api/v1/auth/whoami")
        .await
    {
        Ok(who) => Ok(Some(who)),
        Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => Ok(None),
        Err(refusal) => Err(refusal),
    }
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
    /// Who the session's token is, as the API said.
    pub principal: WhoAmIOut,
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
        matches!(self.principal.role, ApiKeyRole::ReadOnly)
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

impl FromRequestParts<PortalState> for Ctx {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PortalState,
    ) -> Result<Self, Self::Rejection> {
        let area = parts
            .extensions
            .get::<Area>()
            .copied()
            .unwrap_or(Area::Portal);
        let signed_out = || PortalError::new(area, StatusCode::UNAUTHORIZED, "signed out");
        let token = cookie(&parts.headers, area.cookie()).ok_or_else(signed_out)?;
        let principal = whoami(state, token)
            .await
            .map_err(|refusal| PortalError::refused(area, refusal))?
            .filter(|who| area.admits(who))
            .ok_or_else(signed_out)?;
        let flash = cookie(&parts.headers, FLASH)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok());
        Ok(Ctx {
            area,
            api: state.api_as(token),
            csrf: csrf_for(token),
            principal,
            flash,
            secure: secure(state),
        })
    }
}

impl view::PageContext for Ctx {
    fn area(&self) -> Area {
        self.area
    }

    fn csrf_token(&self) -> &str {
        &self.csrf
    }

    fn session_app(&self) -> Option<&str> {
        self.principal.app_id.as_deref()
    }

    fn read_only(&self) -> bool {
        Ctx::read_only(self)
    }

    fn flash(&self) -> Option<&str> {
        self.flash.as_deref()
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
pub fn pre_session(state: &PortalState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
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
pub async fn portal_entry(State(state): State<PortalState>, headers: HeaderMap) -> Response {
    let (csrf, set) = pre_session(&state, &headers);
    let mut continue_to = None;
    if let Some(token) = cookie(&headers, Area::Portal.cookie())
        && let Ok(Some(who)) = whoami(&state, token).await
        && Area::Portal.admits(&who)
    {
        continue_to = who.app_id.map(|app| format!("/portal/app/{app}/endpoint"));
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
    State(state): State<PortalState>,
    headers: HeaderMap,
    Form(form): Form<PortalSignIn>,
) -> PageResult {
    let key = form.key.trim();
    let principal = whoami(&state, key)
        .await
        .map_err(|refusal| PortalError::refused(Area::Portal, refusal))?
        .filter(|who| Area::Portal.admits(who));
    let Some(app) = principal.and_then(|who| who.app_id) else {
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

/// `POST /admin/session`: the admin token or an unscoped API key is exchanged for a console
/// session key of the same role (`POST /api/v1/auth/console-session`, which decides who may
/// and for how long), and the cookie holds that. The credential signed in with is not kept.
pub async fn admin_sign_in(
    State(state): State<PortalState>,
    headers: HeaderMap,
    Form(form): Form<AdminSignIn>,
) -> PageResult {
    let area = Area::Admin;
    let credential = form.token.trim();
    let opened = if credential.is_empty() {
        None
    } else {
        match state
            .api_as(credential)
            .send_as::<ConsoleSessionOut>(Method::POST, "/api/v1/auth/console-session", None)
            .await
        {
            Ok(session) => Some(session),
            Err(refusal)
                if matches!(
                    refusal.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                None
            }
            Err(refusal) => return Err(PortalError::refused(area, refusal)),
        }
    };
    let Some(session) = opened else {
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
    let mut response = Redirect::to("/admin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(area.cookie(), &session.token, secure(&state), None),
    );
    Ok(response)
}

/// `POST /portal/logout`, `POST /admin/logout`: the session's key is revoked through the API's
/// logout route and the cookie cleared.
pub async fn sign_out(State(state): State<PortalState>, ctx: Ctx) -> PageResult {
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
