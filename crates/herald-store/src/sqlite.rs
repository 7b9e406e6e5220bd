//! The SQLite store: Herald's default, embedded backend.
//!
//! One file in the data directory, in WAL mode so that readers never block the writer.
//! `synchronous = FULL` makes every acknowledged commit survive a power cut. SQLite admits one
//! writer at a time, so every commit's disk flush is on the path of every other write, and the
//! writes are what bounds throughput. How they stay few and cheap:
//!
//! - **The hot paths run on the writer thread** (`writer.rs`, `jobs.rs`): publishes, task
//!   claims, attempt results, lease renewals and releases are closures run where the write
//!   connection is, and whatever is waiting at the same moment shares one transaction and one
//!   flush. A publish is answered only after the `COMMIT` holding it succeeded.
//! - **Lease bookkeeping without a flush.** A batch of claims, releases and renewals only
//!   commits with `synchronous = NORMAL`: a power cut may undo the latest of them, which only
//!   puts tasks back in the queue (a duplicate delivery at most, as after any crash). The next
//!   `FULL` commit flushes them with itself, since the WAL is one file written in order.
//! - **Everything else writes through sqlx** on a single writer connection, taking the same
//!   turn as the thread ([`writer::WriteTurn`]), so the two never spin on `SQLITE_BUSY`.
//!
//! Failures are where a store earns its keep: a full disk, an I/O error, SQLite rolling a
//! transaction back by itself. Both writers trust only what SQLite answers to their own
//! `BEGIN`, `SAVEPOINT`, `RELEASE` and `COMMIT`, and drop a connection that a failure may have
//! left inside a transaction (the writer thread: `writer.rs`; sqlx: [`WriteTx`]; the
//! migrations at start are the one use of sqlx's own transactions: if they fail, Herald does
//! not start). A full disk is [`StoreError::StorageFull`]; once space returns the next
//! transaction simply works. `sqlite/faults.rs` walks a failure over every step of both.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{ApiKeyId, AppId, EndpointId, MessageId};
use herald_core::model::{
    ApiKey, Application, Endpoint, EventType, KeyKind, Message, SealedEndpointSecrets,
};
use sqlx::Pool;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use crate::dialect::Dialect;
use crate::{IdempotencyCompletion, Result, Store, StoreError};

type Db = sqlx::Sqlite;
type SqlStore = SqliteStore;

/// SQLite's `synchronous` setting: `FULL` flushes the WAL to disk (fsync) before a commit
/// returns, so an acknowledged publish survives a power cut.
pub const SQLITE_SYNCHRONOUS: &str = "FULL";

/// Readers: enough for concurrent API reads and the delivery workers on two cores.
const READ_CONNECTIONS: u32 = 8;

/// Prepared statements each writer connection keeps: every statement of the hot paths.
const STATEMENT_CACHE: usize = 64;

/// Sets up each new write connection of the writer thread (tests inject failures this way).
pub(crate) type WriterHook = Arc<dyn Fn(&rusqlite::Connection) + Send + Sync>;

