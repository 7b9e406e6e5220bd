//! The background-task role: tasks an API call starts and that go on after its answer
//! (replays, recoveries, purges, statistics), persisted so that they survive the node.
//!
//! A task is stored `running` and unowned when it is created; a runner claims it with a lease
//! ([`BackgroundTaskStore::claim_background_task`]) and works in steps, each ending with
//! [`BackgroundTaskStore::save_background_task`], which records the progress (`cursor`, `data`)
//! and renews the lease, or fails when the lease was lost. A runner that dies leaves the task
//! running under an expiring lease; another runner (or the same node after a restart) claims it
//! and resumes after the last step that committed.
//!
//! A replay step writes its deliveries and its progress in one transaction
//! ([`BackgroundTaskStore::replay_batch`]): a crash repeats no step, so a bulk replay sends no
//! message twice because its node died.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::background::{BackgroundTaskStatus, BackgroundTaskType};
use herald_core::id::{AppId, BackgroundTaskId, EndpointId};
use herald_core::model::Message;
use herald_core::page::{ListParams, Page};

use crate::Result;

/// A background task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundTask {
    /// `qtask_…`.
    pub id: BackgroundTaskId,
    /// What it does.
    pub task: BackgroundTaskType,
    /// Where it is.
    pub status: BackgroundTaskStatus,
    /// The application it works on, if one (tokens limited to an application see only its
    /// tasks).
    pub app_id: Option<AppId>,
    /// The endpoint it works on, if one.
    pub endpoint_id: Option<EndpointId>,
    /// What the call that started it asked for (its request body, resolved).
    pub params: serde_json::Value,
    /// What it has done so far, and its result once finished (`data` in the API).
    pub data: serde_json::Value,
    /// Where the next step starts (for instance the last message id handled).
    pub cursor: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its last step was recorded.
    pub updated_at: DateTime<Utc>,
}

/// Filters of the background task list.
#[derive(Debug, Clone, Default)]
pub struct BackgroundTaskFilter {
    /// Only tasks in this state.
    pub status: Option<BackgroundTaskStatus>,
    /// Only tasks of this type.
    pub task: Option<BackgroundTaskType>,
    /// Only this application's tasks.
    pub app: Option<AppId>,
}

/// A runner's hold on a task: the owner it claimed it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    /// The task held.
    pub id: BackgroundTaskId,
    /// Who holds it (unique per runner and claim).
    pub owner: String,
}

/// What one step of a task records.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskProgress {
    /// `Running` to go on, or the final status.
    pub status: BackgroundTaskStatus,
    /// The task's `data` after this step.
    pub data: serde_json::Value,
    /// Where the next step starts.
    pub cursor: Option<String>,
    /// When this step is recorded.
    pub now: DateTime<Utc>,
    /// The renewed lease's end (ignored once the task is finished or failed).
    pub lease_until: DateTime<Utc>,
}

/// How a replay step treats a message the endpoint already has a delivery of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Leave it (`replay-missing`: only messages the endpoint never got are sent).
    Missing,
    /// Send it again, as a manual resend does (`bulk-replay`).
    Again,
}

/// One step of a replay: messages to give an endpoint a delivery of.
#[derive(Debug, Clone, Copy)]
pub struct ReplayBatch<'a> {
    /// The endpoint.
    pub endpoint: &'a EndpointId,
    /// The messages (their payloads are not read).
    pub messages: &'a [Message],
    /// See [`ReplayMode`].
    pub mode: ReplayMode,
    /// When the deliveries are due (a scheduled message's stay due at its `deliverAt`).
    pub now: DateTime<Utc>,
}

/// The progress a replay step records, from the number of deliveries it made due.
pub type ProgressOf<'a> = dyn Fn(u64) -> TaskProgress + Send + Sync + 'a;

/// Background tasks (see the module documentation).
#[async_trait]
pub trait BackgroundTaskStore: Send + Sync {
    /// Stores a new task (running, unowned).
    async fn create_background_task(&self, task: &BackgroundTask) -> Result<()>;
    /// The task `id`, if any.
    async fn get_background_task(&self, id: &BackgroundTaskId) -> Result<Option<BackgroundTask>>;
    /// Lists tasks matching `filter`, keyed by id (so by creation time).
    async fn list_background_tasks(
        &self,
        filter: &BackgroundTaskFilter,
        params: &ListParams,
    ) -> Result<Page<BackgroundTask>>;
    /// Claims the oldest running task that no live lease holds, for `owner` until
    /// `lease_until`.
    async fn claim_background_task(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<BackgroundTask>>;
    /// Records a step's progress and renews the lease; `false` (nothing recorded) when `lease`
    /// no longer holds the task or it is no longer running.
    async fn save_background_task(
        &self,
        lease: &TaskLease,
        progress: &TaskProgress,
    ) -> Result<bool>;
    /// Gives up every task `owner` holds (a runner stopping), for another to resume at once.
    async fn release_background_tasks(&self, owner: &str) -> Result<()>;
    /// One replay step: gives the endpoint a due delivery of each message (see
    /// [`ReplayMode`]) and records `progress(deliveries made due)`, in one transaction.
    /// `None`, with nothing written, when `lease` no longer holds the task.
    async fn replay_batch(
        &self,
        lease: &TaskLease,
        batch: ReplayBatch<'_>,
        progress: &ProgressOf<'_>,
    ) -> Result<Option<u64>>;
    /// Deliveries (message destinations) of each application whose messages were created in
    /// `[since, until)`; applications without any are left out.
    async fn message_destinations(
        &self,
        apps: &[AppId],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(AppId, u64)>>;
    /// Deletes finished and failed tasks last updated before `before`; returns how many.
    async fn purge_background_tasks(&self, before: DateTime<Utc>) -> Result<u64>;
}
