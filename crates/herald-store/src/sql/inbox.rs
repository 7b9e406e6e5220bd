// The inbox half of the SQL stores, `include!`d by `common.rs` (so by every backend): the same
// portable SQL, `$N` placeholders, millisecond timestamps and text JSON.
//
// The tree model is `herald_core::inbox::tree`: rows hold values at (path, key); a write prunes
// what it replaces from the rows above it and deletes the rows below it, then adds its row.
// Rows below a location `L` are the rows with `path = L` (its children) or `path` in the range
// [`L/`, `L0`) (deeper); byte order of `path` makes that range exact.

use crate::inbox::{
    ENTRY_COLUMNS, EntryRow, INBOX_COLUMNS, InboxRow, drop_headers_column, headers_column,
    prefix_end, verification_column,
};
use std::collections::BTreeSet;

use crate::{EntryFilter, InboxEntry, InboxStore, NewEntry, TreeRead};
use herald_core::id::{InboxEntryId, InboxId};
use herald_core::inbox::Inbox;
use herald_core::inbox::tree::{self as inbox_tree, ChildQuery, Limit, Location, RowAbove, Write};

/// Appends `AND (<rows at at, or below it>)`: the subtree filter of entry lists and exports,
/// which scan in id order.
fn push_at_or_below(qb: &mut QueryBuilder<Db>, at: &Location) {
    let Some((path, key)) = at.row_address() else {
        return;
    };
    let joined = at.joined();
    let deeper = format!("{joined}/");
    qb.push(" AND ((path = ")
        .push_bind(path)
        .push(" AND key = ")
        .push_bind(key)
        .push(") OR path = ")
        .push_bind(joined)
        .push(" OR (path >= ")
        .push_bind(deeper.clone())
        .push(" AND path < ")
        .push_bind(prefix_end(&deeper))
        .push("))");
}

fn push_entry_filter(qb: &mut QueryBuilder<Db>, filter: &EntryFilter) {
    if let Some(under) = &filter.under {
        push_at_or_below(qb, under);
    }
    // Entry ids start with their time, so time filters are key ranges on (inbox_id, id).
    if let Some(before) = filter.before {
        qb.push(" AND id < ")
            .push_bind(InboxEntryId::lower_bound_at(before).into_string());
    }
    if let Some(after) = filter.after {
        let just_after = after + chrono::Duration::milliseconds(1);
        qb.push(" AND id >= ")
            .push_bind(InboxEntryId::lower_bound_at(just_after).into_string());
    }
    if let Some(up_to) = &filter.up_to {
        qb.push(" AND id <= ").push_bind(up_to.as_str().to_owned());
    }
}

/// A stored value: never an error, so that one row no read can parse (written before nesting
/// was limited) does not fail every read of its inbox (see `herald_core::inbox::stored_value`).
fn parse_value(text: &str) -> serde_json::Value {
    herald_core::inbox::stored_value(text)
}

fn to_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `path` range of the rows deeper than the children of `at`: `[L/, L0)`, or at the root
/// every path but `''` (no stored path starts with a control character).
fn deeper_range(at: &Location) -> (String, Option<String>) {
    if at.is_root() {
        ("\u{1}".to_owned(), None)
    } else {
        let deeper = format!("{}/", at.joined());
        let end = prefix_end(&deeper);
        (deeper, Some(end))
    }
}

// Each query below is one point or one range of the (inbox_id, path, key) index: OR-ed
// conditions would make engines scan the whole inbox.

/// The rows at `at` and at every location above it (one point lookup each).
async fn rows_above(
    conn: &mut <Db as sqlx::Database>::Connection,
    inbox: &str,
    at: &Location,
) -> Result<Vec<RowAbove>> {
    let mut rows = Vec::new();
    for (path, key) in at.ancestors_or_self() {
        let found: Option<(String, String)> = sqlx::query_as(
            "SELECT id, value FROM inbox_entries WHERE inbox_id = $1 AND path = $2 AND key = $3",
        )
        .bind(inbox)
        .bind(&path)
        .bind(&key)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((id, value)) = found {
            rows.push(RowAbove {
                id,
                location: Location::of_row(&path, &key),
                value: parse_value(&value),
            });
        }
    }
    Ok(rows)
}

