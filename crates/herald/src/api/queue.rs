//! `GET /api/v1/queue` (a Herald addition): the delivery queue's figures and the database
//! pools' use, as JSON for the operator console (Prometheus reads the same at `/metrics`).

use axum::extract::State;
use herald_core::model::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ApiResult};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(queue))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueOut {
    /// Pending deliveries whose attempt is due now.
    pub due: u64,
    /// Pending deliveries waiting for a retry.
    pub scheduled: u64,
    /// Deliveries with an attempt in flight.
    pub sending: u64,
    pub disabled_endpoints: u64,
    pub pools: Vec<PoolOut>,
}

/// One database connection pool of this node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolOut {
    pub name: String,
    /// Connections open.
    pub size: u32,
    /// Of those, not in use.
    pub idle: u32,
    pub max: u32,
}

/// The delivery queue's figures (admin and unscoped read-only tokens).
#[utoipa::path(get, path = "/api/v1/queue", tag = "Health", operation_id = "herald.queue.get",
    responses((status = 200, body = QueueOut)))]
async fn queue(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<QueueOut>> {
    if principal.app_id.is_some() || principal.role == Role::App {
        return Err(ApiError::forbidden(
            "the queue's figures need an admin or unscoped read-only token",
        ));
    }
    let q = state.store.queue_metrics(herald_core::time::now()).await?;
    let pools = state
        .store
        .pool_stats()
        .into_iter()
        .map(|p| PoolOut {
            name: p.name.to_owned(),
            size: p.size,
            idle: p.idle,
            max: p.max,
        })
        .collect();
    Ok(axum::Json(QueueOut {
        due: q.due,
        scheduled: q.scheduled,
        sending: q.sending,
        disabled_endpoints: q.disabled_endpoints,
        pools,
    }))
}
