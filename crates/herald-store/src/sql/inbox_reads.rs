// Tree reads of the SQL stores' inbox role, `include!`d by `common.rs` after `inbox.rs` (whose
// helpers they use): a whole subtree, the children a key query selects, and shallow reads.
//
// Every read is bounded by the caller's row budget, checked as rows are found, so that an inbox
// of any size costs a read at most that many rows (or a `TooLarge` answer).

/// Rows strictly below `at` as `(path, key, value)`, at most `max + 1` of them.
async fn rows_below(
    pool: &Pool<Db>,
    inbox: &str,
    at: &Location,
    max: usize,
) -> Result<Vec<(String, String, String)>> {
    let limit = to_limit(max) + 1;
    if at.is_root() {
        return Ok(sqlx::query_as(
            "SELECT path, key, value FROM inbox_entries WHERE inbox_id = $1 LIMIT $2",
        )
        .bind(inbox)
        .bind(limit)
        .fetch_all(pool)
        .await?);
    }
    let mut rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT path, key, value FROM inbox_entries WHERE inbox_id = $1 AND path = $2 LIMIT $3",
    )
    .bind(inbox)
    .bind(at.joined())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let (start, end) = deeper_range(at);
    rows.extend(
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT path, key, value FROM inbox_entries
             WHERE inbox_id = $1 AND path >= $2 AND path < $3 LIMIT $4",
        )
        .bind(inbox)
        .bind(start)
        .bind(end)
        .bind(limit)
        .fetch_all(pool)
        .await?,
    );
    Ok(rows)
}

/// The children of `at` that rows deeper than its children hold, found by skipping through
/// the index one child at a time; `None` when there are more than `max`.
async fn deeper_children(
    pool: &Pool<Db>,
    inbox: &str,
    at: &Location,
    max: usize,
) -> Result<Option<BTreeSet<String>>> {
    let (mut from, end) = deeper_range(at);
    let base = if at.is_root() {
        String::new()
    } else {
        format!("{}/", at.joined())
    };
    let mut children = BTreeSet::new();
    loop {
        let mut qb = QueryBuilder::<Db>::new("SELECT path FROM inbox_entries WHERE inbox_id = ");
        qb.push_bind(inbox.to_owned())
            .push(" AND path >= ")
            .push_bind(from.clone());
        if let Some(end) = &end {
            qb.push(" AND path < ").push_bind(end.clone());
        }
        qb.push(" ORDER BY path LIMIT 1");
        let Some(path): Option<String> = qb.build_query_scalar().fetch_optional(pool).await? else {
            return Ok(Some(children));
        };
        let rest = path.get(base.len()..).unwrap_or_default();
        let child = rest.split('/').next().unwrap_or_default().to_owned();
        // Past this child's own children (`path = base + child`), the next path is another
        // child's, or this child's deeper rows (`base + child + '/…'`), which end at `…0`.
        from = if rest == child {
            format!("{base}{child}\u{1}")
        } else {
            format!("{base}{child}0")
        };
        children.insert(child);
        if children.len() > max {
            return Ok(None);
        }
    }
}

