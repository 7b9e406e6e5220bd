//! The Postgres store: any number of Herald nodes on one database.
//!
//! The SQL is the portable body shared with SQLite (`sql/common.rs` and the role files it
//! includes); this module adds what only Postgres does, its [`Dialect`] among it:
//!
//! - **Claims that skip each other.** Several nodes sweep for due endpoints and claim tasks at
//!   the same moment. The claim queries lock the rows they take `FOR UPDATE SKIP LOCKED`, so a
//!   row another node is taking is passed over instead of waited for or taken twice, and a row
//!   changed since the statement began is re-checked before it is taken.
//! - **Wake-ups across nodes.** Once a transaction that makes work due has committed, the
//!   store announces the endpoints concerned with `pg_notify`, and Postgres passes that to
//!   every node listening ([`crate::QueueStore::subscribe_wakeups`]: one connection per worker node, which
//!   re-establishes itself after an outage). The announcement is not part of the publish's own
//!   transaction on purpose: Postgres serialises the commits of every transaction that
//!   notifies (a lock on the notification queue, held through the WAL flush), which would cap
//!   publishes cluster-wide at one disk flush each. A notifier task per node instead batches
//!   what its publishes announce into small transactions that do not wait for the flush. A
//!   node that dies between a commit and its announcement loses only the wake-up: every node
//!   sweeps for due work four times a second anyway.
//!
//! There is one connection pool for reads and writes: Postgres has no single-writer limit, and
//! rows are locked where transactions would otherwise race (`Dialect::LOCKS_ROWS`).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{ApiKeyId, AppId, EndpointId, MessageId};
use herald_core::model::{
    ApiKey, Application, Endpoint, EventType, KeyKind, Message, SealedEndpointSecrets,
};
use sqlx::Pool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::mpsc;

use crate::dialect::Dialect;
use crate::{IdempotencyCompletion, Result, Store, StoreError, WakeupEvent};

type Db = sqlx::Postgres;
type SqlStore = PostgresStore;

/// How long a query waits for a connection before the store reports the database unavailable
/// (and a publish answers 503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The notification channel of wake-ups; the payload is a comma-separated list of endpoint ids.
pub const WAKEUP_CHANNEL: &str = "herald_wakeup";

/// Announcements waiting for the notifier; past this the oldest wait and new ones are dropped
/// (the sweeps find their work).
const ANNOUNCE_QUEUE: usize = 4096;

/// Endpoint ids per notification: well under Postgres's 8,000-byte payload limit.
const WAKEUP_CHUNK: usize = 200;

