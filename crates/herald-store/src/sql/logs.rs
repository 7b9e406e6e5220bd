// The portable SQL of the delivery logs, statistics, retention and metrics queries. Like
// `common.rs` this file is `include!`d by each backend module (after `common.rs`, whose trait
// implementation calls these functions), with the same conventions: `$N` placeholders, integer
// millisecond timestamps, text JSON.

mod logs_sql {
    use super::*;
    use crate::logs::{
        AttemptFilter, DeliveryLogFilter, DeliveryLogPage, Destination, EndpointMessageFilter,
        EndpointStats, PoolStats, QueueMetrics, SentMessage,
    };
    use crate::rows::{DeliveryLogRow, DestinationRow, SentMessageRow};
    use herald_core::id::AttemptId;

    /// `columns` with every name prefixed by `alias.`.
    fn qualified(columns: &str, alias: &str) -> String {
        columns
            .split(',')
            .map(|c| format!("{alias}.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn push_in(qb: &mut QueryBuilder<Db>, column: &str, values: &[String]) {
        qb.push(format_args!(" AND {column} IN ("));
        let mut list = qb.separated(", ");
        for value in values {
            list.push_bind(value.clone());
        }
        qb.push(")");
    }

    /// `channels` holds `,a,b,`; `_` and `%` are LIKE wildcards that channel names may contain.
    fn push_channel(qb: &mut QueryBuilder<Db>, column: &str, channel: &str) {
        let escaped = channel
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(format_args!(" AND {column} LIKE "))
            .push_bind(format!("%,{escaped},%"))
            .push(" ESCAPE '\\'");
    }

    /// Message ids start with their creation time: time filters become id ranges.
    fn push_message_time(
        qb: &mut QueryBuilder<Db>,
        column: &str,
        before: Option<DateTime<Utc>>,
        after: Option<DateTime<Utc>>,
    ) {
        if let Some(before) = before {
            qb.push(format_args!(" AND {column} < "))
                .push_bind(MessageId::lower_bound_at(before).into_string());
        }
        if let Some(after) = after {
            let just_after = after + chrono::Duration::milliseconds(1);
            qb.push(format_args!(" AND {column} >= "))
                .push_bind(MessageId::lower_bound_at(just_after).into_string());
        }
    }

    pub(super) async fn list_attempts(
        pool: &Pool<Db>,
        app: &AppId,
        filter: &AttemptFilter,
        params: &ListParams,
    ) -> Result<Page<Attempt>> {
        let join_messages =
            !filter.event_types.is_empty() || filter.channel.is_some() || filter.tag.is_some();
        let mut qb = QueryBuilder::new(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts a {ATTEMPT_URL_JOIN}"
        ));
        if join_messages {
            qb.push(" JOIN messages m ON m.id = a.msg_id");
        }
        qb.push(" WHERE a.app_id = ")
            .push_bind(app.as_str().to_owned());
        if let Some(msg) = &filter.msg {
            qb.push(" AND a.msg_id = ").push_bind(msg.as_str().to_owned());
        }
        if let Some(endpoint) = &filter.endpoint {
            qb.push(" AND a.endpoint_id = ")
                .push_bind(endpoint.as_str().to_owned());
        }
        match filter.status {
            None => {}
            Some(DeliveryStatus::Success) => {
                qb.push(" AND a.success = ").push_bind(true);
            }
            Some(DeliveryStatus::Fail) => {
                qb.push(" AND a.success = ").push_bind(false);
            }
            // A recorded attempt is never pending, in flight or canceled.
            Some(DeliveryStatus::Pending | DeliveryStatus::Sending | DeliveryStatus::Canceled) => {
                qb.push(" AND 1 = 0");
            }
        }
        match filter.status_code_class {
            None => {}
            Some(0) => {
                qb.push(" AND a.status_code = 0");
            }
            Some(class) => {
                qb.push(" AND a.status_code >= ")
                    .push_bind(i32::from(class))
                    .push(" AND a.status_code < ")
                    .push_bind(i32::from(class) + 100);
            }
        }
        if !filter.event_types.is_empty() {
            push_in(&mut qb, "m.event_type", &filter.event_types);
        }
        if let Some(channel) = &filter.channel {
            push_channel(&mut qb, "m.channels", channel);
        }
        if let Some(tag) = &filter.tag {
            // Tags are stored as channels are.
            push_channel(&mut qb, "m.tags", tag);
        }
        if let Some(before) = filter.before {
            qb.push(" AND a.created_at < ").push_bind(millis(before));
        }
        if let Some(after) = filter.after {
            qb.push(" AND a.created_at > ").push_bind(millis(after));
        }
        fetch_page::<AttemptRow, _>(pool, qb, "a.id", params).await
    }

    pub(super) async fn get_attempt(
        pool: &Pool<Db>,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>> {
        let row: Option<AttemptRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts a {ATTEMPT_URL_JOIN}
             WHERE a.id = $1 AND a.msg_id = $2 AND a.app_id = $3"
        )))
        .bind(id.as_str())
        .bind(msg.as_str())
        .bind(app.as_str())
        .fetch_optional(pool)
        .await?;
        row.map(Attempt::try_from).transpose()
    }

    pub(super) async fn expunge_attempt_content(
        conn: &mut <Db as sqlx::Database>::Connection,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE attempts SET response = NULL, request_body = NULL
             WHERE id = $1 AND msg_id = $2 AND app_id = $3",
        )
        .bind(id.as_str())
        .bind(msg.as_str())
        .bind(app.as_str())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn expunge_message_content(
        store: &SqlStore,
        app: &AppId,
        msg: &MessageId,
    ) -> Result<bool> {
        let mut tx = WriteTx::begin(store).await?;
        let done = sqlx::query("UPDATE messages SET payload = NULL WHERE id = $1 AND app_id = $2")
            .bind(msg.as_str())
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        // The bodies sent were made from the payload.
        sqlx::query("UPDATE attempts SET request_body = NULL WHERE msg_id = $1 AND app_id = $2")
            .bind(msg.as_str())
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        // Without its payload a waiting task cannot be sent: it is canceled (one in flight
        // keeps its result).
        sqlx::query(concat!(
            "UPDATE deliveries SET status = ",
            status!(CANCELED),
            ", next_attempt_at = NULL WHERE msg_id = $1 AND app_id = $2 AND status = ",
            status!(PENDING),
            " AND lease_token IS NULL"
        ))
        .bind(msg.as_str())
        .bind(app.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn list_destinations(
        pool: &Pool<Db>,
        app: &AppId,
        msg: &MessageId,
        params: &ListParams,
    ) -> Result<Page<Destination>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {}, {} AS delivery_status, {} AS delivery_next_attempt_at
             FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id WHERE d.msg_id = ",
            qualified(ENDPOINT_COLUMNS, "e"),
            reported_status!("d."),
            reported_next_attempt!("d.")
        ));
        qb.push_bind(msg.as_str().to_owned())
            .push(" AND d.app_id = ")
            .push_bind(app.as_str().to_owned());
        fetch_page::<DestinationRow, _>(pool, qb, "d.endpoint_id", params).await
    }

    pub(super) async fn list_sent_messages(
        pool: &Pool<Db>,
        endpoint: &EndpointId,
        filter: &EndpointMessageFilter,
        params: &ListParams,
    ) -> Result<Page<SentMessage>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {}, {} AS delivery_status, {} AS delivery_next_attempt_at
             FROM deliveries d JOIN messages m ON m.id = d.msg_id WHERE d.endpoint_id = ",
            qualified(MESSAGE_COLUMNS, "m"),
            reported_status!("d."),
            reported_next_attempt!("d.")
        ));
        qb.push_bind(endpoint.as_str().to_owned());
        if let Some(status) = filter.status {
            push_status(&mut qb, "d.", status);
        }
        if !filter.event_types.is_empty() {
            push_in(&mut qb, "d.event_type", &filter.event_types);
        }
        if let Some(channel) = &filter.channel {
            push_channel(&mut qb, "m.channels", channel);
        }
        if let Some(tag) = &filter.tag {
            // Tags are stored as channels are.
            push_channel(&mut qb, "m.tags", tag);
        }
        match filter.status_code_class {
            None => {}
            Some(0) => {
                qb.push(" AND COALESCE(d.last_status_code, 0) = 0");
            }
            Some(class) => {
                qb.push(" AND d.last_status_code >= ")
                    .push_bind(i32::from(class))
                    .push(" AND d.last_status_code < ")
                    .push_bind(i32::from(class) + 100);
            }
        }
        push_message_time(&mut qb, "d.msg_id", filter.before, filter.after);
        fetch_page::<SentMessageRow, _>(pool, qb, "d.msg_id", params).await
    }

    pub(super) async fn endpoint_stats(
        pool: &Pool<Db>,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<EndpointStats> {
        let mut qb = QueryBuilder::<Db>::new(
            concat!("SELECT ", reported_status!(""), " AS reported, COUNT(*) AS n FROM deliveries WHERE endpoint_id = "),
        );
        qb.push_bind(endpoint.as_str().to_owned());
        if let Some(since) = since {
            qb.push(" AND created_at >= ").push_bind(millis(since));
        }
        if let Some(until) = until {
            qb.push(" AND created_at < ").push_bind(millis(until));
        }
        qb.push(" GROUP BY reported");
        let rows: Vec<(i32, i64)> = qb.build_query_as().fetch_all(pool).await?;
        let mut stats = EndpointStats::default();
        for (status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match DeliveryStatus::from_code(i64::from(status)) {
                Some(DeliveryStatus::Success) => stats.success += n,
                Some(DeliveryStatus::Pending) => stats.pending += n,
                Some(DeliveryStatus::Fail) => stats.fail += n,
                Some(DeliveryStatus::Sending) => stats.sending += n,
                Some(DeliveryStatus::Canceled) => stats.canceled += n,
                None => return Err(StoreError::Corrupt(format!("delivery status {status}"))),
            }
        }
        Ok(stats)
    }

    /// A condition on a delivery's reported status (see `reported_status!`), over table alias
    /// `t` (`""` or `"d."`).
    fn push_status(qb: &mut QueryBuilder<Db>, t: &str, status: DeliveryStatus) {
        let stored = match status {
            DeliveryStatus::Sending => DeliveryStatus::Pending,
            other => other,
        };
        qb.push(format_args!(" AND {t}status = ")).push_bind(stored as i32);
        match status {
            DeliveryStatus::Pending => {
                qb.push(format_args!(" AND {t}lease_token IS NULL"));
            }
            DeliveryStatus::Sending => {
                qb.push(format_args!(" AND {t}lease_token IS NOT NULL"));
            }
            DeliveryStatus::Success | DeliveryStatus::Fail | DeliveryStatus::Canceled => {}
        }
    }

    /// The delivery log's conditions on `deliveries` (no alias), after a `WHERE 1 = 1`.
    fn push_log_filter(qb: &mut QueryBuilder<Db>, filter: &DeliveryLogFilter) {
        // An endpoint belongs to one application: with an endpoint, the application condition
        // would add nothing but may lead the planner to the application's (larger) index.
        match (&filter.endpoint, &filter.app) {
            (Some(endpoint), _) => {
                qb.push(" AND endpoint_id = ")
                    .push_bind(endpoint.as_str().to_owned());
            }
            (None, Some(app)) => {
                qb.push(" AND app_id = ").push_bind(app.as_str().to_owned());
            }
            (None, None) => {}
        }
        // A delivery was created with its message: creation times are message id ranges.
        push_message_time(
            qb,
            "msg_id",
            filter
                .created_to
                .map(|to| to + chrono::Duration::milliseconds(1)),
            filter
                .created_from
                .map(|from| from - chrono::Duration::milliseconds(1)),
        );
        if let Some(from) = filter.last_attempt_from {
            qb.push(" AND last_attempt_at >= ").push_bind(millis(from));
        }
        if let Some(to) = filter.last_attempt_to {
            qb.push(" AND last_attempt_at <= ").push_bind(millis(to));
        }
        if let Some(min) = filter.min_attempts {
            qb.push(" AND attempts >= ").push_bind(i64::from(min));
        }
        if let Some(status) = filter.status {
            push_status(qb, "", status);
        }
        if let Some(event_type) = &filter.event_type {
            qb.push(" AND event_type = ").push_bind(event_type.clone());
        }
    }

    pub(super) async fn delivery_log(
        pool: &Pool<Db>,
        filter: &DeliveryLogFilter,
        offset: u64,
        limit: u64,
    ) -> Result<DeliveryLogPage> {
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM deliveries WHERE 1 = 1");
        push_log_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
        let total = u64::try_from(total).unwrap_or(0);
        if offset >= total || limit == 0 {
            return Ok(DeliveryLogPage {
                entries: Vec::new(),
                total,
            });
        }
        // The page's keys first, read from the index alone; only then the joins, for the rows
        // shown rather than for every row skipped by the offset.
        let mut page = QueryBuilder::<Db>::new(concat!(
            "SELECT d.app_id, d.msg_id, d.endpoint_id, e.serial AS endpoint_serial, d.event_type,
               e.url, m.payload,
               d.created_at, d.last_status_code, d.attempts, d.last_attempt_at, ",
            reported_status!("d."),
            " AS status, ",
            reported_next_attempt!("d."),
            " AS next_attempt_at
             FROM (SELECT id FROM deliveries WHERE 1 = 1"
        ));
        push_log_filter(&mut page, filter);
        page.push(" ORDER BY msg_id DESC, endpoint_id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .push(
                ") p JOIN deliveries d ON d.id = p.id
                 JOIN messages m ON m.id = d.msg_id
                 JOIN endpoints e ON e.id = d.endpoint_id
                 ORDER BY d.msg_id DESC, d.endpoint_id DESC",
            );
        let rows: Vec<DeliveryLogRow> = page.build_query_as().fetch_all(pool).await?;
        let entries = rows
            .into_iter()
            .map(crate::logs::DeliveryLogEntry::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(DeliveryLogPage { entries, total })
    }

    pub(super) async fn purge_payloads(
        conn: &mut <Db as sqlx::Database>::Connection,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64> {
        // Polling endpoints' entries of the batch first: a reader skips an entry whose payload
        // is gone, so they would only pile up. Should the second statement not run, the next
        // pass selects the same messages again.
        sqlx::query(
            "DELETE FROM poll_entries WHERE msg_id IN (
               SELECT id FROM messages WHERE payload IS NOT NULL AND payload_expires_at <= $1
               ORDER BY payload_expires_at LIMIT $2)",
        )
        .bind(millis(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
        let done = sqlx::query(
            "UPDATE messages SET payload = NULL WHERE id IN (
               SELECT id FROM messages WHERE payload IS NOT NULL AND payload_expires_at <= $1
               ORDER BY payload_expires_at LIMIT $2)",
        )
        .bind(millis(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn purge_attempt_responses(
        conn: &mut <Db as sqlx::Database>::Connection,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE attempts SET response = NULL, request_body = NULL WHERE id IN (
               SELECT id FROM attempts WHERE response IS NOT NULL AND created_at < $1
               ORDER BY created_at LIMIT $2)",
        )
        .bind(millis(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    /// Tasks still to deliver: pending, or with an attempt in flight.
    const UNFINISHED: &str = concat!("(", status!(PENDING), ", ", status!(SENDING), ")");

    /// `LogStore::purge_messages`, inside the caller's transaction. The candidates are chosen
    /// first; then every statement checks again that what it deletes is finished, so that on
    /// Postgres a task made pending meanwhile (a resend committed between two statements)
    /// keeps its message, and no statement ever deletes an unfinished task (the messages go
    /// only once they have no task left, so their cascade deletes none).
    pub(super) async fn purge_messages(
        conn: &mut <Db as sqlx::Database>::Connection,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<crate::PurgedMessages> {
        // Ids start with their creation time, so the candidates are a key range of the primary
        // key: old messages kept for their pending tasks are passed over, not the whole table.
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT m.id FROM messages m WHERE m.id < $1 AND m.created_at < $2
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.msg_id = m.id AND d.status IN {UNFINISHED})
             ORDER BY m.id LIMIT $3"
        )))
        .bind(MessageId::lower_bound_at(before).as_str().to_owned())
        .bind(millis(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        if ids.is_empty() {
            return Ok(crate::PurgedMessages::default());
        }
        let finished = format!("status NOT IN {UNFINISHED}");
        let mut attempts = QueryBuilder::new(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE 1 = 1",
        );
        push_in(&mut attempts, "msg_id", &ids);
        attempts.push(format_args!(" AND {finished})"));
        let attempts = attempts.build().execute(&mut *conn).await?.rows_affected();
        let mut deliveries = QueryBuilder::new("DELETE FROM deliveries WHERE 1 = 1");
        push_in(&mut deliveries, "msg_id", &ids);
        deliveries.push(format_args!(" AND {finished}"));
        let deliveries = deliveries.build().execute(&mut *conn).await?.rows_affected();
        // What is left of a message's tasks is unfinished: such a message stays, with its
        // polling entries.
        let no_task = "NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id)";
        let mut polls = QueryBuilder::new(format!(
            "DELETE FROM poll_entries WHERE msg_id IN (SELECT m.id FROM messages m WHERE {no_task}"
        ));
        push_in(&mut polls, "m.id", &ids);
        polls.push(")");
        let poll_entries = polls.build().execute(&mut *conn).await?.rows_affected();
        let mut messages = QueryBuilder::new(format!(
            "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m WHERE {no_task}"
        ));
        push_in(&mut messages, "m.id", &ids);
        messages.push(")");
        let messages = messages.build().execute(&mut *conn).await?.rows_affected();
        Ok(crate::PurgedMessages {
            messages,
            deliveries,
            attempts,
            poll_entries,
        })
    }

    /// The tables `herald stats storage` reports, in its order.
    pub(super) const STORAGE_TABLES: [&str; 9] = [
        "messages",
        "deliveries",
        "attempts",
        "poll_entries",
        "applications",
        "endpoints",
        "inbox_entries",
        "idempotency_keys",
        "background_tasks",
    ];

    /// The creation time of the row with the smallest id of `table` (ids are time-ordered, so
    /// this reads one entry of the primary key).
    pub(super) async fn oldest(pool: &Pool<Db>, table: &str) -> Result<Option<DateTime<Utc>>> {
        let at: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT created_at FROM {table} ORDER BY id LIMIT 1"
        )))
        .fetch_optional(pool)
        .await?;
        at.map(time).transpose()
    }

    pub(super) async fn count_rows(pool: &Pool<Db>, table: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table}"
        )))
        .fetch_one(pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn queue_metrics(pool: &Pool<Db>, now: DateTime<Utc>) -> Result<QueueMetrics> {
        let (due, scheduled, sending): (i64, i64, i64) = sqlx::query_as(
            concat!("SELECT
               COALESCE(SUM(CASE WHEN lease_token IS NULL AND next_attempt_at <= $1 THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN lease_token IS NULL AND next_attempt_at > $1 THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN lease_token IS NOT NULL THEN 1 ELSE 0 END), 0)
             FROM deliveries WHERE status IN (", status!(PENDING), ", ", status!(SENDING), ")"),
        )
        .bind(millis(now))
        .fetch_one(pool)
        .await?;
        let disabled: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM endpoints WHERE disabled = TRUE")
                .fetch_one(pool)
                .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(QueueMetrics {
            due: count(due),
            scheduled: count(scheduled),
            sending: count(sending),
            disabled_endpoints: count(disabled),
        })
    }

    pub(super) fn pool_stats(name: &'static str, pool: &Pool<Db>) -> PoolStats {
        PoolStats {
            name,
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

#[async_trait]
impl LogStore for SqlStore {
    async fn deliveries_for_message(&self, msg: &MessageId) -> Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            concat!("SELECT msg_id, endpoint_id, ", reported_status!(""), " AS status, attempts, ",
             reported_next_attempt!(""), " AS next_attempt_at, last_attempt_at,
             last_status_code FROM deliveries WHERE msg_id = $1 ORDER BY endpoint_id"),
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
        logs_sql::expunge_attempt_content(&mut *self.write_conn().await?, app, msg, id).await
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

    async fn attempt_days(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<crate::AttemptDay>> {
        const DAY_MS: i64 = 86_400_000;
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT created_at / 86400000 AS day,
               COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0)
             FROM attempts WHERE endpoint_id = $1 AND created_at >= $2 AND created_at < $3
             GROUP BY created_at / 86400000 ORDER BY day",
        )
        .bind(endpoint.as_str())
        .bind(millis(since))
        .bind(millis(until))
        .fetch_all(&self.reader)
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        rows.into_iter()
            .map(|(day, success, fail)| {
                Ok(crate::AttemptDay {
                    day: time(day * DAY_MS)?,
                    success: count(success),
                    fail: count(fail),
                })
            })
            .collect()
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
        logs_sql::purge_payloads(&mut *self.write_conn().await?, now, limit).await
    }

    async fn purge_attempt_responses(&self, before: DateTime<Utc>, limit: u64) -> Result<u64> {
        logs_sql::purge_attempt_responses(&mut *self.write_conn().await?, before, limit).await
    }

    async fn purge_messages(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<crate::PurgedMessages> {
        let mut tx = WriteTx::begin(self).await?;
        let purged = logs_sql::purge_messages(&mut tx, before, limit).await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn reclaim_space(&self, pages: u64) -> Result<u64> {
        self.reclaim_free_pages(pages).await
    }

    async fn storage_stats(&self) -> Result<crate::StorageStats> {
        let mut tables = Vec::with_capacity(logs_sql::STORAGE_TABLES.len());
        for name in logs_sql::STORAGE_TABLES {
            tables.push(crate::TableStats {
                name,
                rows: logs_sql::count_rows(&self.reader, name).await?,
                bytes: self.table_bytes(name).await?,
            });
        }
        let (database_bytes, free_bytes) = self.database_bytes().await?;
        Ok(crate::StorageStats {
            engine: self.engine_name(),
            database_bytes,
            free_bytes,
            tables,
            oldest_message: logs_sql::oldest(&self.reader, "messages").await?,
            oldest_attempt: logs_sql::oldest(&self.reader, "attempts").await?,
        })
    }

    async fn queue_metrics(&self, now: DateTime<Utc>) -> Result<crate::QueueMetrics> {
        logs_sql::queue_metrics(&self.reader, now).await
    }
}
