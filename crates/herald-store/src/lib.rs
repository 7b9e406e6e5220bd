//! Herald's storage layer.
//!
//! Everything Herald keeps goes through the [`Store`] trait. The database is the only state
//! shared between requests, workers and (with Postgres) several Herald nodes, so the methods
//! are shaped around the transactions the system needs rather than around tables: for example
//! creating a message also creates its delivery tasks, in one transaction.
//!
//! The methods are split by role, one trait each, in its own module with its types:
//!
//! - [`QueueStore`] (`queue`): the delivery queue. Claims, lease renewals and releases,
//!   recorded attempts, recovery and resends, wake-ups, and the one read a dispatcher needs.
//!   The worker holds this role only.
//! - [`LogStore`] (`logs`): the delivery log, statistics, retention and queue metrics.
//! - [`AccessStore`] (`access`): API keys, settings and `Idempotency-Key` records.
//! - [`ResourceStore`] (`resources`): applications, event types and endpoints.
//! - [`MessageStore`] (`messages`): publishing and reading messages (see its module for why it
//!   is a role of its own).
//! - [`InboxStore`] (`inbox`) and [`DeviceStore`] (`device`): inboxes and devices.
//! - [`BackgroundTaskStore`] (`tasks`): replays, recoveries, purges and statistics that go on
//!   after the call that started them, persisted and resumed under leases.
//!
//! [`Store`] has every role as a supertrait, plus what concerns the store as a whole (ping,
//! close, pool statistics, re-sealing every secret). Methods of every role are callable on a
//! `dyn Store`; through a concrete store, bring the roles in scope with [`prelude`].
//!
//! Two implementations share one body of portable SQL (`src/sql/*.rs`, one file per role,
//! compiled once per backend with `$N` placeholders, integer millisecond timestamps and text
//! JSON), and keep only what differs per engine in their own module, as the items of the
//! `Dialect` trait (`sql/dialect.rs`): the claim queries of the delivery queue, row locking, queue locks and
//! a string function; plus connection setup, migrations and cross-process wake-ups. The
//! conformance suite (`conformance`, with the `testing` feature) runs against both.

#![warn(missing_docs)]

use async_trait::async_trait;

/// A task status (`herald_core::model::DeliveryStatus`) as the integer literal stored in
/// `deliveries.status`, for SQL text built with `concat!`. The values are checked against the
/// enum below.
macro_rules! status {
    (SUCCESS) => {
        0
    };
    (PENDING) => {
        1
    };
    (FAIL) => {
        2
    };
    (SENDING) => {
        3
    };
    (CANCELED) => {
        4
    };
}

/// How a delivery's status is reported, in SQL over a table alias (`""` or `"d."`). A claim
/// writes only the lease (`lease_token`, `lease_until`: columns no index covers, so that it
/// is a HOT update on Postgres and touches no index on SQLite) and leaves `status` pending:
/// a pending task under a lease is in flight, reported as sending, and its next attempt is
/// when the lease ends, as before claims stopped moving `status` and `next_attempt_at`.
macro_rules! reported_status {
    ($t:literal) => {
        concat!(
            "CASE WHEN ",
            in_flight!($t),
            " THEN ",
            status!(SENDING),
            " ELSE ",
            $t,
            "status END"
        )
    };
}

/// See `reported_status!`.
macro_rules! reported_next_attempt {
    ($t:literal) => {
        concat!(
            "CASE WHEN ",
            in_flight!($t),
            " THEN ",
            $t,
            "lease_until ELSE ",
            $t,
            "next_attempt_at END"
        )
    };
}

/// A pending task under a lease: in flight (see `reported_status!`).
macro_rules! in_flight {
    ($t:literal) => {
        concat!(
            $t,
            "status = ",
            status!(PENDING),
            " AND ",
            $t,
            "lease_token IS NOT NULL"
        )
    };
}

/// The condition a claim puts on a task (no alias), after its due time: no lease, or one that
/// has ended (its node died or gave up).
macro_rules! unleased {
    ($now:literal) => {
        concat!("(lease_token IS NULL OR lease_until <= ", $now, ")")
    };
}

