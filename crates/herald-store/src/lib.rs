//! Herald's storage layer.
//!
//! Everything Herald keeps goes through the [`Store`] trait. The database is the only state
//! shared between requests, workers and (with Postgres) several Herald nodes, so the trait's
//! methods are shaped around the transactions the system needs rather than around tables: for
//! example creating a message also creates its delivery tasks, in one transaction.
//!
//! Two implementations share one body of portable SQL (`src/sql/common.rs`, compiled once per
//! backend with `$N` placeholders, integer millisecond timestamps and text JSON), and keep only
//! what differs per engine in their own module: connection setup, migrations, the claim
//! queries of the delivery queue, row-locking clauses and cross-process wake-ups. The
//! conformance suite in [`conformance`] runs against both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{ApiKeyId, AppId, AttemptId, EndpointId, InboxId, MessageId};
use herald_core::inbox::Inbox;
use herald_core::inbox::tree::{ChildQuery, Location};
use herald_core::model::{
    ApiKey, Application, Endpoint, EventType, Message, SealedEndpointSecrets,
};
use herald_core::page::{ListParams, Page};

#[doc(hidden)]
pub mod conformance;
pub mod device;
pub mod inbox;
pub mod logs;
mod postgres;
pub mod queue;
mod rows;
mod sqlite;
#[doc(hidden)]
pub mod testing;

pub use device::{DeviceFilter, DeviceStore, Lifecycle, StatusRecorded, StatusReport};
pub use inbox::{EntryFilter, InboxEntry, NewEntry, ReplayGuard, TreeRead};
pub use logs::{
    AttemptFilter, DeliveryLogEntry, DeliveryLogFilter, DeliveryLogPage, Destination,
    EndpointMessageFilter, EndpointStats, PoolStats, QueueMetrics, SentMessage,
};
pub use postgres::PostgresStore;
pub use queue::{
    Attempt, AttemptRecord, CompletionEffects, Delivery, DisabledEndpoint, NextStep, Task,
    TaskClaim,
};
pub use sqlite::{SQLITE_SYNCHRONOUS, SqliteStore};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a `uid`, an event type name, an `eventId`, …).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The row to change does not exist (any more).
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or cannot commit right now (down, locked past the busy
    /// timeout, an I/O error, a transaction it rolled back by itself). The caller should answer
    /// 503 and the client retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database's disk is full (SQLite's `SQLITE_FULL`, Postgres's `disk_full`): nothing
    /// was written. The caller should answer 507 and the client retry once space is freed;
    /// Herald carries on by itself then.
    #[error("the database's disk is full: {0}")]
    StorageFull(#[source] sqlx::Error),
    /// A stored value could not be decoded: a bug or a hand-edited database.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Maps a driver error, telling a broken uniqueness rule (`conflict`) apart from an
    /// unavailable database.
    pub(crate) fn from_sqlx(err: sqlx::Error, conflict: &'static str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(conflict),
            sqlx::Error::Database(db) if is_disk_full(engine_code(db.as_ref())) => {
                StoreError::StorageFull(err)
            }
            sqlx::Error::Database(db) if is_transient(engine_code(db.as_ref())) => {
                StoreError::Unavailable(err)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(err),
            _ => StoreError::Other(err),
        }
    }
}

impl StoreError {
    /// The database could not do it now but may later (unavailable, or its disk is full):
    /// worth retrying the same operation, and never the caller's fault.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::StorageFull(_)
        )
    }

    /// This failure as the database's, never the caller's: a transient error stays what it
    /// is, any other becomes `Unavailable` (say, SQLite dropped a savepoint with the
    /// transaction it rolled back by itself).
    pub(crate) fn into_database_failure(self) -> Self {
        match self {
            e if e.is_transient() => e,
            StoreError::Other(e) => StoreError::Unavailable(e),
            other => {
                StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(other.to_string())))
            }
        }
    }

    /// The same error for another waiter on one failed operation (every publish of a group
    /// commit whose transaction failed): the kind and the message, not the driver's value.
    pub(crate) fn for_another_waiter(&self) -> Self {
        let again = || sqlx::Error::Io(std::io::Error::other(self.to_string()));
        match self {
            StoreError::Conflict(what) => StoreError::Conflict(what),
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Unavailable(_) => StoreError::Unavailable(again()),
            StoreError::StorageFull(_) => StoreError::StorageFull(again()),
            StoreError::Corrupt(what) => StoreError::Corrupt(what.clone()),
            StoreError::Migrate(_) | StoreError::Other(_) => StoreError::Other(again()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::from_sqlx(err, "duplicate value")
    }
}

/// A database error's code, told by engine: SQLite's result codes (sqlx reports the extended
/// ones) and Postgres's SQLSTATEs look alike as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EngineCode<'a> {
    Sqlite(u32),
    Postgres(&'a str),
    Unknown,
}

fn engine_code(db: &dyn sqlx::error::DatabaseError) -> EngineCode<'_> {
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return db
            .code()
            .and_then(|c| c.parse().ok())
            .map_or(EngineCode::Unknown, EngineCode::Sqlite);
    }
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return EngineCode::Postgres(pg.code());
    }
    EngineCode::Unknown
}

