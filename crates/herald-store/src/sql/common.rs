// The portable half of the SQL stores. This file is `include!`d by each backend module, which
// defines before it:
//
//   type Db = sqlx::<Engine>;
//   struct <Store> { writer: Pool<Db>, reader: Pool<Db> }   (aliased as `SqlStore`)
//   const BACKEND: Backend;
//   const CLAIM_ENDPOINTS_SQL, CLAIM_TASKS_SQL, CLAIM_FIFO_TASK_SQL: &str;  (the claim queries)
//   const FOR_UPDATE, FOR_SHARE: &str;   (row-lock clauses: "" on SQLite, whose single writer
//                                         serialises every write transaction anyway)
//   const FIND_SUBSTRING_FN: &str;  (case-sensitive substring position: instr / strpos)
//   const LOCK_QUEUE_SHARED_SQL, LOCK_QUEUE_SQL: Option<&str>;  (an endpoint's queue lock, shared
//                                  by publishes and exclusive for a release, until the end of
//                                  the transaction; $1 is the endpoint id. None on SQLite)
//   const QUEUE_UPSERT: bool;  (make queues due with one multi-row upsert; false on Postgres,
//                                  where it would lock every queue row it meets, due or not)
//   fn wakeups(&self) -> Option<Wakeups>;  (`Store::subscribe_wakeups`)
//   async fn insert_message(&self, msg, only, completes) -> Result<Vec<EndpointId>>;  (a
//                                  publish's transaction, built on `insert_messages_in` below)
//   struct WriteTx { begin(&store), bookkeeping(&store), conn(), commit(), rollback() }, which derefs to
//                                  the connection: every write transaction. `bookkeeping`'s
//                                  commit does not wait for the disk flush. Only `commit`
//                                  returning `Ok` means committed; a `WriteTx` dropped before
//                                  it is rolled back, and its connection is never reused in
//                                  an unknown state (see each backend). Every statement's
//                                  error inside a transaction ends the transaction (`?`):
//                                  none is ever ignored.
//   fn announce(&self, endpoints: &[&str]);  (tells other nodes, after a commit, that these
//                                             endpoints have work due; a no-op on SQLite)
//
// Everything here uses `$N` placeholders, which both SQLite and Postgres accept, and column
// types both decode alike (see `rows.rs`). Writes go to `writer` (one connection on SQLite, so
// writers queue in the pool instead of spinning on SQLITE_BUSY) and reads to `reader`.
//
// On Postgres several transactions run at once, so transactions that lock rows of several
// endpoints lock them in endpoint id order (publishes, completions, lease renewals): that keeps
// them from deadlocking each other.

use crate::queue::{Attempt, AttemptRecord, CompletionEffects, Delivery, NextStep, Task, TaskClaim};
use crate::rows::{
    channels_column, millis, time, to_json, ApiKeyRow, AppRow, AttemptRow, DeliveryRow,
    EndpointRow, EventTypeRow, MessageRow, SecretsRow, TaskRow,
};
use crate::{IdempotencyState, MessageFilter, StoredResponse};
use herald_core::model::{DeliveryStatus, OPERATIONAL_APP_ID};
use herald_core::page::{ListParams, Page};
use sqlx::QueryBuilder;

const APP_COLUMNS: &str =
    "id, uid, name, rate_limit, metadata, graphql_api_url, graphql_api_headers, created_at, updated_at";
const EVENT_TYPE_COLUMNS: &str =
    "name, description, archived, deprecated, feature_flag, schemas, created_at, updated_at";
const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, url_seq, description, event_types, channels, \
    disabled, rate_limit, metadata, options, created_at, updated_at";
const MESSAGE_COLUMNS: &str =
    "id, app_id, event_type, event_id, channels, payload, created_at, payload_expires_at";
const API_KEY_COLUMNS: &str =
    "id, name, role, kind, app_id, secret_hash, created_at, expires_at, parent_id";

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

const PENDING: i32 = DeliveryStatus::Pending as i32;
const FAIL: i32 = DeliveryStatus::Fail as i32;

/// Makes an endpoint's queue due at `due` unless it already is (due no later), bumping its
/// version. A busy endpoint's row is already due, so publishes to it do not write it: on
/// Postgres, writing it would queue every publish to that endpoint behind the previous one's
/// commit.
const MAKE_DUE_SQL: &str = "UPDATE endpoint_queues SET next_due_at = $2, version = version + 1
     WHERE endpoint_id = $1 AND (next_due_at IS NULL OR next_due_at > $2)";

/// The queue row of an endpoint's first task.
const CREATE_QUEUE_SQL: &str = "INSERT INTO endpoint_queues (endpoint_id, next_due_at, version)
     VALUES ($1, $2, 1) ON CONFLICT (endpoint_id) DO NOTHING";

