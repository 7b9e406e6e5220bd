//! Subcommands other than `serve`: `verify` and `catalog import` (`secrets rotate-key` lives
//! in `bootstrap`, next to the keyring it changes).

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
