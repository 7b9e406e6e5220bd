//! The queue role: the delivery queue's store operations ([`QueueStore`]) and their types.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{AppId, AttemptId, EndpointId, MessageId};
use herald_core::model::{
    DeliveryStatus, Endpoint, Message, SealedEndpointSecrets, SealedGraphqlApi, Trigger,
};

use crate::Result;

/// A task claimed for an attempt, with what the attempt needs of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task's row in `deliveries`: what [`AttemptRecord::delivery_id`] names.
    pub delivery_id: i64,
    /// The message to deliver.
    pub msg_id: MessageId,
    /// The message's serial (the `id` of the typed envelope).
    pub msg_serial: i64,
    /// Attempts already made.
    pub attempts: u32,
    /// The attempt was asked for by a person (resend), not by the schedule.
    pub manual: bool,
    /// The message's event type.
    pub event_type: String,
    /// `None` when the payload was deleted (retention or expunge): the attempt cannot be made.
    pub payload: Option<String>,
    /// When the message was created (not when the task became due).
    pub message_created_at: DateTime<Utc>,
}

/// One endpoint's claim in [`QueueStore::claim_tasks_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskClaim {
    /// The endpoint whose tasks to claim; `node` must own it.
    pub endpoint: EndpointId,
    /// The claimed tasks are in flight until then.
    pub lease_until: DateTime<Utc>,
    /// At most this many tasks (the endpoint's free concurrency slots).
    pub limit: usize,
    /// Only the oldest unfinished task is considered.
    pub fifo: bool,
}

/// What happens to a task after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered.
    Done,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No attempts left: the task has failed.
    Exhausted,
    /// The receiver asked never to be called again (410 Gone): fail the task and disable the
    /// endpoint.
    DisableEndpoint,
    /// The endpoint's transformation skipped this delivery (`cancel = true`): the task ends
    /// as canceled, and the endpoint's failure streak is not touched.
    Canceled,
}

/// The record of one finished attempt and its consequence.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The new attempt's id.
    pub id: AttemptId,
    /// The attempted task ([`Task::delivery_id`]).
    pub delivery_id: i64,
    /// The attempted message.
    pub msg_id: MessageId,
    /// The attempted endpoint.
    pub endpoint_id: EndpointId,
    /// The endpoint's application.
    pub app_id: AppId,
    /// The URL the request went to.
    pub url: String,
    /// The endpoint's `url_version` for `url`, when the attempt used the endpoint's own URL:
    /// the attempt then names it instead of keeping a copy.
    pub url_version: Option<i64>,
    /// 0 when no response was received.
    pub status_code: u16,
    /// The response body (truncated), or empty.
    pub response: String,
    /// How long the request took, in milliseconds (0 when none was made).
    pub duration_ms: i64,
    /// Scheduled attempt or manual resend; see [`Task::manual`].
    pub trigger: Trigger,
    /// Why the request failed before a response (timeout, refused, TLS, policy, …).
    pub error: Option<String>,
    /// The request's headers as a JSON object, secret values replaced; `None` when no request
    /// was made.
    pub request_headers: Option<String>,
    /// The body sent, when it differs from the message's payload (shaping).
    pub request_body: Option<String>,
    /// When the request started: the attempt's `created_at`.
    pub started_at: DateTime<Utc>,
    /// The task's next step, applied in the same transaction as the record.
    pub next: NextStep,
}

/// What committing a batch of attempts changed beyond the tasks themselves: what operational
/// webhooks report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletionEffects {
    /// Endpoints disabled by this batch (410 Gone, or failing for longer than allowed).
    pub disabled: Vec<DisabledEndpoint>,
    /// Failed attempts that will be retried and are the first failure of their endpoint in an
    /// hour (`message.attempt.failing`).
    pub failing: Vec<AttemptId>,
    /// Attempts after which their task has no attempts left (`message.attempt.exhausted`).
    pub exhausted: Vec<AttemptId>,
    /// Successful attempts that ended their endpoint's failure streak
    /// (`message.attempt.recovered`).
    pub recovered: Vec<AttemptId>,
}

/// An endpoint disabled by a batch of attempt results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledEndpoint {
    /// The endpoint now disabled.
    pub endpoint: EndpointId,
    /// Since when all its attempts had been failing.
    pub failing_since: Option<DateTime<Utc>>,
}

/// One message's state for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message delivered; with `endpoint_id`, the task's key (one task per pair).
    pub msg_id: MessageId,
    /// The endpoint delivered to.
    pub endpoint_id: EndpointId,
    /// Where the task stands.
    pub status: DeliveryStatus,
    /// Attempts made so far; reset to 0 by a resend or recovery.
    pub attempts: u32,
    /// When the next attempt is due (in flight: when its lease ends); `None` once the task
    /// succeeded or failed.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the latest attempt was recorded; `None` before the first.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The latest attempt's HTTP status (0 when it got no response); `None` before the first.
    pub last_status_code: Option<u16>,
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The attempt's id.
    pub id: AttemptId,
    /// The message attempted.
    pub msg_id: MessageId,
    /// The endpoint attempted.
    pub endpoint_id: EndpointId,
    /// The URL the request went to (from the endpoint's URL history when the attempt named it).
    pub url: String,
    /// The response's HTTP status, 0 when no response was received.
    pub status_code: u16,
    /// The response body (truncated), possibly empty; `None` once retention purged it.
    pub response: Option<String>,
    /// How long the request took, in milliseconds.
    pub duration_ms: i64,
    /// Whether the schedule or a person (resend) made the attempt.
    pub trigger: Trigger,
    /// The attempt delivered the message (its task was done by it).
    pub success: bool,
    /// Why the request failed before a response, if it did.
    pub error: Option<String>,
    /// See [`AttemptRecord::request_headers`].
    pub request_headers: Option<String>,
    /// See [`AttemptRecord::request_body`].
    pub request_body: Option<String>,
    /// When the request started.
    pub created_at: DateTime<Utc>,
}

