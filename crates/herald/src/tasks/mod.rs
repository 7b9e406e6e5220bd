//! Background tasks: replays, recoveries, purges and statistics that an API call starts and
//! that go on after its answer (Svix's `QueueBackgroundTask`, `qtask_…`).
//!
//! The call stores the task (`running`, unowned) and wakes this node's runner; the call's
//! answer names the task, which `GET /api/v1/background-task/{id}` reports until it is
//! `finished` or `failed`. Every node runs a runner: it claims tasks under a lease
//! ([`LEASE`]), works in steps of at most [`PAGE`] items, and records each step's progress
//! (cursor and counts) with a renewal of the lease. A node that dies mid-task leaves the lease
//! to lapse; another node, or this one after a restart (SQLite ends every lease at start),
//! claims the task and resumes after the last step that committed. Replays write a step's
//! deliveries and its progress in one transaction, so a resumed bulk replay sends no message
//! twice; the other steps are idempotent (recovering, purging, counting).
//!
//! A step that fails on the database is retried with back-off until the lease would have
//! lapsed; then the runner lets the task go, and the next claim tries again. One that cannot succeed (its endpoint or application was deleted) ends the task
//! `failed` with the reason in `data.error`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald_core::background::{BackgroundTaskStatus, BackgroundTaskType};
use herald_core::id::{AppId, BackgroundTaskId, EndpointId};
use herald_store::{BackgroundTask, Store, TaskLease};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::wakeup::Wakeup;

mod steps;

pub use steps::{AppStatsParams, BulkReplayParams, PurgeParams, WindowParams};

/// How long a claim holds a task without a recorded step.
pub const LEASE: Duration = Duration::from_secs(30);
/// Items (messages, applications) one step handles: a step takes well under a second, far
/// inside the lease.
pub const PAGE: usize = 250;
/// Tasks one node runs at once; more wait their turn (or another node's).
const MAX_RUNNING: usize = 4;
/// How often a runner looks for tasks left by other nodes, besides being woken.
const SWEEP: Duration = Duration::from_secs(5);
/// Finished and failed tasks are listed for this long (Svix's 90 days).
pub const KEEP: chrono::Duration = chrono::Duration::days(90);

/// The handle the API holds: starts tasks and wakes this node's runner. Cheap to clone.
#[derive(Clone)]
pub struct BackgroundTasks {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) wakeup: Wakeup,
    /// This runner's name; each claim's owner adds a counter, so that a stalled step of an
    /// earlier claim cannot record progress after the task was claimed again.
    node: String,
    claims: AtomicU64,
    notify: Notify,
}

impl BackgroundTasks {
    pub fn new(store: Arc<dyn Store>, wakeup: Wakeup, node: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                wakeup,
                node: format!("{node}/{}", herald_core::token::random_base62(8)),
                claims: AtomicU64::new(0),
                notify: Notify::new(),
            }),
        }
    }

    /// Stores a new task and wakes the runner; the task is persisted when this returns.
    pub async fn start(
        &self,
        task: BackgroundTaskType,
        app_id: Option<AppId>,
        endpoint_id: Option<EndpointId>,
        params: serde_json::Value,
    ) -> herald_store::Result<BackgroundTask> {
        let now = herald_core::time::now();
        let task = BackgroundTask {
            id: BackgroundTaskId::generate_at(now),
            task,
            status: BackgroundTaskStatus::Running,
            app_id,
            endpoint_id,
            params,
            data: serde_json::json!({}),
            cursor: None,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.create_background_task(&task).await?;
        tracing::info!(task = %task.id, kind = task.task.as_str(), "background task started");
        self.inner.notify.notify_one();
        Ok(task)
    }

    /// Runs tasks until `stop`, then gives up the ones in hand for another node to resume.
    pub async fn run(self, stop: CancellationToken) {
        let mut running = tokio::task::JoinSet::new();
        let mut owners = Vec::new();
        let mut purge = tokio::time::interval(Duration::from_secs(3600));
        loop {
            while running.len() < MAX_RUNNING {
                let owner = format!(
                    "{}/{}",
                    self.inner.node,
                    self.inner.claims.fetch_add(1, Ordering::Relaxed)
                );
                let now = herald_core::time::now();
                let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
                match self
                    .inner
                    .store
                    .claim_background_task(&owner, now, until)
                    .await
                {
                    Ok(Some(task)) => {
                        tracing::info!(task = %task.id, kind = task.task.as_str(), "running background task");
                        owners.push(owner.clone());
                        let lease = TaskLease {
                            id: task.id.clone(),
                            owner,
                        };
                        running.spawn(execute(self.inner.clone(), task, lease));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a background task failed");
                        break;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.inner.notify.notified() => {}
                () = tokio::time::sleep(SWEEP) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = purge.tick() => {
                    let before = herald_core::time::now() - KEEP;
                    if let Err(e) = self.inner.store.purge_background_tasks(before).await {
                        tracing::warn!(error = %e, "purging old background tasks failed");
                    }
                }
            }
            if running.is_empty() {
                owners.clear();
            }
        }
        running.shutdown().await;
        for owner in owners {
            if let Err(e) = self.inner.store.release_background_tasks(&owner).await {
                tracing::warn!(error = %e, "releasing background tasks failed; they resume when their leases lapse");
            }
        }
    }
}

/// Why a step did not record progress.
pub(crate) enum StepError {
    /// The database failed: the step is tried again.
    Store(herald_store::StoreError),
    /// The task cannot go on: it ends `failed` with this reason.
    Fatal(String),
}

impl From<herald_store::StoreError> for StepError {
    fn from(e: herald_store::StoreError) -> Self {
        Self::Store(e)
    }
}

/// Works a claimed task step by step until it ends or the lease is lost.
async fn execute(inner: Arc<Inner>, mut task: BackgroundTask, lease: TaskLease) {
    let mut backoff = Duration::from_millis(250);
    let mut since_saved = std::time::Instant::now();
    loop {
        match steps::step(&inner, &task, &lease).await {
            Ok(Some(progress)) => {
                backoff = Duration::from_millis(250);
                since_saved = std::time::Instant::now();
                task.data = progress.data;
                task.cursor = progress.cursor;
                task.status = progress.status;
                if task.status != BackgroundTaskStatus::Running {
                    tracing::info!(task = %task.id, status = task.status.as_str(), "background task ended");
                    return;
                }
            }
            Ok(None) => {
                tracing::info!(task = %task.id, "background task taken over by another runner");
                return;
            }
            Err(StepError::Store(e)) => {
                // Past the lease the task may already be another claim's: stop, and let the
                // lapsed lease hand it to whichever runner claims it next, rather than keep a
                // second copy busy retrying.
                if since_saved.elapsed() >= LEASE {
                    tracing::warn!(task = %task.id, error = %e, "a background task's step keeps failing; leaving it to the next claim");
                    return;
                }
                tracing::warn!(task = %task.id, error = %e, "a background task's step failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(StepError::Fatal(reason)) => {
                tracing::warn!(task = %task.id, %reason, "background task failed");
                let mut data = task.data.clone();
                if let Some(map) = data.as_object_mut() {
                    map.insert("error".into(), reason.into());
                }
                let progress =
                    steps::progress(BackgroundTaskStatus::Failed, data, task.cursor.clone());
                if let Err(e) = inner.store.save_background_task(&lease, &progress).await {
                    tracing::warn!(task = %task.id, error = %e, "recording a failed background task failed");
                    // The step runs again, fails the same way, and this is tried again.
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                return;
            }
        }
    }
}
