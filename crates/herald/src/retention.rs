//! Retention: what Herald stores is deleted once it is old enough, so that the database stops
//! growing.
//!
//! - Message payloads go after `--payload-retention-days` (or a message's shorter
//!   `payloadRetentionPeriod`), attempt response bodies after `--response-retention-days`: the
//!   rows stay, without their content, so delivery logs, statistics and attempt lists keep
//!   telling what happened.
//! - After `--log-retention-days` (never shorter than the payload retention) the rows go:
//!   each message with everything that belongs to it (its delivery tasks, their attempts, its
//!   polling endpoints' entries). Only finished history goes: a message with a task still to
//!   deliver (retrying, or scheduled far ahead) stays however old, until its last task ends.
//! - On SQLite the file then shrinks: the database uses incremental auto-vacuum (migration
//!   0025), and each pass that deleted something gives the free pages back in bounded steps.
//!   On Postgres vacuum makes the space reusable by the same tables.
//!
//! Everything runs in the background in small batches with a pause between them: on SQLite
//! every write waits for the one writer connection, and a long purge transaction would hold up
//! the delivery engine's commits. (Other tables clean up after themselves: `Idempotency-Key`
//! records after 24 hours and expired API keys in `startup.rs`'s maintenance, finished
//! background tasks in the task runner, an inbox's replay keys on its writes. Inbox entries
//! are data, not a log, and devices' histories are per device: neither is purged by age.)

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_store::{Store, StoreError};

/// Retention settings of `herald serve`, in days; decimals allowed, so that a deployment that
/// must forget quickly (or a soak test) can keep content for hours or minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionConfig {
    /// Days a message payload is kept (messages may ask for less).
    pub payload_days: f64,
    /// Days an attempt's response body is kept.
    pub response_days: f64,
    /// Days a finished message is kept, with its tasks and attempts; at least `payload_days`.
    pub log_days: f64,
}

/// A retention period of `days` (a decimal number of days) as a duration, to the millisecond.
pub fn period(days: f64) -> chrono::Duration {
    // The options are bounded to 0.001..=36500 days, far inside i64 milliseconds.
    #[allow(clippy::cast_possible_truncation)]
    chrono::Duration::milliseconds((days * 86_400_000.0).round() as i64)
}

/// Rows changed per transaction.
const BATCH: u64 = 500;
/// Messages deleted per transaction, each with its tasks and attempts (a few rows each).
const MESSAGE_BATCH: u64 = 100;
/// Free pages given back to the file system per step (4 MB with SQLite's 4 kB pages).
const RECLAIM_PAGES: u64 = 1000;
/// Pause between two batches, leaving the writer to the delivery engine.
const PAUSE: Duration = Duration::from_millis(50);
/// How often to look for something to purge.
const INTERVAL: Duration = Duration::from_secs(60);

/// What one pass purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub payloads: u64,
    pub responses: u64,
    /// Messages deleted, with their tasks and attempts.
    pub messages: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// SQLite pages given back to the file system.
    pub reclaimed_pages: u64,
}

/// Purges everything due at `now`, batch by batch, then gives the freed space back.
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
    let before = now - period(config.response_days);
    loop {
        let n = store.purge_attempt_responses(before, BATCH).await?;
        purged.responses += n;
        if n < BATCH {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let before = now - period(config.log_days);
    loop {
        let n = store.purge_messages(before, MESSAGE_BATCH).await?;
        purged.messages += n.messages;
        purged.deliveries += n.deliveries;
        purged.attempts += n.attempts;
        if n.messages < MESSAGE_BATCH {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    if purged != Purged::default() {
        loop {
            let n = store.reclaim_space(RECLAIM_PAGES).await?;
            purged.reclaimed_pages += n;
            if n < RECLAIM_PAGES {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
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
                    messages = purged.messages,
                    deliveries = purged.deliveries,
                    attempts = purged.attempts,
                    reclaimed_pages = purged.reclaimed_pages,
                    "retention: deleted old content"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: purging failed; trying again later"),
        }
    }
}