/// A wake-up from the database: work was published, possibly by another Herald node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeupEvent {
    /// These endpoints got work that is due now.
    Endpoints(Vec<EndpointId>),
    /// Wake-ups may have been missed (the listening connection was lost and is back): look for
    /// due work everywhere.
    Resync,
}

/// Where [`QueueStore::subscribe_wakeups`] delivers. The subscription ends when the receiver is
/// dropped or the store is closed.
pub type Wakeups = tokio::sync::mpsc::Receiver<WakeupEvent>;

/// What a dispatcher needs to deliver to one endpoint, read together each time it loads the
/// endpoint ([`QueueStore::dispatch_target`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchTarget {
    /// The endpoint, as stored.
    pub endpoint: Endpoint,
    /// The endpoint's secrets and headers, sealed: the worker opens them.
    pub secrets: SealedEndpointSecrets,
    /// The application's default rate (`throttleRate`), for an endpoint without its own.
    pub app_rate_limit: Option<u16>,
    /// The application's GraphQL API, sealed, for endpoints that select from it.
    pub graphql_api: Option<SealedGraphqlApi>,
    /// The application's webhook secret, sealed (Impilo's `Impilo-Webhook-Secret`).
    pub webhook_secret: Option<Vec<u8>>,
    /// The endpoint's transformation, with its variables sealed.
    pub transformation: crate::StoredTransformation,
}

/// The delivery queue: what the worker uses, and all it uses (see ARCHITECTURE.md, "The
/// delivery engine"). Claims of endpoints and tasks, lease renewals and releases, recorded
/// attempts, recovery and manual resends, and wake-ups.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Wake-ups for work published through any process sharing the database: every commit that
    /// makes work due (publish, resend, recover) announces its endpoints to every subscriber,
    /// once it has committed. `None` when the backend serves one process only (SQLite), where
    /// the publishing process wakes its own worker. The subscription reconnects by itself after
    /// a database outage and then sends [`WakeupEvent::Resync`].
    fn subscribe_wakeups(&self) -> Option<Wakeups>;

    /// A number that changes whenever what [`QueueStore::dispatch_target`] returns for any
    /// endpoint may have changed: a dispatcher may keep what it loaded (and opened) while the
    /// number stays the same, instead of reading the endpoint for every wave of attempts. Read
    /// it before loading. `None` when other processes may change the endpoints (Postgres):
    /// then load every time.
    fn dispatch_version(&self) -> Option<u64>;

    /// The endpoint `id` with its sealed secrets and what its application sets for delivery,
    /// or `None` when the endpoint is gone. The reserved operational-webhook application
    /// contributes no settings (as it is never found by [`crate::ResourceStore::get_app`]).
    async fn dispatch_target(&self, id: &EndpointId) -> Result<Option<DispatchTarget>>;

    /// Takes ownership of up to `limit` endpoints that have due work and no live owner.
    async fn claim_due_endpoints(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<EndpointId>>;
    /// Extends the leases of every endpoint `node` owns.
    async fn renew_endpoint_leases(&self, node: &str, lease_until: DateTime<Utc>) -> Result<()>;
    /// Claims up to `claim.limit` due tasks of each endpoint `node` owns, marking them in flight
    /// until `claim.lease_until`, in one transaction. With `claim.fifo` only the oldest
    /// unfinished task is considered. One answer per claim, in order: the tasks and the
    /// endpoint's queue version, for `release_endpoint` (no tasks and version -1 for an
    /// endpoint `node` does not own).
    async fn claim_tasks_of(
        &self,
        node: &str,
        now: DateTime<Utc>,
        claims: &[TaskClaim],
    ) -> Result<Vec<(Vec<Task>, i64)>>;
    /// Gives up ownership of an endpoint, recording when its next task is due, unless it has a
    /// task due at `now` or a publish made its queue due since `version` (then returns `false`
    /// and the owner keeps it). No publish that committed before it can be missed.
    async fn release_endpoint(
        &self,
        node: &str,
        endpoint: &EndpointId,
        version: i64,
        fifo: bool,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives up an endpoint whatever its state (its dispatcher failed); it is claimed again
    /// when due.
    async fn abandon_endpoint(&self, node: &str, endpoint: &EndpointId) -> Result<()>;
    /// Records finished attempts and moves their tasks on, in one transaction. A task whose
    /// lease `node` no longer holds keeps its state (another node has it); its attempt is still
    /// recorded. Endpoints failing for longer than `disable_after` are disabled.
    async fn complete_attempts(
        &self,
        node: &str,
        records: &[AttemptRecord],
        disable_after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<CompletionEffects>;
    /// Shutdown: tasks `node` has in flight (claimed by `now`) are due again at once, its
    /// endpoints are released.
    async fn release_node(&self, node: &str, now: DateTime<Utc>) -> Result<()>;
    /// Start of a process that is the only one using the database (SQLite): every lease is from
    /// a dead process, so it ends now, and so does every unfinished `Idempotency-Key` claim
    /// (its request died with that process), and so does every background task's lease. Also
    /// recomputes every queue's due time.
    async fn reset_leases(&self) -> Result<()>;
    /// Makes a new attempt of a message to an endpoint due now (a manual resend), creating the
    /// task if the endpoint did not get the message.
    async fn requeue(
        &self,
        message: &Message,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Makes the failed tasks of an endpoint whose messages were created in `[since, until)`
    /// due again; returns how many.
    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64>;
}
