//! Group commit of publishes on Postgres.
//!
//! A publish alone is some eight statements, each a round trip and each parsed, planned and
//! executed by the server: on this 2-core machine the server's CPU per delivery (1.2 ms,
//! `herald bench`) was what bounded one node, not its disk. Publishes waiting at the same
//! moment are therefore stored together, by one committer task per node, with the few
//! multi-row statements of `insert_messages_in` and one commit, and each is answered only after
//! that commit. A publish's own error (a duplicate `eventId`) sends the batch round again, one
//! publish per savepoint, so that it fails alone; a database failure fails the batch.

use super::*;
use tokio::sync::oneshot;

/// Publishes per group commit, at most.
const BATCH: usize = 128;

/// A publish waiting for the committer.
pub(super) struct Publish {
    pub(super) msg: Message,
    pub(super) only: Option<EndpointId>,
    pub(super) completes: Option<IdempotencyCompletion>,
    pub(super) done: oneshot::Sender<Result<Vec<EndpointId>>>,
}

impl Publish {
    fn as_new(&self) -> NewMessage<'_> {
        NewMessage {
            msg: &self.msg,
            only: self.only.as_ref(),
            completes: self.completes.as_ref(),
        }
    }
}

/// Starts the committer; it ends when every sender is dropped.
pub(super) fn spawn(
    pool: Pool<Db>,
    announcements: mpsc::Sender<Vec<String>>,
) -> mpsc::Sender<Publish> {
    let (publishes, queued) = mpsc::channel(4 * BATCH);
    tokio::spawn(commit_publishes(pool, announcements, queued));
    publishes
}

/// Stores what is waiting in one transaction, again and again. A publish whose caller has gone
/// is still committed (as it would be had the caller gone during its own commit).
async fn commit_publishes(
    pool: Pool<Db>,
    announcements: mpsc::Sender<Vec<String>>,
    mut queued: mpsc::Receiver<Publish>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        match commit_batch(&pool, &batch).await {
            Ok(outcomes) => {
                let mut due: Vec<String> = outcomes
                    .iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.as_str().to_owned())
                    .collect();
                due.sort_unstable();
                due.dedup();
                if !due.is_empty() {
                    // Never waits: when the notifier is behind, the sweeps find the work.
                    let _ = announcements.try_send(due);
                }
                for (publish, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = publish.done.send(outcome);
                }
            }
            Err(e) => {
                for publish in batch.drain(..) {
                    let _ = publish.done.send(Err(e.for_another_waiter()));
                }
            }
        }
    }
}

/// Stores a batch: the outcome of each publish, or the error that stored none of them. A
/// publish is `Ok` only if the `COMMIT` of the transaction holding it succeeded.
async fn commit_batch(pool: &Pool<Db>, batch: &[Publish]) -> Result<Vec<Result<Vec<EndpointId>>>> {
    let all: Vec<NewMessage<'_>> = batch.iter().map(Publish::as_new).collect();
    let mut tx = pool.begin().await?;
    match insert_messages_in(&mut tx, &all).await {
        Ok(matched) => {
            tx.commit().await?;
            return Ok(matched.into_iter().map(Ok).collect());
        }
        Err(e) if e.is_transient() => return Err(e),
        Err(e) if batch.len() == 1 => {
            let _ = tx.rollback().await;
            return Ok(vec![Err(e)]);
        }
        // One of them fails on its own: again, one by one, each with its outcome.
        Err(_) => {
            let _ = tx.rollback().await;
        }
    }
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for publish in &all {
        // Postgres undoes only what came after the savepoint.
        sqlx::raw_sql("SAVEPOINT publish").execute(&mut *tx).await?;
        match insert_messages_in(&mut tx, std::slice::from_ref(publish)).await {
            Ok(mut matched) => {
                sqlx::raw_sql("RELEASE publish").execute(&mut *tx).await?;
                outcomes.push(Ok(matched.pop().unwrap_or_default()));
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                sqlx::raw_sql("ROLLBACK TO publish; RELEASE publish")
                    .execute(&mut *tx)
                    .await?;
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}
