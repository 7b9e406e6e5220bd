//! The queue's hot paths on Postgres (claims, lease renewals, releases and results), with sqlx:
//! `sql/queue.rs` calls these for `QueueStore`, as it calls SQLite's for a SQLite store.

use super::*;
use crate::queue::NextStep;
use crate::rows::TaskRow;

/// A task's status after a successful attempt, as a bound value.
const SUCCESS: i32 = status!(SUCCESS);
/// A task's status after its last attempt failed, as a bound value.
const FAIL: i32 = status!(FAIL);
/// A task's status after its transformation skipped it, as a bound value.
const CANCELED: i32 = status!(CANCELED);

/// Rows another node is claiming (or a publish is touching) are skipped, not waited for:
/// the next sweep or the publish's wake-up gets them.
const CLAIM_ENDPOINTS_SQL: &str = "WITH due AS (
   SELECT endpoint_id FROM endpoint_queues
   WHERE next_due_at <= $3 AND (owner IS NULL OR lease_until < $3)
   ORDER BY next_due_at LIMIT $4
   FOR UPDATE SKIP LOCKED)
 UPDATE endpoint_queues q SET owner = $1, lease_until = $2
 FROM due WHERE q.endpoint_id = due.endpoint_id
 RETURNING q.endpoint_id";

const CLAIM_TASKS_SQL: &str = concat!(
    "WITH due AS (
   SELECT id FROM deliveries
   WHERE endpoint_id = $1 AND status IN (",
    status!(PENDING),
    ", ",
    status!(SENDING),
    ") AND next_attempt_at <= $2 AND ",
    unleased!("$2"),
    "
   ORDER BY next_attempt_at, id LIMIT $5
   FOR UPDATE SKIP LOCKED)
 UPDATE deliveries d SET lease_until = $3, lease_token = $4
 FROM due WHERE d.id = due.id
 RETURNING d.id"
);

/// A wave of claims in one statement: for each endpoint $1[i], up to $3[i] due tasks (due at
/// $4) marked in flight until $2[i] for node $5, skipping rows another node is taking. Returns
/// each task's id and endpoint.
const CLAIM_WAVE_SQL: &str = concat!(
    "WITH c AS (
       SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS c(endpoint_id, lease_end, lim)),
     due AS (
       SELECT t.id, c.lease_end FROM c CROSS JOIN LATERAL (
         SELECT id FROM deliveries
         WHERE endpoint_id = c.endpoint_id AND status IN (",
    status!(PENDING),
    ", ",
    status!(SENDING),
    ") AND next_attempt_at <= $4 AND ",
    unleased!("$4"),
    "
         ORDER BY next_attempt_at, id LIMIT c.lim
         FOR UPDATE SKIP LOCKED) t)
     UPDATE deliveries d SET lease_until = due.lease_end, lease_token = $5
     FROM due WHERE d.id = due.id
     RETURNING d.id, d.endpoint_id"
);

/// The head is waited for rather than skipped: skipping a locked head would send the
/// message behind it first.
const CLAIM_FIFO_TASK_SQL: &str = concat!(
    "WITH head AS (
   SELECT id, next_attempt_at, lease_token, lease_until FROM deliveries
   WHERE endpoint_id = $1 AND status IN (",
    status!(PENDING),
    ", ",
    status!(SENDING),
    ") ORDER BY id LIMIT 1
   FOR UPDATE)
 UPDATE deliveries d SET lease_until = $3, lease_token = $4
 FROM head WHERE d.id = head.id AND head.next_attempt_at <= $2
   AND (head.lease_token IS NULL OR head.lease_until <= $2)
 RETURNING d.id"
);

