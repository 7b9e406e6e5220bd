//! The queue's hot paths on SQLite: publishes, claims, results and releases, each a job for the
//! writer thread (`writer.rs`), so that a whole transaction runs where the connection is.
//!
//! The SQL is SQLite's own (`?N` placeholders, rusqlite), written for one statement per row:
//! on the connection's thread a cached statement costs microseconds, so the multi-row
//! statements that save round trips elsewhere (Postgres, `sql/`) would only add code here.
//! The rules are the same as the portable SQL's; the conformance suite runs against both.

use chrono::{DateTime, Utc};
use herald_core::id::{EndpointId, MessageId};
use herald_core::model::{Endpoint, Message};
use rusqlite::{Connection, OptionalExtension, params};

use crate::queue::{AttemptRecord, CompletionEffects, DisabledEndpoint, NextStep, Task, TaskClaim};
use crate::rows::{EndpointRow, channels_column, first_due, millis, time};
use crate::{IdempotencyCompletion, Result, StoreError};

const PENDING: i32 = status!(PENDING);
const SUCCESS: i32 = status!(SUCCESS);
const FAIL: i32 = status!(FAIL);
const CANCELED: i32 = status!(CANCELED);

/// Stores a message, the answer of its `Idempotency-Key` if it has one, and one delivery task
/// per endpoint it goes to (the endpoints routing selects, or only `only`), and makes those
/// endpoints' queues due. Returns the endpoints.
pub(super) fn insert_message(
    conn: &Connection,
    msg: &Message,
    only: Option<&EndpointId>,
    completes: Option<&IdempotencyCompletion>,
) -> Result<Vec<EndpointId>> {
    let created = millis(msg.created_at);
    conn.prepare_cached(
        "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload,
         created_at, payload_expires_at, deliver_at, tags, serial)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        msg.id.as_str(),
        msg.app_id.as_str(),
        msg.event_type,
        msg.event_id,
        channels_column(&msg.channels),
        msg.payload,
        created,
        millis(msg.payload_expires_at),
        msg.deliver_at.map(millis),
        channels_column(&msg.tags),
        msg.serial,
    ])
    .map_err(|e| {
        super::writer::from_rusqlite(
            e,
            "a message with this eventId already exists in the application",
        )
    })?;
    if let Some(c) = completes {
        // A request that was dropped, or whose claim a retry took over, publishes nothing: its
        // client retries (or has retried) with the key, and that retry publishes.
        let completed = conn
            .prepare_cached(
                "UPDATE idempotency_keys SET status = ?4, body = ?5
                 WHERE scope = ?1 AND key = ?2 AND claim_token = ?3 AND status IS NULL",
            )?
            .execute(params![
                c.scope,
                c.key,
                c.claim,
                i32::from(c.response.status),
                c.response.body
            ])?;
        if completed != 1 {
            return Err(StoreError::Conflict(
                "this request's Idempotency-Key claim was released or taken over; retry with the key",
            ));
        }
    }
    let facts = herald_core::routing::MessageFacts::new(
        &msg.event_type,
        msg.channels.as_deref(),
        msg.payload.as_deref(),
    );
    let matched: Vec<Endpoint> = enabled_endpoints(conn, msg.app_id.as_str())?
        .into_iter()
        .filter(|endpoint| match only {
            Some(id) => endpoint.id == *id,
            None => herald_core::routing::endpoint_matches(endpoint, &facts),
        })
        .collect();
    if only.is_some() && matched.is_empty() {
        return Err(StoreError::NotFound);
    }
    let mut task = conn.prepare_cached(concat!(
        "INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, attempts,
         next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ",
        status!(PENDING),
        ", 0, ?5, ?6)"
    ))?;
    let mut poll_entry =
        conn.prepare_cached("INSERT INTO poll_entries (endpoint_id, msg_id) VALUES (?1, ?2)")?;
    let due = first_due(msg);
    for Endpoint {
        id: endpoint,
        options,
        ..
    } in &matched
    {
        // A polling endpoint gets an entry to be read instead of a task (see `polls.rs`).
        if options.kind == herald_core::model::EndpointKind::Polling {
            poll_entry.execute(params![endpoint.as_str(), msg.id.as_str()])?;
            continue;
        }
        task.execute(params![
            msg.id.as_str(),
            endpoint.as_str(),
            msg.app_id.as_str(),
            msg.event_type,
            due,
            created
        ])?;
        make_due(conn, endpoint.as_str(), due)?;
    }
    Ok(matched.into_iter().map(|endpoint| endpoint.id).collect())
}

