//! The SQLite store: Herald's default, embedded backend.
//!
//! One file in the data directory, in WAL mode so that readers never block the writer. All
//! writes share a single connection: SQLite admits one writer at a time anyway, and queueing
//! writers in the pool is fairer and cheaper than letting several connections spin on
//! `SQLITE_BUSY`. `synchronous = FULL` makes every acknowledged commit survive a power cut.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{ApiKeyId, AppId, EndpointId, MessageId};
use herald_core::model::{
    ApiKey, Application, Endpoint, EventType, KeyKind, Message, SealedEndpointSecrets,
};
use sqlx::Pool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Backend, Result, Store, StoreError};

type Db = sqlx::Sqlite;
type SqlStore = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;

/// SQLite's `synchronous` setting: `FULL` flushes the WAL to disk (fsync) before a commit
/// returns, so an acknowledged publish survives a power cut.
pub const SQLITE_SYNCHRONOUS: &str = "FULL";

/// Readers: enough for concurrent API reads and the delivery workers on two cores.
const READ_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    writer: Pool<Db>,
    reader: Pool<Db>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/herald.db`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Other)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(
                SqliteSynchronous::from_str(SQLITE_SYNCHRONOUS).map_err(StoreError::Other)?,
            )
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Unavailable)?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Self { writer, reader })
    }
}

/// Takes due endpoints without a live owner. SQLite has one writer at a time, so the
/// select-then-update cannot race another claim.
const CLAIM_ENDPOINTS_SQL: &str = "UPDATE endpoint_queues SET owner = $1, lease_until = $2
     WHERE endpoint_id IN (
       SELECT endpoint_id FROM endpoint_queues
       WHERE next_due_at <= $3 AND (owner IS NULL OR lease_until < $3)
       ORDER BY next_due_at LIMIT $4)
     RETURNING endpoint_id";

/// Marks up to $5 due tasks of an endpoint as in flight until $3 (the lease), for node $4.
const CLAIM_TASKS_SQL: &str =
    "UPDATE deliveries SET status = 3, next_attempt_at = $3, lease_token = $4
     WHERE id IN (
       SELECT id FROM deliveries
       WHERE endpoint_id = $1 AND status IN (1, 3) AND next_attempt_at <= $2
       ORDER BY next_attempt_at, id LIMIT $5)
     RETURNING id";

/// FIFO: only the oldest unfinished task, and only when it is due.
const CLAIM_FIFO_TASK_SQL: &str =
    "UPDATE deliveries SET status = 3, next_attempt_at = $3, lease_token = $4
     WHERE id = (
       SELECT id FROM deliveries WHERE endpoint_id = $1 AND status IN (1, 3) ORDER BY id LIMIT 1)
       AND next_attempt_at <= $2
     RETURNING id";

/// A device row for a status report or lifecycle fact. SQLite's single writer already
/// serializes the transaction; Postgres adds `FOR UPDATE`.
const LOCK_DEVICE_SQL: &str = "SELECT history_seq FROM devices WHERE app_id = $1 AND id = $2";
/// No locks: the single writer connection serialises every write transaction.
const FOR_UPDATE: &str = "";
const FOR_SHARE: &str = "";
const LOCK_QUEUE_SHARED_SQL: Option<&str> = None;
const LOCK_QUEUE_SQL: Option<&str> = None;

const FIND_SUBSTRING_FN: &str = "instr";

/// One process per database (a lock file enforces it): the publishing process wakes its own
/// worker, so no wake-up crosses processes.
impl SqliteStore {
    fn wakeups(&self) -> Option<crate::Wakeups> {
        None
    }

    fn announce(&self, _endpoints: &[&str]) {}
}

include!("sql/common.rs");
include!("sql/devices.rs");
include!("sql/logs.rs");