/// Makes work due on endpoints, each at the earliest time it is given. The caller announces
/// them (`announce`) once its transaction has committed.
///
/// An owner releasing the endpoint concurrently cannot miss this work: each endpoint's queue
/// lock is held shared from here to the commit, and a release takes it exclusively before it
/// looks for due tasks (see `release_endpoint`). Either the release sees the new task, or it
/// commits first and the update below sees the released row.
async fn touch_queues(
    conn: &mut <Db as sqlx::Database>::Connection,
    due: &[(String, i64)],
) -> Result<()> {
    let mut sorted: Vec<(&str, i64)> = due.iter().map(|(e, at)| (e.as_str(), *at)).collect();
    sorted.sort_unstable();
    // The earliest time of each endpoint.
    sorted.dedup_by_key(|(endpoint, _)| *endpoint);
    if QUEUE_UPSERT {
        for chunk in sorted.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO endpoint_queues (endpoint_id, next_due_at, version) ",
            );
            qb.push_values(chunk, |mut row, (endpoint, at)| {
                row.push_bind(*endpoint).push_bind(*at).push_bind(1_i64);
            });
            qb.push(
                " ON CONFLICT (endpoint_id) DO UPDATE SET next_due_at = excluded.next_due_at,
                   version = endpoint_queues.version + 1
                 WHERE endpoint_queues.next_due_at IS NULL
                   OR endpoint_queues.next_due_at > excluded.next_due_at",
            );
            qb.build().execute(&mut *conn).await?;
        }
        return Ok(());
    }
    for (endpoint, at) in sorted {
        if let Some(lock) = LOCK_QUEUE_SHARED_SQL {
            sqlx::query(lock).bind(endpoint).execute(&mut *conn).await?;
        }
        let updated = sqlx::query(MAKE_DUE_SQL)
            .bind(endpoint)
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if updated == 0 {
            sqlx::query(CREATE_QUEUE_SQL)
                .bind(endpoint)
                .bind(at)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// The attempts' log rows, with one multi-row statement per chunk.
async fn insert_attempts(
    tx: &mut <Db as sqlx::Database>::Connection,
    records: &[&AttemptRecord],
) -> Result<()> {
    // Sixteen values a row.
    for chunk in records.chunks(60) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO attempts (id, delivery_id, msg_id, endpoint_id, app_id, url, url_seq,
             status_code, response, response_duration_ms, trigger_type, success, error,
             created_at, request_headers, request_body) ",
        );
        qb.push_values(chunk, |mut row, r| {
            // The endpoint's URL history holds the URL when the attempt used it.
            let url = if r.url_version.is_some() { String::new() } else { r.url.clone() };
            row.push_bind(r.id.as_str().to_owned())
                .push_bind(r.delivery_id)
                .push_bind(r.msg_id.as_str().to_owned())
                .push_bind(r.endpoint_id.as_str().to_owned())
                .push_bind(r.app_id.as_str().to_owned())
                .push_bind(url)
                .push_bind(r.url_version)
                .push_bind(i32::from(r.status_code))
                .push_bind(r.response.clone())
                .push_bind(r.duration_ms)
                .push_bind(r.trigger as i32)
                .push_bind(matches!(r.next, NextStep::Done))
                .push_bind(r.error.clone())
                .push_bind(millis(r.started_at))
                .push_bind(r.request_headers.clone())
                .push_bind(r.request_body.clone());
        });
        qb.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Successful attempts of endpoints with no failure in the batch: their tasks are done, and
/// their endpoints' failure streaks (if any) end.
async fn complete_successes(
    tx: &mut <Db as sqlx::Database>::Connection,
    node: &str,
    successes: &[&AttemptRecord],
    effects: &mut CompletionEffects,
) -> Result<()> {
    if successes.is_empty() {
        return Ok(());
    }
    let mut moved = std::collections::HashSet::new();
    // Three values a row. `columnN` names the VALUES list's columns on both engines.
    for chunk in successes.chunks(300) {
        let mut qb = QueryBuilder::<Db>::new("UPDATE deliveries SET status = ");
        qb.push_bind(DeliveryStatus::Success as i32).push(
            ", next_attempt_at = NULL, attempts = attempts + 1, manual = FALSE,
             lease_token = NULL, last_attempt_at = v.column2, last_status_code = v.column3
             FROM (",
        );
        qb.push_values(chunk, |mut row, r| {
            row.push_bind(r.delivery_id)
                .push_bind(millis(r.started_at))
                .push_bind(i32::from(r.status_code));
        });
        qb.push(") AS v WHERE deliveries.id = v.column1 AND deliveries.status = 3 AND deliveries.lease_token = ")
            .push_bind(node.to_owned())
            .push(" RETURNING deliveries.id");
        let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
        moved.extend(ids);
    }
    let mut endpoints: Vec<&str> = successes.iter().map(|r| r.endpoint_id.as_str()).collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    let mut qb = QueryBuilder::<Db>::new(
        "UPDATE endpoint_queues SET failing_since = NULL
         WHERE failing_since IS NOT NULL AND endpoint_id IN (",
    );
    let mut list = qb.separated(", ");
    for endpoint in &endpoints {
        list.push_bind(*endpoint);
    }
    qb.push(") RETURNING endpoint_id");
    let recovered: Vec<String> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
    for endpoint in recovered {
        // Reported once, with the endpoint's first success that completed its task.
        if let Some(r) = successes
            .iter()
            .find(|r| r.endpoint_id.as_str() == endpoint && moved.contains(&r.delivery_id))
        {
            effects.recovered.push(r.id.clone());
        }
    }
    Ok(())
}

/// An attempt's columns, with its URL read from the endpoint's URL history when it names one
/// (`a` is the attempt, joined with [`ATTEMPT_URL_JOIN`]).
const ATTEMPT_COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, COALESCE(u.url, a.url) AS url, \
    a.status_code, a.response, a.response_duration_ms, a.trigger_type, a.success, a.error, \
    a.created_at, a.request_headers, a.request_body";

/// The URL history entry an attempt names, if it names one.
const ATTEMPT_URL_JOIN: &str =
    "LEFT JOIN endpoint_urls u ON u.endpoint_id = a.endpoint_id AND u.seq = a.url_seq";

/// Adds the endpoint's current URL to its history (nothing when it is there already), in the
/// transaction that created or changed the endpoint.
async fn record_url(conn: &mut <Db as sqlx::Database>::Connection, endpoint: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO endpoint_urls (endpoint_id, seq, url)
         SELECT id, url_seq, url FROM endpoints WHERE id = $1
         ON CONFLICT (endpoint_id, seq) DO NOTHING",
    )
    .bind(endpoint)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Disables an endpoint and fails its pending tasks.
async fn disable_endpoint_in(
    conn: &mut <Db as sqlx::Database>::Connection,
    endpoint: &str,
    now: i64,
) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE endpoints SET disabled = TRUE, updated_at = $2 WHERE id = $1 AND disabled = FALSE",
    )
    .bind(endpoint)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    stop_pending(conn, endpoint).await?;
    Ok(changed > 0)
}

/// Fails the pending (not in-flight) tasks of a disabled endpoint.
async fn stop_pending(conn: &mut <Db as sqlx::Database>::Connection, endpoint: &str) -> Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = $2, next_attempt_at = NULL WHERE endpoint_id = $1 AND status = $3",
    )
    .bind(endpoint)
    .bind(FAIL)
    .bind(PENDING)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn task_from_row(r: TaskRow) -> Result<Task> {
    Ok(Task {
        delivery_id: r.id,
        msg_id: MessageId::from_trusted(r.msg_id),
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        manual: r.manual,
        event_type: r.event_type,
        payload: r.payload,
        message_created_at: time(r.created_at)?,
    })
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    fn subscribe_wakeups(&self) -> Option<crate::Wakeups> {
        self.wakeups()
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn insert_setting(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(())
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
        let apis: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, graphql_api_headers FROM applications WHERE graphql_api_headers IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (id, sealed) in apis {
            if let Some(new) = apply(&sealed)? {
                changed += 1;
                sqlx::query("UPDATE applications SET graphql_api_headers = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let inboxes: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, verify_secret FROM inboxes WHERE verify_secret IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (id, sealed) in inboxes {
            if let Some(new) = apply(&sealed)? {
                changed += 1;
                sqlx::query("UPDATE inboxes SET verify_secret = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(new)
                    .execute(&mut *tx)
                    .await?;
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

    // -- applications --

    async fn create_app(&self, app: &Application) -> Result<()> {
        sqlx::query(
            "INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at,
             graphql_api_url, graphql_api_headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_deref())
        .bind(&app.name)
        .bind(opt_rate(app.rate_limit))
        .bind(to_json(&app.metadata))
        .bind(millis(app.created_at))
        .bind(millis(app.updated_at))
        .bind(app.graphql_api.as_ref().map(|g| g.url.as_str()))
        .bind(app.graphql_api.as_ref().and_then(|g| g.headers.as_deref()))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an application with this uid already exists"))?;
        Ok(())
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>> {
        let row: Option<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE (id = $1 OR uid = $1) AND id <> $2
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(id_or_uid)
        .bind(OPERATIONAL_APP_ID)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Application::try_from).transpose()
    }

    async fn list_apps(
        &self,
        params: &ListParams,
        only: Option<&AppId>,
    ) -> Result<Page<Application>> {
        let mut qb = QueryBuilder::new(format!("SELECT {APP_COLUMNS} FROM applications WHERE id <> "));
        qb.push_bind(OPERATIONAL_APP_ID);
        if let Some(only) = only {
            qb.push(" AND id = ").push_bind(only.as_str().to_owned());
        }
        fetch_page::<AppRow, _>(&self.reader, qb, "id", params).await
    }

    async fn update_app(&self, app: &Application) -> Result<()> {
        let done = sqlx::query(
            "UPDATE applications SET uid = $2, name = $3, rate_limit = $4, metadata = $5,
             updated_at = $6, graphql_api_url = $7, graphql_api_headers = $8 WHERE id = $1",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_deref())
        .bind(&app.name)
        .bind(opt_rate(app.rate_limit))
        .bind(to_json(&app.metadata))
        .bind(millis(app.updated_at))
        .bind(app.graphql_api.as_ref().map(|g| g.url.as_str()))
        .bind(app.graphql_api.as_ref().and_then(|g| g.headers.as_deref()))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an application with this uid already exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_app(&self, id: &AppId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // -- event types --

    async fn create_event_type(&self, et: &EventType) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_types (name, description, archived, deprecated, feature_flag,
             schemas, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&et.name)
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(et.feature_flag.as_deref())
        .bind(et.schemas.as_ref().map(to_json))
        .bind(millis(et.created_at))
        .bind(millis(et.updated_at))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an event type with this name already exists"))?;
        Ok(())
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>> {
        let row: Option<EventTypeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM event_types WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.map(EventType::try_from).transpose()
    }

    async fn list_event_types(
        &self,
        params: &ListParams,
        include_archived: bool,
    ) -> Result<Page<EventType>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM event_types WHERE 1 = 1"
        ));
        if !include_archived {
            qb.push(" AND archived = ").push_bind(false);
        }
        fetch_page::<EventTypeRow, _>(&self.reader, qb, "name", params).await
    }

    async fn update_event_type(&self, et: &EventType) -> Result<()> {
        let done = sqlx::query(
            "UPDATE event_types SET description = $2, archived = $3, deprecated = $4,
             feature_flag = $5, schemas = $6, updated_at = $7 WHERE name = $1",
        )
        .bind(&et.name)
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(et.feature_flag.as_deref())
        .bind(et.schemas.as_ref().map(to_json))
        .bind(millis(et.updated_at))
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM event_types WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // -- endpoints --

    async fn create_endpoint_within(
        &self,
        ep: &Endpoint,
        secrets: &SealedEndpointSecrets,
        max: u64,
    ) -> Result<bool> {
        let mut tx = WriteTx::begin(self).await?;
        if max < u64::MAX {
            // Creates for one application count one after another: on Postgres the
            // application's row is locked until the commit (SQLite's one writer serialises).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM applications WHERE id = $1{FOR_UPDATE}"
            )))
            .bind(ep.app_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM endpoints WHERE app_id = $1")
                .bind(ep.app_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if u64::try_from(count).unwrap_or(0) >= max {
                tx.rollback().await;
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO endpoints (id, app_id, uid, url, description, event_types, channels,
             disabled, rate_limit, metadata, options, secret, previous_secrets, headers,
             created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(ep.id.as_str())
        .bind(ep.app_id.as_str())
        .bind(ep.uid.as_deref())
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(ep.event_types.as_ref().map(to_json))
        .bind(ep.channels.as_ref().map(to_json))
        .bind(ep.disabled)
        .bind(opt_rate(ep.rate_limit))
        .bind(to_json(&ep.metadata))
        .bind(to_json(&ep.options))
        .bind(&secrets.secret)
        .bind(secrets.previous.as_deref())
        .bind(secrets.headers.as_deref())
        .bind(millis(ep.created_at))
        .bind(millis(ep.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an endpoint with this uid already exists"))?;
        record_url(&mut tx, ep.id.as_str()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_endpoint(&self, app: &AppId, id_or_uid: &str) -> Result<Option<Endpoint>> {
        let row: Option<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE app_id = $1 AND (id = $2 OR uid = $2)
             ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(app.as_str())
        .bind(id_or_uid)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Endpoint::try_from).transpose()
    }

    async fn get_endpoint_by_id(&self, id: &EndpointId) -> Result<Option<Endpoint>> {
        let row: Option<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(Endpoint::try_from).transpose()
    }

    async fn list_endpoints(&self, app: &AppId, params: &ListParams) -> Result<Page<Endpoint>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        fetch_page::<EndpointRow, _>(&self.reader, qb, "id", params).await
    }

    async fn count_endpoints(&self, app: &AppId) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM endpoints WHERE app_id = $1")
            .bind(app.as_str())
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        let done = sqlx::query(
            "UPDATE endpoints SET uid = $3, url = $4, description = $5, event_types = $6,
             channels = $7, disabled = $8, rate_limit = $9, metadata = $10, options = $11,
             updated_at = $12,
             url_seq = CASE WHEN url = $4 THEN url_seq ELSE url_seq + 1 END
             WHERE id = $1 AND app_id = $2",
        )
        .bind(ep.id.as_str())
        .bind(ep.app_id.as_str())
        .bind(ep.uid.as_deref())
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(ep.event_types.as_ref().map(to_json))
        .bind(ep.channels.as_ref().map(to_json))
        .bind(ep.disabled)
        .bind(opt_rate(ep.rate_limit))
        .bind(to_json(&ep.metadata))
        .bind(to_json(&ep.options))
        .bind(millis(ep.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an endpoint with this uid already exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        record_url(&mut tx, ep.id.as_str()).await?;
        if ep.disabled {
            stop_pending(&mut tx, ep.id.as_str()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM endpoints WHERE id = $1 AND app_id = $2")
            .bind(id.as_str())
            .bind(app.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_endpoint_secrets(
        &self,
        id: &EndpointId,
    ) -> Result<Option<SealedEndpointSecrets>> {
        let row: Option<SecretsRow> = sqlx::query_as(
            "SELECT secret, previous_secrets, headers, secrets_version FROM endpoints WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(SealedEndpointSecrets::from))
    }

    async fn set_endpoint_secrets(
        &self,
        id: &EndpointId,
        secrets: &SealedEndpointSecrets,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE endpoints SET secret = $2, previous_secrets = $3, headers = $4,
             secrets_version = secrets_version + 1 WHERE id = $1 AND secrets_version = $5",
        )
        .bind(id.as_str())
        .bind(&secrets.secret)
        .bind(secrets.previous.as_deref())
        .bind(secrets.headers.as_deref())
        .bind(secrets.version)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // -- messages --

    async fn create_message(&self, msg: &Message) -> Result<Vec<EndpointId>> {
        self.insert_message(msg, None, None).await
    }

    async fn create_message_idempotent(
        &self,
        msg: &Message,
        completion: &IdempotencyCompletion,
    ) -> Result<Vec<EndpointId>> {
        self.insert_message(msg, None, Some(completion)).await
    }

    async fn create_message_for_endpoint(&self, msg: &Message, endpoint: &EndpointId) -> Result<()> {
        self.insert_message(msg, Some(endpoint), None).await.map(drop)
    }

    async fn get_message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>> {
        let row: Option<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND app_id = $2"
        )))
        .bind(id.as_str())
        .bind(app.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(Message::try_from).transpose()
    }

    async fn get_message_by_event_id(
        &self,
        app: &AppId,
        event_id: &str,
    ) -> Result<Option<Message>> {
        let row: Option<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE app_id = $1 AND event_id = $2"
        )))
        .bind(app.as_str())
        .bind(event_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Message::try_from).transpose()
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        params: &ListParams,
    ) -> Result<Page<Message>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        // Message ids start with their creation time, so time filters become key ranges that
        // the (app_id, id) index serves directly.
        if let Some(before) = filter.before {
            qb.push(" AND id < ")
                .push_bind(MessageId::lower_bound_at(before).into_string());
        }
        if let Some(after) = filter.after {
            let just_after = after + chrono::Duration::milliseconds(1);
            qb.push(" AND id >= ")
                .push_bind(MessageId::lower_bound_at(just_after).into_string());
        }
        if !filter.event_types.is_empty() {
            qb.push(" AND event_type IN (");
            let mut list = qb.separated(", ");
            for et in &filter.event_types {
                list.push_bind(et.clone());
            }
            qb.push(")");
        }
        if let Some(channel) = &filter.channel {
            // A plain, case-sensitive substring search (as routing compares channels): LIKE
            // would need escaping and ignores case on SQLite.
            qb.push(format_args!(" AND {FIND_SUBSTRING_FN}(channels, "))
                .push_bind(format!(",{channel},"))
                .push(") > 0");
        }
        fetch_page::<MessageRow, _>(&self.reader, qb, "id", params).await
    }

    // -- delivery queue --

    async fn claim_due_endpoints(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<EndpointId>> {
        let mut tx = WriteTx::bookkeeping(self).await?;
        let ids: Vec<String> = sqlx::query_scalar(CLAIM_ENDPOINTS_SQL)
            .bind(node)
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(ids.into_iter().map(EndpointId::from_trusted).collect())
    }

    async fn renew_endpoint_leases(&self, node: &str, lease_until: DateTime<Utc>) -> Result<()> {
        let mut tx = WriteTx::bookkeeping(self).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE endpoint_queues SET lease_until = $2 WHERE owner = $1 AND endpoint_id IN (
               SELECT endpoint_id FROM endpoint_queues WHERE owner = $1
               ORDER BY endpoint_id{FOR_UPDATE})"
        )))
        .bind(node)
        .bind(millis(lease_until))
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn claim_tasks_of(
        &self,
        node: &str,
        now: DateTime<Utc>,
        claims: &[TaskClaim],
    ) -> Result<Vec<(Vec<Task>, i64)>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = WriteTx::bookkeeping(self).await?;
        // Only the owner claims; the version is for `release_endpoint`.
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT endpoint_id, version FROM endpoint_queues WHERE owner = ",
        );
        qb.push_bind(node.to_owned()).push(" AND endpoint_id IN (");
        let mut list = qb.separated(", ");
        for claim in claims {
            list.push_bind(claim.endpoint.as_str().to_owned());
        }
        qb.push(")");
        let owned: Vec<(String, i64)> = qb.build_query_as().fetch_all(tx.conn()).await?;
        let mut claimed: Vec<(Vec<i64>, i64)> = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(&(_, version)) = owned.iter().find(|(e, _)| e == claim.endpoint.as_str()) else {
                claimed.push((Vec::new(), -1));
                continue;
            };
            if claim.limit == 0 {
                claimed.push((Vec::new(), version));
                continue;
            }
            let mut query =
                sqlx::query_scalar(if claim.fifo { CLAIM_FIFO_TASK_SQL } else { CLAIM_TASKS_SQL })
                    .bind(claim.endpoint.as_str())
                    .bind(millis(now))
                    .bind(millis(claim.lease_until))
                    .bind(node);
            if !claim.fifo {
                query = query.bind(i64::try_from(claim.limit).unwrap_or(i64::MAX));
            }
            let ids: Vec<i64> = query.fetch_all(tx.conn()).await?;
            claimed.push((ids, version));
        }
        // What the attempts need of their messages, for every claim at once.
        let all: Vec<i64> = claimed.iter().flat_map(|(ids, _)| ids.iter().copied()).collect();
        let mut tasks = std::collections::HashMap::with_capacity(all.len());
        for chunk in all.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT d.id, d.msg_id, d.attempts, d.manual, m.event_type, m.payload, m.created_at
                 FROM deliveries d JOIN messages m ON m.id = d.msg_id WHERE d.id IN (",
            );
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            let rows: Vec<TaskRow> = qb.build_query_as().fetch_all(tx.conn()).await?;
            for row in rows {
                let task = task_from_row(row)?;
                tasks.insert(task.delivery_id, task);
            }
        }
        tx.commit().await?;
        Ok(claimed
            .into_iter()
            .map(|(mut ids, version)| {
                ids.sort_unstable();
                (ids.iter().filter_map(|id| tasks.remove(id)).collect(), version)
            })
            .collect())
    }

    async fn release_endpoint(
        &self,
        node: &str,
        endpoint: &EndpointId,
        version: i64,
        fifo: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = WriteTx::bookkeeping(self).await?;
        // Waits for publishes to this endpoint that are committing; the queries below start
        // after them and see their tasks (see `touch_queues`).
        if let Some(lock) = LOCK_QUEUE_SQL {
            sqlx::query(lock).bind(endpoint.as_str()).execute(tx.conn()).await?;
        }
        let next_due_sql = if fifo {
            "SELECT next_attempt_at FROM deliveries
             WHERE endpoint_id = $1 AND status IN (1, 3) ORDER BY id LIMIT 1"
        } else {
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE endpoint_id = $1 AND status IN (1, 3)"
        };
        let next_due: Option<i64> = sqlx::query_scalar(next_due_sql)
            .bind(endpoint.as_str())
            .fetch_optional(tx.conn())
            .await?
            .flatten();
        // Work came due since the last claim: the owner goes round again.
        if next_due.is_some_and(|at| at <= millis(now)) {
            tx.commit().await?;
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL, next_due_at = $4
             WHERE endpoint_id = $1 AND owner = $2 AND version = $3",
        )
        .bind(endpoint.as_str())
        .bind(node)
        .bind(version)
        .bind(next_due)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_attempts(
        &self,
        node: &str,
        records: &[AttemptRecord],
        disable_after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<CompletionEffects> {
        let mut effects = CompletionEffects::default();
        // Endpoint by endpoint (a stable sort keeps each endpoint's results in order).
        let mut records: Vec<&AttemptRecord> = records.iter().collect();
        records.sort_by(|a, b| a.endpoint_id.as_str().cmp(b.endpoint_id.as_str()));
        let mut tx = WriteTx::begin(self).await?;
        // Postgres: the batch's queue rows are locked up front, in endpoint id order, as
        // publishes and lease renewals lock them. The short way below and the result-by-result
        // way after it each go in that order, but one after the other they would not.
        if !FOR_UPDATE.is_empty() && !records.is_empty() {
            let mut endpoints: Vec<&str> = records.iter().map(|r| r.endpoint_id.as_str()).collect();
            endpoints.dedup();
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT endpoint_id FROM endpoint_queues WHERE endpoint_id IN (",
            );
            let mut list = qb.separated(", ");
            for endpoint in &endpoints {
                list.push_bind(*endpoint);
            }
            qb.push(format_args!(") ORDER BY endpoint_id{FOR_UPDATE}"));
            qb.build().execute(&mut *tx).await?;
        }
        insert_attempts(&mut tx, &records).await?;
        // Endpoints with only successes in the batch take the short way: a few statements for
        // all of them. Others go result by result, in order, since each failure moves their
        // failure streak and may disable them.
        let with_failures: std::collections::HashSet<&str> = records
            .iter()
            .filter(|r| r.next != NextStep::Done)
            .map(|r| r.endpoint_id.as_str())
            .collect();
        let (successes, records): (Vec<&AttemptRecord>, Vec<&AttemptRecord>) = records
            .into_iter()
            .partition(|r| !with_failures.contains(r.endpoint_id.as_str()));
        complete_successes(&mut tx, node, &successes, &mut effects).await?;
        for r in records {
            let success = matches!(r.next, NextStep::Done);
            let (status, next) = match r.next {
                NextStep::Done => (DeliveryStatus::Success as i32, None),
                NextStep::RetryAt(at) => (PENDING, Some(millis(at))),
                NextStep::Exhausted | NextStep::DisableEndpoint => (FAIL, None),
            };
            // A retry of a disabled endpoint fails instead: its retries have stopped.
            let moved = sqlx::query(
                "UPDATE deliveries SET
                   status = CASE WHEN CAST($3 AS INTEGER) = 1 AND EXISTS (SELECT 1 FROM endpoints e
                              WHERE e.id = deliveries.endpoint_id AND e.disabled)
                            THEN 2 ELSE CAST($3 AS INTEGER) END,
                   next_attempt_at = CASE WHEN CAST($3 AS INTEGER) = 1 AND EXISTS (SELECT 1 FROM endpoints e
                              WHERE e.id = deliveries.endpoint_id AND e.disabled)
                            THEN NULL ELSE CAST($4 AS BIGINT) END,
                   attempts = attempts + 1, manual = FALSE, lease_token = NULL,
                   last_attempt_at = $5, last_status_code = $6
                 WHERE id = $1 AND lease_token = $2 AND status = 3",
            )
            .bind(r.delivery_id)
            .bind(node)
            .bind(status)
            .bind(next)
            .bind(millis(r.started_at))
            .bind(i32::from(r.status_code))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if moved && r.next == NextStep::Exhausted {
                effects.exhausted.push(r.id.clone());
            }

            let endpoint = r.endpoint_id.as_str();
            if success {
                let streak_ended = sqlx::query(
                    "UPDATE endpoint_queues SET failing_since = NULL
                     WHERE endpoint_id = $1 AND failing_since IS NOT NULL",
                )
                .bind(endpoint)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if moved && streak_ended {
                    effects.recovered.push(r.id.clone());
                }
                continue;
            }
            if moved && matches!(r.next, NextStep::RetryAt(_)) {
                let first_in_an_hour = sqlx::query(
                    "UPDATE endpoint_queues SET failing_notified_at = $2
                     WHERE endpoint_id = $1
                       AND (failing_notified_at IS NULL OR failing_notified_at <= $3)",
                )
                .bind(endpoint)
                .bind(millis(now))
                .bind(millis(now - chrono::Duration::hours(1)))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if first_in_an_hour {
                    effects.failing.push(r.id.clone());
                }
            }
            sqlx::query(
                "UPDATE endpoint_queues SET failing_since = $2
                 WHERE endpoint_id = $1 AND failing_since IS NULL",
            )
            .bind(endpoint)
            .bind(millis(r.started_at))
            .execute(&mut *tx)
            .await?;
            let failing_since: Option<i64> =
                sqlx::query_scalar("SELECT failing_since FROM endpoint_queues WHERE endpoint_id = $1")
                    .bind(endpoint)
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten();
            let too_long = failing_since.is_some_and(|since| since <= millis(now - disable_after));
            if (matches!(r.next, NextStep::DisableEndpoint) || too_long)
                && disable_endpoint_in(&mut tx, endpoint, millis(now)).await?
            {
                effects.disabled.push(crate::DisabledEndpoint {
                    endpoint: r.endpoint_id.clone(),
                    failing_since: failing_since.map(time).transpose()?,
                });
            }
        }
        tx.commit().await?;
        Ok(effects)
    }

    async fn abandon_endpoint(&self, node: &str, endpoint: &EndpointId) -> Result<()> {
        let mut tx = WriteTx::bookkeeping(self).await?;
        sqlx::query(
            "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL WHERE endpoint_id = $1 AND owner = $2",
        )
        .bind(endpoint.as_str())
        .bind(node)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    async fn release_node(&self, node: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        sqlx::query(
            "UPDATE deliveries SET status = 1, next_attempt_at = $2, lease_token = NULL
             WHERE status = 3 AND lease_token = $1",
        )
        .bind(node)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL
             WHERE owner = $1 AND endpoint_id IN (
               SELECT endpoint_id FROM endpoint_queues WHERE owner = $1
               ORDER BY endpoint_id{FOR_UPDATE})"
        )))
        .bind(node)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reset_leases(&self, now: DateTime<Utc>) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        sqlx::query("UPDATE deliveries SET status = 1, next_attempt_at = $1, lease_token = NULL WHERE status = 3")
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        // An unfinished `Idempotency-Key` claim is a lease of a request that died with the
        // process: the client's retry runs at once instead of waiting for the takeover.
        sqlx::query("DELETE FROM idempotency_keys WHERE status IS NULL")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL,
               next_due_at = (SELECT MIN(d.next_attempt_at) FROM deliveries d
                              WHERE d.endpoint_id = endpoint_queues.endpoint_id AND d.status IN (1, 3))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn requeue(&self, msg: &Message, endpoint: &EndpointId, now: DateTime<Utc>) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        sqlx::query(
            "INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, attempts, next_attempt_at, manual, created_at)
             VALUES ($1, $2, $3, $6, 1, 0, $4, TRUE, $5)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET
               status = 1, attempts = 0, next_attempt_at = excluded.next_attempt_at, manual = TRUE,
               lease_token = NULL",
        )
        .bind(msg.id.as_str())
        .bind(endpoint.as_str())
        .bind(msg.app_id.as_str())
        .bind(millis(now))
        .bind(millis(msg.created_at))
        .bind(&msg.event_type)
        .execute(&mut *tx)
        .await?;
        touch_queues(&mut tx, &[(endpoint.as_str().to_owned(), millis(now))]).await?;
        tx.commit().await?;
        self.announce(&[endpoint.as_str()]);
        Ok(())
    }

    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = WriteTx::begin(self).await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 1, attempts = 0, next_attempt_at = $4, manual = FALSE
             WHERE endpoint_id = $1 AND status = 2 AND created_at >= $2 AND created_at < $3",
        )
        .bind(endpoint.as_str())
        .bind(millis(since))
        .bind(millis(until))
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            touch_queues(&mut tx, &[(endpoint.as_str().to_owned(), millis(now))]).await?;
        }
        tx.commit().await?;
        if done.rows_affected() > 0 {
            self.announce(&[endpoint.as_str()]);
        }
        Ok(done.rows_affected())
    }

    async fn deliveries_for_message(&self, msg: &MessageId) -> Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT msg_id, endpoint_id, status, attempts, next_attempt_at, last_attempt_at,
             last_status_code FROM deliveries WHERE msg_id = $1 ORDER BY endpoint_id",
        )
        .bind(msg.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn attempts_for_message(&self, msg: &MessageId) -> Result<Vec<Attempt>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts a {ATTEMPT_URL_JOIN}
             WHERE a.msg_id = $1 ORDER BY a.id"
        )))
        .bind(msg.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(Attempt::try_from).collect()
    }

    // -- delivery logs and statistics (`sql/logs.rs`) --

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &crate::AttemptFilter,
        params: &ListParams,
    ) -> Result<Page<Attempt>> {
        logs_sql::list_attempts(&self.reader, app, filter, params).await
    }

    async fn get_attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &herald_core::id::AttemptId,
    ) -> Result<Option<Attempt>> {
        logs_sql::get_attempt(&self.reader, app, msg, id).await
    }

    async fn expunge_attempt_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &herald_core::id::AttemptId,
    ) -> Result<bool> {
        logs_sql::expunge_attempt_content(&self.writer, app, msg, id).await
    }

    async fn expunge_message_content(&self, app: &AppId, msg: &MessageId) -> Result<bool> {
        logs_sql::expunge_message_content(self, app, msg).await
    }

    async fn list_destinations(
        &self,
        app: &AppId,
        msg: &MessageId,
        params: &ListParams,
    ) -> Result<Page<crate::Destination>> {
        logs_sql::list_destinations(&self.reader, app, msg, params).await
    }

    async fn list_sent_messages(
        &self,
        endpoint: &EndpointId,
        filter: &crate::EndpointMessageFilter,
        params: &ListParams,
    ) -> Result<Page<crate::SentMessage>> {
        logs_sql::list_sent_messages(&self.reader, endpoint, filter, params).await
    }

    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<crate::EndpointStats> {
        logs_sql::endpoint_stats(&self.reader, endpoint, since, until).await
    }

    async fn delivery_log(
        &self,
        filter: &crate::DeliveryLogFilter,
        offset: u64,
        limit: u64,
    ) -> Result<crate::DeliveryLogPage> {
        logs_sql::delivery_log(&self.reader, filter, offset, limit).await
    }

    // -- retention and metrics --

    async fn purge_payloads(&self, now: DateTime<Utc>, limit: u64) -> Result<u64> {
        logs_sql::purge_payloads(&self.writer, now, limit).await
    }

    async fn purge_attempt_responses(&self, before: DateTime<Utc>, limit: u64) -> Result<u64> {
        logs_sql::purge_attempt_responses(&self.writer, before, limit).await
    }

    async fn queue_metrics(&self, now: DateTime<Utc>) -> Result<crate::QueueMetrics> {
        logs_sql::queue_metrics(&self.reader, now).await
    }

    fn pool_stats(&self) -> Vec<crate::PoolStats> {
        vec![
            logs_sql::pool_stats("writer", &self.writer),
            logs_sql::pool_stats("reader", &self.reader),
        ]
    }

    // -- API keys --

    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, kind, app_id, secret_hash, created_at,
             expires_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id.as_str())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(key.kind.as_str())
        .bind(key.app_id.as_ref().map(|a| a.as_str().to_owned()))
        .bind(&key.secret_hash)
        .bind(millis(key.created_at))
        .bind(key.expires_at.map(millis))
        .bind(key.parent_id.as_ref().map(|p| p.as_str().to_owned()))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn list_api_keys(&self, params: &ListParams) -> Result<Page<ApiKey>> {
        let qb = QueryBuilder::new(format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE 1 = 1"));
        fetch_page::<ApiKeyRow, _>(&self.reader, qb, "id", params).await
    }

    async fn expire_portal_keys(
        &self,
        app: &AppId,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let done = if at <= now {
            sqlx::query("DELETE FROM api_keys WHERE app_id = $1 AND kind = $2")
                .bind(app.as_str())
                .bind(KeyKind::Portal.as_str())
                .execute(&self.writer)
                .await?
        } else {
            sqlx::query(
                "UPDATE api_keys SET expires_at = $3
                 WHERE app_id = $1 AND kind = $2 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(app.as_str())
            .bind(KeyKind::Portal.as_str())
            .bind(millis(at))
            .execute(&self.writer)
            .await?
        };
        Ok(done.rows_affected())
    }

    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_expired_api_keys(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM api_keys WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    // -- idempotency --

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        claim: &str,
        fingerprint: &[u8],
        now: DateTime<Utc>,
        expires_before: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<IdempotencyState> {
        let mut tx = WriteTx::begin(self).await?;
        // An expired record, or a claim whose request died, is as good as none: drop it so the
        // insert below can take its place.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2
             AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
        )
        .bind(scope)
        .bind(key)
        .bind(millis(expires_before))
        .bind(millis(abandoned_before))
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, claim_token)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(millis(now))
        .bind(claim)
        .execute(&mut *tx)
        .await?;
        let state = if inserted.rows_affected() == 1 {
            IdempotencyState::Started
        } else {
            let (stored_fingerprint, status, body): (Vec<u8>, Option<i32>, Option<Vec<u8>>) =
                sqlx::query_as(
                    "SELECT fingerprint, status, body FROM idempotency_keys
                     WHERE scope = $1 AND key = $2",
                )
                .bind(scope)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            match status {
                _ if stored_fingerprint != fingerprint => IdempotencyState::Mismatch,
                None => IdempotencyState::InProgress,
                Some(status) => IdempotencyState::Completed(StoredResponse {
                    status: u16::try_from(status)
                        .map_err(|_| StoreError::Corrupt(format!("status {status}")))?,
                    body: body.unwrap_or_default(),
                }),
            }
        };
        tx.commit().await?;
        Ok(state)
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        claim: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        complete_claim(&self.writer, scope, key, claim, response).await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str, claim: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys
             WHERE scope = $1 AND key = $2 AND claim_token = $3 AND status IS NULL",
        )
        .bind(scope)
        .bind(key)
        .bind(claim)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn purge_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(older_than))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Records the answer of the request holding `claim` on a key; whether the claim still held it
