// The shared part of the SQL stores. This file is `include!`d by each backend module, which
// defines before it:
//
//   type Db = sqlx::<Engine>;
//   struct <Store> { writer: Pool<Db>, reader: Pool<Db> }   (aliased as `SqlStore`)
//   impl Dialect for <Store>   (what differs between the engines: see `sql/dialect.rs`)
//   fn wakeups(&self) -> Option<Wakeups>;  (`QueueStore::subscribe_wakeups`)
//   async fn insert_message(&self, msg, only, completes) -> Result<Vec<EndpointId>>;  (a
//                                  publish's transaction, built on `insert_messages_in` in
//                                  `messages.rs`)
//   struct WriteTx { begin(&store), conn(), commit() }, which derefs to
//                                  the connection: every write transaction. Only `commit`
//                                  returning `Ok` means committed; a `WriteTx` dropped before
//                                  it is rolled back, and its connection is never reused in
//                                  an unknown state (see each backend). Every statement's
//                                  error inside a transaction ends the transaction (`?`):
//                                  none is ever ignored.
//   async fn write_conn(&self) -> Result<impl DerefMut<Target = Connection>>;  (the writer's
//                                  connection for one statement outside a transaction)
//   async fn close_writers(&self);  (`Store::close`, before the readers)
//   fn resource_version(&self) -> Option<u64>;  (`QueueStore::dispatch_version`)
//   fn exact_resource_version(&self) -> Option<u64>;  (a version that moves with every write
//                                  as it commits, where the store sees them all: SQLite)
//   apps: crate::cache::VersionedCache<Application>  (`get_app`, kept under that version)
//   mod queue_engine { claim_due_endpoints, renew_endpoint_leases, claim_tasks_of,
//                      release_endpoint, complete_attempts, abandon_endpoint }  (the queue's
//                                  hot paths, as async fns taking the store: `sql/queue.rs`)
//   fn announce(&self, endpoints: &[&str]);  (tells other nodes, after a commit, that these
//                                             endpoints have work due; a no-op on SQLite)
//   fn engine_name(&self) -> &'static str;  async fn reclaim_free_pages(&self, pages) -> u64;
//   async fn database_bytes(&self) -> (u64, Option<u64>);
//   async fn table_bytes(&self, table) -> Option<u64>;  (the engine's view of space: see
//                                  `LogStore::reclaim_space` and `LogStore::storage_stats`)
//
// It holds the helpers every role's SQL uses and the `Store` implementation proper, then
// includes one file per role, each implementing its trait: `resources.rs`, `messages.rs`,
// `queue.rs`, `access.rs`, `logs.rs`, `devices.rs`, `inbox.rs` and `tasks.rs`.
//
// Everything here uses `$N` placeholders, which both SQLite and Postgres accept, and column
// types both decode alike (see `rows.rs`). Writes go to `writer` (one connection on SQLite, so
// writers queue in the pool instead of spinning on SQLITE_BUSY) and reads to `reader`.
//
// On Postgres several transactions run at once, so transactions that lock rows of several
// endpoints lock them in endpoint id order (publishes, completions, lease renewals): that keeps
// them from deadlocking each other.

use crate::queue::{Attempt, AttemptRecord, CompletionEffects, Delivery, Task, TaskClaim};
use crate::rows::{
    channels_column, first_due, millis, time, to_json, ApiKeyRow, BackgroundTaskRow, IntegrationRow, AppRow, AttemptRow, DeliveryRow, DispatchRow,
    EndpointRow, EventTypeRow, MessageRow, SecretsRow,
};
use crate::{
    AccessStore, IdempotencyState, LogStore, MessageFilter, MessageStore, QueueStore,
    ResourceStore, StoredResponse,
};
use herald_core::model::{DeliveryStatus, OPERATIONAL_APP_ID};
use herald_core::page::{ListParams, Page};
use sqlx::QueryBuilder;

const APP_COLUMNS: &str =
    "id, uid, name, rate_limit, metadata, graphql_api_url, graphql_api_headers, org_id, created_at, \
     updated_at";
const EVENT_TYPE_COLUMNS: &str =
    "name, description, archived, deprecated, feature_flags, group_name, schemas, created_at, \
     updated_at";
const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, url_seq, description, event_types, channels, \
    disabled, rate_limit, metadata, options, created_at, updated_at, serial, name";
const MESSAGE_COLUMNS: &str =
    "id, app_id, serial, event_type, event_id, channels, payload, created_at, payload_expires_at, \
     deliver_at, tags";
const API_KEY_COLUMNS: &str =
    "id, name, role, kind, app_id, secret_hash, created_at, expires_at, parent_id, feature_flags";

