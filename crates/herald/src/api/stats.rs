//! `/api/v1/stats/usage/…`: usage statistics over every application, computed as background
//! tasks as in Svix (follow them with `GET /api/v1/background-task/{id}`). Unscoped tokens only.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::background::BackgroundTaskType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Principal;
use super::background_task::BackgroundTaskStarted;
use super::error::{ApiError, ApiResult};
use super::extract::Json;
use crate::tasks::AppStatsParams;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(aggregate_app_stats))
        .routes(routes!(aggregate_event_types))
}

/// Applications one call may name.
pub const MAX_APP_IDS: usize = 250;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppUsageStatsIn {
    /// Messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time.
    pub until: DateTime<Utc>,
    /// Applications (ids or uids) to count; every application when absent. When none of those
    /// given exists, the answer is 422.
    pub app_ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppUsageStatsOut {
    #[serde(flatten)]
    pub task: BackgroundTaskStarted,
    /// The ids or uids asked for that name no application; the others are counted.
    pub unresolved_app_ids: Vec<String>,
}

/// Count the message destinations (deliveries: one per message and endpoint it was routed
/// to) of each application for messages created in `[since, until)`, as a background task
/// (`application.stats`; its `data.appStats`: `appId`, `appUid`, `messageDestinations`).
#[utoipa::path(post, path = "/api/v1/stats/usage/app", tag = "Statistics",
    operation_id = "v1.statistics.aggregate-app-stats",
    request_body = AppUsageStatsIn,
    responses((status = 202, body = AppUsageStatsOut)))]
async fn aggregate_app_stats(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<AppUsageStatsIn>,
) -> ApiResult<(StatusCode, axum::Json<AppUsageStatsOut>)> {
    principal.require_admin()?;
    if body.until < body.since {
        return Err(ApiError::invalid(
            &["body", "until"],
            "must not be before `since`",
        ));
    }
    let mut unresolved = Vec::new();
    let app_ids = match body.app_ids {
        None => None,
        Some(asked) if asked.len() > MAX_APP_IDS => {
            return Err(ApiError::invalid(
                &["body", "appIds"],
                format!("at most {MAX_APP_IDS} applications per call; leave it out for all"),
            ));
        }
        Some(asked) => {
            let mut ids = Vec::new();
            for name in asked {
                match state.store.get_app(&name).await? {
                    Some(app) if !ids.contains(&app.id) => ids.push(app.id),
                    Some(_) => {}
                    None => unresolved.push(name),
                }
            }
            if ids.is_empty() {
                return Err(ApiError::invalid(
                    &["body", "appIds"],
                    "none of these applications exists",
                ));
            }
            Some(ids)
        }
    };
    let params = serde_json::to_value(AppStatsParams {
        since: body.since,
        until: body.until,
        app_ids,
    })
    .map_err(|e| ApiError::Internal(format!("task parameters: {e}")))?;
    let started = state
        .tasks
        .start(BackgroundTaskType::ApplicationStats, None, None, params)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(AppUsageStatsOut {
            task: started.into(),
            unresolved_app_ids: unresolved,
        }),
    ))
}

/// List, for every application, the event types its endpoints subscribe to by name and
/// whether one of them takes every event type, as a background task (`event-type.aggregate`;
/// its `data.event_types`: `appId`, `explicitlySubscribedEventTypes`, `hasCatchAllEndpoint`).
#[utoipa::path(put, path = "/api/v1/stats/usage/event-types", tag = "Statistics",
    operation_id = "v1.statistics.aggregate-event-types",
    responses((status = 202, body = BackgroundTaskStarted)))]
async fn aggregate_event_types(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<(StatusCode, axum::Json<BackgroundTaskStarted>)> {
    principal.require_admin()?;
    let started = state
        .tasks
        .start(
            BackgroundTaskType::EventTypeAggregate,
            None,
            None,
            serde_json::json!({}),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(started.into())))
}
