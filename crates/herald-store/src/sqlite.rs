//! The SQLite store: Herald's default, embedded backend.
//!
//! One file in the data directory, in WAL mode so that readers never block the writer. All
//! writes share a single connection: SQLite admits one writer at a time anyway, and queueing
//! writers in the pool is fairer and cheaper than letting several connections spin on
//! `SQLITE_BUSY`. `synchronous = FULL` makes every acknowledged commit survive a power cut.
//!
//! With one writer, every commit's disk flush is on the path of every other write, so the
//! flushes are what bounds throughput. Two things keep them few:
//!
//! - **Group commit of publishes.** Publishes queue for a committer task, which stores
//!   whatever is waiting in one transaction, with a few multi-row statements for the whole
//!   batch, and answers each only after the commit: one flush for many publishes, and still
//!   no acknowledgement before its message and tasks are on disk. If the batch fails on a
//!   publish's own error (a duplicate `eventId`, say), it is stored again one publish per
//!   savepoint, so that one bad publish fails alone; if the database fails, the batch does.
//! - **Lease bookkeeping without a flush** ([`BOOKKEEPING`]). Claims, releases and lease
//!   renewals commit with `synchronous = NORMAL`: a power cut may undo the latest of them,
//!   which only puts tasks back in the queue (a duplicate delivery at most, as after any
//!   crash). The next `FULL` commit flushes them with itself, since the WAL is one file
//!   written in order.
//!
//! Failures are where a store earns its keep: a full disk, an I/O error, SQLite rolling a
//! transaction back by itself. Every write transaction is a [`WriteTx`], which trusts only what
//! SQLite answers to its own `BEGIN`, `SAVEPOINT`, `RELEASE` and `COMMIT`, and closes the
//! connection of any transaction that did not end cleanly (the migrations at start are the one
//! use of sqlx's own transactions on the writer: if they fail, Herald does not start). A publish is answered `Ok` only
//! when the `COMMIT` holding it succeeded; a full disk is [`StoreError::StorageFull`]; and
//! once space returns the next transaction, on a fresh connection, simply works.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{ApiKeyId, AppId, EndpointId, MessageId};
use herald_core::model::{
    ApiKey, Application, Endpoint, EventType, KeyKind, Message, SealedEndpointSecrets,
};
use sqlx::Pool;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{mpsc, oneshot};

use crate::dialect::Dialect;
use crate::{IdempotencyCompletion, Result, Store, StoreError};

type Db = sqlx::Sqlite;
type SqlStore = SqliteStore;

/// SQLite's `synchronous` setting, as a literal for the statements that restore it.
macro_rules! synchronous {
    () => {
        "FULL"
    };
}

/// SQLite's `synchronous` setting: `FULL` flushes the WAL to disk (fsync) before a commit
/// returns, so an acknowledged publish survives a power cut.
pub const SQLITE_SYNCHRONOUS: &str = synchronous!();

/// Readers: enough for concurrent API reads and the delivery workers on two cores.
const READ_CONNECTIONS: u32 = 8;

/// Publishes per group commit, at most.
const PUBLISH_BATCH: usize = 128;