/// The SQLite [`Store`](crate::Store): one database file used by one Herald process, with a
/// writer thread for the hot paths, a single sqlx writer connection for the rest, and a pool
/// of readers. Open it with [`SqliteStore::open`].
pub struct SqliteStore {
    /// sqlx's writer: everything but the hot paths.
    writer: Pool<Db>,
    reader: Pool<Db>,
    /// The hot paths' writer (see the module's documentation).
    thread: writer::Writer,
    /// Taken by every write transaction of either writer.
    turn: writer::WriteTurn,
    /// Bumped after every write that may change an endpoint, its secrets or its application
    /// (see `QueueStore::dispatch_version`): every sqlx write, whatever it touched, and the
    /// results that disable endpoints. One process writes this database, so it sees them all.
    resources: Arc<std::sync::atomic::AtomicU64>,
    /// Applications as last read, under `resources` (see `cache.rs`).
    apps: crate::cache::VersionedCache<Application>,
    /// Serials this node holds and has not given out (`serial.rs`).
    serials: crate::serial::SerialBlocks,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/herald.db`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, SqlitePoolOptions::new(), None).await
    }

    /// `open`, with sqlx's writer pool built from `writer` and `hook` run on every connection
    /// of the writer thread (tests hook every writer connection this way).
    async fn open_with(
        url: &str,
        writer: SqlitePoolOptions,
        hook: Option<WriterHook>,
    ) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Other)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(
                SqliteSynchronous::from_str(SQLITE_SYNCHRONOUS).map_err(StoreError::Other)?,
            )
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let path = options.get_filename().to_path_buf();
        make_private(&path).map_err(|e| StoreError::Unavailable(e.into()))?;
        // No health check before handing a connection out: each would be one more round trip
        // to the connection's thread, and a local file does not drop connections.
        // A new file is created with incremental auto-vacuum, before its first table (the
        // setting is ignored on an existing file: migration 0025 converts those).
        let writer = writer
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone().auto_vacuum(SqliteAutoVacuum::Incremental))
            .await
            .map_err(StoreError::Unavailable)?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::Unavailable)?;
        let turn = writer::WriteTurn::default();
        let open = Box::new(move || open_writer(&path, hook.as_ref()));
        let thread = writer::Writer::start(open, turn.clone())?;
        Ok(Self {
            writer,
            reader,
            thread,
            turn,
            resources: Arc::default(),
            apps: crate::cache::VersionedCache::default(),
            serials: crate::serial::SerialBlocks::default(),
        })
    }

    /// Stores a message and, in the same transaction, one delivery task per endpoint it goes
    /// to (the endpoints routing selects, or only `only`: an example sent to one endpoint), and
    /// the answer of its `Idempotency-Key` if it has one. Returns once that transaction, shared
    /// with whatever else the writer thread had waiting, is on disk.
    async fn insert_message(
        &self,
        msg: &Message,
        only: Option<&EndpointId>,
        completes: Option<&IdempotencyCompletion>,
    ) -> Result<Vec<EndpointId>> {
        let (msg, only, completes) = (msg.clone(), only.cloned(), completes.cloned());
        self.thread
            .run(Durability::Durable, move |conn| {
                jobs::insert_message(conn, &msg, only.as_ref(), completes.as_ref())
            })
            .await
    }

    /// sqlx's writer connection for one statement outside a transaction, with the turn.
    async fn write_conn(&self) -> Result<WriteConn> {
        let turn = self.turn.take().await;
        Ok(WriteConn {
            conn: self.writer.acquire().await?,
            _turn: turn,
            _written: Written(self.resources.clone()),
        })
    }

    fn resource_version(&self) -> Option<u64> {
        Some(self.resources.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// This process makes every write, and bumps the version as each ends: exact.
    fn exact_resource_version(&self) -> Option<u64> {
        self.resource_version()
    }

    /// Stops both writers.
    async fn close_writers(&self) {
        self.thread.stop().await;
        self.writer.close().await;
    }
}

/// How long a write waits for the database's lock held by another process (a backup, the
/// `sqlite3` shell) before it fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection for the writer thread, set up as sqlx's are.
fn open_writer(
    path: &std::path::Path,
    hook: Option<&WriterHook>,
) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = memory;",
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if let Some(hook) = hook {
        hook(&conn);
    }
    Ok(conn)
}

/// sqlx's writer connection held with the turn (see [`SqliteStore::write_conn`]).
struct WriteConn {
    conn: PoolConnection<Db>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
    /// Dropped last: the version moves once the statement is done.
    _written: Written,
}

/// Bumps the store's resource version when dropped, after the write it guards, whether or not
/// the write succeeded (a failed commit may still have taken effect).
struct Written(Arc<std::sync::atomic::AtomicU64>);

impl Drop for Written {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// Makes the database file and its companions (`-wal`, `-shm`, and Herald's own `.lock`)
/// readable by their owner alone, whatever the directory or the process's umask: they hold
/// every customer's payloads. A missing database file is created with mode 0600 before SQLite
/// opens it, and SQLite gives the `-wal` and `-shm` files it creates the database file's mode;
/// files an older Herald left readable by others are narrowed to 0600.
fn make_private(db: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
            return Ok(());
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let path = std::path::PathBuf::from(path);
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

/// A write transaction on sqlx's writer connection, with the turn, which knows only what SQLite
/// answered.
///
/// sqlx's own transactions count their nesting on the client and turn a `begin` inside a
/// transaction into a `SAVEPOINT`. SQLite may roll a whole transaction back by itself when a
/// statement fails (always on `SQLITE_IOERR` and interrupts, on `SQLITE_FULL` and
/// `SQLITE_NOMEM` unless only the statement needs undoing): the count is then wrong, the
/// connection's next "transaction" is a savepoint that nobody commits, and its "commit"
/// releases that savepoint and reports success. That is how a full disk once had publishes
/// answered 202 and lost. So these transactions are plain statements issued here, every one
/// checked, and the connection of a transaction that does not end in a successful `COMMIT` or
/// `ROLLBACK` is closed instead of returned to the pool: closing rolls back whatever SQLite
/// still had open, and the pool opens a fresh connection. No write ever runs on a connection
/// that a failure left in an unknown state.
struct WriteTx {
    /// Held until the transaction ends; still here when dropped means it did not end well.
    conn: Option<PoolConnection<Db>>,
    /// Released after the connection (fields drop in order).
    _turn: tokio::sync::OwnedMutexGuard<()>,
    _written: Written,
}

impl WriteTx {
    /// A durable write transaction: on disk when `commit` returns.
    async fn begin(store: &SqliteStore) -> Result<Self> {
        let turn = store.turn.take().await;
        let mut tx = Self {
            conn: Some(store.writer.acquire().await?),
            _turn: turn,
            _written: Written(store.resources.clone()),
        };
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(tx.conn()).await?;
        Ok(tx)
    }

    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.conn
            .as_deref_mut()
            .expect("the connection is held until the transaction ends")
    }

    /// Commits; only `Ok` means committed (and on disk).
    async fn commit(mut self) -> Result<()> {
        sqlx::raw_sql("COMMIT").execute(self.conn()).await?;
        // Back to the pool as it came.
        self.conn.take();
        Ok(())
    }

    /// Undoes everything. If even that fails, the connection is closed, which undoes it too.
    async fn rollback(mut self) {
        if sqlx::raw_sql("ROLLBACK").execute(self.conn()).await.is_ok() {
            self.conn.take();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        self.conn
            .as_deref()
            .expect("the connection is held until the transaction ends")
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn()
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            conn.close_on_drop();
        }
    }
}

/// SQLite's SQL: one writer at a time, so no row locks and no queue locks.
impl Dialect for SqliteStore {
    /// The single writer connection serialises every write transaction.
    const LOCKS_ROWS: bool = false;

    const LOCK_QUEUE_SHARED_SQL: Option<&'static str> = None;

    /// One writer at a time: an upsert locks nothing another transaction could want.
    const QUEUE_UPSERT: bool = true;

    const FIND_SUBSTRING_FN: &'static str = "instr";

    /// One writer: entries commit in `seq` order.
    const POLL_HORIZON_SQL: &'static str = "";
}

/// One process per database (a lock file enforces it): the publishing process wakes its own
/// worker, so no wake-up crosses processes.
impl SqliteStore {
    fn wakeups(&self) -> Option<crate::Wakeups> {
        None
    }

    fn announce(&self, _endpoints: &[&str]) {}
}

/// Space: the file grows as rows are written and, with `auto_vacuum = INCREMENTAL` (new files
/// are created so, migration 0025 converts older ones), shrinks when the retention gives its
/// free pages back, a bounded number per call.
impl SqliteStore {
    fn engine_name(&self) -> &'static str {
        "sqlite"
    }

    /// `LogStore::reclaim_space`: one `PRAGMA incremental_vacuum(pages)` on sqlx's writer,
    /// which moves pages from the end of the file into free ones and truncates the file (at the
    /// next WAL checkpoint). Returns the free pages it gave back.
    async fn reclaim_free_pages(&self, pages: u64) -> Result<u64> {
        let pages = i64::try_from(pages).unwrap_or(i64::MAX);
        if pages == 0 {
            return Ok(0);
        }
        let mut conn = self.write_conn().await?;
        let before: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut *conn)
            .await?;
        // An integer: nothing to bind (and a pragma's argument cannot be bound).
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA incremental_vacuum({pages})"
        )))
        .execute(&mut *conn)
        .await?;
        let after: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut *conn)
            .await?;
        Ok(u64::try_from(before - after).unwrap_or(0))
    }

    /// The file's pages times the page size, and the free pages among them, in bytes.
    async fn database_bytes(&self) -> Result<(u64, Option<u64>)> {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.reader)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.reader)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.reader)
            .await?;
        let bytes = |n: i64| u64::try_from(n.saturating_mul(page_size)).unwrap_or(0);
        Ok((bytes(pages), Some(bytes(free))))
    }

    /// Bytes of `table` and its indexes, from the `dbstat` virtual table; `None` when this
    /// SQLite was built without it.
    async fn table_bytes(&self, table: &str) -> Result<Option<u64>> {
        let found: std::result::Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT SUM(pgsize) FROM dbstat
             WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = $1)",
        )
        .bind(table)
        .fetch_one(&self.reader)
        .await;
        match found {
            Ok(bytes) => Ok(Some(u64::try_from(bytes.unwrap_or(0)).unwrap_or(0))),
            Err(sqlx::Error::Database(e)) if e.message().contains("dbstat") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

include!("sql/common.rs");

mod jobs;
mod writer;

use writer::Durability;

/// The queue's hot paths, each a job for the writer thread (see the module's documentation).
mod queue_engine {
    use super::*;

    pub(super) async fn claim_due_endpoints(
        store: &SqliteStore,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<EndpointId>> {
        let node = node.to_owned();
        store
            .thread
            .run(Durability::Bookkeeping, move |conn| {
                jobs::claim_due_endpoints(conn, &node, now, lease_until, limit)
            })
            .await
    }

    pub(super) async fn renew_endpoint_leases(
        store: &SqliteStore,
        node: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<()> {
        let node = node.to_owned();
        store
            .thread
            .run(Durability::Bookkeeping, move |conn| {
                jobs::renew_endpoint_leases(conn, &node, lease_until)
            })
            .await
    }

    pub(super) async fn claim_tasks_of(
        store: &SqliteStore,
        node: &str,
        now: DateTime<Utc>,
        claims: &[TaskClaim],
    ) -> Result<Vec<(Vec<Task>, i64)>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let (node, claims) = (node.to_owned(), claims.to_vec());
        store
            .thread
            .run(Durability::Bookkeeping, move |conn| {
                jobs::claim_tasks_of(conn, &node, now, &claims)
            })
            .await
    }

    pub(super) async fn release_endpoint(
        store: &SqliteStore,
        node: &str,
        endpoint: &EndpointId,
        version: i64,
        fifo: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (node, endpoint) = (node.to_owned(), endpoint.clone());
        store
            .thread
            .run(Durability::Bookkeeping, move |conn| {
                jobs::release_endpoint(conn, &node, endpoint.as_str(), version, fifo, now)
            })
            .await
    }

    pub(super) async fn complete_attempts(
        store: &SqliteStore,
        node: &str,
        records: &[AttemptRecord],
        disable_after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<CompletionEffects> {
        let (node, records) = (node.to_owned(), records.to_vec());
        let effects = store
            .thread
            .run(Durability::Durable, move |conn| {
                jobs::complete_attempts(conn, &node, &records, disable_after, now)
            })
            .await;
        // Disabled endpoints changed: dispatchers must see it. (A failed batch is counted too:
        // a commit can fail after it took effect.)
        if effects.as_ref().map_or(true, |e| !e.disabled.is_empty()) {
            store
                .resources
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        effects
    }

    pub(super) async fn abandon_endpoint(
        store: &SqliteStore,
        node: &str,
        endpoint: &EndpointId,
    ) -> Result<()> {
        let (node, endpoint) = (node.to_owned(), endpoint.clone());
        store
            .thread
            .run(Durability::Bookkeeping, move |conn| {
                jobs::abandon_endpoint(conn, &node, endpoint.as_str())
            })
            .await
    }
}

#[cfg(test)]
mod faults;

#[cfg(test)]
mod tests {
    use super::*;

    /// An application's inbox made before names were per application keeps its name across
    /// the installation, so that `/in/{name}/…` still finds it; renamed, it gives that name up
    /// (the old address stops working and the name is free for others).
    #[tokio::test]
    async fn renaming_an_older_inbox_frees_its_installation_wide_name() {
        use crate::InboxStore;
        use crate::conformance::{inbox::sample_inbox, sample_app};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let app = sample_app(None);
        store.create_app(&app).await.unwrap();
        let mut inbox = sample_inbox(Some(&app.id));
        inbox.name = "older".into();
        store.create_inbox(&inbox).await.unwrap();
        // What migration 0011 leaves for an inbox it found.
        sqlx::query("UPDATE inboxes SET name = local_name WHERE id = $1")
            .bind(inbox.id.as_str())
            .execute(&store.writer)
            .await
            .unwrap();
        assert_eq!(store.get_inbox("older").await.unwrap(), Some(inbox.clone()));

        // Saved under the same name, it keeps the old address.
        inbox.description = "still older".into();
        store.update_inbox(&inbox).await.unwrap();
        assert_eq!(store.get_inbox("older").await.unwrap(), Some(inbox.clone()));

        inbox.name = "renamed".into();
        store.update_inbox(&inbox).await.unwrap();
        assert_eq!(store.get_inbox("older").await.unwrap(), None);
        assert!(store.find_inboxes_named("older").await.unwrap().is_empty());
        assert_eq!(
            store.get_inbox_of(&app.id, "renamed").await.unwrap(),
            Some(inbox)
        );
        let mut other = sample_inbox(None);
        other.name = "older".into();
        store.create_inbox(&other).await.unwrap();
        store.close().await;
    }
}
