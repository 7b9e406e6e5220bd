//! One step of each kind of background task: what it reads, what it writes, and the progress
//! it records (see the module above for how steps are run and resumed).

use chrono::{DateTime, Utc};
use herald_core::background::{BackgroundTaskStatus, BackgroundTaskType};
use herald_core::id::{AppId, MessageId};
use herald_core::model::{DeliveryStatus, Endpoint, Message};
use herald_core::page::{Cursor, ListParams, Order, Page};
use herald_core::routing::{MessageFacts, endpoint_matches};
use herald_store::{
    BackgroundTask, EndpointMessageFilter, MessageFilter, ReplayBatch, ReplayMode, TaskLease,
    TaskProgress,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Inner, LEASE, PAGE, StepError};

/// Applications one statistics step handles (each may take a few reads).
const APPS_PER_STEP: usize = 50;

/// `recover` and `replay-missing`: messages created in `[since, until)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowParams {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// `bulk-replay`: the window and the filters of its request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkReplayParams {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(default)]
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub tag: Option<String>,
    /// A `MessageStatus` code.
    pub status: Option<u8>,
    pub status_code_class: Option<u16>,
}

/// `expunge-all-contents`: messages created before the call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeParams {
    pub until: DateTime<Utc>,
}

/// `stats/usage/app`: the window, and the applications asked for (every one when `None`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatsParams {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub app_ids: Option<Vec<AppId>>,
}

/// A progress record stamped now, with the lease renewed from now.
pub(super) fn progress(
    status: BackgroundTaskStatus,
    data: Value,
    cursor: Option<String>,
) -> TaskProgress {
    let now = herald_core::time::now();
    TaskProgress {
        status,
        data,
        cursor,
        now,
        lease_until: now + chrono::Duration::from_std(LEASE).unwrap_or_default(),
    }
}

/// Where a paged step leaves its task: finished after the last page, else running from the
/// last key handled (or where it was, after an empty page).
fn after_page(
    done: bool,
    last: Option<String>,
    task: &BackgroundTask,
) -> (BackgroundTaskStatus, Option<String>) {
    let status = if done {
        BackgroundTaskStatus::Finished
    } else {
        BackgroundTaskStatus::Running
    };
    (status, last.or_else(|| task.cursor.clone()))
}

/// Runs the next step of `task` and returns the progress it recorded; `None` when the lease
/// was lost (nothing recorded).
pub(super) async fn step(
    inner: &Inner,
    task: &BackgroundTask,
    lease: &TaskLease,
) -> Result<Option<TaskProgress>, StepError> {
    match task.task {
        BackgroundTaskType::EndpointRecover => recover(inner, task, lease).await,
        BackgroundTaskType::EndpointReplay => replay(inner, task, lease, ReplayMode::Missing).await,
        BackgroundTaskType::EndpointBulkReplay => {
            replay(inner, task, lease, ReplayMode::Again).await
        }
        BackgroundTaskType::ApplicationPurgeContent => purge(inner, task, lease).await,
        BackgroundTaskType::ApplicationStats => app_stats(inner, task, lease).await,
        BackgroundTaskType::EventTypeAggregate => event_types(inner, task, lease).await,
    }
}

fn params<T: for<'de> Deserialize<'de>>(task: &BackgroundTask) -> Result<T, StepError> {
    serde_json::from_value(task.params.clone())
        .map_err(|e| StepError::Fatal(format!("the task's parameters do not parse: {e}")))
}

