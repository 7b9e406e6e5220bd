//! Group commit of attempt results.
//!
//! Attempts finish concurrently; writing each result in its own transaction would cost one disk
//! flush per attempt. The writer takes whatever results are waiting, commits them in one
//! transaction, and only then acknowledges each: an attempt's slot is freed (and, for FIFO
//! endpoints, the next message released) only once its outcome is durable.

use std::sync::Arc;
use std::time::Duration;

use herald_store::{AttemptRecord, CompletionEffects, QueueStore};
use tokio::sync::{mpsc, oneshot};

use crate::operational::Operational;

/// Results waiting at most this many per transaction.
const BATCH: usize = 256;

pub struct Completion {
    pub record: AttemptRecord,
    pub done: oneshot::Sender<()>,
}

#[derive(Clone)]
pub struct Completions {
    tx: mpsc::Sender<Completion>,
}

impl Completions {
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
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
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
                            // Reported off the writer's path: results keep committing meanwhile.
                            let operational = operational.clone();
                            let records = records.clone();
                            tokio::spawn(async move {
                                operational.attempt_effects(&records, &effects).await;
                            });
                        }
                        break;
                    }
                    Err(e) if e.is_transient() => {
                        // Keep the results until the database is back (or has space again);
                        // the attempts' tasks stay leased meanwhile.
                        tracing::warn!(error = %e, "cannot record attempts yet; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        // Not retryable: the tasks are delivered again after their lease.
                        tracing::error!(error = %e, count = records.len(), "recording attempts failed");
                        break;
                    }
                }
            }
            for completion in batch.drain(..) {
                let _ = completion.done.send(());
            }
        }
    });
    (Completions { tx }, task)
}