/// The application's enabled endpoints, for routing.
fn enabled_endpoints(conn: &Connection, app: &str) -> Result<Vec<Endpoint>> {
    let mut select = conn.prepare_cached(
        "SELECT id, app_id, uid, url, url_seq, description, event_types, channels, disabled,
         rate_limit, metadata, options, created_at, updated_at, serial, name
         FROM endpoints WHERE app_id = ?1 AND disabled = FALSE ORDER BY id",
    )?;
    let rows = select.query_map([app], EndpointRow::from_sqlite)?;
    let mut endpoints = Vec::new();
    for row in rows {
        endpoints.push(Endpoint::try_from(row?)?);
    }
    Ok(endpoints)
}

/// Makes an endpoint's queue due at `at` unless it already is (due no later), bumping its
/// version so that an owner about to release it goes round again.
fn make_due(conn: &Connection, endpoint: &str, at: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO endpoint_queues (endpoint_id, next_due_at, version) VALUES (?1, ?2, 1)
         ON CONFLICT (endpoint_id) DO UPDATE SET next_due_at = excluded.next_due_at,
           version = endpoint_queues.version + 1
         WHERE endpoint_queues.next_due_at IS NULL
           OR endpoint_queues.next_due_at > excluded.next_due_at",
    )?
    .execute(params![endpoint, at])?;
    Ok(())
}