/// The disk is full: SQLite's `SQLITE_FULL`, Postgres's `disk_full`.
fn is_disk_full(code: EngineCode<'_>) -> bool {
    match code {
        EngineCode::Sqlite(c) => c & 0xff == 13,
        EngineCode::Postgres(c) => c == "53100",
        EngineCode::Unknown => false,
    }
}

/// Codes that mean "try again later" rather than "this request is wrong".
fn is_transient(code: EngineCode<'_>) -> bool {
    match code {
        // BUSY, LOCKED, NOMEM, IOERR, CANTOPEN, with all their extended codes.
        EngineCode::Sqlite(c) => matches!(c & 0xff, 5 | 6 | 7 | 10 | 14),
        // Connection exceptions, insufficient resources, operator intervention (admin
        // shutdown, crash shutdown, cannot connect now), system errors, the rollbacks worth
        // retrying (serialization failure, deadlock detected) and a statement whose completion
        // is unknown.
        EngineCode::Postgres(c) => {
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c.starts_with("58")
                || matches!(c, "40001" | "40P01" | "40003")
        }
        EngineCode::Unknown => false,
    }
}

/// Re-encrypts one sealed value: `Ok(None)` to keep it, `Err` to abort the whole run.
pub type Reseal<'a> =
    dyn Fn(&[u8]) -> std::result::Result<Option<Vec<u8>>, String> + Send + Sync + 'a;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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

/// Where [`Store::subscribe_wakeups`] delivers. The subscription ends when the receiver is
/// dropped or the store is closed.
pub type Wakeups = tokio::sync::mpsc::Receiver<WakeupEvent>;

/// Filters of the message list route.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// A response remembered for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An `Idempotency-Key`'s answer, recorded by the transaction that does the request's work so
/// that the two commit together or not at all. A client whose answer was lost (the connection
/// dropped during the commit, a 503 whose outcome it cannot know) and who retries with the key
/// then gets this answer back if the work was committed, and a fresh run if it was not: never
/// the work twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyCompletion {
    pub scope: String,
    pub key: String,
    /// The claim `idempotency_begin` made: only while it still holds the key is the answer
    /// recorded, and the work done (otherwise the work fails with `Conflict`).
    pub claim: String,
    pub response: StoredResponse,
}

/// What `idempotency_begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The key is new: the caller now holds it and must `complete` or `abandon` it.
    Started,
    /// Another request with this key is still running.
    InProgress,
    /// A request with this key finished; replay its response.
    Completed(StoredResponse),
    /// The key was used for a different request (method, path or body).
    Mismatch,
}