/// Appends the keyset condition, order and limit of a page request on the unique column `key`.
fn push_page(qb: &mut QueryBuilder<Db>, key: &str, params: &ListParams) {
    let ascending = params.scan_ascending();
    if let Some(cursor) = &params.cursor {
        qb.push(format_args!(" AND {key} {} ", if ascending { ">" } else { "<" }))
            .push_bind(cursor.key.clone());
    }
    qb.push(format_args!(
        " ORDER BY {key} {} LIMIT ",
        if ascending { "ASC" } else { "DESC" }
    ))
    .push_bind(params.fetch_limit());
}

async fn fetch_page<R, T>(
    pool: &Pool<Db>,
    mut qb: QueryBuilder<Db>,
    key: &str,
    params: &ListParams,
) -> Result<Page<T>>
where
    R: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
    T: TryFrom<R, Error = StoreError>,
{
    push_page(&mut qb, key, params);
    let rows: Vec<R> = qb.build_query_as().fetch_all(pool).await?;
    let items = rows.into_iter().map(T::try_from).collect::<Result<Vec<T>>>()?;
    Ok(params.finish(items))
}

fn opt_rate(rate: Option<u16>) -> Option<i32> {
    rate.map(i32::from)
}

/// Rows per multi-row INSERT, well under every engine's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// Task statuses as bound values (the same values as the `status!` literals).
const PENDING: i32 = status!(PENDING);
const CANCELED: i32 = status!(CANCELED);

/// This engine's row-lock clauses, for SQL built with `format!` (see `Dialect::LOCKS_ROWS`).
const FOR_UPDATE: &str = <SqlStore as Dialect>::FOR_UPDATE;
const FOR_SHARE: &str = <SqlStore as Dialect>::FOR_SHARE;

/// An attempt's columns, with its URL read from the endpoint's URL history when it names one
/// (`a` is the attempt, joined with [`ATTEMPT_URL_JOIN`]).
const ATTEMPT_COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, COALESCE(u.url, a.url) AS url, \
    a.status_code, a.response, a.response_duration_ms, a.trigger_type, a.success, a.error, \
    a.created_at, a.request_headers, a.request_body";

/// The URL history entry an attempt names, if it names one.
const ATTEMPT_URL_JOIN: &str =
    "LEFT JOIN endpoint_urls u ON u.endpoint_id = a.endpoint_id AND u.seq = a.url_seq";

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    async fn close(&self) {
        self.close_writers().await;
        self.reader.close().await;
    }

    fn pool_stats(&self) -> Vec<crate::PoolStats> {
        vec![
            logs_sql::pool_stats("writer", &self.writer),
            logs_sql::pool_stats("reader", &self.reader),
        ]
    }

    async fn reseal_all(&self, reseal: &crate::Reseal<'_>) -> Result<u64> {
        let apply = |value: &[u8]| reseal(value).map_err(StoreError::Corrupt);
        let mut changed = 0;
        let mut tx = WriteTx::begin(self).await?;
        let endpoints: Vec<(String, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT id, secret, previous_secrets, headers FROM endpoints")
                .fetch_all(&mut *tx)
                .await?;
        for (id, secret, previous, headers) in endpoints {
            let new_secret = apply(&secret)?;
            let new_previous = previous.as_deref().map(apply).transpose()?.flatten();
            let new_headers = headers.as_deref().map(apply).transpose()?.flatten();
            let count = [new_secret.is_some(), new_previous.is_some(), new_headers.is_some()]
                .into_iter()
                .filter(|c| *c)
                .count();
            if count == 0 {
                continue;
            }
            changed += count as u64;
            sqlx::query(
                "UPDATE endpoints SET secret = $2, previous_secrets = $3, headers = $4,
                 secrets_version = secrets_version + 1 WHERE id = $1",
            )
            .bind(&id)
            .bind(new_secret.unwrap_or(secret))
            .bind(new_previous.or(previous))
            .bind(new_headers.or(headers))
            .execute(&mut *tx)
            .await?;
        }
        // Sealed columns of rows keyed by `id`, one value each.
        for (table, column) in [
            ("applications", "graphql_api_headers"),
            ("applications", "webhook_secret"),
            ("endpoints", "transformation_variables"),
            ("endpoints", "url_credentials"),
            ("inboxes", "verify_secret"),
        ] {
            let sealed: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL"
            )))
            .fetch_all(&mut *tx)
            .await?;
            for (id, value) in sealed {
                if let Some(new) = apply(&value)? {
                    changed += 1;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET {column} = $2 WHERE id = $1"
                    )))
                    .bind(&id)
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let bodies: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT scope, key, body FROM idempotency_keys WHERE body IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (scope, key, body) in bodies {
            if let Some(new) = apply(&body)? {
                changed += 1;
                sqlx::query("UPDATE idempotency_keys SET body = $3 WHERE scope = $1 AND key = $2")
                    .bind(&scope)
                    .bind(&key)
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(changed)
    }
}

include!("resources.rs");
include!("messages.rs");
include!("queue.rs");
include!("access.rs");
include!("logs.rs");
include!("devices.rs");
include!("inbox.rs");
include!("inbox_reads.rs");
include!("tasks.rs");
include!("polls.rs");
