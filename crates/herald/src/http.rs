//! The process's HTTP application, assembled in one place.
//!
//! Each part owns its routes and knows nothing of the others: the JSON API (`api::routes`,
//! with its authentication and idempotency middleware), the OpenAPI document and its page,
//! Prometheus metrics, the inboxes' ingest routes, and the portal and console. The portal is
//! handed only an in-process client of the API (see `portal::PortalState`), never the API's
//! state, so a page can do nothing a request to the API with the same token could not.
//!
//! The layers every request passes, from the outside in: panic catching, tracing, the body
//! read timeout, the body size limit.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::api::error::ApiError;
use crate::api::{self, AppState};
use crate::portal::{self, PortalState};

/// Everything a node that serves the API answers.
pub fn app(state: AppState) -> Router {
    let api = api::routes(&state);
    // The portal's pages call the API's routes in-process, with the session's token.
    let portal = portal::router(PortalState::new(
        api.clone().with_state(state.clone()),
        &state.public_url,
    ));
    let max_body_bytes = state.max_body_bytes;
    let client_timeout = state.client_timeout;
    api.merge(api::document_routes())
        .route("/metrics", get(api::metrics::metrics))
        .route(
            "/",
            get(|| async { axum::response::Redirect::temporary("/docs") }),
        )
        .merge(api::inbox::ingest::router())
        .with_state(state)
        .merge(portal)
        .fallback(|| async { ApiError::NotFound("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this route".into())
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // A body trickling in slower than this fails to read (see `api::extract::read_body`:
        // 408).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            client_timeout,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// The routes of a process that only delivers (`--role worker`): health checks, for load
/// balancers and orchestrators. Everything else answers 404.
pub fn health_only(state: AppState) -> Router {
    api::health_routes()
        .fallback(|| async {
            ApiError::NotFound("this node runs only the delivery worker (--role worker)")
        })
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// The span of a request: method and path, never the query string, which may carry an inbox
/// token (`/in/…?token=`).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let mut response = ApiError::Internal("handler panicked".into()).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