/// When an endpoint next has work (`QueueStore::release_endpoint` stores it as the queue's
/// `next_due_at`), for endpoint `$e` at time `$now` (placeholders: `"$1"` or `"?1"`). Without
/// FIFO: a due task without a live lease if there is one (the owner goes round again);
/// otherwise the earliest of the leases in flight (their tasks are due again if they lapse)
/// and the next due time to come. Leased tasks were due when claimed, so they are all in the
/// due prefix of `deliveries_due`, which the first lookup ends in at its first unleased task:
/// the work is bounded by the tasks in flight, not by the backlog. With FIFO: the head's.
macro_rules! next_due_sql {
    (any, $e:literal, $now:literal) => {
        concat!(
            "SELECT COALESCE(
               (SELECT next_attempt_at FROM deliveries
                WHERE endpoint_id = ",
            $e,
            " AND status IN (",
            status!(PENDING),
            ", ",
            status!(SENDING),
            ")
                  AND next_attempt_at <= ",
            $now,
            " AND ",
            unleased!($now),
            " LIMIT 1),
               (SELECT MIN(at) FROM (
                  SELECT lease_until AS at FROM deliveries
                  WHERE endpoint_id = ",
            $e,
            " AND status IN (",
            status!(PENDING),
            ", ",
            status!(SENDING),
            ")
                    AND next_attempt_at <= ",
            $now,
            "
                  UNION ALL
                  SELECT MIN(next_attempt_at) AS at FROM deliveries
                  WHERE endpoint_id = ",
            $e,
            " AND status IN (",
            status!(PENDING),
            ", ",
            status!(SENDING),
            ")
                    AND next_attempt_at > ",
            $now,
            ") AS upcoming))"
        )
    };
    (fifo, $e:literal) => {
        concat!(
            "SELECT CASE WHEN lease_token IS NOT NULL AND lease_until > next_attempt_at
                    THEN lease_until ELSE next_attempt_at END
             FROM deliveries WHERE endpoint_id = ",
            $e,
            " AND status IN (",
            status!(PENDING),
            ", ",
            status!(SENDING),
            ") ORDER BY id LIMIT 1"
        )
    };
}

// The literals of `status!` are the enum's values.
const _: () = {
    use herald_core::model::DeliveryStatus;
    assert!(status!(SUCCESS) == DeliveryStatus::Success as i32);
    assert!(status!(PENDING) == DeliveryStatus::Pending as i32);
    assert!(status!(FAIL) == DeliveryStatus::Fail as i32);
    assert!(status!(SENDING) == DeliveryStatus::Sending as i32);
    assert!(status!(CANCELED) == DeliveryStatus::Canceled as i32);
};

pub mod access;
mod cache;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod device;
#[path = "sql/dialect.rs"]
mod dialect;
pub mod inbox;
pub mod logs;
pub mod messages;
pub mod outbox;
pub mod polls;
mod postgres;
pub mod queue;
pub mod resources;
mod rows;
pub mod serial;
mod sqlite;
pub mod tasks;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use access::{AccessStore, IdempotencyCompletion, IdempotencyState, StoredResponse};
pub use device::{DeviceFilter, DeviceStore, Lifecycle, StatusRecorded, StatusReport};
pub use inbox::{EntryFilter, InboxEntry, InboxStore, NewEntry, ReplayGuard, TreeRead};
pub use logs::{
    AttemptDay, AttemptFilter, DeliveryLogEntry, DeliveryLogFilter, DeliveryLogPage, Destination,
    EndpointMessageFilter, EndpointStats, LogStore, PoolStats, PurgedMessages, QueueMetrics,
    SentMessage, StorageStats, TableStats,
};
pub use messages::{MessageFilter, MessageStore};
pub use outbox::OutboxEvent;
pub use polls::{PollPosition, PollStore, PolledMessage};
pub use postgres::PostgresStore;
pub use queue::{
    Attempt, AttemptRecord, CompletionEffects, Delivery, DisabledEndpoint, DispatchTarget,
    NextStep, QueueStore, Task, TaskClaim, WakeupEvent, Wakeups,
};
pub use resources::{ResourceStore, StoredTransformation};
pub use serial::SerialKind;
pub use sqlite::{SQLITE_SYNCHRONOUS, SqliteStore};
pub use tasks::{
    BackgroundTask, BackgroundTaskFilter, BackgroundTaskStore, ReplayBatch, ReplayMode, TaskLease,
    TaskProgress,
};

/// Every role trait, for calling store methods through a concrete store or a role handle:
/// `use herald_store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AccessStore, BackgroundTaskStore, DeviceStore, InboxStore, LogStore, MessageStore,
        PollStore, QueueStore, ResourceStore, Store,
    };
}

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
    /// The schema could not be brought up to date when opening the store (for example a
    /// database migrated by a newer Herald).
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database failure, neither transient nor a broken uniqueness rule: not worth
    /// retrying as is.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

/// The result of a store operation.
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

/// Maps an SQLite result code (extended) from a driver other than sqlx (the writer thread's
/// rusqlite) as [`StoreError::from_sqlx`] maps sqlx's: `err` is the driver's error, wrapped.
pub(crate) fn classify_sqlite(code: u32, conflict: &'static str, err: sqlx::Error) -> StoreError {
    // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY, as sqlx's
    // `is_unique_violation` reads them.
    if matches!(code, 2067 | 1555) {
        return StoreError::Conflict(conflict);
    }
    let code = EngineCode::Sqlite(code);
    if is_disk_full(code) {
        StoreError::StorageFull(err)
    } else if is_transient(code) {
        StoreError::Unavailable(err)
    } else {
        StoreError::Other(err)
    }
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
    /// SQLite (`sqlite://…`): one process owns the database.
    Sqlite,
    /// Postgres (`postgres://…` or `postgresql://…`): several Herald nodes may share it.
    Postgres,
}

/// Everything Herald reads and writes: every role, and what concerns the store as a whole.
/// `Arc<dyn Store>` is what the server holds; a part that needs one role only takes that role
/// (the delivery worker holds an `Arc<dyn QueueStore>`). See the crate documentation.
#[async_trait]
pub trait Store:
    QueueStore
    + LogStore
    + AccessStore
    + ResourceStore
    + MessageStore
    + InboxStore
    + DeviceStore
    + BackgroundTaskStore
    + PollStore
    + Send
    + Sync
    + 'static
{
    /// Answers when the database can serve a query.
    async fn ping(&self) -> Result<()>;

    /// Closes the connection pools, waiting for checked-out connections.
    async fn close(&self);

    /// The use of the connection pools right now.
    fn pool_stats(&self) -> Vec<PoolStats>;

    /// Passes every sealed value (endpoint secrets, previous secrets and headers, applications'
    /// GraphQL API headers, inbox verification secrets, remembered idempotent responses) through
    /// `reseal`, in one transaction, storing what it returns (`None`: leave the value). Returns
    /// how many values changed. Used to rotate the encryption key; it spans every role's rows,
    /// so it belongs to none of them.
    async fn reseal_all(&self, reseal: &Reseal<'_>) -> Result<u64>;
}

/// The backend a database URL names, if any.
pub fn backend_of(url: &str) -> Option<Backend> {
    match url.split_once(':')?.0 {
        "sqlite" => Some(Backend::Sqlite),
        "postgres" | "postgresql" => Some(Backend::Postgres),
        _ => None,
    }
}

/// How a node uses a Postgres database (SQLite has one writer connection and no server to
/// time statements out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// Connections per node, besides the one that listens for wake-ups.
    pub pool_size: u32,
    /// Postgres cancels a statement of this node running longer (`statement_timeout`); `None`
    /// for no limit. Migrations run without it.
    pub statement_timeout: Option<std::time::Duration>,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            statement_timeout: None,
        }
    }
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`) and brings its schema up to
/// date.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    connect_with(url, &DatabaseOptions::default()).await
}

/// [`connect`] with the Postgres pool's options.
pub async fn connect_with(
    url: &str,
    options: &DatabaseOptions,
) -> Result<std::sync::Arc<dyn Store>> {
    match backend_of(url) {
        Some(Backend::Sqlite) => Ok(std::sync::Arc::new(SqliteStore::open(url).await?)),
        Some(Backend::Postgres) => Ok(std::sync::Arc::new(
            PostgresStore::open_with(url, options).await?,
        )),
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
