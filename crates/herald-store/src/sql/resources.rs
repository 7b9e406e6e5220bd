// The portable SQL of `ResourceStore` (applications, event types, endpoints), `include!`d by
// `common.rs`.

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

/// Writes operational events in the transaction of the change they report (see
/// `crate::outbox`).
async fn record_events(
    conn: &mut <Db as sqlx::Database>::Connection,
    events: impl IntoIterator<Item = crate::outbox::NewEvent>,
) -> Result<()> {
    for event in events {
        sqlx::query(crate::outbox::INSERT_EVENT)
            .bind(event.msg_id.as_str())
            .bind(event.event_type)
            .bind(event.data_text())
            .bind(millis(event.created_at))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl ResourceStore for SqlStore {
    async fn create_app(&self, app: &Application) -> Result<()> {
        sqlx::query(
            "INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at,
             graphql_api_url, graphql_api_headers, org_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .bind(app.org_id)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an application with this uid already exists"))?;
        Ok(())
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>> {
        // Kept between changes where the store sees every write (see `cache.rs`); the version
        // is taken before the read, so a write that lands during it is not kept as current.
        let version = self.exact_resource_version();
        if let Some(kept) = version.and_then(|v| self.apps.get(id_or_uid, v)) {
            return Ok(Some(kept));
        }
        let row: Option<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE (id = $1 OR uid = $1) AND id <> $2
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(id_or_uid)
        .bind(OPERATIONAL_APP_ID)
        .fetch_optional(&self.reader)
        .await?;
        let app = row.map(Application::try_from).transpose()?;
        // Only what exists is kept: a miss is read again (the application may come next).
        if let (Some(v), Some(app)) = (version, &app) {
            self.apps.put(id_or_uid, v, app.clone());
        }
        Ok(app)
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
             updated_at = $6, graphql_api_url = $7, graphql_api_headers = $8, org_id = $9
             WHERE id = $1",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_deref())
        .bind(&app.name)
        .bind(opt_rate(app.rate_limit))
        .bind(to_json(&app.metadata))
        .bind(millis(app.updated_at))
        .bind(app.graphql_api.as_ref().map(|g| g.url.as_str()))
        .bind(app.graphql_api.as_ref().and_then(|g| g.headers.as_deref()))
        .bind(app.org_id)
        .execute(&mut *self.write_conn().await?)
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
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // -- event types --

    async fn create_event_type(&self, et: &EventType) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_types (name, description, archived, deprecated, feature_flags,
             group_name, schemas, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $9, $6, $7, $8)",
        )
        .bind(&et.name)
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(channels_column(&et.feature_flags))
        .bind(et.schemas.as_ref().map(to_json))
        .bind(millis(et.created_at))
        .bind(millis(et.updated_at))
        .bind(et.group_name.as_deref())
        .execute(&mut *self.write_conn().await?)
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
             feature_flags = $5, schemas = $6, updated_at = $7, group_name = $8 WHERE name = $1",
        )
        .bind(&et.name)
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(channels_column(&et.feature_flags))
        .bind(et.schemas.as_ref().map(to_json))
        .bind(millis(et.updated_at))
        .bind(et.group_name.as_deref())
        .execute(&mut *self.write_conn().await?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM event_types WHERE name = $1")
            .bind(name)
            .execute(&mut *self.write_conn().await?)
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
             created_at, updated_at, serial, name, url_credentials)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $19)",
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
        .bind(ep.serial)
        .bind(ep.name.as_deref())
        .bind(secrets.credentials.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::from_sqlx(e, "an endpoint with this uid or name already exists")
        })?;
        record_url(&mut tx, ep.id.as_str()).await?;
        let created = crate::outbox::endpoint_event(
            crate::outbox::ENDPOINT_CREATED,
            &ep.app_id,
            &ep.id,
            ep.uid.as_deref(),
            ep.created_at,
        );
        record_events(&mut tx, created).await?;
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

    async fn get_endpoint_by_serial(&self, app: &AppId, serial: i64) -> Result<Option<Endpoint>> {
        let row: Option<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE serial = $1 AND app_id = $2"
        )))
        .bind(serial)
        .bind(app.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(Endpoint::try_from).transpose()
    }

    async fn next_serial(&self, kind: crate::SerialKind) -> Result<i64> {
        if let Some(n) = self.serials.take(kind) {
            return Ok(n);
        }
        let block = kind.block();
        // One statement, its own transaction: the counter row is locked only while it runs.
        let end: i64 = sqlx::query_scalar(
            "UPDATE serials SET next = next + $2 WHERE kind = $1 RETURNING next",
        )
        .bind(kind.key())
        .bind(block)
        .fetch_one(&mut *self.write_conn().await?)
        .await?;
        let first = end - block;
        self.serials.keep(kind, first, block);
        Ok(first)
    }

    async fn webhook_secret(&self, app: &AppId) -> Result<Option<Vec<u8>>> {
        let sealed: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT webhook_secret FROM applications WHERE id = $1")
                .bind(app.as_str())
                .fetch_optional(&self.reader)
                .await?;
        Ok(sealed.flatten())
    }

    async fn set_webhook_secret(&self, app: &AppId, sealed: &[u8], replace: bool) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE applications SET webhook_secret = $2
             WHERE id = $1 AND ($3 OR webhook_secret IS NULL)",
        )
        .bind(app.as_str())
        .bind(sealed)
        .bind(replace)
        .execute(&mut *self.write_conn().await?)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM applications WHERE id = $1")
            .bind(app.as_str())
            .fetch_optional(&self.reader)
            .await?;
        match exists {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound),
        }
    }

    async fn get_transformation(&self, id: &EndpointId) -> Result<crate::StoredTransformation> {
        let row: Option<(Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT transformation, transformation_variables FROM endpoints WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let (json, variables) = row.ok_or(StoreError::NotFound)?;
        crate::rows::stored_transformation(json, variables)
    }

    async fn set_transformation(
        &self,
        id: &EndpointId,
        stored: &crate::StoredTransformation,
    ) -> Result<()> {
        let json = stored
            .transformation
            .as_ref()
            .map(|t| serde_json::to_string(t).expect("a transformation serializes"));
        let done = sqlx::query(
            "UPDATE endpoints SET transformation = $2, transformation_variables = $3
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(json)
        .bind(stored.variables.as_deref())
        .execute(&mut *self.write_conn().await?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
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
        // Whether this change disables it (`endpoint.disabled`), read under the row's lock.
        let was_disabled: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT disabled FROM endpoints WHERE id = $1 AND app_id = $2{FOR_UPDATE}"
        )))
        .bind(ep.id.as_str())
        .bind(ep.app_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(was_disabled) = was_disabled else {
            tx.rollback().await;
            return Err(StoreError::NotFound);
        };
        let done = sqlx::query(
            "UPDATE endpoints SET uid = $3, url = $4, description = $5, event_types = $6,
             channels = $7, disabled = $8, rate_limit = $9, metadata = $10, options = $11,
             updated_at = $12, name = $13,
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
        .bind(ep.name.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::from_sqlx(e, "an endpoint with this uid or name already exists")
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        record_url(&mut tx, ep.id.as_str()).await?;
        if ep.disabled {
            stop_pending(&mut tx, ep.id.as_str()).await?;
        }
        let uid = ep.uid.as_deref();
        let updated = crate::outbox::endpoint_event(
            crate::outbox::ENDPOINT_UPDATED,
            &ep.app_id,
            &ep.id,
            uid,
            ep.updated_at,
        );
        let disabled = (ep.disabled && !was_disabled)
            .then(|| crate::outbox::endpoint_disabled_manually(&ep.app_id, &ep.id, uid, ep.updated_at))
            .flatten();
        record_events(&mut tx, updated.into_iter().chain(disabled)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool> {
        let mut tx = WriteTx::begin(self).await?;
        let uid: Option<Option<String>> = sqlx::query_scalar(
            "DELETE FROM endpoints WHERE id = $1 AND app_id = $2 RETURNING uid",
        )
        .bind(id.as_str())
        .bind(app.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(uid) = uid else {
            tx.rollback().await;
            return Ok(false);
        };
        let deleted = crate::outbox::endpoint_event(
            crate::outbox::ENDPOINT_DELETED,
            app,
            id,
            uid.as_deref(),
            herald_core::time::now(),
        );
        record_events(&mut tx, deleted).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_endpoint_secrets(
        &self,
        id: &EndpointId,
    ) -> Result<Option<SealedEndpointSecrets>> {
        let row: Option<SecretsRow> = sqlx::query_as(
            "SELECT secret, previous_secrets, headers, url_credentials, secrets_version
             FROM endpoints WHERE id = $1",
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
             url_credentials = $6, secrets_version = secrets_version + 1
             WHERE id = $1 AND secrets_version = $5",
        )
        .bind(id.as_str())
        .bind(&secrets.secret)
        .bind(secrets.previous.as_deref())
        .bind(secrets.headers.as_deref())
        .bind(secrets.version)
        .bind(secrets.credentials.as_deref())
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
