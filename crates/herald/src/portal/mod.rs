//! The web portal (`/portal`, for an application's customers) and the operator console
//! (`/admin`): server-rendered HTML with a little JavaScript, assets embedded in the binary.
//!
//! **Every page is a client of the JSON API.** A page handler never touches the store: it calls
//! the API's own router in-process ([`client::Api`]) with the session's bearer token, so the
//! authentication middleware, the `ScopedApp` scoping, read-only refusals, validation and its
//! messages, and side effects such as operational webhooks are exactly those of the API route
//! for the same data. A portal session for one application reaching for another's endpoint
//! gets the API's 404, because it *is* the API's 404. Nothing here can widen what a token may
//! do; the portal only decides how the answers look.
//!
//! **Sessions.** The customer's link carries a portal token in the fragment; the entry page's
//! script posts it to `/portal/session`, which checks it and sets it as an HttpOnly,
//! SameSite=Strict cookie (Secure when the public URL is https), and the fragment is removed
//! from the address bar. Operators sign in at `/admin` with the admin token or an unscoped API
//! key; that credential is not kept: a 12-hour session key is minted and set as the cookie.
//!
//! **CSRF.** Only the portal's own routes accept cookies; the JSON API takes bearer tokens
//! only, so a cross-site request to it carries no credential. Every state-changing portal
//! request passes [`session::csrf_guard`] before any handler runs: a form field `_csrf` equal to
//! a token derived from the session (or, for the sign-in forms, to a random pre-session
//! cookie), and no cross-site `Sec-Fetch-Site`.
//!
//! Modules: `session` (cookies, sign-in and out, the CSRF guard), `client` (the in-process API
//! client and error pages), `view` (layout and helpers), `endpoints`, `endpoint_form`,
//! `endpoint_app`, `secret`, `stats`, `events`, `messages` (the application pages, shared by
//! both areas), and
//! `admin`, `inboxes`, `devices` (the operator's pages).

use axum::Router;
use axum::extract::{Extension, Path};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

mod admin;
mod area;
mod client;
mod devices;
mod endpoint_app;
mod endpoint_form;
mod endpoints;
mod error;
mod events;
mod inbox_tree;
mod inboxes;
mod messages;
mod scope;
mod secret;
mod session;
mod stats;
mod transformation;
mod view;

pub use area::Area;

/// What the pages can reach: the API, and whether cookies must be `Secure`. Nothing else, in
/// particular not the store.
#[derive(Clone)]
pub struct PortalState {
    /// The API's routes with their middleware, called in-process with a session's token.
    api: Router,
    /// The public URL is https: cookies are `Secure`.
    secure_cookies: bool,
}

impl PortalState {
    /// `api` is the API's router (`api::routes` with its state); `public_url` the base of the
    /// links Herald hands out.
    pub fn new(api: Router, public_url: &str) -> Self {
        Self {
            api,
            secure_cookies: public_url.starts_with("https://"),
        }
    }

    /// The API, as the holder of `token` sees it.
    pub fn api_as(&self, token: &str) -> client::Api {
        client::Api::new(self.api.clone(), token.to_owned())
    }
}

/// The portal's and the console's routes.
pub fn router(state: PortalState) -> Router {
    let portal = Router::new()
        .route("/portal", get(session::portal_entry))
        .route("/portal/session", post(session::portal_sign_in))
        .route("/portal/logout", post(session::sign_out))
        .nest("/portal/app/{app_id}", app_pages())
        .layer(Extension(Area::Portal));
    let console = Router::new()
        .route("/admin", get(admin::home))
        .route("/admin/session", post(session::admin_sign_in))
        .route("/admin/logout", post(session::sign_out))
        .merge(admin::router())
        .merge(inboxes::router())
        .nest("/admin/operational", endpoints::router())
        .nest(
            "/admin/app/{app_id}",
            app_pages()
                .merge(admin::app_router())
                .merge(devices::router()),
        )
        .layer(Extension(Area::Admin));
    Router::new()
        .merge(portal)
        .merge(console)
        .route("/portal/assets/{file}", get(asset))
        .layer(middleware::from_fn(session::csrf_guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The pages of one application, under `/portal/app/{app_id}` and `/admin/app/{app_id}`.
fn app_pages() -> Router<PortalState> {
    Router::new()
        .route(
            "/",
            get(
                |Path(app): Path<String>, area: Extension<Area>| async move {
                    Redirect::to(&format!(
                        "{}/app/{}/endpoint",
                        area.base(),
                        client::seg(&app)
                    ))
                },
            ),
        )
        .nest(
            "/endpoint",
            endpoints::router()
                .merge(endpoint_app::router())
                .merge(transformation::router()),
        )
        .merge(events::router())
        .merge(messages::router())
}

const CSS: &str = include_str!("assets/portal.css");
const JS: &str = include_str!("assets/portal.js");

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "portal.css" => (CSS, "text/css; charset=utf-8"),
        "portal.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Pages may run only the portal's own script and style, are never framed, and are not cached
/// (they show secrets and customers' data).
async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    let is_asset = req.uri().path().starts_with("/portal/assets/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