/// Takes ownership of up to `limit` endpoints that have due work and no live owner.
pub(super) fn claim_due_endpoints(
    conn: &Connection,
    node: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<EndpointId>> {
    let mut claim = conn.prepare_cached(
        "UPDATE endpoint_queues SET owner = ?1, lease_until = ?2
         WHERE endpoint_id IN (
           SELECT endpoint_id FROM endpoint_queues
           WHERE next_due_at <= ?3 AND (owner IS NULL OR lease_until < ?3)
           ORDER BY next_due_at LIMIT ?4)
         RETURNING endpoint_id",
    )?;
    let ids = claim.query_map(
        params![
            node,
            millis(lease_until),
            millis(now),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| row.get::<_, String>(0),
    )?;
    let mut claimed = Vec::new();
    for id in ids {
        claimed.push(EndpointId::from_trusted(id?));
    }
    Ok(claimed)
}

/// Extends the leases of every endpoint `node` owns.
pub(super) fn renew_endpoint_leases(
    conn: &Connection,
    node: &str,
    lease_until: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached("UPDATE endpoint_queues SET lease_until = ?2 WHERE owner = ?1")?
        .execute(params![node, millis(lease_until)])?;
    Ok(())
}

/// Claims each endpoint's due tasks (see `QueueStore::claim_tasks_of`).
pub(super) fn claim_tasks_of(
    conn: &Connection,
    node: &str,
    now: DateTime<Utc>,
    claims: &[TaskClaim],
) -> Result<Vec<(Vec<Task>, i64)>> {
    let mut owned = conn.prepare_cached(
        "SELECT version FROM endpoint_queues WHERE owner = ?1 AND endpoint_id = ?2",
    )?;
    let mut answers = Vec::with_capacity(claims.len());
    for claim in claims {
        let endpoint = claim.endpoint.as_str();
        let Some(version) = owned
            .query_row(params![node, endpoint], |row| row.get::<_, i64>(0))
            .optional()?
        else {
            answers.push((Vec::new(), -1));
            continue;
        };
        if claim.limit == 0 {
            answers.push((Vec::new(), version));
            continue;
        }
        let mut ids = claim_ids(conn, node, now, claim)?;
        ids.sort_unstable();
        let mut tasks = Vec::with_capacity(ids.len());
        for id in ids {
            tasks.push(task(conn, id)?);
        }
        answers.push((tasks, version));
    }
    Ok(answers)
}

/// Marks an endpoint's due tasks in flight; their ids.
fn claim_ids(
    conn: &Connection,
    node: &str,
    now: DateTime<Utc>,
    claim: &TaskClaim,
) -> Result<Vec<i64>> {
    let (sql, limit) = if claim.fifo {
        // Only the oldest unfinished task, and only when it is due.
        (
            concat!(
                "UPDATE deliveries SET lease_until = ?3, lease_token = ?4
                 WHERE id = (
                   SELECT id FROM deliveries WHERE endpoint_id = ?1 AND status IN (",
                status!(PENDING),
                ", ",
                status!(SENDING),
                ") ORDER BY id LIMIT 1)
                   AND next_attempt_at <= ?2 AND ",
                unleased!("?2"),
                " AND ?5 > 0
                 RETURNING id"
            ),
            1,
        )
    } else {
        (
            concat!(
                "UPDATE deliveries SET lease_until = ?3, lease_token = ?4
                 WHERE id IN (
                   SELECT id FROM deliveries
                   WHERE endpoint_id = ?1 AND status IN (",
                status!(PENDING),
                ", ",
                status!(SENDING),
                ") AND next_attempt_at <= ?2 AND ",
                unleased!("?2"),
                "
                   ORDER BY next_attempt_at, id LIMIT ?5)
                 RETURNING id"
            ),
            i64::try_from(claim.limit).unwrap_or(i64::MAX),
        )
    };
    let mut update = conn.prepare_cached(sql)?;
    let rows = update.query_map(
        params![
            claim.endpoint.as_str(),
            millis(now),
            millis(claim.lease_until),
            node,
            limit
        ],
        |row| row.get::<_, i64>(0),
    )?;
    let mut ids = Vec::new();
    for id in rows {
        ids.push(id?);
    }
    Ok(ids)
}

/// What an attempt needs of a claimed task and its message.
fn task(conn: &Connection, id: i64) -> Result<Task> {
    let (msg_id, attempts, manual, event_type, payload, created_at, msg_serial) = conn
        .prepare_cached(
            "SELECT d.msg_id, d.attempts, d.manual, m.event_type, m.payload, m.created_at, m.serial
             FROM deliveries d JOIN messages m ON m.id = d.msg_id WHERE d.id = ?1",
        )?
        .query_row([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
    Ok(Task {
        delivery_id: id,
        msg_id: MessageId::from_trusted(msg_id),
        msg_serial,
        attempts: u32::try_from(attempts).unwrap_or(0),
        manual,
        event_type,
        payload,
        message_created_at: time(created_at)?,
    })
}

/// Gives up an endpoint unless work is due on it or came since `version` (see
/// `QueueStore::release_endpoint`).
pub(super) fn release_endpoint(
    conn: &Connection,
    node: &str,
    endpoint: &str,
    version: i64,
    fifo: bool,
    now: DateTime<Utc>,
) -> Result<bool> {
    // See `next_due_sql!`.
    let next_due: Option<i64> = if fifo {
        conn.prepare_cached(next_due_sql!(fifo, "?1"))?
            .query_row([endpoint], |row| row.get::<_, Option<i64>>(0))
    } else {
        conn.prepare_cached(next_due_sql!(any, "?1", "?2"))?
            .query_row(params![endpoint, millis(now)], |row| {
                row.get::<_, Option<i64>>(0)
            })
    }
    .optional()?
    .flatten();
    // Work came due since the last claim: the owner goes round again.
    if next_due.is_some_and(|at| at <= millis(now)) {
        return Ok(false);
    }
    let released = conn
        .prepare_cached(
            "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL, next_due_at = ?4
             WHERE endpoint_id = ?1 AND owner = ?2 AND version = ?3",
        )?
        .execute(params![endpoint, node, version, next_due])?;
    Ok(released == 1)
}

/// Gives up an endpoint whatever its state.
pub(super) fn abandon_endpoint(conn: &Connection, node: &str, endpoint: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE endpoint_queues SET owner = NULL, lease_until = NULL
         WHERE endpoint_id = ?1 AND owner = ?2",
    )?
    .execute(params![endpoint, node])?;
    Ok(())
}

/// Records finished attempts and moves their tasks on (see `QueueStore::complete_attempts`).
pub(super) fn complete_attempts(
    conn: &Connection,
    node: &str,
    records: &[AttemptRecord],
    disable_after: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<CompletionEffects> {
    let mut effects = CompletionEffects::default();
    let records_in = records;
    // Endpoint by endpoint, each endpoint's results in order (a stable sort).
    let mut records: Vec<&AttemptRecord> = records.iter().collect();
    records.sort_by(|a, b| a.endpoint_id.as_str().cmp(b.endpoint_id.as_str()));
    for r in records {
        insert_attempt(conn, r)?;
        let moved = move_task(conn, node, r)?;
        if moved && r.next == NextStep::Exhausted {
            effects.exhausted.push(r.id.clone());
        }
        // Skipped on purpose: neither a success nor a failure of the endpoint.
        if r.next == NextStep::Canceled {
            continue;
        }
        let endpoint = r.endpoint_id.as_str();
        if r.next == NextStep::Done {
            let streak_ended = conn
                .prepare_cached(
                    "UPDATE endpoint_queues SET failing_since = NULL
                     WHERE endpoint_id = ?1 AND failing_since IS NOT NULL",
                )?
                .execute([endpoint])?
                > 0;
            if moved && streak_ended {
                effects.recovered.push(r.id.clone());
            }
            continue;
        }
        if moved
            && matches!(r.next, NextStep::RetryAt(_))
            && first_failure_in_an_hour(conn, r, now)?
        {
            effects.failing.push(r.id.clone());
        }
        conn.prepare_cached(
            "UPDATE endpoint_queues SET failing_since = ?2
             WHERE endpoint_id = ?1 AND failing_since IS NULL",
        )?
        .execute(params![endpoint, millis(r.started_at)])?;
        let failing_since: Option<i64> = conn
            .prepare_cached("SELECT failing_since FROM endpoint_queues WHERE endpoint_id = ?1")?
            .query_row([endpoint], |row| row.get::<_, Option<i64>>(0))
            .optional()?
            .flatten();
        let too_long = failing_since.is_some_and(|since| since <= millis(now - disable_after));
        if (r.next == NextStep::DisableEndpoint || too_long)
            && disable_endpoint(conn, endpoint, millis(now))?
        {
            effects.disabled.push(DisabledEndpoint {
                endpoint: r.endpoint_id.clone(),
                failing_since: failing_since.map(time).transpose()?,
            });
        }
    }
    for event in crate::outbox::completion_events(records_in, &effects, now) {
        conn.prepare_cached(crate::outbox::INSERT_EVENT)?
            .execute(params![
                event.msg_id.as_str(),
                event.event_type,
                event.data_text(),
                millis(event.created_at),
            ])?;
    }
    Ok(effects)
}

/// The attempt's log row.
fn insert_attempt(conn: &Connection, r: &AttemptRecord) -> Result<()> {
    // The endpoint's URL history holds the URL when the attempt used it.
    let url = if r.url_version.is_some() {
        ""
    } else {
        r.url.as_str()
    };
    conn.prepare_cached(
        "INSERT INTO attempts (id, delivery_id, msg_id, endpoint_id, app_id, url, url_seq,
         status_code, response, response_duration_ms, trigger_type, success, error,
         created_at, request_headers, request_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        r.id.as_str(),
        r.delivery_id,
        r.msg_id.as_str(),
        r.endpoint_id.as_str(),
        r.app_id.as_str(),
        url,
        r.url_version,
        i32::from(r.status_code),
        r.response,
        r.duration_ms,
        r.trigger as i32,
        r.next == NextStep::Done,
        r.error,
        millis(r.started_at),
        r.request_headers,
        r.request_body,
    ])?;
    Ok(())
}

/// Moves the attempted task to its next step, if `node` still holds its lease; whether it did.
/// A retry of a disabled endpoint fails instead: its retries have stopped.
fn move_task(conn: &Connection, node: &str, r: &AttemptRecord) -> Result<bool> {
    let (status, next) = match r.next {
        NextStep::Done => (SUCCESS, None),
        NextStep::RetryAt(at) => (PENDING, Some(millis(at))),
        NextStep::Exhausted | NextStep::DisableEndpoint => (FAIL, None),
        NextStep::Canceled => (CANCELED, None),
    };
    let stopped = status == PENDING
        && conn
            .prepare_cached("SELECT disabled FROM endpoints WHERE id = ?1")?
            .query_row([r.endpoint_id.as_str()], |row| row.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false);
    // A retry of a disabled endpoint is canceled: its retries have stopped.
    let (status, next) = if stopped {
        (CANCELED, None)
    } else {
        (status, next)
    };
    let moved = conn
        .prepare_cached(concat!(
            "UPDATE deliveries SET status = ?3, next_attempt_at = ?4, attempts = attempts + 1,
               manual = FALSE, lease_token = NULL, lease_until = NULL, last_attempt_at = ?5,
               last_status_code = ?6
             WHERE id = ?1 AND lease_token = ?2 AND status = ",
            status!(PENDING)
        ))?
        .execute(params![
            r.delivery_id,
            node,
            status,
            next,
            millis(r.started_at),
            i32::from(r.status_code)
        ])?;
    Ok(moved > 0)
}

/// Whether this failure is its endpoint's first reported in an hour (`message.attempt.failing`),
/// recording it if so.
fn first_failure_in_an_hour(
    conn: &Connection,
    r: &AttemptRecord,
    now: DateTime<Utc>,
) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE endpoint_queues SET failing_notified_at = ?2
             WHERE endpoint_id = ?1
               AND (failing_notified_at IS NULL OR failing_notified_at <= ?3)",
        )?
        .execute(params![
            r.endpoint_id.as_str(),
            millis(now),
            millis(now - chrono::Duration::hours(1))
        ])?;
    Ok(changed > 0)
}

/// Disables an endpoint and cancels its pending tasks (not those in flight, whose results
/// decide); whether it was enabled.
fn disable_endpoint(conn: &Connection, endpoint: &str, now: i64) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE endpoints SET disabled = TRUE, updated_at = ?2
             WHERE id = ?1 AND disabled = FALSE",
        )?
        .execute(params![endpoint, now])?;
    conn.prepare_cached(
        "UPDATE deliveries SET status = ?2, next_attempt_at = NULL
         WHERE endpoint_id = ?1 AND status = ?3 AND lease_token IS NULL",
    )?
    .execute(params![endpoint, CANCELED, PENDING])?;
    Ok(changed > 0)
}