/// Everything Herald reads and writes. See the crate documentation.
#[async_trait]
/// Device and inbox storage are supertraits ([`DeviceStore`], [`InboxStore`]), so their
/// methods are reachable through `dyn Store` while living in their own modules.
pub trait Store: DeviceStore + InboxStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Answers when the database can serve a query.
    async fn ping(&self) -> Result<()>;

    /// Closes the connection pools, waiting for checked-out connections.
    async fn close(&self);

    /// Wake-ups for work published through any process sharing the database: every commit that
    /// makes work due (publish, resend, recover) announces its endpoints to every subscriber,
    /// once it has committed. `None` when the backend serves one process only (SQLite), where
    /// the publishing process wakes its own worker. The subscription reconnects by itself after
    /// a database outage and then sends [`WakeupEvent::Resync`].
    fn subscribe_wakeups(&self) -> Option<Wakeups>;

    // -- settings: small server-wide values (the admin token's hash) --

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless `key` already has one; returns whether it was stored.
    async fn insert_setting(&self, key: &str, value: &str) -> Result<bool>;
    /// Stores `value` under `key`, replacing any value.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    /// Passes every sealed value (endpoint secrets, previous secrets and headers, applications'
    /// GraphQL API headers, inbox verification secrets, remembered idempotent responses) through `reseal`, in one transaction, storing what it returns
    /// (`None`: leave the value). Returns how many values changed. Used to rotate the
    /// encryption key.
    async fn reseal_all(&self, reseal: &Reseal<'_>) -> Result<u64>;

    // -- applications --

    /// Fails with `Conflict` when the uid is taken.
    async fn create_app(&self, app: &Application) -> Result<()>;
    /// Looks an application up by id, or else by uid. The reserved operational-webhook
    /// application (`herald_core::model::OPERATIONAL_APP_ID`) is never found.
    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>>;
    /// Lists applications; `only` restricts the list to one application (an app-scoped token).
    /// The reserved operational-webhook application is never listed.
    async fn list_apps(
        &self,
        params: &ListParams,
        only: Option<&AppId>,
    ) -> Result<Page<Application>>;
    async fn update_app(&self, app: &Application) -> Result<()>;
    /// Deletes an application with its endpoints, messages, attempts and keys.
    async fn delete_app(&self, id: &AppId) -> Result<bool>;

    // -- event types --

    async fn create_event_type(&self, event_type: &EventType) -> Result<()>;
    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>>;
    async fn list_event_types(
        &self,
        params: &ListParams,
        include_archived: bool,
    ) -> Result<Page<EventType>>;
    async fn update_event_type(&self, event_type: &EventType) -> Result<()>;
    /// Deletes an event type for good (the API archives by default).
    async fn delete_event_type(&self, name: &str) -> Result<bool>;

    // -- endpoints --

    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        secrets: &SealedEndpointSecrets,
    ) -> Result<()> {
        self.create_endpoint_within(endpoint, secrets, u64::MAX)
            .await
            .map(drop)
    }
    /// Creates an endpoint unless its application already has `max` endpoints: `false` then,
    /// and nothing is written. The count is taken in the insert's transaction, with creates for
    /// one application serialized (on Postgres, by a lock on its row), so concurrent creates
    /// cannot overshoot (`--max-endpoints-per-app`).
    async fn create_endpoint_within(
        &self,
        endpoint: &Endpoint,
        secrets: &SealedEndpointSecrets,
        max: u64,
    ) -> Result<bool>;
    /// Looks an endpoint of `app` up by id, or else by uid.
    async fn get_endpoint(&self, app: &AppId, id_or_uid: &str) -> Result<Option<Endpoint>>;
    /// Looks an endpoint up by id alone (the delivery worker knows no application).
    async fn get_endpoint_by_id(&self, id: &EndpointId) -> Result<Option<Endpoint>>;
    async fn list_endpoints(&self, app: &AppId, params: &ListParams) -> Result<Page<Endpoint>>;
    /// How many endpoints `app` has.
    async fn count_endpoints(&self, app: &AppId) -> Result<u64>;
    /// Saves an endpoint. Disabling it fails its pending tasks (their retries stop; `recover`
    /// brings them back).
    async fn update_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool>;
    async fn get_endpoint_secrets(&self, id: &EndpointId) -> Result<Option<SealedEndpointSecrets>>;
    /// Replaces an endpoint's secrets if they are still at `secrets.version` (returns `false`
    /// otherwise: someone changed them since they were read).
    async fn set_endpoint_secrets(
        &self,
        id: &EndpointId,
        secrets: &SealedEndpointSecrets,
    ) -> Result<bool>;

    // -- messages --

    /// Stores a message and one pending task per matching endpoint (see
    /// `herald_core::routing`), in one transaction, and returns the endpoints that got a task.
    /// Fails with `Conflict` when its `eventId` was already used in the application; nothing is
    /// written then.
    async fn create_message(&self, message: &Message) -> Result<Vec<EndpointId>>;
    /// `create_message`, also completing the `Idempotency-Key` claim of `completion` with its
    /// answer in the same transaction (see [`IdempotencyCompletion`]).
    async fn create_message_idempotent(
        &self,
        message: &Message,
        completion: &IdempotencyCompletion,
    ) -> Result<Vec<EndpointId>>;
    /// Stores a message with one pending task for one enabled endpoint only, whatever its
    /// routing (an example sent to it). `NotFound` when the endpoint is missing or disabled.
    async fn create_message_for_endpoint(
        &self,
        message: &Message,
        endpoint: &EndpointId,
    ) -> Result<()>;
    async fn get_message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>>;
    /// Finds a message of `app` by its `eventId`.
    async fn get_message_by_event_id(&self, app: &AppId, event_id: &str)
    -> Result<Option<Message>>;
    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        params: &ListParams,
    ) -> Result<Page<Message>>;

    // -- delivery queue (see ARCHITECTURE.md, "The delivery engine") --

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
    /// Claims up to `limit` due tasks of an endpoint `node` owns, marking them in flight until
    /// `lease_until`. With `fifo` only the oldest unfinished task is considered. Also returns
    /// the endpoint's queue version, for `release_endpoint`.
    async fn claim_tasks(
        &self,
        node: &str,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        fifo: bool,
    ) -> Result<(Vec<Task>, i64)> {
        let claim = TaskClaim {
            endpoint: endpoint.clone(),
            lease_until,
            limit,
            fifo,
        };
        let mut claimed = self.claim_tasks_of(node, now, &[claim]).await?;
        Ok(claimed.pop().unwrap_or_default())
    }
    /// [`Store::claim_tasks`] for several endpoints in one transaction: one answer per claim,
    /// in order (no tasks and version -1 for an endpoint `node` does not own).
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
    /// Shutdown: tasks `node` has in flight become due again at `now`, its endpoints are
    /// released.
    async fn release_node(&self, node: &str, now: DateTime<Utc>) -> Result<()>;
    /// Start of a process that is the only one using the database (SQLite): every lease is from
    /// a dead process, so it ends now, and so does every unfinished `Idempotency-Key` claim
    /// (its request died with that process). Also recomputes every queue's due time.
    async fn reset_leases(&self, now: DateTime<Utc>) -> Result<()>;
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
    async fn deliveries_for_message(&self, msg: &MessageId) -> Result<Vec<Delivery>>;
    async fn attempts_for_message(&self, msg: &MessageId) -> Result<Vec<Attempt>>;

    // -- delivery logs and statistics --

    /// Lists the attempts of `app` matching `filter`, keyed by attempt id.
    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        params: &ListParams,
    ) -> Result<Page<Attempt>>;
    async fn get_attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>>;
    /// Deletes an attempt's response body; `false` when there is no such attempt.
    async fn expunge_attempt_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<bool>;
    /// Deletes a message's payload; `false` when there is no such message.
    async fn expunge_message_content(&self, app: &AppId, msg: &MessageId) -> Result<bool>;
    /// The endpoints a message was sent to with each delivery's state, keyed by endpoint id.
    async fn list_destinations(
        &self,
        app: &AppId,
        msg: &MessageId,
        params: &ListParams,
    ) -> Result<Page<Destination>>;
    /// The messages sent to an endpoint with each delivery's state, keyed by message id.
    async fn list_sent_messages(
        &self,
        endpoint: &EndpointId,
        filter: &EndpointMessageFilter,
        params: &ListParams,
    ) -> Result<Page<SentMessage>>;
    /// Counts an endpoint's deliveries by status, for messages created in `[since, until)`.
    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<EndpointStats>;
    /// One page of the delivery log, newest first, skipping `offset` rows, with the number of
    /// rows matching `filter`.
    async fn delivery_log(
        &self,
        filter: &DeliveryLogFilter,
        offset: u64,
        limit: u64,
    ) -> Result<DeliveryLogPage>;

    // -- retention and metrics --

    /// Deletes up to `limit` message payloads whose retention ended at or before `now`;
    /// returns how many. The messages themselves stay.
    async fn purge_payloads(&self, now: DateTime<Utc>, limit: u64) -> Result<u64>;
    /// Deletes up to `limit` response bodies of attempts made before `before`; returns how
    /// many. The attempts themselves stay.
    async fn purge_attempt_responses(&self, before: DateTime<Utc>, limit: u64) -> Result<u64>;
    /// Counts what the queue holds at `now`.
    async fn queue_metrics(&self, now: DateTime<Utc>) -> Result<QueueMetrics>;
    /// The use of the connection pools right now.
    fn pool_stats(&self) -> Vec<PoolStats>;

    // -- API keys --

    async fn create_api_key(&self, key: &ApiKey) -> Result<()>;
    async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>>;
    /// Lists every key: API keys, customers' portal tokens and console sessions.
    async fn list_api_keys(&self, params: &ListParams) -> Result<Page<ApiKey>>;
    /// Deletes a key, and the console sessions minted from it.
    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool>;
    /// Ends every portal token of `app` at `at` (at once, deleted, when `at` is not after
    /// `now`; a token that expires sooner keeps its sooner expiry). Returns how many changed.
    async fn expire_portal_keys(
        &self,
        app: &AppId,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Removes keys whose expiry has passed.
    async fn purge_expired_api_keys(&self, now: DateTime<Utc>) -> Result<u64>;

    // -- idempotency --

    /// Claims `key` in `scope` for a request with `fingerprint` (a hash of method, path and
    /// body), as `claim` (a token unique to this request). Keys older than `expires_before`
    /// count as absent, and a claim still unfinished since before `abandoned_before` is taken
    /// over (its request died without releasing it).
    #[allow(clippy::too_many_arguments)]
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        claim: &str,
        fingerprint: &[u8],
        now: DateTime<Utc>,
        expires_before: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<IdempotencyState>;
    /// Records the answer of the request holding `claim`; nothing if the claim was released or
    /// taken over meanwhile.
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        claim: &str,
        response: &StoredResponse,
    ) -> Result<()>;
    /// Releases the key of a request that failed in a way worth retrying (5xx), if `claim`
    /// still holds it unfinished: an answer already recorded stays.
    async fn idempotency_abandon(&self, scope: &str, key: &str, claim: &str) -> Result<()>;
    async fn purge_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64>;
}

