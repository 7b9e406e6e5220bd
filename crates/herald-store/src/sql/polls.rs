// The portable SQL of `PollStore`, `include!`d by `common.rs`. The entries themselves are
// written by the publish transaction (`insert_messages_in`, and `jobs::insert_message` on
// SQLite); this file reads them and keeps the consumers' positions. The one difference between
// the engines is the commit-order horizon, `Dialect::POLL_HORIZON_SQL` (see `polls.rs`).

#[derive(sqlx::FromRow)]
struct PollRow {
    poll_xid: i64,
    poll_seq: i64,
    #[sqlx(flatten)]
    message: MessageRow,
}

#[async_trait]
impl crate::PollStore for SqlStore {
    async fn read_polled(
        &self,
        endpoint: &EndpointId,
        after: crate::PollPosition,
        limit: u32,
    ) -> Result<Vec<crate::PolledMessage>> {
        let rows: Vec<PollRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT p.xid AS poll_xid, p.seq AS poll_seq, {MESSAGE_COLUMNS}
             FROM poll_entries p JOIN messages m ON m.id = p.msg_id
             WHERE p.endpoint_id = $1 AND (p.xid > $2 OR (p.xid = $2 AND p.seq > $3)){}
             ORDER BY p.xid, p.seq LIMIT $4",
            SqlStore::POLL_HORIZON_SQL
        )))
        .bind(endpoint.as_str())
        .bind(after.xid)
        .bind(after.seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(crate::PolledMessage {
                    position: crate::PollPosition {
                        xid: row.poll_xid,
                        seq: row.poll_seq,
                    },
                    message: Message::try_from(row.message)?,
                })
            })
            .collect()
    }

    async fn poll_position_after(
        &self,
        endpoint: &EndpointId,
        time: DateTime<Utc>,
    ) -> Result<crate::PollPosition> {
        let first: Option<(i64, i64)> = sqlx::query_as(
            "SELECT p.xid, p.seq FROM poll_entries p JOIN messages m ON m.id = p.msg_id
             WHERE p.endpoint_id = $1 AND m.created_at > $2
             ORDER BY p.xid, p.seq LIMIT 1",
        )
        .bind(endpoint.as_str())
        .bind(millis(time))
        .fetch_optional(&self.reader)
        .await?;
        if let Some((xid, seq)) = first {
            return Ok(crate::PollPosition { xid, seq: seq - 1 });
        }
        // Nothing after `time` yet: the end of what a reader can read now.
        let last: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT p.xid, p.seq FROM poll_entries p WHERE p.endpoint_id = $1{}
             ORDER BY p.xid DESC, p.seq DESC LIMIT 1",
            SqlStore::POLL_HORIZON_SQL
        )))
        .bind(endpoint.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(last.map_or_else(crate::PollPosition::default, |(xid, seq)| {
            crate::PollPosition { xid, seq }
        }))
    }

    async fn poll_cursor(
        &self,
        endpoint: &EndpointId,
        consumer: &str,
    ) -> Result<Option<crate::PollPosition>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT xid, seq FROM poll_consumers WHERE endpoint_id = $1 AND consumer_id = $2",
        )
        .bind(endpoint.as_str())
        .bind(consumer)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(xid, seq)| crate::PollPosition { xid, seq }))
    }

    async fn set_poll_cursor(
        &self,
        endpoint: &EndpointId,
        consumer: &str,
        position: crate::PollPosition,
    ) -> Result<()> {
        let mut conn = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO poll_consumers (endpoint_id, consumer_id, xid, seq, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (endpoint_id, consumer_id) DO UPDATE
             SET xid = excluded.xid, seq = excluded.seq, updated_at = excluded.updated_at",
        )
        .bind(endpoint.as_str())
        .bind(consumer)
        .bind(position.xid)
        .bind(position.seq)
        .bind(millis(herald_core::time::now()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Stores one poll entry per (message, polling endpoint), in the publish's transaction.
async fn insert_poll_entries(
    tx: &mut <Db as sqlx::Database>::Connection,
    entries: &[(&Message, EndpointId)],
) -> Result<()> {
    for chunk in entries.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("INSERT INTO poll_entries (endpoint_id, msg_id) ");
        qb.push_values(chunk, |mut row, (msg, endpoint)| {
            row.push_bind(endpoint.as_str().to_owned())
                .push_bind(msg.id.as_str().to_owned());
        });
        qb.build().execute(&mut *tx).await?;
    }
    Ok(())
}
