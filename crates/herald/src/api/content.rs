//! Deleting message payloads in bulk: `…/msg/bulk-expunge` (the messages named, answered at
//! once) and `…/msg/expunge-all-contents` (every message of the application, as a background
//! task, `application.purge_content`). A deleted payload cancels the deliveries still waiting
//! for it, as a single expunge does.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use herald_core::background::BackgroundTaskType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::ScopedApp;
use super::background_task::BackgroundTaskStarted;
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::params::AppPath;
use crate::tasks::PurgeParams;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bulk_expunge))
        .routes(routes!(expunge_all_contents))
}

/// Messages one bulk expunge may name: it answers at once, one result per id.
pub const MAX_BULK_EXPUNGE: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkExpungeContentsIn {
    /// Message ids or `eventId`s (at most 1,000).
    pub ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BulkExpungeStatus {
    Expunged,
    NotFound,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkExpungeContentsOut {
    /// One result per id asked for.
    pub results: BTreeMap<String, BulkExpungeStatus>,
}

/// Delete the payloads of the messages named (ids or `eventId`s). Each one's waiting
/// deliveries are canceled; it can no longer be sent.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/bulk-expunge", tag = "Message",
    operation_id = "v1.message.bulk-expunge-content",
    params(AppPath),
    request_body = BulkExpungeContentsIn,
    responses((status = 200, body = BulkExpungeContentsOut)))]
async fn bulk_expunge(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Json(body): Json<BulkExpungeContentsIn>,
) -> ApiResult<axum::Json<BulkExpungeContentsOut>> {
    let ids = body.ids.unwrap_or_default();
    if ids.len() > MAX_BULK_EXPUNGE {
        return Err(ApiError::invalid(
            &["body", "ids"],
            format!("at most {MAX_BULK_EXPUNGE} ids per call"),
        ));
    }
    let mut results = BTreeMap::new();
    for id in ids {
        let status = match super::message::load(&state, &scoped, &id).await {
            Ok(message) => {
                if state
                    .store
                    .expunge_message_content(&scoped.app.id, &message.id)
                    .await?
                {
                    BulkExpungeStatus::Expunged
                } else {
                    BulkExpungeStatus::NotFound
                }
            }
            Err(ApiError::NotFound(_)) => BulkExpungeStatus::NotFound,
            Err(e) => return Err(e),
        };
        results.insert(id, status);
    }
    Ok(axum::Json(BulkExpungeContentsOut { results }))
}

/// Delete the payload of every message of the application created before this call, as a
/// background task (`application.purge_content`; its `data`: `messagesPurged`).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/expunge-all-contents", tag = "Message",
    operation_id = "v1.message.expunge-all-contents",
    params(AppPath),
    responses((status = 202, body = BackgroundTaskStarted, description = "The task that deletes the payloads")))]
async fn expunge_all_contents(
    State(state): State<AppState>,
    scoped: ScopedApp,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    let params = PurgeParams {
        until: herald_core::time::now(),
    };
    let params = serde_json::to_value(params)
        .map_err(|e| ApiError::Internal(format!("task parameters: {e}")))?;
    let started = state
        .tasks
        .start(
            BackgroundTaskType::ApplicationPurgeContent,
            Some(scoped.app.id.clone()),
            None,
            params,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(started.into())))
}