fn count(data: &Value, key: &str) -> u64 {
    data.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The page after `cursor` (ascending by key).
fn page_after(cursor: Option<&str>) -> ListParams {
    ListParams {
        limit: PAGE,
        cursor: cursor.map(Cursor::after),
        order: Order::Ascending,
    }
}

async fn save(
    inner: &Inner,
    lease: &TaskLease,
    progress: TaskProgress,
) -> Result<Option<TaskProgress>, StepError> {
    Ok(inner
        .store
        .save_background_task(lease, &progress)
        .await?
        .then_some(progress))
}

async fn endpoint_of(inner: &Inner, task: &BackgroundTask) -> Result<Endpoint, StepError> {
    let id = task
        .endpoint_id
        .as_ref()
        .ok_or_else(|| StepError::Fatal("the task names no endpoint".into()))?;
    let endpoint = inner
        .store
        .get_endpoint_by_id(id)
        .await?
        .ok_or_else(|| StepError::Fatal("the endpoint was deleted".into()))?;
    if endpoint.disabled {
        return Err(StepError::Fatal(
            "the endpoint was disabled; enable it and start again".into(),
        ));
    }
    Ok(endpoint)
}

fn app_of(task: &BackgroundTask) -> Result<&AppId, StepError> {
    task.app_id
        .as_ref()
        .ok_or_else(|| StepError::Fatal("the task names no application".into()))
}

/// Makes the endpoint's failed and canceled deliveries of the window due again: one statement,
/// idempotent (a delivery made due is no longer failed).
async fn recover(
    inner: &Inner,
    task: &BackgroundTask,
    lease: &TaskLease,
) -> Result<Option<TaskProgress>, StepError> {
    let window: WindowParams = params(task)?;
    let endpoint = endpoint_of(inner, task).await?;
    let now = herald_core::time::now();
    let sent = inner
        .store
        .recover(&endpoint.id, window.since, window.until, now)
        .await?;
    inner.wakeup.endpoints([endpoint.id]);
    save(
        inner,
        lease,
        progress(
            BackgroundTaskStatus::Finished,
            json!({ "messagesSent": sent }),
            None,
        ),
    )
    .await
}

/// One page of messages of the window, oldest first, given to the endpoint: those it never got
/// (`Missing`, matching its filters as they are now), or those it got again (`Again`, with the
/// request's filters). Messages whose payload is gone cannot be sent; they are counted as
/// skipped.
async fn replay(
    inner: &Inner,
    task: &BackgroundTask,
    lease: &TaskLease,
    mode: ReplayMode,
) -> Result<Option<TaskProgress>, StepError> {
    let endpoint = endpoint_of(inner, task).await?;
    let (page, sendable, skipped) = match mode {
        ReplayMode::Missing => {
            let window: WindowParams = params(task)?;
            let page = messages_of_window(inner, &endpoint.app_id, &window, task.cursor.as_deref())
                .await?;
            let mut skipped = 0;
            let mut sendable = Vec::new();
            for msg in &page.items {
                let facts = MessageFacts::new(
                    &msg.event_type,
                    msg.channels.as_deref(),
                    msg.payload.as_deref(),
                );
                if !endpoint_matches(&endpoint, &facts) {
                    continue;
                }
                if msg.payload.is_none() {
                    skipped += 1;
                } else {
                    sendable.push(msg.clone());
                }
            }
            let keys: Page<MessageId> = page.map(|m| m.id);
            (keys, sendable, skipped)
        }
        ReplayMode::Again => {
            let wanted: BulkReplayParams = params(task)?;
            let filter = EndpointMessageFilter {
                status: wanted
                    .status
                    .and_then(|s| DeliveryStatus::from_code(i64::from(s))),
                event_types: wanted.event_types.clone(),
                channel: wanted.channel.clone(),
                tag: wanted.tag.clone(),
                status_code_class: wanted.status_code_class,
                before: Some(wanted.until),
                after: Some(wanted.since - chrono::Duration::milliseconds(1)),
            };
            let page = inner
                .store
                .list_sent_messages(&endpoint.id, &filter, &page_after(task.cursor.as_deref()))
                .await?;
            let (sendable, gone): (Vec<Message>, Vec<Message>) = page
                .items
                .iter()
                .map(|sent| sent.message.clone())
                .partition(|m| m.payload.is_some());
            let keys = page.map(|sent| sent.message.id);
            (keys, sendable, gone.len() as u64)
        }
    };
    let (status, cursor) = after_page(
        page.done(),
        page.items.last().map(|id| id.as_str().to_owned()),
        task,
    );
    let sent_before = count(&task.data, "messagesSent");
    let skipped = count(&task.data, "messagesSkipped") + skipped;
    let record = |made_due: u64| {
        progress(
            status,
            json!({ "messagesSent": sent_before + made_due, "messagesSkipped": skipped }),
            cursor.clone(),
        )
    };
    let batch = ReplayBatch {
        endpoint: &endpoint.id,
        messages: &sendable,
        mode,
        now: herald_core::time::now(),
    };
    let Some(made_due) = inner.store.replay_batch(lease, batch, &record).await? else {
        return Ok(None);
    };
    if made_due > 0 {
        inner.wakeup.endpoints([endpoint.id.clone()]);
    }
    Ok(Some(record(made_due)))
}

/// The application's messages created in the window, after `cursor`, oldest first.
async fn messages_of_window(
    inner: &Inner,
    app: &AppId,
    window: &WindowParams,
    cursor: Option<&str>,
) -> Result<Page<Message>, StepError> {
    let filter = MessageFilter {
        before: Some(window.until),
        after: Some(window.since - chrono::Duration::milliseconds(1)),
        ..Default::default()
    };
    Ok(inner
        .store
        .list_messages(app, &filter, &page_after(cursor))
        .await?)
}

/// Deletes the payloads of one page of the application's messages (those created before the
/// call). Idempotent: a resumed step finds the payloads already gone.
async fn purge(
    inner: &Inner,
    task: &BackgroundTask,
    lease: &TaskLease,
) -> Result<Option<TaskProgress>, StepError> {
    let wanted: PurgeParams = params(task)?;
    let app = app_of(task)?;
    let filter = MessageFilter {
        before: Some(wanted.until + chrono::Duration::milliseconds(1)),
        ..Default::default()
    };
    let page = inner
        .store
        .list_messages(app, &filter, &page_after(task.cursor.as_deref()))
        .await?;
    let mut purged = count(&task.data, "messagesPurged");
    for msg in page.items.iter().filter(|m| m.payload.is_some()) {
        if inner.store.expunge_message_content(app, &msg.id).await? {
            purged += 1;
        }
    }
    let (status, cursor) = after_page(
        page.done(),
        page.items.last().map(|m| m.id.as_str().to_owned()),
        task,
    );
    save(
        inner,
        lease,
        progress(status, json!({ "messagesPurged": purged }), cursor),
    )
    .await
}

/// The applications of one step: the ones asked for (all at once; the API bounds the list), or
/// the next page of every application.
async fn apps_of_step(
    inner: &Inner,
    asked: Option<&[AppId]>,
    cursor: Option<&str>,
) -> Result<(Vec<herald_core::model::Application>, bool), StepError> {
    match asked {
        Some(ids) => {
            let mut apps = Vec::new();
            for id in ids {
                // A deleted application is left out, as an unknown one was at the call.
                if let Some(app) = inner.store.get_app(id.as_str()).await? {
                    apps.push(app);
                }
            }
            Ok((apps, true))
        }
        None => {
            let params = ListParams {
                limit: APPS_PER_STEP,
                ..page_after(cursor)
            };
            let page = inner.store.list_apps(&params, None).await?;
            let done = page.done();
            Ok((page.items, done))
        }
    }
}

fn list_of(data: &Value, key: &str) -> Vec<Value> {
    data.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Message destinations (deliveries) of each application for messages created in the window.
async fn app_stats(
    inner: &Inner,
    task: &BackgroundTask,
    lease: &TaskLease,
) -> Result<Option<TaskProgress>, StepError> {
    let wanted: AppStatsParams = params(task)?;
    let (apps, done) =
        apps_of_step(inner, wanted.app_ids.as_deref(), task.cursor.as_deref()).await?;
    let ids: Vec<AppId> = apps.iter().map(|a| a.id.clone()).collect();
    let counts = inner
        .store
        .message_destinations(&ids, wanted.since, wanted.until)
        .await?;
    let mut stats = list_of(&task.data, "appStats");
    for app in &apps {
        let n = counts
            .iter()
            .find(|(id, _)| id == &app.id)
            .map_or(0, |(_, n)| *n);
        stats.push(json!({
            "appId": app.id.as_str(),
            "appUid": app.uid,
            "messageDestinations": n,
        }));
    }
    let (status, cursor) = after_page(done, ids.last().map(|id| id.as_str().to_owned()), task);
    save(
        inner,
        lease,
        progress(status, json!({ "appStats": stats }), cursor),
    )
    .await
}

/// What each application's endpoints subscribe to: the event types they name, and whether one
/// takes every event type.
async fn event_types(
    inner: &Inner,
    task: &BackgroundTask,
    lease: &TaskLease,
) -> Result<Option<TaskProgress>, StepError> {
    let (apps, done) = apps_of_step(inner, None, task.cursor.as_deref()).await?;
    let mut rows = list_of(&task.data, "event_types");
    for app in &apps {
        let mut named = std::collections::BTreeSet::new();
        let mut catch_all = false;
        let mut cursor: Option<String> = None;
        loop {
            let page = inner
                .store
                .list_endpoints(&app.id, &page_after(cursor.as_deref()))
                .await?;
            for endpoint in &page.items {
                match endpoint.event_types.as_deref() {
                    None | Some([]) => catch_all = true,
                    Some(types) => named.extend(types.iter().cloned()),
                }
            }
            let done = page.done();
            cursor = page.items.last().map(|e| e.id.as_str().to_owned());
            if done || cursor.is_none() {
                break;
            }
        }
        rows.push(json!({
            "appId": app.id.as_str(),
            "explicitlySubscribedEventTypes": named,
            "hasCatchAllEndpoint": catch_all,
        }));
    }
    let (status, cursor) = after_page(done, apps.last().map(|a| a.id.as_str().to_owned()), task);
    save(
        inner,
        lease,
        progress(status, json!({ "event_types": rows }), cursor),
    )
    .await
}
