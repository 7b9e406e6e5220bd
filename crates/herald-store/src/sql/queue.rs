// The portable SQL of `QueueStore`, `include!`d by `common.rs`: recovery, resends and the
// helpers publishes share. The hot paths (claims, renewals, releases, results) are each
// engine's own (`queue_engine`: sqlx on Postgres, the writer thread on SQLite). Task
// statuses are written with `status!` (in SQL text) or the constants of `common.rs` (bound).

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
    if SqlStore::QUEUE_UPSERT {
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
        if let Some(lock) = SqlStore::LOCK_QUEUE_SHARED_SQL {
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


/// Cancels the pending (not in-flight) tasks of a disabled endpoint.
async fn stop_pending(conn: &mut <Db as sqlx::Database>::Connection, endpoint: &str) -> Result<()> {
    sqlx::query(
        "UPDATE deliveries SET status = $2, next_attempt_at = NULL
         WHERE endpoint_id = $1 AND status = $3 AND lease_token IS NULL",
    )
    .bind(endpoint)
    .bind(CANCELED)
    .bind(PENDING)
    .execute(&mut *conn)
    .await?;
    Ok(())
}


#[async_trait]
impl QueueStore for SqlStore {
    fn subscribe_wakeups(&self) -> Option<crate::Wakeups> {
        self.wakeups()
    }

    fn dispatch_version(&self) -> Option<u64> {
        self.resource_version()
    }

    async fn dispatch_target(&self, id: &EndpointId) -> Result<Option<crate::DispatchTarget>> {
        // One query: a dispatcher loads its endpoint whenever it may have changed, and 1,000
        // endpoints woken by one publish load at once. The reserved operational-webhook
        // application contributes no settings (as `get_app` never finds it).
        let row: Option<DispatchRow> = sqlx::query_as(
            "SELECT e.id, e.app_id, e.uid, e.url, e.url_seq, e.description, e.event_types,
               e.channels, e.disabled, e.rate_limit, e.metadata, e.options, e.created_at,
               e.updated_at, e.serial, e.name, e.secret, e.previous_secrets, e.headers,
               e.url_credentials, e.secrets_version, a.rate_limit AS app_rate_limit, a.graphql_api_url,
               a.graphql_api_headers, a.webhook_secret, e.transformation,
               e.transformation_variables
             FROM endpoints e LEFT JOIN applications a ON a.id = e.app_id AND a.id <> $2
             WHERE e.id = $1",
        )
        .bind(id.as_str())
        .bind(OPERATIONAL_APP_ID)
        .fetch_optional(&self.reader)
        .await?;
        row.map(crate::DispatchTarget::try_from).transpose()
    }

    async fn claim_due_endpoints(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<EndpointId>> {
        queue_engine::claim_due_endpoints(self, node, now, lease_until, limit).await
    }

    async fn renew_endpoint_leases(&self, node: &str, lease_until: DateTime<Utc>) -> Result<()> {
        queue_engine::renew_endpoint_leases(self, node, lease_until).await
    }

    async fn claim_tasks_of(
        &self,
        node: &str,
        now: DateTime<Utc>,
        claims: &[TaskClaim],
    ) -> Result<Vec<(Vec<Task>, i64)>> {
        queue_engine::claim_tasks_of(self, node, now, claims).await
    }

    async fn release_endpoint(
        &self,
        node: &str,
        endpoint: &EndpointId,
        version: i64,
        fifo: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        queue_engine::release_endpoint(self, node, endpoint, version, fifo, now).await
    }

    async fn complete_attempts(
        &self,
        node: &str,
        records: &[AttemptRecord],
        disable_after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<CompletionEffects> {
        queue_engine::complete_attempts(self, node, records, disable_after, now).await
    }

    async fn abandon_endpoint(&self, node: &str, endpoint: &EndpointId) -> Result<()> {
        queue_engine::abandon_endpoint(self, node, endpoint).await
    }


    async fn release_node(&self, node: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        sqlx::query(
            // A node's leases are on the endpoints it owns, in their due prefixes (see
            // `next_due_sql!`), which the queue index reads without the backlog behind.
            concat!("UPDATE deliveries SET lease_token = NULL, lease_until = NULL
             WHERE endpoint_id IN (SELECT endpoint_id FROM endpoint_queues WHERE owner = $1)
               AND status IN (", status!(PENDING), ", ", status!(SENDING), ")
               AND next_attempt_at <= $2 AND lease_token = $1"),
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

    async fn reset_leases(&self) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        sqlx::query(concat!(
            "UPDATE deliveries SET lease_token = NULL, lease_until = NULL
             WHERE status IN (", status!(PENDING), ", ", status!(SENDING), ") AND lease_token IS NOT NULL"
        ))
            .execute(&mut *tx)
            .await?;
        // An unfinished `Idempotency-Key` claim is a lease of a request that died with the
        // process: the client's retry runs at once instead of waiting for the takeover.
        sqlx::query("DELETE FROM idempotency_keys WHERE status IS NULL")
            .execute(&mut *tx)
            .await?;
        // A running background task's lease is a dead runner's too: it resumes at once.
        sqlx::query(
            "UPDATE background_tasks SET lease_owner = NULL, lease_until = NULL
             WHERE status = 'running' AND lease_owner IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            concat!("UPDATE endpoint_queues SET owner = NULL, lease_until = NULL,
               next_due_at = (SELECT MIN(d.next_attempt_at) FROM deliveries d
                              WHERE d.endpoint_id = endpoint_queues.endpoint_id AND d.status IN (", status!(PENDING), ", ", status!(SENDING), "))"),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn requeue(&self, msg: &Message, endpoint: &EndpointId, now: DateTime<Utc>) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        sqlx::query(
            concat!("INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, attempts, next_attempt_at, manual, created_at)
             VALUES ($1, $2, $3, $6, ", status!(PENDING), ", 0, $4, TRUE, $5)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET
               status = ", status!(PENDING), ", attempts = 0, next_attempt_at = excluded.next_attempt_at, manual = TRUE,
               lease_token = NULL, lease_until = NULL"),
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
            concat!("UPDATE deliveries SET status = ", status!(PENDING), ", attempts = 0, next_attempt_at = $4, manual = FALSE
             WHERE endpoint_id = $1 AND status IN (", status!(FAIL), ", ", status!(CANCELED), ") AND created_at >= $2 AND created_at < $3"),
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
}