/// (it was neither released nor taken over, nor answered already).
async fn complete_claim<'e, E>(
    conn: E,
    scope: &str,
    key: &str,
    claim: &str,
    response: &StoredResponse,
) -> Result<bool>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let done = sqlx::query(
        "UPDATE idempotency_keys SET status = $4, body = $5
         WHERE scope = $1 AND key = $2 AND claim_token = $3 AND status IS NULL",
    )
    .bind(scope)
    .bind(key)
    .bind(claim)
    .bind(i32::from(response.status))
    .bind(&response.body)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One publish for [`insert_messages_in`].
#[derive(Clone, Copy)]
struct NewMessage<'a> {
    msg: &'a Message,
    /// Only this endpoint gets a task (an example sent to it), whatever the routing.
    only: Option<&'a EndpointId>,
    /// The `Idempotency-Key` answer committed with the message.
    completes: Option<&'a IdempotencyCompletion>,
}

/// [`SqlStore::insert_message`] inside a transaction the caller commits (a device event is
/// published in the transaction that changes the device).
async fn insert_message_in(
    tx: &mut <Db as sqlx::Database>::Connection,
    msg: &Message,
    only: Option<&EndpointId>,
) -> Result<Vec<EndpointId>> {
    let new = NewMessage {
        msg,
        only,
        completes: None,
    };
    let mut matched = insert_messages_in(tx, &[new]).await?;
    Ok(matched.pop().unwrap_or_default())
}