/// The Postgres [`Store`](crate::Store): one database shared by any number of Herald nodes,
/// which skip each other's claimed rows and wake each other with `NOTIFY` on the
/// `herald_wakeup` channel. Open it with [`PostgresStore::open`].
pub struct PostgresStore {
    writer: Pool<Db>,
    /// The same pool as `writer`: the split exists for SQLite.
    reader: Pool<Db>,
    options: PgConnectOptions,
    /// Endpoints that got work, for the notifier to announce.
    announcements: mpsc::Sender<Vec<String>>,
    /// The publish committer's queue (`postgres/publishes.rs`).
    publishes: mpsc::Sender<publishes::Publish>,
    /// Changes to endpoints and applications heard from the database.
    changes: Arc<Changes>,
    /// Never filled: other nodes write too (see `exact_resource_version`).
    apps: crate::cache::VersionedCache<Application>,
    /// Serials this node holds and has not given out (`serial.rs`).
    serials: crate::serial::SerialBlocks,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// applies pending migrations. Nodes starting together migrate one at a time (the migrator
    /// holds an advisory lock).
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &crate::DatabaseOptions::default()).await
    }

    /// [`PostgresStore::open`] with the pool's size and statement timeout. Migrations run on a
    /// connection of their own, without the timeout (building an index may take long).
    pub async fn open_with(url: &str, database: &crate::DatabaseOptions) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::Other)?
            .application_name("herald");
        {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
                .await
                .map_err(StoreError::from)?;
            sqlx::migrate!("./migrations/postgres")
                .run(&mut conn)
                .await?;
            let _ = sqlx::Connection::close(conn).await;
        }
        let options = match database.statement_timeout {
            Some(timeout) => {
                let ms = timeout.as_millis().to_string();
                options.options([("statement_timeout", ms.as_str())])
            }
            None => options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(database.pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::from)?;
        let (announcements, queued) = mpsc::channel(ANNOUNCE_QUEUE);
        tokio::spawn(notify(pool.clone(), queued));
        let publishes = publishes::spawn(pool.clone(), announcements.clone());
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            options,
            announcements,
            publishes,
            changes: Arc::default(),
            apps: crate::cache::VersionedCache::default(),
            serials: crate::serial::SerialBlocks::default(),
        })
    }

    /// Tells every listening node that `endpoints` have work due (after the commit that made
    /// it so). Never waits: when the notifier is behind, the sweeps find the work.
    fn announce(&self, endpoints: &[&str]) {
        if !endpoints.is_empty() {
            let ids = endpoints.iter().map(|e| (*e).to_owned()).collect();
            let _ = self.announcements.try_send(ids);
        }
    }

    /// Stores a message and, in the same transaction, one delivery task per endpoint it goes
    /// to (the endpoints routing selects, or only `only`: an example sent to one endpoint), and
    /// the answer of its `Idempotency-Key` if it has one. Returns once that transaction, a
    /// group commit with the publishes waiting at the same moment, has committed.
    async fn insert_message(
        &self,
        msg: &Message,
        only: Option<&EndpointId>,
        completes: Option<&IdempotencyCompletion>,
    ) -> Result<Vec<EndpointId>> {
        let (done, committed) = tokio::sync::oneshot::channel();
        let publish = publishes::Publish {
            msg: msg.clone(),
            only: only.cloned(),
            completes: completes.cloned(),
            done,
        };
        let gone = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.publishes.send(publish).await.map_err(|_| gone())?;
        committed.await.map_err(|_| gone())?
    }

    /// A pooled connection for one statement outside a transaction.
    async fn write_conn(&self) -> Result<sqlx::pool::PoolConnection<Db>> {
        Ok(self.writer.acquire().await?)
    }

    /// The changes this node's wake-up listener has heard (see `Changes`); `None` while no
    /// listener is connected, since changes made by other nodes would then go unseen.
    fn resource_version(&self) -> Option<u64> {
        self.changes.version()
    }

    /// Other nodes' writes are heard only after they commit, so there is no exact version:
    /// `get_app` reads every time.
    fn exact_resource_version(&self) -> Option<u64> {
        None
    }

    async fn close_writers(&self) {
        self.writer.close().await;
    }

    fn wakeups(&self) -> Option<crate::Wakeups> {
        let (tx, rx) = mpsc::channel(1024);
        // Its own pool of one: the listening connection is held for good and must not take a
        // query connection away.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(self.options.clone());
        tokio::spawn(listen(pool, self.writer.clone(), tx, self.changes.clone()));
        Some(rx)
    }
}

/// The notifier: sends what is waiting to be announced in one transaction, again and again,
/// until the store is dropped.
async fn notify(pool: Pool<Db>, mut queued: mpsc::Receiver<Vec<String>>) {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, 256).await > 0 {
        let mut ids: Vec<String> = batch.drain(..).flatten().collect();
        ids.sort_unstable();
        ids.dedup();
        if let Err(e) = send_notifications(&pool, &ids).await {
            tracing::debug!(error = %e, "could not announce new work; the sweeps will find it");
        }
    }
}