/// The SQLite [`Store`](crate::Store): one database file used by one Herald process, with a
/// single writer connection, a pool of readers and group commit of publishes. Open it with
/// [`SqliteStore::open`].
pub struct SqliteStore {
    writer: Pool<Db>,
    reader: Pool<Db>,
    /// The committer's queue (see the module's documentation).
    publishes: mpsc::Sender<Publish>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/herald.db`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, SqlitePoolOptions::new()).await
    }

    /// `open`, with the writer's pool built from `writer` (tests hook every writer connection
    /// this way).
    async fn open_with(url: &str, writer: SqlitePoolOptions) -> Result<Self> {
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
        make_private(options.get_filename()).map_err(|e| StoreError::Unavailable(e.into()))?;
        // No health check before handing a connection out: each would be one more round trip
        // to the connection's thread, and a local file does not drop connections.
        let writer = writer
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
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
        let (publishes, queued) = mpsc::channel(4 * PUBLISH_BATCH);
        tokio::spawn(commit_publishes(writer.clone(), queued));
        Ok(Self {
            writer,
            reader,
            publishes,
        })
    }

    /// Stores a message and, in the same transaction, one delivery task per endpoint it goes
    /// to (the endpoints routing selects, or only `only`: an example sent to one endpoint), and
    /// the answer of its `Idempotency-Key` if it has one. Returns once that transaction, a
    /// group commit, is on disk.
    async fn insert_message(
        &self,
        msg: &Message,
        only: Option<&EndpointId>,
        completes: Option<&IdempotencyCompletion>,
    ) -> Result<Vec<EndpointId>> {
        let (done, committed) = oneshot::channel();
        let publish = Publish {
            msg: msg.clone(),
            only: only.cloned(),
            completes: completes.cloned(),
            done,
        };
        let gone = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.publishes.send(publish).await.map_err(|_| gone())?;
        committed.await.map_err(|_| gone())?
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

/// A publish waiting for the committer.
struct Publish {
    msg: Message,
    only: Option<EndpointId>,
    completes: Option<IdempotencyCompletion>,
    done: oneshot::Sender<Result<Vec<EndpointId>>>,
}

impl Publish {
    fn as_new(&self) -> NewMessage<'_> {
        NewMessage {
            msg: &self.msg,
            only: self.only.as_ref(),
            completes: self.completes.as_ref(),
        }
    }
}

/// The committer: stores what is waiting in one transaction, again and again, until the store
/// is dropped. A publish whose caller has gone is still committed (as it would be had the
/// caller gone during its own transaction's commit).
async fn commit_publishes(writer: Pool<Db>, mut queued: mpsc::Receiver<Publish>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        match commit_batch(&writer, &batch).await {
            Ok(outcomes) => {
                for (publish, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = publish.done.send(outcome);
                }
            }
            Err(e) => {
                for publish in batch.drain(..) {
                    let _ = publish.done.send(Err(e.for_another_waiter()));
                }
            }
        }
    }
}

/// Stores a batch of publishes: the outcome of each, or the error that stored none of them.
/// A publish is `Ok` only if the `COMMIT` of the transaction holding it succeeded.
async fn commit_batch(
    writer: &Pool<Db>,
    batch: &[Publish],
) -> Result<Vec<Result<Vec<EndpointId>>>> {
    let all: Vec<NewMessage<'_>> = batch.iter().map(Publish::as_new).collect();
    // All together first: a few statements for the whole batch.
    let mut tx = WriteTx::start(writer, DURABLE).await?;
    match insert_messages_in(tx.conn(), &all).await {
        Ok(matched) => {
            tx.commit().await?;
            return Ok(matched.into_iter().map(Ok).collect());
        }
        // The database failed, not a publish: nothing of the batch is stored (dropping the
        // transaction closes its connection, rolling back whatever SQLite still had open).
        Err(e) if e.is_transient() => return Err(e),
        // A publish of its own (a duplicate `eventId`, say), when it is alone.
        Err(e) if batch.len() == 1 => {
            tx.rollback().await;
            return Ok(vec![Err(e)]);
        }
        // One of them fails on its own: store them one by one, each with its outcome.
        Err(_) => tx.rollback().await,
    }
    let mut tx = WriteTx::start(writer, DURABLE).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for publish in &all {
        tx.savepoint().await?;
        match insert_messages_in(tx.conn(), std::slice::from_ref(publish)).await {
            Ok(mut matched) => {
                tx.release_savepoint().await?;
                outcomes.push(Ok(matched.pop().unwrap_or_default()));
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                // Only a savepoint that is still there proves that the rest of the
                // transaction is. If SQLite rolled it all back, the batch fails as the
                // database's failure: this publish's own error is not the others'.
                if let Err(lost) = tx.rollback_to_savepoint().await {
                    return Err(lost.into_database_failure());
                }
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// How a [`WriteTx`] begins and ends.
struct TxMode {
    begin: &'static str,
    commit: &'static str,
    rollback: &'static str,
}

/// Durable: the commit is on disk when it returns (`synchronous = FULL`).
const DURABLE: TxMode = TxMode {
    begin: "BEGIN IMMEDIATE",
    commit: "COMMIT",
    rollback: "ROLLBACK",
};

/// Lease bookkeeping (claims, releases, renewals): committed without waiting for the disk
/// (`synchronous = NORMAL`, see the module's documentation), then back to `FULL`. The pragma
/// goes before `BEGIN` since SQLite refuses to change it inside a transaction; one round trip
/// to the connection's thread for both.
const BOOKKEEPING: TxMode = TxMode {
    begin: "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
    commit: concat!("COMMIT; PRAGMA synchronous = ", synchronous!()),
    rollback: concat!("ROLLBACK; PRAGMA synchronous = ", synchronous!()),
};

/// A write transaction on the writer connection, which knows only what SQLite answered.
///
/// sqlx's own transactions count their nesting on the client and turn a `begin` inside a
/// transaction into a `SAVEPOINT`. SQLite may roll a whole transaction back by itself when a
/// statement fails (always on `SQLITE_IOERR` and interrupts, on `SQLITE_FULL` and
/// `SQLITE_NOMEM` unless only the statement needs undoing): the count is then wrong, the
/// connection's next "transaction" is a savepoint that nobody commits, and its "commit"
/// releases that savepoint and reports success. That is how a full
/// disk once had publishes answered 202 and lost. So the writer's transactions are plain
/// statements issued here, every one checked, and the connection of a transaction that does
/// not end in a successful `COMMIT` or `ROLLBACK` is closed instead of returned to the pool:
/// closing rolls back whatever SQLite still had open, and the pool opens a fresh connection
/// (in autocommit mode, `synchronous = FULL`). No write ever runs on a connection that a
/// failure left in an unknown state.
struct WriteTx {
    /// Held until the transaction ends; still here when dropped means it did not end well.
    conn: Option<PoolConnection<Db>>,
    mode: TxMode,
}

impl WriteTx {
    /// A durable write transaction.
    async fn begin(store: &SqliteStore) -> Result<Self> {
        Self::start(&store.writer, DURABLE).await
    }

    /// A transaction of lease bookkeeping, committed without waiting for the disk.
    async fn bookkeeping(store: &SqliteStore) -> Result<Self> {
        Self::start(&store.writer, BOOKKEEPING).await
    }

    async fn start(writer: &Pool<Db>, mode: TxMode) -> Result<Self> {
        let mut tx = Self {
            conn: Some(writer.acquire().await?),
            mode,
        };
        sqlx::raw_sql(tx.mode.begin).execute(tx.conn()).await?;
        Ok(tx)
    }

    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.conn
            .as_deref_mut()
            .expect("the connection is held until the transaction ends")
    }

    /// Commits; only `Ok` means committed (and, when durable, on disk).
    async fn commit(mut self) -> Result<()> {
        sqlx::raw_sql(self.mode.commit).execute(self.conn()).await?;
        // Back to the pool as it came.
        self.conn.take();
        Ok(())
    }

    /// Undoes everything. If even that fails, the connection is closed, which undoes it too.
    async fn rollback(mut self) {
        if sqlx::raw_sql(self.mode.rollback)
            .execute(self.conn())
            .await
            .is_ok()
        {
            self.conn.take();
        }
    }

    /// Starts the savepoint of one publish in a batch.
    async fn savepoint(&mut self) -> Result<()> {
        sqlx::raw_sql("SAVEPOINT publish")
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Keeps what was written since `savepoint`. Fails if SQLite no longer has the savepoint
    /// (it rolled the transaction back).
    async fn release_savepoint(&mut self) -> Result<()> {
        sqlx::raw_sql("RELEASE publish")
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Undoes what was written since `savepoint`, the transaction going on. Fails if SQLite no
    /// longer has the savepoint (it rolled the transaction back).
    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        sqlx::raw_sql("ROLLBACK TO publish; RELEASE publish")
            .execute(self.conn())
            .await?;
        Ok(())
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

/// SQLite's SQL: one writer at a time, so no row locks, no queue locks, and claims that
/// select then update without racing another claim.
impl Dialect for SqliteStore {
    /// The single writer connection serialises every write transaction.
    const LOCKS_ROWS: bool = false;

    /// SQLite has one writer at a time, so the select-then-update cannot race another claim.
    const CLAIM_ENDPOINTS_SQL: &'static str =
        "UPDATE endpoint_queues SET owner = $1, lease_until = $2
     WHERE endpoint_id IN (
       SELECT endpoint_id FROM endpoint_queues
       WHERE next_due_at <= $3 AND (owner IS NULL OR lease_until < $3)
       ORDER BY next_due_at LIMIT $4)
     RETURNING endpoint_id";

    const CLAIM_TASKS_SQL: &'static str = concat!(
        "UPDATE deliveries SET status = ",
        status!(SENDING),
        ", next_attempt_at = $3, lease_token = $4
     WHERE id IN (
       SELECT id FROM deliveries
       WHERE endpoint_id = $1 AND status IN (",
        status!(PENDING),
        ", ",
        status!(SENDING),
        ") AND next_attempt_at <= $2
       ORDER BY next_attempt_at, id LIMIT $5)
     RETURNING id"
    );

    const CLAIM_FIFO_TASK_SQL: &'static str = concat!(
        "UPDATE deliveries SET status = ",
        status!(SENDING),
        ", next_attempt_at = $3, lease_token = $4
     WHERE id = (
       SELECT id FROM deliveries WHERE endpoint_id = $1 AND status IN (",
        status!(PENDING),
        ", ",
        status!(SENDING),
        ") ORDER BY id LIMIT 1)
       AND next_attempt_at <= $2
     RETURNING id"
    );

    const LOCK_QUEUE_SHARED_SQL: Option<&'static str> = None;
    const LOCK_QUEUE_SQL: Option<&'static str> = None;

    /// One writer at a time: an upsert locks nothing another transaction could want.
    const QUEUE_UPSERT: bool = true;

    const FIND_SUBSTRING_FN: &'static str = "instr";
}

/// One process per database (a lock file enforces it): the publishing process wakes its own
/// worker, so no wake-up crosses processes.
impl SqliteStore {
    fn wakeups(&self) -> Option<crate::Wakeups> {
        None
    }

    fn announce(&self, _endpoints: &[&str]) {}
}

include!("sql/common.rs");

#[cfg(test)]
mod faults;

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer_level(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.writer)
            .await
            .unwrap()
    }

    /// Bookkeeping commits unflushed, and whatever happens to it (committed, or dropped half
    /// way by an error or a cancelled caller), the writer that durable writes use next is back
    /// to `FULL` (2).
    #[tokio::test]
    async fn bookkeeping_never_leaves_the_writer_unflushed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        assert_eq!(writer_level(&store).await, 2);

        let mut tx = WriteTx::bookkeeping(&store).await.unwrap();
        let inside: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(tx.conn())
            .await
            .unwrap();
        assert_eq!(inside, 1, "bookkeeping commits with synchronous = NORMAL");
        tx.commit().await.unwrap();
        assert_eq!(writer_level(&store).await, 2);

        let tx = WriteTx::bookkeeping(&store).await.unwrap();
        drop(tx);
        assert_eq!(writer_level(&store).await, 2);
        store.close().await;
    }

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
