// The portable half of the SQL stores. This file is `include!`d by each backend module, which
// defines before it:
//
//   type Db = sqlx::<Engine>;
//   struct <Store> { writer: Pool<Db>, reader: Pool<Db> }   (aliased as `SqlStore`)
//   const BACKEND: Backend;
//
// Everything here uses `$N` placeholders, which both SQLite and Postgres accept, and column
// types both decode alike (see `rows.rs`). Writes go to `writer` (one connection on SQLite, so
// writers queue in the pool instead of spinning on SQLITE_BUSY) and reads to `reader`.

use crate::rows::{
    channels_column, millis, to_json, ApiKeyRow, AppRow, EndpointRow, EventTypeRow, MessageRow,
    SecretsRow,
};
use crate::{IdempotencyState, MessageFilter, StoredResponse};
use herald_core::page::{ListParams, Page};
use sqlx::QueryBuilder;

const APP_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";
const EVENT_TYPE_COLUMNS: &str =
    "name, description, archived, deprecated, feature_flag, schemas, created_at, updated_at";
const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, description, event_types, channels, \
    disabled, rate_limit, metadata, options, created_at, updated_at";
const MESSAGE_COLUMNS: &str =
    "id, app_id, event_type, event_id, channels, payload, created_at, payload_expires_at";
const API_KEY_COLUMNS: &str =
    "id, name, role, kind, app_id, secret_hash, created_at, expires_at";

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

    // -- applications --

    async fn create_app(&self, app: &Application) -> Result<()> {
        sqlx::query(
            "INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_deref())
        .bind(&app.name)
        .bind(opt_rate(app.rate_limit))
        .bind(to_json(&app.metadata))
        .bind(millis(app.created_at))
        .bind(millis(app.updated_at))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an application with this uid already exists"))?;
        Ok(())
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>> {
        let row: Option<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE id = $1 OR uid = $1
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(id_or_uid)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Application::try_from).transpose()
    }

    async fn list_apps(
        &self,
        params: &ListParams,
        only: Option<&AppId>,
    ) -> Result<Page<Application>> {
        let mut qb = QueryBuilder::new(format!("SELECT {APP_COLUMNS} FROM applications WHERE 1 = 1"));
        if let Some(only) = only {
            qb.push(" AND id = ").push_bind(only.as_str().to_owned());
        }
        fetch_page::<AppRow, _>(&self.reader, qb, "id", params).await
    }

    async fn update_app(&self, app: &Application) -> Result<()> {
        let done = sqlx::query(
            "UPDATE applications SET uid = $2, name = $3, rate_limit = $4, metadata = $5,
             updated_at = $6 WHERE id = $1",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_deref())
        .bind(&app.name)
        .bind(opt_rate(app.rate_limit))
        .bind(to_json(&app.metadata))
        .bind(millis(app.updated_at))
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

    async fn create_endpoint(
        &self,
        ep: &Endpoint,
        secrets: &SealedEndpointSecrets,
    ) -> Result<()> {
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
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an endpoint with this uid already exists"))?;
        Ok(())
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

    async fn list_endpoints(&self, app: &AppId, params: &ListParams) -> Result<Page<Endpoint>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        fetch_page::<EndpointRow, _>(&self.reader, qb, "id", params).await
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<()> {
        let done = sqlx::query(
            "UPDATE endpoints SET uid = $3, url = $4, description = $5, event_types = $6,
             channels = $7, disabled = $8, rate_limit = $9, metadata = $10, options = $11,
             updated_at = $12 WHERE id = $1 AND app_id = $2",
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
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an endpoint with this uid already exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
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
            "SELECT secret, previous_secrets, headers FROM endpoints WHERE id = $1",
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
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE endpoints SET secret = $2, previous_secrets = $3, headers = $4 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(&secrets.secret)
        .bind(secrets.previous.as_deref())
        .bind(secrets.headers.as_deref())
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // -- messages --

    async fn create_message(&self, msg: &Message) -> Result<()> {
        sqlx::query(
            "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload,
             created_at, payload_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(msg.id.as_str())
        .bind(msg.app_id.as_str())
        .bind(&msg.event_type)
        .bind(msg.event_id.as_deref())
        .bind(channels_column(&msg.channels))
        .bind(msg.payload.as_deref())
        .bind(millis(msg.created_at))
        .bind(millis(msg.payload_expires_at))
        .execute(&self.writer)
        .await
        .map_err(|e| {
            StoreError::from_sqlx(e, "a message with this eventId already exists in the application")
        })?;
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
            qb.push(" AND channels LIKE ")
                .push_bind(format!("%,{channel},%"));
        }
        fetch_page::<MessageRow, _>(&self.reader, qb, "id", params).await
    }

    // -- API keys --

    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, kind, app_id, secret_hash, created_at,
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id.as_str())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(key.kind.as_str())
        .bind(key.app_id.as_ref().map(|a| a.as_str().to_owned()))
        .bind(&key.secret_hash)
        .bind(millis(key.created_at))
        .bind(key.expires_at.map(millis))
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
        let mut qb = QueryBuilder::new(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE kind = "
        ));
        qb.push_bind(KeyKind::Api.as_str());
        fetch_page::<ApiKeyRow, _>(&self.reader, qb, "id", params).await
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
        fingerprint: &[u8],
        now: DateTime<Utc>,
        expires_before: DateTime<Utc>,
    ) -> Result<IdempotencyState> {
        let mut tx = self.writer.begin().await?;
        // An expired record is as good as none: drop it so the insert below can take its place.
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at < $3")
            .bind(scope)
            .bind(key)
            .bind(millis(expires_before))
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(millis(now))
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
        response: &StoredResponse,
    ) -> Result<()> {
        sqlx::query("UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .bind(i32::from(response.status))
            .bind(&response.body)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
            .bind(scope)
            .bind(key)
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
