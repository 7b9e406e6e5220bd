//! Subcommands other than `serve`: `verify`, `catalog import` and `stats storage`
//! (`secrets rotate-key` lives in `bootstrap`, next to the keyring it changes).

use herald_core::signing::{self, Scheme, SignatureConfig, Verification};

use crate::cli::VerifyArgs;

/// Checks a delivery: `Ok` when it verifies, otherwise the reason. Bad arguments are errors too.
pub fn verify(args: &VerifyArgs, body: &[u8], now: i64) -> Result<(), VerifyFailure> {
    let scheme = Scheme::parse(&args.scheme).ok_or_else(|| {
        VerifyFailure::Usage(format!(
            "unknown --scheme {:?} (standard-v1, standard-v1a, hmac-sha1-hex, hmac-sha256-hex, \
             static-header, none)",
            args.scheme
        ))
    })?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| VerifyFailure::Usage(format!("--header {h:?} is not `name: value`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = SignatureConfig {
        scheme,
        header: args.signature_header.clone(),
        prefix: args.prefix.clone(),
    };
    let check = Verification {
        config: &config,
        secret: &args.secret,
        now_and_tolerance: (args.tolerance > 0).then_some((now, args.tolerance)),
    };
    signing::verify(&check, &headers, body).map_err(|e| VerifyFailure::Rejected(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Rejected(String),
}

/// Why `catalog import` did not complete.
#[derive(Debug)]
pub enum ImportFailure {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The server could not be reached or refused (exit 1).
    Failed(String),
}

/// `herald catalog import`: asks a running Herald to import a built-in catalogue and returns
/// a one-line summary.
pub async fn import_catalog(args: &crate::cli::CatalogImportArgs) -> Result<String, ImportFailure> {
    if herald_core::catalog::find(&args.name).is_none() {
        return Err(ImportFailure::Usage(format!(
            "unknown catalogue {:?} (known: {})",
            args.name,
            herald_core::catalog::NAMES.join(", ")
        )));
    }
    let url = format!(
        "{}/api/v1/event-type/import",
        args.server.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&args.token)
        .json(&serde_json::json!({"catalog": args.name}))
        .send()
        .await
        .map_err(|e| ImportFailure::Failed(format!("cannot reach {url}: {e}")))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| ImportFailure::Failed(format!("{url} answered {status} without JSON: {e}")))?;
    if !status.is_success() {
        return Err(ImportFailure::Failed(format!(
            "{url} answered {status}: {body}"
        )));
    }
    let list = |key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (created, unchanged) = (list("created"), list("unchanged"));
    Ok(format!(
        "{}: {} created{}{}, {} already present",
        args.name,
        created.len(),
        if created.is_empty() { "" } else { ": " },
        created.join(", "),
        unchanged.len()
    ))
}

/// Why `stats storage` could not read the database.
#[derive(Debug, thiserror::Error)]
pub enum StatsFailure {
    #[error("no database at {0} (start Herald or run `herald migrate` first)")]
    Missing(String),
    #[error("cannot read the database: {0}")]
    Store(#[from] herald_store::StoreError),
}

/// `herald stats storage`: opens the database (applying pending migrations, as every start
/// does) and reports what it holds, as an aligned table or, with `json`, one JSON object.
pub async fn storage_stats(
    storage: &crate::config::StorageConfig,
    json: bool,
) -> Result<String, StatsFailure> {
    // Opening a SQLite database that is not there would create it.
    if let Some(path) = sqlite_file(&storage.database_url)
        && !path.exists()
    {
        return Err(StatsFailure::Missing(path.display().to_string()));
    }
    let store = herald_store::connect(&storage.database_url).await?;
    let stats = store.storage_stats().await;
    store.close().await;
    let stats = stats?;
    Ok(if json {
        let mut text = serde_json::to_string_pretty(&storage_json(&stats)).unwrap_or_default();
        text.push('\n');
        text
    } else {
        storage_table(&stats)
    })
}

/// The file of a `sqlite:` database URL.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

fn storage_json(stats: &herald_store::StorageStats) -> serde_json::Value {
    let tables: Vec<serde_json::Value> = stats
        .tables
        .iter()
        .map(|t| serde_json::json!({"name": t.name, "rows": t.rows, "bytes": t.bytes}))
        .collect();
    serde_json::json!({
        "engine": stats.engine,
        "databaseBytes": stats.database_bytes,
        "freeBytes": stats.free_bytes,
        "tables": tables,
        "oldestMessage": stats.oldest_message.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "oldestAttempt": stats.oldest_attempt.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    })
}

/// Aligned columns, as the client commands print theirs (not shared: `client` uses this
/// module's `verify`).
fn storage_table(stats: &herald_store::StorageStats) -> String {
    let mut rows = vec![["TABLE".to_owned(), "ROWS".to_owned(), "BYTES".to_owned()]];
    rows.extend(stats.tables.iter().map(|t| {
        [
            t.name.to_owned(),
            t.rows.to_string(),
            t.bytes.map_or_else(|| "-".into(), |b| b.to_string()),
        ]
    }));
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (name, count) = (width(0), width(1));
    let mut out = String::new();
    for [table, rows, bytes] in &rows {
        out.push_str(&format!("{table:<name$}  {rows:<count$}  {bytes}\n"));
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "none".into(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    };
    let free = stats
        .free_bytes
        .map(|b| format!(", {b} of them free"))
        .unwrap_or_default();
    out.push_str(&format!(
        "database: {} bytes{free} ({})\noldest message: {}\noldest attempt: {}\n",
        stats.database_bytes,
        stats.engine,
        when(stats.oldest_message),
        when(stats.oldest_attempt),
    ));
    out
}
