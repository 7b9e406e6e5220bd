//! `GET /metrics`: the Prometheus text exposition (see [`crate::metrics`]). It lives outside
//! `/api/v1` and takes its own optional token (`--metrics-token`), not API tokens, so that a
//! scraper never holds a credential that could change anything.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::bearer;
use super::error::ApiError;

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(hash) = &state.metrics_token_hash {
        let presented = bearer(&headers);
        if !presented.is_some_and(|t| herald_core::token::hash_matches(t.as_bytes(), hash)) {
            return ApiError::Unauthorized("missing or wrong metrics token").into_response();
        }
    }
    crate::metrics::set_pools(&state.store.pool_stats());
    crate::metrics::set_transformations_stuck(state.sandbox.stuck_runs());
    match state.store.queue_metrics(herald_core::time::now()).await {
        Ok(queue) => crate::metrics::set_queue(&queue),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue's state"),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::metrics::render(),
    )
        .into_response()
}