/// Deletes the rows strictly below `at` (and, with `itself`, the row at `at`).
async fn delete_below(
    conn: &mut <Db as sqlx::Database>::Connection,
    inbox: &str,
    at: &Location,
    itself: bool,
) -> Result<()> {
    if let Some((path, key)) = at.row_address().filter(|_| itself) {
        sqlx::query("DELETE FROM inbox_entries WHERE inbox_id = $1 AND path = $2 AND key = $3")
            .bind(inbox)
            .bind(path)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    if at.is_root() {
        sqlx::query("DELETE FROM inbox_entries WHERE inbox_id = $1")
            .bind(inbox)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    sqlx::query("DELETE FROM inbox_entries WHERE inbox_id = $1 AND path = $2")
        .bind(inbox)
        .bind(at.joined())
        .execute(&mut *conn)
        .await?;
    let (start, end) = deeper_range(at);
    sqlx::query("DELETE FROM inbox_entries WHERE inbox_id = $1 AND path >= $2 AND path < $3")
        .bind(inbox)
        .bind(start)
        .bind(end)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl InboxStore for SqlStore {
    async fn create_inbox(&self, inbox: &Inbox) -> Result<()> {
        let (verification, secret) = verification_column(inbox);
        // What the older `/in/{name}/…` form resolves: an application's inbox by its id only,
        // so that its name is its application's alone.
        let global_name = match &inbox.app_id {
            Some(_) => inbox.id.as_str(),
            None => inbox.name.as_str(),
        };
        sqlx::query(
            "INSERT INTO inboxes (id, name, local_name, app_id, description, token_hash,
             verification, verify_secret, max_body_bytes, rate_limit, forward, drop_headers,
             public_write, created_at, updated_at)
             VALUES ($1, $2, $12, $3, $4, $5, $6, $7, $8, $9, $10, $13, $14, $11, $11)",
        )
        .bind(inbox.id.as_str())
        .bind(global_name)
        .bind(inbox.app_id.as_ref().map(|a| a.as_str().to_owned()))
        .bind(&inbox.description)
        .bind(&inbox.token_hash)
        .bind(verification)
        .bind(secret)
        .bind(inbox.max_body_bytes.map(i64::from))
        .bind(inbox.rate_limit.map(i64::from))
        .bind(inbox.forward.as_ref().map(to_json))
        .bind(millis(inbox.created_at))
        .bind(&inbox.name)
        .bind(drop_headers_column(inbox))
        .bind(inbox.public_write)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an inbox with this name already exists"))?;
        Ok(())
    }

    async fn get_inbox(&self, id_or_name: &str) -> Result<Option<Inbox>> {
        let row: Option<InboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inboxes WHERE id = $1 OR name = $1
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(id_or_name)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Inbox::try_from).transpose()
    }

    async fn get_inbox_of(&self, app: &AppId, name: &str) -> Result<Option<Inbox>> {
        let row: Option<InboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inboxes WHERE app_id = $1 AND local_name = $2"
        )))
        .bind(app.as_str())
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Inbox::try_from).transpose()
    }

    async fn find_inboxes_named(&self, name: &str) -> Result<Vec<Inbox>> {
        let rows: Vec<InboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {INBOX_COLUMNS} FROM inboxes WHERE id = $1 OR local_name = $1 OR name = $1
             ORDER BY id LIMIT 100"
        )))
        .bind(name)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(Inbox::try_from).collect()
    }

    async fn list_inboxes(&self, params: &ListParams, only: Option<&AppId>) -> Result<Page<Inbox>> {
        let mut qb = QueryBuilder::new(format!("SELECT {INBOX_COLUMNS} FROM inboxes WHERE 1 = 1"));
        if let Some(only) = only {
            qb.push(" AND app_id = ").push_bind(only.as_str().to_owned());
        }
        fetch_page::<InboxRow, _>(&self.reader, qb, "id", params).await
    }

    async fn update_inbox(&self, inbox: &Inbox) -> Result<()> {
        let (verification, secret) = verification_column(inbox);
        let done = sqlx::query(
            "UPDATE inboxes SET local_name = $2,
             name = CASE WHEN $3 IS NULL THEN $2
                         WHEN app_id IS NULL OR COALESCE(local_name, name) <> $2 THEN id
                         ELSE name END,
             app_id = $3, description = $4, token_hash = $5,
             verification = $6, verify_secret = $7, max_body_bytes = $8, rate_limit = $9,
             forward = $10, drop_headers = $12, public_write = $13, updated_at = $11
             WHERE id = $1",
        )
        .bind(inbox.id.as_str())
        .bind(&inbox.name)
        .bind(inbox.app_id.as_ref().map(|a| a.as_str().to_owned()))
        .bind(&inbox.description)
        .bind(&inbox.token_hash)
        .bind(verification)
        .bind(secret)
        .bind(inbox.max_body_bytes.map(i64::from))
        .bind(inbox.rate_limit.map(i64::from))
        .bind(inbox.forward.as_ref().map(to_json))
        .bind(millis(inbox.updated_at))
        .bind(drop_headers_column(inbox))
        .bind(inbox.public_write)
        .execute(&mut *self.write_conn().await?)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an inbox with this name already exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_inbox(&self, id: &InboxId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM inboxes WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn count_inbox_rejection(&self, id: &InboxId) -> Result<()> {
        sqlx::query("UPDATE inboxes SET rejected_count = rejected_count + 1 WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    async fn write_inbox(
        &self,
        entry: &NewEntry,
        forward: Option<&Message>,
    ) -> Result<(InboxEntry, Vec<EndpointId>)> {
        let (path, key) = match entry.location.row_address() {
            Some(address) => address,
            // Deleting the root empties the inbox; the deletion is kept as an entry at the
            // root's own address (`""`, `""`), which no other write can reach (segments are
            // never empty) and which holds nothing.
            None if matches!(&entry.write, Write::Put(serde_json::Value::Null)) => {
                (String::new(), String::new())
            }
            None => {
                return Err(StoreError::Corrupt(
                    "only a deletion may write at the root".into(),
                ));
            }
        };
        let inbox = entry.inbox_id.as_str();
        let mut tx = WriteTx::begin(self).await?;
        // Serializes writes to this inbox on engines with concurrent writers (a row lock).
        let exists = sqlx::query("UPDATE inboxes SET write_seq = write_seq + 1 WHERE id = $1")
            .bind(inbox)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if exists == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(replay) = &entry.replay {
            sqlx::query("DELETE FROM inbox_replays WHERE inbox_id = $1 AND seen_at < $2")
                .bind(inbox)
                .bind(millis(replay.forget_before))
                .execute(&mut *tx)
                .await?;
            let fresh = sqlx::query(
                "INSERT INTO inbox_replays (inbox_id, replay_key, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT (inbox_id, replay_key) DO NOTHING",
            )
            .bind(inbox)
            .bind(&replay.key)
            .bind(millis(entry.received_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                tx.rollback().await;
                return Err(StoreError::Conflict(
                    "this signed request was accepted already: a replay is refused",
                ));
            }
        }
        let above = rows_above(&mut tx, inbox, &entry.location).await?;
        let plan = inbox_tree::plan(&entry.location, &entry.write, above);
        for (id, value) in &plan.update {
            sqlx::query("UPDATE inbox_entries SET value = $2 WHERE id = $1")
                .bind(id)
                .bind(value.to_string())
                .execute(&mut *tx)
                .await?;
        }
        for id in &plan.delete {
            sqlx::query("DELETE FROM inbox_entries WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        match &plan.replaced_children {
            None => delete_below(&mut tx, inbox, &entry.location, false).await?,
            Some(children) => {
                for child in children {
                    delete_below(&mut tx, inbox, &entry.location.child(child), true).await?;
                }
            }
        }
        let stored = InboxEntry {
            id: entry.id.clone(),
            inbox_id: entry.inbox_id.clone(),
            path,
            key,
            method: entry.method.clone(),
            // A value that holds nothing (`{}`, `{"a": null}`) is kept as `null`, as Firebase
            // keeps nothing: reads never have to open a row to learn that it is empty.
            value: if inbox_tree::is_empty(&plan.value) {
                "null".to_owned()
            } else {
                plan.value.to_string()
            },
            encoding: entry.encoding,
            headers: entry.headers.clone(),
            source: entry.source.clone(),
            received_at: entry.received_at,
        };
        sqlx::query(
            "INSERT INTO inbox_entries (id, inbox_id, path, key, method, value, encoding, headers,
             source, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(stored.id.as_str())
        .bind(inbox)
        .bind(&stored.path)
        .bind(&stored.key)
        .bind(&stored.method)
        .bind(&stored.value)
        .bind(stored.encoding.as_str())
        .bind(headers_column(&stored.headers))
        .bind(stored.source.as_deref())
        .bind(millis(stored.received_at))
        .execute(&mut *tx)
        .await?;
        let matched = match forward {
            Some(message) => insert_message_in(&mut tx, message, None).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        let ids: Vec<&str> = matched.iter().map(|e| e.as_str()).collect();
        self.announce(&ids);
        Ok((stored, matched))
    }

    async fn read_inbox_tree(
        &self,
        inbox: &InboxId,
        at: &Location,
        query: &ChildQuery,
        max_rows: usize,
    ) -> Result<TreeRead> {
        let mut conn = self.reader.acquire().await?;
        let above = rows_above(&mut conn, inbox.as_str(), at).await?;
        drop(conn);
        if !query.is_everything() {
            return self
                .read_selected_children(inbox.as_str(), at, query, above, max_rows)
                .await;
        }
        let below = rows_below(&self.reader, inbox.as_str(), at, max_rows).await?;
        if below.len() > max_rows {
            return Ok(TreeRead::TooLarge);
        }
        let mut tree = serde_json::Value::Null;
        for row in &above {
            if let Some(value) = row
                .location
                .relative(at)
                .and_then(|rel| inbox_tree::extract(&row.value, rel))
            {
                inbox_tree::place(&mut tree, &[], value.clone());
            }
        }
        for (path, key, value) in below {
            let location = Location::of_row(&path, &key);
            if let Some(rel) = at.relative(&location) {
                inbox_tree::place(&mut tree, rel, parse_value(&value));
            }
        }
        Ok(TreeRead::Value(inbox_tree::normalize(tree)))
    }

    async fn read_inbox_shallow(
        &self,
        inbox: &InboxId,
        at: &Location,
        max_keys: usize,
    ) -> Result<TreeRead> {
        self.read_shallow(inbox.as_str(), at, max_keys).await
    }

    async fn list_inbox_entries(
        &self,
        inbox: &InboxId,
        filter: &EntryFilter,
        params: &ListParams,
    ) -> Result<Page<InboxEntry>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {ENTRY_COLUMNS} FROM inbox_entries WHERE inbox_id = "
        ));
        qb.push_bind(inbox.as_str().to_owned());
        push_entry_filter(&mut qb, filter);
        fetch_page::<EntryRow, _>(&self.reader, qb, "id", params).await
    }

    async fn count_inbox_entries(&self, inbox: &InboxId, filter: &EntryFilter) -> Result<u64> {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM inbox_entries WHERE inbox_id = ");
        qb.push_bind(inbox.as_str().to_owned());
        push_entry_filter(&mut qb, filter);
        let count: i64 = qb.build_query_scalar().fetch_one(&self.reader).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn last_inbox_entry(&self, inbox: &InboxId) -> Result<Option<InboxEntryId>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM inbox_entries WHERE inbox_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(inbox.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(id.map(InboxEntryId::from_trusted))
    }
}