async fn send_notifications(pool: &Pool<Db>, ids: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A wake-up needs no durability: not waiting for the WAL flush keeps the notification
    // queue's lock, held until the commit is done, short.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    for chunk in ids.chunks(WAKEUP_CHUNK) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKEUP_CHANNEL)
            .bind(chunk.join(","))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A write transaction. Postgres keeps the transaction's state on the server, which ends a
/// transaction whose `COMMIT` failed and refuses every statement of one that met an error, so
/// sqlx's transaction is sound here: `commit` returns `Ok` only when the server answered the
/// `COMMIT` (a connection lost on the way is an error, the outcome unknown to us), and a
/// transaction dropped without it is rolled back before its connection is used again. One rule
/// keeps it so: no statement's error is ever ignored inside a transaction, since Postgres
/// answers the `COMMIT` of a transaction that met one with a rollback that is not an error.
struct WriteTx {
    tx: sqlx::Transaction<'static, Db>,
}

impl WriteTx {
    /// A durable write transaction.
    async fn begin(store: &PostgresStore) -> Result<Self> {
        Ok(Self {
            tx: store.writer.begin().await?,
        })
    }

    /// A transaction of lease bookkeeping (claims, releases, renewals) that commits without
    /// waiting for the WAL flush: a crash may undo the latest of them, which only puts tasks
    /// back in the queue (a duplicate delivery at most, as after any crash), and a later
    /// durable commit flushes them with itself.
    async fn bookkeeping(store: &PostgresStore) -> Result<Self> {
        let mut tx = Self::begin(store).await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(tx.conn())
            .await?;
        Ok(tx)
    }

    fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// Commits; only `Ok` means committed.
    async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Undoes everything. If the `ROLLBACK` fails, sqlx rolls back before the connection is
    /// used again (or the pool drops a broken one).
    async fn rollback(self) {
        let _ = self.tx.rollback().await;
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::PgConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Forwards wake-up notifications to `tx` until it is dropped or the store's pool is closed.
/// After every (re)connection it sends `Resync`: notifications sent while nobody listened are
/// lost, so the worker looks for due work itself.
async fn listen(
    pool: Pool<Db>,
    store_pool: Pool<Db>,
    tx: mpsc::Sender<WakeupEvent>,
    changes: Arc<Changes>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if tx.is_closed() || store_pool.is_closed() {
            break;
        }
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // Reconnection is ours to do, with a back-off and a resync.
            listener.eager_reconnect(false);
            listener
                .listen_all([WAKEUP_CHANNEL, CHANGED_CHANNEL])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for wake-ups; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = tx.closed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            () = tx.closed() => break,
            () = store_pool.close_event() => break,
        };
        backoff = Duration::from_millis(100);
        // Changes made while nobody listened were not heard: whatever was kept is stale.
        let _listening = changes.listening();
        if tx.send(WakeupEvent::Resync).await.is_err() {
            break;
        }
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = tx.closed() => return pool.close().await,
                () = store_pool.close_event() => return pool.close().await,
            };
            match received {
                Ok(Some(notification)) if notification.channel() == CHANGED_CHANNEL => {
                    changes.bump();
                }
                Ok(Some(notification)) => {
                    let endpoints = notification
                        .payload()
                        .split(',')
                        .filter(|id| !id.is_empty())
                        .map(|id| EndpointId::from_trusted(id.to_owned()))
                        .collect();
                    if tx.send(WakeupEvent::Endpoints(endpoints)).await.is_err() {
                        return pool.close().await;
                    }
                }
                Ok(None) => {
                    tracing::warn!("lost the wake-up connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "wake-up connection failed; reconnecting");
                    break;
                }
            }
        }
    }
    pool.close().await;
}

/// The channel on which a trigger announces every change to an endpoint or an application
/// (migration 0013).
const CHANGED_CHANNEL: &str = "herald_changed";

/// What this node has heard of changes to endpoints and applications, for
/// `QueueStore::dispatch_version`: a count of the notices (and of reconnections, after which
/// some may have been missed), valid only while a listener is connected.
#[derive(Default)]
struct Changes {
    heard: AtomicU64,
    listeners: AtomicUsize,
}

impl Changes {
    fn bump(&self) {
        self.heard.fetch_add(1, AtomicOrdering::SeqCst);
    }

    /// A listener is connected until the guard is dropped; both ends count as a change.
    fn listening(self: &Arc<Self>) -> Listening {
        self.bump();
        self.listeners.fetch_add(1, AtomicOrdering::SeqCst);
        Listening(self.clone())
    }

