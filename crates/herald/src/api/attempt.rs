//! Message attempts: manual resends (listing and inspecting attempts arrive with the delivery
//! logs).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::params::MessageEndpointPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(resend))
}

/// An empty JSON object (`EmptyResponse`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct EmptyResponse {}

/// Resend a message to an endpoint now, as a manual attempt. Failures are retried on the
/// endpoint's schedule.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    tag = "Message", operation_id = "v1.message-attempt.resend",
    params(MessageEndpointPath),
    responses((status = 202, body = EmptyResponse, description = "Queued")))]
async fn resend(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<MessageEndpointPath>,
) -> ApiResult<(StatusCode, axum::Json<EmptyResponse>)> {
    let message = super::message::load(&state, &scoped, &path.msg_id).await?;
    let endpoint = state
        .store
        .get_endpoint(&scoped.app.id, &path.endpoint_id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))?;
    if endpoint.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        ));
    }
    if message.payload.is_none() {
        return Err(ApiError::Conflict(
            "the message's payload was deleted; it cannot be sent again".into(),
        ));
    }
    state
        .store
        .requeue(&message, &endpoint.id, herald_core::time::now())
        .await?;
    state.wakeup.endpoints([endpoint.id]);
    Ok((StatusCode::ACCEPTED, axum::Json(EmptyResponse {})))
}