/// Stores messages and their delivery tasks with a few multi-row statements, whatever their
/// number: the messages, the endpoints of each application, the tasks, the queues, and the
/// answers of their `Idempotency-Key`s. Returns the endpoints of each message, in order. Fails
/// as a whole if any one message fails (a duplicate `eventId`, an `only` endpoint that is not
/// there).
async fn insert_messages_in(
    tx: &mut <Db as sqlx::Database>::Connection,
    msgs: &[NewMessage<'_>],
) -> Result<Vec<Vec<EndpointId>>> {
    // Eight values a row: 100 rows stay far below every engine's bound-parameter limit.
    for chunk in msgs.chunks(100) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload,
             created_at, payload_expires_at) ",
        );
        qb.push_values(chunk, |mut row, new| {
            let msg = new.msg;
            row.push_bind(msg.id.as_str().to_owned())
                .push_bind(msg.app_id.as_str().to_owned())
                .push_bind(msg.event_type.clone())
                .push_bind(msg.event_id.clone())
                .push_bind(channels_column(&msg.channels))
                .push_bind(msg.payload.clone())
                .push_bind(millis(msg.created_at))
                .push_bind(millis(msg.payload_expires_at));
        });
        qb.build().execute(&mut *tx).await.map_err(|e| {
            StoreError::from_sqlx(e, "a message with this eventId already exists in the application")
        })?;
    }
    for c in msgs.iter().filter_map(|new| new.completes) {
        // A request that was dropped, or whose claim a retry took over, publishes nothing: its
        // client retries (or has retried) with the key, and that retry publishes.
        if !complete_claim(&mut *tx, &c.scope, &c.key, &c.claim, &c.response).await? {
            return Err(StoreError::Conflict(
                "this request's Idempotency-Key claim was released or taken over; retry with the key",
            ));
        }
    }

    let mut endpoints_of: Vec<(&AppId, Vec<Endpoint>)> = Vec::new();
    let mut matched_all = Vec::with_capacity(msgs.len());
    let mut tasks: Vec<(&Message, EndpointId)> = Vec::new();
    let mut due: Vec<(String, i64)> = Vec::new();
    for NewMessage { msg, only, .. } in msgs {
        let app = &msg.app_id;
        let k = match endpoints_of.iter().position(|(a, _)| *a == app) {
            Some(k) => k,
            None => {
                let rows: Vec<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE app_id = $1 AND disabled = FALSE
                     ORDER BY id{FOR_SHARE}"
                )))
                .bind(app.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let endpoints = rows.into_iter().map(Endpoint::try_from).collect::<Result<_>>()?;
                endpoints_of.push((app, endpoints));
                endpoints_of.len() - 1
            }
        };
        let facts = herald_core::routing::MessageFacts::new(
            &msg.event_type,
            msg.channels.as_deref(),
            msg.payload.as_deref(),
        );
        let matched: Vec<EndpointId> = endpoints_of[k]
            .1
            .iter()
            .filter(|endpoint| match only {
                Some(id) => endpoint.id == **id,
                None => herald_core::routing::endpoint_matches(endpoint, &facts),
            })
            .map(|endpoint| endpoint.id.clone())
            .collect();
        if only.is_some() && matched.is_empty() {
            return Err(StoreError::NotFound);
        }
        let now = millis(msg.created_at);
        for endpoint in &matched {
            tasks.push((msg, endpoint.clone()));
            due.push((endpoint.as_str().to_owned(), now));
        }
        matched_all.push(matched);
    }
    for chunk in tasks.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, attempts, next_attempt_at, created_at) ",
        );
        qb.push_values(chunk, |mut row, (msg, endpoint)| {
            let now = millis(msg.created_at);
            row.push_bind(msg.id.as_str().to_owned())
                .push_bind(endpoint.as_str().to_owned())
                .push_bind(msg.app_id.as_str().to_owned())
                .push_bind(msg.event_type.clone())
                .push_bind(PENDING)
                .push_bind(0_i32)
                .push_bind(now)
                .push_bind(now);
        });
        qb.build().execute(&mut *tx).await?;
    }
    touch_queues(tx, &due).await?;
    Ok(matched_all)
}

include!("inbox.rs");