/// An endpoint's queue lock, exclusive: a release waits for the publishes to the endpoint that
/// hold it shared (see `touch_queues`).
const LOCK_QUEUE_SQL: &str = "SELECT pg_advisory_xact_lock(1213352004, hashtext($1))";

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
            let url = if r.url_version.is_some() {
                String::new()
            } else {
                r.url.clone()
            };
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
        qb.push_bind(SUCCESS).push(
            ", next_attempt_at = NULL, attempts = attempts + 1, manual = FALSE,
             lease_token = NULL, lease_until = NULL, last_attempt_at = v.column2, last_status_code = v.column3
             FROM (",
        );
        qb.push_values(chunk, |mut row, r| {
            row.push_bind(r.delivery_id)
                .push_bind(millis(r.started_at))
                .push_bind(i32::from(r.status_code));
        });
        qb.push(concat!(
            ") AS v WHERE deliveries.id = v.column1 AND deliveries.status = ",
            status!(PENDING),
            " AND deliveries.lease_token = "
        ))
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

fn task_from_row(r: TaskRow) -> Result<Task> {
    Ok(Task {
        delivery_id: r.id,
        msg_id: MessageId::from_trusted(r.msg_id),
        msg_serial: r.msg_serial,
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        manual: r.manual,
        event_type: r.event_type,
        payload: r.payload,
        message_created_at: time(r.created_at)?,
    })
}

pub(super) async fn claim_due_endpoints(
    store: &SqlStore,
    node: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<EndpointId>> {
    let mut tx = WriteTx::bookkeeping(store).await?;
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

pub(super) async fn renew_endpoint_leases(
    store: &SqlStore,
    node: &str,
    lease_until: DateTime<Utc>,
) -> Result<()> {
    let mut tx = WriteTx::bookkeeping(store).await?;
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

pub(super) async fn claim_tasks_of(
    store: &SqlStore,
    node: &str,
    now: DateTime<Utc>,
    claims: &[TaskClaim],
) -> Result<Vec<(Vec<Task>, i64)>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = WriteTx::bookkeeping(store).await?;
    // Only the owner claims; the version is for `release_endpoint`.
    let mut qb =
        QueryBuilder::<Db>::new("SELECT endpoint_id, version FROM endpoint_queues WHERE owner = ");
    qb.push_bind(node.to_owned()).push(" AND endpoint_id IN (");
    let mut list = qb.separated(", ");
    for claim in claims {
        list.push_bind(claim.endpoint.as_str().to_owned());
    }
    qb.push(")");
    let owned: Vec<(String, i64)> = qb.build_query_as().fetch_all(tx.conn()).await?;
    let version_of = |claim: &TaskClaim| {
        owned
            .iter()
            .find(|(e, _)| e == claim.endpoint.as_str())
            .map(|&(_, version)| version)
    };
    // The wave's plain claims in one statement (below); FIFO claims, and an endpoint claimed
    // twice in one wave, one by one.
    let mut waved = std::collections::HashSet::new();
    let in_wave = |claim: &TaskClaim, waved: &mut std::collections::HashSet<String>| {
        !claim.fifo
            && claim.limit > 0
            && version_of(claim).is_some()
            && waved.insert(claim.endpoint.as_str().to_owned())
    };
    let wave: Vec<bool> = claims.iter().map(|c| in_wave(c, &mut waved)).collect();
    let mut waved_ids: std::collections::HashMap<String, Vec<i64>> =
        std::collections::HashMap::new();
    if wave.iter().any(|w| *w) {
        let chosen = || {
            claims
                .iter()
                .zip(&wave)
                .filter(|(_, w)| **w)
                .map(|(c, _)| c)
        };
        let endpoints: Vec<String> = chosen().map(|c| c.endpoint.as_str().to_owned()).collect();
        let leases: Vec<i64> = chosen().map(|c| millis(c.lease_until)).collect();
        let limits: Vec<i64> = chosen()
            .map(|c| i64::try_from(c.limit).unwrap_or(i64::MAX))
            .collect();
        let rows: Vec<(i64, String)> = sqlx::query_as(CLAIM_WAVE_SQL)
            .bind(&endpoints)
            .bind(&leases)
            .bind(&limits)
            .bind(millis(now))
            .bind(node)
            .fetch_all(tx.conn())
            .await?;
        for (id, endpoint) in rows {
            waved_ids.entry(endpoint).or_default().push(id);
        }
    }
    let mut claimed: Vec<(Vec<i64>, i64)> = Vec::with_capacity(claims.len());
    for (claim, in_wave) in claims.iter().zip(wave) {
        let Some(version) = version_of(claim) else {
            claimed.push((Vec::new(), -1));
            continue;
        };
        if in_wave {
            let ids = waved_ids
                .remove(claim.endpoint.as_str())
                .unwrap_or_default();
            claimed.push((ids, version));
            continue;
        }
        if claim.limit == 0 {
            claimed.push((Vec::new(), version));
            continue;
        }
        let mut query = sqlx::query_scalar(if claim.fifo {
            CLAIM_FIFO_TASK_SQL
        } else {
            CLAIM_TASKS_SQL
        })
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
    let all: Vec<i64> = claimed
        .iter()
        .flat_map(|(ids, _)| ids.iter().copied())
        .collect();
    let mut tasks = std::collections::HashMap::with_capacity(all.len());
    for chunk in all.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT d.id, d.msg_id, m.serial AS msg_serial, d.attempts, d.manual, m.event_type,
               m.payload, m.created_at
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
            (
                ids.iter().filter_map(|id| tasks.remove(id)).collect(),
                version,
            )
        })
        .collect())
}

/// When the endpoint next has work (see `next_due_sql!`).
async fn next_due(
    conn: &mut <Db as sqlx::Database>::Connection,
    endpoint: &str,
    fifo: bool,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let query = if fifo {
        sqlx::query_scalar(next_due_sql!(fifo, "$1")).bind(endpoint)
    } else {
        sqlx::query_scalar(next_due_sql!(any, "$1", "$2"))
            .bind(endpoint)
            .bind(millis(now))
    };
    Ok(query.fetch_optional(conn).await?.flatten())
}

pub(super) async fn release_endpoint(
    store: &SqlStore,
    node: &str,
    endpoint: &EndpointId,
    version: i64,
    fifo: bool,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut tx = WriteTx::bookkeeping(store).await?;
    // Waits for publishes to this endpoint that are committing; the queries below start
    // after them and see their tasks (see `touch_queues`).
    sqlx::query(LOCK_QUEUE_SQL)
        .bind(endpoint.as_str())
        .execute(tx.conn())
        .await?;
    let next_due = next_due(tx.conn(), endpoint.as_str(), fifo, now).await?;
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

pub(super) async fn complete_attempts(
    store: &SqlStore,
    node: &str,
    records: &[AttemptRecord],
    disable_after: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<CompletionEffects> {
    let mut effects = CompletionEffects::default();
    let records_in = records;
    // Endpoint by endpoint (a stable sort keeps each endpoint's results in order).
    let mut records: Vec<&AttemptRecord> = records.iter().collect();
    records.sort_by(|a, b| a.endpoint_id.as_str().cmp(b.endpoint_id.as_str()));
    let mut tx = WriteTx::begin(store).await?;
    // Where transactions lock rows (Postgres): the batch's queue rows are locked up front,
    // in endpoint id order, as publishes and lease renewals lock them. The short way below
    // and the result-by-result way after it each go in that order, but one after the other
    // they would not.
    if SqlStore::LOCKS_ROWS && !records.is_empty() {
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
            NextStep::Done => (SUCCESS, None),
            NextStep::RetryAt(at) => (PENDING, Some(millis(at))),
            NextStep::Exhausted | NextStep::DisableEndpoint => (FAIL, None),
            NextStep::Canceled => (CANCELED, None),
        };
        // A retry of a disabled endpoint is canceled instead: its retries have stopped.
        let moved = sqlx::query(concat!(
            "UPDATE deliveries SET
               status = CASE WHEN CAST($3 AS INTEGER) = ",
            status!(PENDING),
            " AND EXISTS (SELECT 1 FROM endpoints e
                          WHERE e.id = deliveries.endpoint_id AND e.disabled)
                        THEN ",
            status!(CANCELED),
            " ELSE CAST($3 AS INTEGER) END,
               next_attempt_at = CASE WHEN CAST($3 AS INTEGER) = ",
            status!(PENDING),
            " AND EXISTS (SELECT 1 FROM endpoints e
                          WHERE e.id = deliveries.endpoint_id AND e.disabled)
                        THEN NULL ELSE CAST($4 AS BIGINT) END,
               attempts = attempts + 1, manual = FALSE, lease_token = NULL, lease_until = NULL,
               last_attempt_at = $5, last_status_code = $6
             WHERE id = $1 AND lease_token = $2 AND status = ",
            status!(PENDING)
        ))
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
        // Skipped on purpose: neither a success nor a failure of the endpoint.
        if r.next == NextStep::Canceled {
            continue;
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
    super::record_events(
        &mut tx,
        crate::outbox::completion_events(records_in, &effects, now),
    )
    .await?;
    tx.commit().await?;
    Ok(effects)
}

pub(super) async fn abandon_endpoint(
    store: &SqlStore,
    node: &str,
    endpoint: &EndpointId,
) -> Result<()> {
    let mut tx = WriteTx::bookkeeping(store).await?;
    sqlx::query(
        "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL WHERE endpoint_id = $1 AND owner = $2",
    )
    .bind(endpoint.as_str())
    .bind(node)
    .execute(tx.conn())
    .await?;
    tx.commit().await
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
