// The portable SQL of `AccessStore` (settings, API keys, `Idempotency-Key` records),
// `include!`d by `common.rs`.

const INTEGRATION_COLUMNS: &str =
    "id, app_id, name, feature_flags, key_id, created_at, updated_at";

/// The name an integration's key is listed under.
fn integration_key_name(integration: &str) -> String {
    format!("integration: {integration}")
}

async fn insert_api_key(conn: &mut <Db as sqlx::Database>::Connection, key: &ApiKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, name, role, kind, app_id, secret_hash, created_at,
         expires_at, parent_id, feature_flags) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
    .bind(channels_column(&Some(key.feature_flags.clone())))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl AccessStore for SqlStore {
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
        .execute(&mut *self.write_conn().await?)
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
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    // -- API keys --

    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        insert_api_key(&mut *self.write_conn().await?, key).await
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
                .execute(&mut *self.write_conn().await?)
                .await?
        } else {
            sqlx::query(
                "UPDATE api_keys SET expires_at = $3
                 WHERE app_id = $1 AND kind = $2 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(app.as_str())
            .bind(KeyKind::Portal.as_str())
            .bind(millis(at))
            .execute(&mut *self.write_conn().await?)
            .await?
        };
        Ok(done.rows_affected())
    }

    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_expired_api_keys(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM api_keys WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(millis(now))
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    // -- integrations --

    async fn create_integration(&self, integration: &herald_core::model::Integration, key: &ApiKey) -> Result<()> {
        let mut tx = WriteTx::begin(self).await?;
        insert_api_key(&mut tx, key).await?;
        sqlx::query(
            "INSERT INTO integrations (id, app_id, name, feature_flags, key_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(integration.id.as_str())
        .bind(integration.app_id.as_str())
        .bind(&integration.name)
        .bind(channels_column(&integration.feature_flags))
        .bind(integration.key_id.as_ref().map(|k| k.as_str()))
        .bind(millis(integration.created_at))
        .bind(millis(integration.updated_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn get_integration(
        &self,
        app: &AppId,
        id: &herald_core::id::IntegrationId,
    ) -> Result<Option<herald_core::model::Integration>> {
        let row: Option<IntegrationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1 AND app_id = $2"
        )))
        .bind(id.as_str())
        .bind(app.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(herald_core::model::Integration::try_from).transpose()
    }

    async fn list_integrations(
        &self,
        app: &AppId,
        params: &ListParams,
    ) -> Result<Page<herald_core::model::Integration>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        fetch_page::<IntegrationRow, _>(&self.reader, qb, "id", params).await
    }

    async fn update_integration(&self, integration: &herald_core::model::Integration) -> Result<bool> {
        let mut tx = WriteTx::begin(self).await?;
        let flags = channels_column(&integration.feature_flags);
        let done = sqlx::query(
            "UPDATE integrations SET name = $3, feature_flags = $4, updated_at = $5
             WHERE id = $1 AND app_id = $2",
        )
        .bind(integration.id.as_str())
        .bind(integration.app_id.as_str())
        .bind(&integration.name)
        .bind(&flags)
        .bind(millis(integration.updated_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // The key carries the flags its principal sees event types by.
        sqlx::query(
            "UPDATE api_keys SET feature_flags = $2, name = $3
             WHERE id = (SELECT key_id FROM integrations WHERE id = $1)",
        )
        .bind(integration.id.as_str())
        .bind(&flags)
        .bind(integration_key_name(&integration.name))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_integration_key(&self, integration: &herald_core::model::Integration, key: &ApiKey) -> Result<bool> {
        let mut tx = WriteTx::begin(self).await?;
        let old: Option<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT key_id FROM integrations WHERE id = $1 AND app_id = $2{FOR_UPDATE}"
        )))
        .bind(integration.id.as_str())
        .bind(integration.app_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((old,)) = old else {
            return Ok(false);
        };
        insert_api_key(&mut tx, key).await?;
        sqlx::query("UPDATE integrations SET key_id = $2, updated_at = $3 WHERE id = $1")
            .bind(integration.id.as_str())
            .bind(key.id.as_str())
            .bind(millis(integration.updated_at))
            .execute(&mut *tx)
            .await?;
        if let Some(old) = old {
            sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_integration(&self, app: &AppId, id: &herald_core::id::IntegrationId) -> Result<bool> {
        let mut tx = WriteTx::begin(self).await?;
        let key: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT key_id FROM integrations WHERE id = $1 AND app_id = $2",
        )
        .bind(id.as_str())
        .bind(app.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((key,)) = key else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM integrations WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(key) = key {
            sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
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
        complete_claim(&mut *self.write_conn().await?, scope, key, claim, response).await?;
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
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    async fn purge_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(older_than))
            .execute(&mut *self.write_conn().await?)
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
