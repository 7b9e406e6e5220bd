//! Retention: message payloads and attempt response bodies are deleted once they are old
//! enough, so that storage stays bounded. The rows themselves stay (without their content), so
//! delivery logs, statistics and attempt lists keep telling what happened.
//!
//! Purging runs in the background in small batches with a pause between them: on SQLite every
//! write waits for the one writer connection, and a long purge transaction would hold up the
//! delivery engine's commits.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_store::{Store, StoreError};

/// Retention settings of `herald serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Days a message payload is kept (messages may ask for less).
    pub payload_days: u32,
    /// Days an attempt's response body is kept.
    pub response_days: u32,
}

/// Rows changed per transaction.
const BATCH: u64 = 500;
/// Pause between two batches, leaving the writer to the delivery engine.
const PAUSE: Duration = Duration::from_millis(50);
/// How often to look for something to purge.
const INTERVAL: Duration = Duration::from_secs(60);

/// What one pass purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub payloads: u64,
    pub responses: u64,
}

/// Purges everything due at `now`, batch by batch.
pub async fn purge(
    store: &dyn Store,
    config: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    loop {
        let n = store.purge_payloads(now, BATCH).await?;
        purged.payloads += n;
        if n < BATCH {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let before = now - chrono::Duration::days(i64::from(config.response_days));
    loop {
        let n = store.purge_attempt_responses(before, BATCH).await?;
        purged.responses += n;
        if n < BATCH {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    Ok(purged)
}

/// Purges every minute until the task is aborted.
pub async fn run(store: Arc<dyn Store>, config: RetentionConfig) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match purge(store.as_ref(), &config, herald_core::time::now()).await {
            Ok(purged) if purged != Purged::default() => {
                tracing::info!(
                    payloads = purged.payloads,
                    responses = purged.responses,
                    "retention: deleted old content"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: purging failed; trying again later"),
        }
    }
}
