//! `/api/v1/background-task`: the tasks that replays, recoveries, purges and statistics run
//! after their call answered (see [`crate::tasks`]), as Svix's `BackgroundTaskOut`. A token
//! limited to one application sees that application's tasks only; tasks of no application
//! (statistics) are for unscoped tokens.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herald_core::background::{BackgroundTaskStatus, BackgroundTaskType};
use herald_core::id::BackgroundTaskId;
use herald_store::{BackgroundTask, BackgroundTaskFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::pagination::{ListResponse, Ordering};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
}

/// A background task and what it has done (`data`: counts so far, the result once finished,
/// `error` when it failed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskOut {
    /// `qtask_…`.
    pub id: String,
    #[schema(value_type = String, example = "running")]
    pub status: BackgroundTaskStatus,
    #[schema(value_type = String, example = "endpoint.replay")]
    pub task: BackgroundTaskType,
    pub data: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

impl From<BackgroundTask> for BackgroundTaskOut {
    fn from(t: BackgroundTask) -> Self {
        Self {
            id: t.id.into_string(),
            status: t.status,
            task: t.task,
            data: t.data,
            updated_at: t.updated_at,
        }
    }
}

/// What a call that starts a background task answers (Svix's `RecoverOut`, `ReplayOut`,
/// `ExpungeAllContentsOut`, …): the task to follow with `GET /api/v1/background-task/{id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskStarted {
    /// `qtask_…`.
    pub id: String,
    #[schema(value_type = String, example = "running")]
    pub status: BackgroundTaskStatus,
    #[schema(value_type = String, example = "endpoint.replay")]
    pub task: BackgroundTaskType,
    pub updated_at: DateTime<Utc>,
}

impl From<BackgroundTask> for BackgroundTaskStarted {
    fn from(t: BackgroundTask) -> Self {
        Self {
            id: t.id.into_string(),
            status: t.status,
            task: t.task,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackgroundTaskQuery {
    /// Only tasks in this state (`running`, `finished`, `failed`).
    #[param(value_type = Option<String>)]
    pub status: Option<BackgroundTaskStatus>,
    /// Only tasks of this type (`endpoint.replay`, `endpoint.recover`, `endpoint.bulk-replay`,
    /// `application.purge_content`, `application.stats`, `event-type.aggregate`).
    #[param(value_type = Option<String>)]
    pub task: Option<BackgroundTaskType>,
    /// Number of items per page (1 to 250, default 50).
    pub limit: Option<u64>,
    /// An `iterator` (next page) or `prevIterator` (previous page) from an earlier answer.
    pub iterator: Option<String>,
    /// Sorting order (default descending: newest first).
    pub order: Option<Ordering>,
}

/// List the background tasks of the past 90 days, newest first.
#[utoipa::path(get, path = "/api/v1/background-task", tag = "Background Tasks",
    operation_id = "v1.background-task.list",
    params(BackgroundTaskQuery),
    responses((status = 200, body = ListResponse<BackgroundTaskOut>)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<BackgroundTaskQuery>,
) -> ApiResult<axum::Json<ListResponse<BackgroundTaskOut>>> {
    let params = super::pagination::OrderedPageQuery {
        limit: query.limit,
        iterator: query.iterator,
        order: Some(query.order.unwrap_or(Ordering::Descending)),
    }
    .params()?;
    let filter = BackgroundTaskFilter {
        status: query.status,
        task: query.task,
        app: principal.app_id.clone(),
    };
    let page = state.store.list_background_tasks(&filter, &params).await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |t| t.id.as_str().to_owned(),
        BackgroundTaskOut::from,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BackgroundTaskPath {
    /// The task's id (`qtask_…`).
    pub task_id: String,
}

/// Get a background task.
#[utoipa::path(get, path = "/api/v1/background-task/{task_id}", tag = "Background Tasks",
    operation_id = "v1.background-task.get",
    params(BackgroundTaskPath),
    responses((status = 200, body = BackgroundTaskOut)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<BackgroundTaskPath>,
) -> ApiResult<axum::Json<BackgroundTaskOut>> {
    let not_found = ApiError::NotFound("background task not found");
    let id = BackgroundTaskId::parse(&path.task_id).ok_or(not_found)?;
    let task = state
        .store
        .get_background_task(&id)
        .await?
        .filter(|t| match (&principal.app_id, &t.app_id) {
            (None, _) => true,
            (Some(own), Some(app)) => own == app,
            (Some(_), None) => false,
        })
        .ok_or(ApiError::NotFound("background task not found"))?;
    Ok(axum::Json(task.into()))
}