/// The backend a database URL names, if any.
pub fn backend_of(url: &str) -> Option<Backend> {
    match url.split_once(':')?.0 {
        "sqlite" => Some(Backend::Sqlite),
        "postgres" | "postgresql" => Some(Backend::Postgres),
        _ => None,
    }
}

/// The inbox half of the store (see `herald_core::inbox` and ARCHITECTURE.md, "Inboxes").
/// Every [`Store`] implements it; it is a separate trait only to keep the list readable.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Fails with `Conflict` when its application (or, for an inbox of no application, another
    /// inbox of none) has one of that name.
    async fn create_inbox(&self, inbox: &Inbox) -> Result<()>;
    /// Looks an inbox up by id, or else by the name the older `/in/{name}/…` form resolves: the
    /// name of an inbox of no application or of one made before names were per application.
    async fn get_inbox(&self, id_or_name: &str) -> Result<Option<Inbox>>;
    /// Looks an application's inbox up by the name the application gave it.
    async fn get_inbox_of(&self, app: &AppId, name: &str) -> Result<Option<Inbox>>;
    /// Every inbox with this id or name, in any application (at most 100): `/in/{name}/…`
    /// takes the one whose token the request presents.
    async fn find_inboxes_named(&self, name: &str) -> Result<Vec<Inbox>>;
    /// Lists inboxes; `only` restricts the list to one application's (an app-scoped token).
    async fn list_inboxes(&self, params: &ListParams, only: Option<&AppId>) -> Result<Page<Inbox>>;
    /// Saves every field but the counters.
    async fn update_inbox(&self, inbox: &Inbox) -> Result<()>;
    /// Deletes an inbox with its entries.
    async fn delete_inbox(&self, id: &InboxId) -> Result<bool>;
    /// Counts one request refused for its signature.
    async fn count_inbox_rejection(&self, id: &InboxId) -> Result<()>;

    /// Applies a write to the inbox's tree and stores it as an entry, in one transaction with
    /// `forward` (a message and its delivery tasks, as `create_message`): either both are
    /// committed or neither. Returns the stored entry and the endpoints that got a task.
    /// `NotFound` when the inbox is gone; `Conflict` when the message's `eventId` is taken.
    async fn write_inbox(
        &self,
        entry: &NewEntry,
        forward: Option<&Message>,
    ) -> Result<(InboxEntry, Vec<EndpointId>)>;
    /// The JSON at `at`, with `query` applied to its children, reading at most `max_rows` rows.
    async fn read_inbox_tree(
        &self,
        inbox: &InboxId,
        at: &Location,
        query: &ChildQuery,
        max_rows: usize,
    ) -> Result<TreeRead>;
    /// Lists entries, keyset-paginated on their (time-ordered) ids.
    async fn list_inbox_entries(
        &self,
        inbox: &InboxId,
        filter: &EntryFilter,
        params: &ListParams,
    ) -> Result<Page<InboxEntry>>;
    async fn count_inbox_entries(&self, inbox: &InboxId, filter: &EntryFilter) -> Result<u64>;
    /// The newest entry's id, if any.
    async fn last_inbox_entry(
        &self,
        inbox: &InboxId,
    ) -> Result<Option<herald_core::id::InboxEntryId>>;
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`) and brings its schema up to
/// date.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    match backend_of(url) {
        Some(Backend::Sqlite) => Ok(std::sync::Arc::new(SqliteStore::open(url).await?)),
        Some(Backend::Postgres) => Ok(std::sync::Arc::new(PostgresStore::open(url).await?)),
        None => Err(StoreError::Corrupt(format!(
            "unsupported database URL scheme in {}",
            url.split(':').next().unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::{EngineCode, is_disk_full, is_transient};

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        use EngineCode::{Postgres, Sqlite};
        for full in [Sqlite(13), Postgres("53100")] {
            assert!(is_disk_full(full), "{full:?}");
        }
        for transient in [
            Sqlite(5),
            Sqlite(261),
            Sqlite(517),
            Sqlite(773), // BUSY and its extended codes
            Sqlite(6),
            Sqlite(262), // LOCKED
            Sqlite(7),   // NOMEM
            Sqlite(10),
            Sqlite(266),
            Sqlite(778),
            Sqlite(1034),
            Sqlite(4874), // IOERR: read, write, fsync, …
            Sqlite(14),
            Sqlite(270), // CANTOPEN
            Postgres("08006"),
            Postgres("57P01"),
            Postgres("53200"),
            Postgres("40001"),
            Postgres("40P01"),
            Postgres("40003"),
        ] {
            assert!(is_transient(transient), "{transient:?}");
            assert!(!is_disk_full(transient), "{transient:?}");
        }
        // The caller's own fault: constraints, a missing table, a check; and a Postgres code
        // that reads like a SQLite one.
        for own in [
            Sqlite(19),
            Sqlite(2067),
            Sqlite(787),
            Sqlite(1),
            Sqlite(9), // an interrupt
            Postgres("23505"),
            Postgres("23514"),
            Postgres("42P01"),
            Postgres("10013"),
            EngineCode::Unknown,
        ] {
            assert!(!is_transient(own), "{own:?}");
            assert!(!is_disk_full(own), "{own:?}");
        }
    }
}