    fn version(&self) -> Option<u64> {
        let heard = self.heard.load(AtomicOrdering::SeqCst);
        (self.listeners.load(AtomicOrdering::SeqCst) > 0).then_some(heard)
    }
}

struct Listening(Arc<Changes>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, AtomicOrdering::SeqCst);
        self.0.bump();
    }
}

/// Postgres's SQL: several transactions at once, so row locks, queue locks and claims that
/// skip each other.
impl Dialect for PostgresStore {
    const LOCKS_ROWS: bool = true;

    /// A transaction-scoped advisory lock in Herald's own key space (the first key, "HRLD"),
    /// keyed by a hash of the endpoint id. A hash collision only makes two endpoints share a
    /// lock.
    const LOCK_QUEUE_SHARED_SQL: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock_shared(1213352004, hashtext($1))");

    const QUEUE_UPSERT: bool = false;

    const FIND_SUBSTRING_FN: &'static str = "strpos";

    /// Only entries of transactions older than every one still running (see `polls.rs`).
    const POLL_HORIZON_SQL: &'static str =
        " AND p.xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
}

/// The tables the log retention deletes from.
const PURGED_TABLES: [&str; 4] = ["messages", "deliveries", "attempts", "poll_entries"];

/// Space: deleted rows leave dead versions that vacuum makes reusable by the same table; the
/// files do not shrink, and need not. Autovacuum does that where it runs. Where it does not
/// (switched off for the server, as on some test and tuned installations, or for a table),
/// nothing would, and the tables would grow with every message however short the retention:
/// the storage soak measured +50 % in four minutes on such a server, against +0.5 % on SQLite
/// (RELIABILITY.md). So after a retention pass Herald vacuums those tables itself.
impl PostgresStore {
    fn engine_name(&self) -> &'static str {
        "postgres"
    }

    /// After a retention pass: vacuums each purged table that autovacuum will not reach and
    /// whose dead rows passed the threshold migration 0025 gives autovacuum (50 plus 5 % of the
    /// live rows). With autovacuum on, does nothing. Returns 0: no page goes back to the file
    /// system.
    async fn reclaim_free_pages(&self, _pages: u64) -> Result<u64> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.schemaname = current_schema() AND s.relname = ANY($1)
               AND (current_setting('autovacuum') = 'off'
                    OR 'autovacuum_enabled=false' = ANY(coalesce(c.reloptions, '{}')))
               AND s.n_dead_tup > 50 + 0.05 * s.n_live_tup",
        )
        .bind(&PURGED_TABLES[..])
        .fetch_all(&self.reader)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        // A connection of its own, without the statement timeout: vacuuming a large table may
        // take longer, and `VACUUM` cannot run inside the transaction `SET LOCAL` needs.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&self.options)
            .await
            .map_err(StoreError::from)?;
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        // Names from `PURGED_TABLES`, not from the database.
        for table in PURGED_TABLES.iter().filter(|t| due.iter().any(|d| d == *t)) {
            // Another node vacuuming the same table is enough: skip it rather than wait.
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (SKIP_LOCKED) {table}")))
                .execute(&mut conn)
                .await?;
            tracing::debug!(table, "vacuumed after retention (autovacuum is off)");
        }
        let _ = sqlx::Connection::close(conn).await;
        Ok(0)
    }

    /// The database's size in bytes (`pg_database_size`); free space is not told apart.
    async fn database_bytes(&self) -> Result<(u64, Option<u64>)> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.reader)
            .await?;
        Ok((u64::try_from(bytes).unwrap_or(0), None))
    }

    /// Bytes of `table` with its indexes and TOAST (`pg_total_relation_size`).
    async fn table_bytes(&self, table: &str) -> Result<Option<u64>> {
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT pg_total_relation_size(to_regclass($1))")
                .bind(table)
                .fetch_one(&self.reader)
                .await?;
        Ok(bytes.map(|b| u64::try_from(b).unwrap_or(0)))
    }
}

include!("sql/common.rs");

#[path = "postgres/publishes.rs"]
mod publishes;
#[path = "postgres/queue_engine.rs"]
mod queue_engine;