impl SqlStore {
    /// A tree read whose query selects some children: only the selected children's rows are
    /// read. The selected keys are among the first (or last) `n` keys of the rows directly
    /// below, the children that rows deeper down hold and the children in the values of rows
    /// above (see `ChildQuery::select`).
    async fn read_selected_children(
        &self,
        inbox: &str,
        at: &Location,
        query: &ChildQuery,
        above: Vec<RowAbove>,
        max_rows: usize,
    ) -> Result<TreeRead> {
        let joined = at.joined();
        // Rows of `null` (a deletion kept as an entry) hold no child.
        let mut qb =
            QueryBuilder::<Db>::new("SELECT key FROM inbox_entries WHERE inbox_id = ");
        qb.push_bind(inbox.to_owned())
            .push(" AND path = ")
            .push_bind(joined.clone())
            .push(" AND value NOT IN ('null', '{}')");
        if let Some(start) = &query.start_at {
            qb.push(" AND key >= ").push_bind(start.clone());
        }
        if let Some(end) = &query.end_at {
            qb.push(" AND key <= ").push_bind(end.clone());
        }
        let (descending, limit) = match query.limit {
            Some(Limit::First(n)) => (false, n),
            Some(Limit::Last(n)) => (true, n),
            None => (false, max_rows + 1),
        };
        qb.push(if descending { " ORDER BY key DESC" } else { " ORDER BY key ASC" })
            .push(" LIMIT ")
            .push_bind(to_limit(limit.min(max_rows + 1)));
        let mut candidates: Vec<String> = qb.build_query_scalar().fetch_all(&self.reader).await?;
        if candidates.len() > max_rows {
            return Ok(TreeRead::TooLarge);
        }
        let Some(deeper) = deeper_children(&self.reader, inbox, at, max_rows).await? else {
            return Ok(TreeRead::TooLarge);
        };
        candidates.extend(deeper.iter().cloned());
        let mut tree = serde_json::Value::Null;
        for row in &above {
            // The part of a row at or above `at` that falls inside it.
            if let Some(value) = row
                .location
                .relative(at)
                .and_then(|rel| inbox_tree::extract(&row.value, rel))
            {
                if let serde_json::Value::Object(map) = value {
                    candidates.extend(map.keys().cloned());
                }
                inbox_tree::place(&mut tree, &[], value.clone());
            }
        }
        let selected = query.select(candidates);
        let wanted: Vec<String> = selected.iter().cloned().collect();
        let mut budget = max_rows;
        for chunk in wanted.chunks(INSERT_CHUNK) {
            let mut qb =
                QueryBuilder::<Db>::new("SELECT key, value FROM inbox_entries WHERE inbox_id = ");
            qb.push_bind(inbox.to_owned())
                .push(" AND path = ")
                .push_bind(joined.clone())
                .push(" AND key IN (");
            let mut list = qb.separated(", ");
            for key in chunk {
                list.push_bind(key.clone());
            }
            qb.push(")");
            let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&self.reader).await?;
            budget = budget.saturating_sub(rows.len());
            for (key, value) in rows {
                inbox_tree::place(&mut tree, &[key], parse_value(&value));
            }
        }
        for child in selected.iter().filter(|c| deeper.contains(*c)) {
            let below = at.child(child);
            let rows = rows_below(&self.reader, inbox, &below, budget).await?;
            if rows.len() > budget {
                return Ok(TreeRead::TooLarge);
            }
            budget -= rows.len();
            for (path, key, value) in rows {
                let location = Location::of_row(&path, &key);
                if let Some(rel) = at.relative(&location) {
                    inbox_tree::place(&mut tree, rel, parse_value(&value));
                }
            }
        }
        Ok(TreeRead::Value(query.apply(inbox_tree::normalize(tree))))
    }

    /// A shallow read: a primitive at `at` as it is, otherwise the keys of the children that
    /// hold data, each `true`, without reading their values. Children come from the values of
    /// the rows above, the rows directly below (unless `null`) and the rows deeper down (a child
    /// whose deeper rows are all `null`, the marks of deletions, holds nothing and is left out).
    pub(crate) async fn read_shallow(
        &self,
        inbox: &str,
        at: &Location,
        max_keys: usize,
    ) -> Result<TreeRead> {
        let mut conn = self.reader.acquire().await?;
        let above = rows_above(&mut conn, inbox, at).await?;
        drop(conn);
        let mut keys = BTreeSet::new();
        for row in &above {
            let Some(value) = row
                .location
                .relative(at)
                .and_then(|rel| inbox_tree::extract(&row.value, rel))
            else {
                continue;
            };
            match value {
                serde_json::Value::Object(map) => keys.extend(
                    map.iter()
                        .filter(|(_, v)| !inbox_tree::is_empty(v))
                        .map(|(k, _)| k.clone()),
                ),
                serde_json::Value::Null => {}
                // A primitive or an array: a write below it would have replaced it, so nothing
                // lies deeper.
                other => return Ok(TreeRead::Value(inbox_tree::shallow(other.clone()))),
            }
        }
        let direct: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM inbox_entries WHERE inbox_id = $1 AND path = $2
             AND value NOT IN ('null', '{}') ORDER BY key LIMIT $3",
        )
        .bind(inbox)
        .bind(at.joined())
        .bind(to_limit(max_keys) + 1)
        .fetch_all(&self.reader)
        .await?;
        keys.extend(direct);
        if keys.len() > max_keys {
            return Ok(TreeRead::TooLarge);
        }
        let Some(deeper) = deeper_children(&self.reader, inbox, at, max_keys).await? else {
            return Ok(TreeRead::TooLarge);
        };
        for child in deeper {
            if !keys.contains(&child) && holds_data(&self.reader, inbox, &at.child(&child)).await?
            {
                keys.insert(child);
                if keys.len() > max_keys {
                    return Ok(TreeRead::TooLarge);
                }
            }
        }
        if keys.is_empty() {
            return Ok(TreeRead::Value(serde_json::Value::Null));
        }
        Ok(TreeRead::Value(serde_json::Value::Object(
            keys.into_iter()
                .map(|k| (k, serde_json::Value::Bool(true)))
                .collect(),
        )))
    }
}

/// Whether any row strictly below `at` holds a value (rather than the `null` of a deletion).
async fn holds_data(pool: &Pool<Db>, inbox: &str, at: &Location) -> Result<bool> {
    let direct: Option<String> = sqlx::query_scalar(
        "SELECT key FROM inbox_entries WHERE inbox_id = $1 AND path = $2
         AND value NOT IN ('null', '{}') LIMIT 1",
    )
    .bind(inbox)
    .bind(at.joined())
    .fetch_optional(pool)
    .await?;
    if direct.is_some() {
        return Ok(true);
    }
    let (start, end) = deeper_range(at);
    let mut qb = QueryBuilder::<Db>::new("SELECT key FROM inbox_entries WHERE inbox_id = ");
    qb.push_bind(inbox.to_owned())
        .push(" AND path >= ")
        .push_bind(start);
    if let Some(end) = end {
        qb.push(" AND path < ").push_bind(end);
    }
    qb.push(" AND value NOT IN ('null', '{}') LIMIT 1");
    let deeper: Option<String> = qb.build_query_scalar().fetch_optional(pool).await?;
    Ok(deeper.is_some())
}
