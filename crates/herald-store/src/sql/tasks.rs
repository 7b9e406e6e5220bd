// The portable SQL of `BackgroundTaskStore`, `include!`d by `common.rs`.

const BACKGROUND_TASK_COLUMNS: &str =
    "id, task, status, app_id, endpoint_id, params, data, cursor, created_at, updated_at";

/// A task still running (the partial index's condition).
const RUNNING: &str = "running";

/// Records a step's progress under `lease`; `false` when the lease no longer holds the task.
async fn save_progress(
    conn: &mut <Db as sqlx::Database>::Connection,
    lease: &crate::TaskLease,
    progress: &crate::TaskProgress,
) -> Result<bool> {
    let running = progress.status == herald_core::background::BackgroundTaskStatus::Running;
    let done = sqlx::query(
        "UPDATE background_tasks SET status = $3, data = $4, cursor = $5, updated_at = $6,
           lease_owner = CASE WHEN $8 THEN lease_owner ELSE NULL END,
           lease_until = CASE WHEN $8 THEN $7 ELSE NULL END
         WHERE id = $1 AND lease_owner = $2 AND status = $9",
    )
    .bind(lease.id.as_str())
    .bind(&lease.owner)
    .bind(progress.status.as_str())
    .bind(to_json(&progress.data))
    .bind(progress.cursor.as_deref())
    .bind(millis(progress.now))
    .bind(millis(progress.lease_until))
    .bind(running)
    .bind(RUNNING)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl crate::BackgroundTaskStore for SqlStore {
    async fn create_background_task(&self, task: &crate::BackgroundTask) -> Result<()> {
        sqlx::query(
            "INSERT INTO background_tasks (id, task, status, app_id, endpoint_id, params, data,
               cursor, lease_owner, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10)",
        )
        .bind(task.id.as_str())
        .bind(task.task.as_str())
        .bind(task.status.as_str())
        .bind(task.app_id.as_ref().map(|a| a.as_str()))
        .bind(task.endpoint_id.as_ref().map(|e| e.as_str()))
        .bind(to_json(&task.params))
        .bind(to_json(&task.data))
        .bind(task.cursor.as_deref())
        .bind(millis(task.created_at))
        .bind(millis(task.updated_at))
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    async fn get_background_task(
        &self,
        id: &herald_core::id::BackgroundTaskId,
    ) -> Result<Option<crate::BackgroundTask>> {
        let row: Option<BackgroundTaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BACKGROUND_TASK_COLUMNS} FROM background_tasks WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(crate::BackgroundTask::try_from).transpose()
    }

    async fn list_background_tasks(
        &self,
        filter: &crate::BackgroundTaskFilter,
        params: &ListParams,
    ) -> Result<Page<crate::BackgroundTask>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {BACKGROUND_TASK_COLUMNS} FROM background_tasks WHERE 1 = 1"
        ));
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(task) = filter.task {
            qb.push(" AND task = ").push_bind(task.as_str());
        }
        if let Some(app) = &filter.app {
            qb.push(" AND app_id = ").push_bind(app.as_str().to_owned());
        }
        fetch_page::<BackgroundTaskRow, _>(&self.reader, qb, "id", params).await
    }

    async fn claim_background_task(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<crate::BackgroundTask>> {
        // The condition is repeated outside the sub-select: on Postgres two nodes may pick the
        // same row, and the second one's update re-checks it against the first one's commit.
        let row: Option<BackgroundTaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE background_tasks SET lease_owner = $1, lease_until = $3
             WHERE id = (SELECT id FROM background_tasks
                         WHERE status = $4 AND (lease_until IS NULL OR lease_until <= $2)
                         ORDER BY id LIMIT 1)
               AND status = $4 AND (lease_until IS NULL OR lease_until <= $2)
             RETURNING {BACKGROUND_TASK_COLUMNS}"
        )))
        .bind(owner)
        .bind(millis(now))
        .bind(millis(lease_until))
        .bind(RUNNING)
        .fetch_optional(&mut *self.write_conn().await?)
        .await?;
        row.map(crate::BackgroundTask::try_from).transpose()
    }

    async fn save_background_task(
        &self,
        lease: &crate::TaskLease,
        progress: &crate::TaskProgress,
    ) -> Result<bool> {
        save_progress(&mut *self.write_conn().await?, lease, progress).await
    }

    async fn release_background_tasks(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE background_tasks SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner = $1 AND status = $2",
        )
        .bind(owner)
        .bind(RUNNING)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    async fn replay_batch(
        &self,
        lease: &crate::TaskLease,
        batch: crate::ReplayBatch<'_>,
        progress: &crate::tasks::ProgressOf<'_>,
    ) -> Result<Option<u64>> {
        let now = millis(batch.now);
        let mut tx = WriteTx::begin(self).await?;
        let mut made_due = 0;
        let mut earliest: Option<i64> = None;
        for chunk in batch.messages.chunks(INSERT_CHUNK / 2) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, \
                 attempts, next_attempt_at, manual, created_at) ",
            );
            qb.push_values(chunk, |mut row, msg| {
                let due = first_due(msg).max(now);
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
                row.push_bind(msg.id.as_str())
                    .push_bind(batch.endpoint.as_str())
                    .push_bind(msg.app_id.as_str())
                    .push_bind(&msg.event_type)
                    .push_bind(PENDING)
                    .push_bind(0_i32)
                    .push_bind(due)
                    .push_bind(batch.mode == crate::ReplayMode::Again)
                    .push_bind(millis(msg.created_at));
            });
            qb.push(match batch.mode {
                crate::ReplayMode::Missing => " ON CONFLICT (msg_id, endpoint_id) DO NOTHING",
                // As a manual resend (`requeue`): the delivery is due again from scratch.
                crate::ReplayMode::Again => concat!(
                    " ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = ",
                    status!(PENDING),
                    ", attempts = 0, next_attempt_at = excluded.next_attempt_at, manual = TRUE,
                     lease_token = NULL, lease_until = NULL"
                ),
            });
            made_due += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        if made_due > 0
            && let Some(at) = earliest
        {
            touch_queues(&mut tx, &[(batch.endpoint.as_str().to_owned(), at)]).await?;
        }
        if !save_progress(&mut tx, lease, &progress(made_due)).await? {
            return Ok(None); // Dropping the transaction rolls it back.
        }
        tx.commit().await?;
        if made_due > 0 {
            self.announce(&[batch.endpoint.as_str()]);
        }
        Ok(Some(made_due))
    }

    async fn message_destinations(
        &self,
        apps: &[AppId],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(AppId, u64)>> {
        if apps.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT app_id, COUNT(*) FROM deliveries WHERE created_at >= ",
        );
        qb.push_bind(millis(since))
            .push(" AND created_at < ")
            .push_bind(millis(until))
            .push(" AND app_id IN (");
        let mut list = qb.separated(", ");
        for app in apps {
            list.push_bind(app.as_str());
        }
        qb.push(") GROUP BY app_id ORDER BY app_id");
        let rows: Vec<(String, i64)> = qb.build_query_as().fetch_all(&self.reader).await?;
        Ok(rows
            .into_iter()
            .map(|(app, n)| (herald_core::id::Id::from_trusted(app), n.max(0) as u64))
            .collect())
    }

    async fn purge_background_tasks(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM background_tasks WHERE status <> $1 AND updated_at < $2",
        )
        .bind(RUNNING)
        .bind(millis(before))
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(done.rows_affected())
    }
}
