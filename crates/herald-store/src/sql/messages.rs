// The portable SQL of `MessageStore`, `include!`d by `common.rs`: the publish transaction
// (`insert_messages_in`, which each backend's `insert_message` wraps: SQLite in a group
// commit) and the message reads.

#[async_trait]
impl MessageStore for SqlStore {
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

    async fn pending_operational_events(&self, limit: u32) -> Result<Vec<crate::OutboxEvent>> {
        let rows: Vec<crate::rows::OutboxRow> = sqlx::query_as(
            "SELECT id, msg_id, event_type, data, created_at FROM operational_outbox
             ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(crate::OutboxEvent::try_from).collect()
    }

    async fn remove_operational_events(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut qb = QueryBuilder::<Db>::new("DELETE FROM operational_outbox WHERE id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        qb.push(")");
        qb.build().execute(&mut *self.write_conn().await?).await?;
        Ok(())
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
            qb.push(format_args!(" AND {}(channels, ", SqlStore::FIND_SUBSTRING_FN))
                .push_bind(format!(",{channel},"))
                .push(") > 0");
        }
        if let Some(tag) = &filter.tag {
            qb.push(format_args!(" AND {}(tags, ", SqlStore::FIND_SUBSTRING_FN))
                .push_bind(format!(",{tag},"))
                .push(") > 0");
        }
        fetch_page::<MessageRow, _>(&self.reader, qb, "id", params).await
    }
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
    // Eleven values a row: 100 rows stay far below every engine's bound-parameter limit.
    for chunk in msgs.chunks(100) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload,
             created_at, payload_expires_at, deliver_at, tags, serial) ",
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
                .push_bind(millis(msg.payload_expires_at))
                .push_bind(msg.deliver_at.map(millis))
                .push_bind(channels_column(&msg.tags))
                .push_bind(msg.serial);
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
    // Polling endpoints get an entry to be read instead of a task (see `polls.rs`).
    let mut polled: Vec<(&Message, EndpointId)> = Vec::new();
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
        let matched: Vec<&Endpoint> = endpoints_of[k]
            .1
            .iter()
            .filter(|endpoint| match only {
                Some(id) => endpoint.id == **id,
                None => herald_core::routing::endpoint_matches(endpoint, &facts),
            })
            .collect();
        if only.is_some() && matched.is_empty() {
            return Err(StoreError::NotFound);
        }
        for endpoint in &matched {
            if endpoint.options.kind == herald_core::model::EndpointKind::Polling {
                polled.push((msg, endpoint.id.clone()));
                continue;
            }
            tasks.push((msg, endpoint.id.clone()));
            due.push((endpoint.id.as_str().to_owned(), first_due(msg)));
        }
        let matched: Vec<EndpointId> = matched.iter().map(|e| e.id.clone()).collect();
        matched_all.push(matched);
    }
    for chunk in tasks.chunks(INSERT_CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, attempts, next_attempt_at, created_at) ",
        );
        qb.push_values(chunk, |mut row, (msg, endpoint)| {
            row.push_bind(msg.id.as_str().to_owned())
                .push_bind(endpoint.as_str().to_owned())
                .push_bind(msg.app_id.as_str().to_owned())
                .push_bind(msg.event_type.clone())
                .push_bind(PENDING)
                .push_bind(0_i32)
                .push_bind(first_due(msg))
                .push_bind(millis(msg.created_at));
        });
        qb.build().execute(&mut *tx).await?;
    }
    insert_poll_entries(tx, &polled).await?;
    touch_queues(tx, &due).await?;
    Ok(matched_all)
}
