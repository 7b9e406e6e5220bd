//! Group commit of attempt results.
//!
//! Attempts finish concurrently; writing each result in its own transaction would cost one disk
//! flush per attempt. The writer takes whatever results are waiting, commits them in one
//! transaction, and only then acknowledges each: an attempt's slot is freed (and, for FIFO
//! endpoints, the next message released) only once its outcome is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use herald_store::{AttemptRecord, CompletionEffects, QueueStore};
use tokio::sync::{mpsc, oneshot};

use crate::operational::Operational;

/// Results waiting at most this many per transaction.
const BATCH: usize = 256;
/// Longest wait between two tries to commit results (it was 5 s: the fault suite's Postgres
/// runs then saw results commit after their tasks had been sent again; RELIABILITY.md).
const RETRY_AT_MOST: Duration = Duration::from_secs(1);

pub struct Completion {
    pub record: AttemptRecord,
    pub done: oneshot::Sender<()>,
}

#[derive(Clone)]
pub struct Completions {
    tx: mpsc::Sender<Completion>,
    /// When the batch being written was first tried (Unix milliseconds), 0 when none is.
    writing_since: Arc<AtomicI64>,
}

impl Completions {
    /// How long the writer has been trying to commit its current batch: results that cannot
    /// be recorded mean this node cannot serve its endpoints, whatever else still answers.
    pub fn stalled_for(&self) -> Duration {
        let since = self.writing_since.load(Ordering::Relaxed);
        if since == 0 {
            return Duration::ZERO;
        }
        let now = herald_core::time::now().timestamp_millis();
        Duration::from_millis(u64::try_from(now - since).unwrap_or(0))
    }

    /// Hands a result to the writer and waits until it is committed (or the writer is gone).
    pub async fn commit(&self, record: AttemptRecord) {
        let (done, committed) = oneshot::channel();
        if self.tx.send(Completion { record, done }).await.is_ok() {
            let _ = committed.await;
        }
    }
}

/// Starts the writer; it stops when every `Completions` handle is dropped and the queue drained.
pub fn spawn(
    store: Arc<dyn QueueStore>,
    node: String,
    disable_after: chrono::Duration,
    operational: Operational,
) -> (Completions, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Completion>(4 * BATCH);
    let writing_since = Arc::new(AtomicI64::new(0));
    let writing = writing_since.clone();
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            writing.store(
                herald_core::time::now().timestamp_millis(),
                Ordering::Relaxed,
            );
            let records: Vec<AttemptRecord> = batch.iter().map(|c| c.record.clone()).collect();
            let mut backoff = Duration::from_millis(50);
            loop {
                match store
                    .complete_attempts(&node, &records, disable_after, herald_core::time::now())
                    .await
                {
                    Ok(effects) => {
                        for disabled in &effects.disabled {
                            tracing::warn!(endpoint = %disabled.endpoint, "endpoint disabled after failing deliveries");
                        }
                        if effects != CompletionEffects::default() {
                            // Their events were committed with the results; the relay
                            // publishes them off the writer's path.
                            operational.poke();
                        }
                        break;
                    }
                    Err(e) if e.is_transient() => {
                        // Keep the results until the database is back (or has space again);
                        // the attempts' tasks stay leased meanwhile, but only for their
                        // lease: past it another node sends them again. So the wait between
                        // tries stays short (`RETRY_AT_MOST`), and the results commit within
                        // a second of the database answering again, before the other nodes'
                        // sweeps find the tasks.
                        tracing::warn!(error = %e, "cannot record attempts yet; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = next_wait(backoff);
                    }
                    Err(e) => {
                        // Not retryable: the tasks are delivered again after their lease.
                        tracing::error!(error = %e, count = records.len(), "recording attempts failed");
                        break;
                    }
                }
            }
            writing.store(0, Ordering::Relaxed);
            for completion in batch.drain(..) {
                let _ = completion.done.send(());
            }
        }
    });
    (Completions { tx, writing_since }, task)
}

/// The wait before the next try to commit results, after waiting `previous`: doubling, at most
/// `RETRY_AT_MOST`.
fn next_wait(previous: Duration) -> Duration {
    (previous * 2).min(RETRY_AT_MOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task's lease is its attempt's time plus half the lease duration: results that wait
    /// longer than that half after the database is back may be sent again by another node.
    #[test]
    fn the_wait_between_tries_stays_under_the_shortest_lease_margin() {
        let margin = crate::config::SHORTEST_LEASE / 2;
        let mut wait = Duration::from_millis(50);
        for _ in 0..30 {
            wait = next_wait(wait);
            assert!(wait <= RETRY_AT_MOST);
        }
        assert_eq!(wait, RETRY_AT_MOST);
        assert!(
            RETRY_AT_MOST * 2 <= margin,
            "{RETRY_AT_MOST:?} against {margin:?}"
        );
    }
}
