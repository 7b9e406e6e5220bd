//! Health checks, answered without authentication so that load balancers can use them.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ping))
}

/// Readiness: 204 when the database answers, 503 when it does not.
#[utoipa::path(get, path = "/api/v1/health", tag = "Health", operation_id = "v1.health.get",
    security(()),
    responses(
        (status = 204, description = "Herald and its database are healthy"),
        (status = 503, description = "The database does not answer"),
    ))]
async fn health(State(state): State<AppState>) -> StatusCode {
    match state.store.ping().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Liveness: 204 whenever the process serves HTTP.
#[utoipa::path(get, path = "/api/v1/health/ping", tag = "Health", operation_id = "v1.health.ping",
    security(()),
    responses((status = 204, description = "The process is up")))]
async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
