//! Batched task claims.
//!
//! Every endpoint's actor claims its own tasks, and they tend to want to at the same moment: a
//! publish wakes every endpoint it goes to, and a committed batch of results frees slots on
//! every endpoint in it. Each claim is a write, and on SQLite every write waits for the one
//! writer, so ten actors claiming one after the other cost ten transactions. The claimer takes
//! whatever claims are waiting and makes them in one transaction
//! ([`QueueStore::claim_tasks_of`]), answering each actor with its own tasks.

use std::sync::Arc;

use herald_store::{QueueStore, Task, TaskClaim};
use tokio::sync::{mpsc, oneshot};

/// Claims per transaction, at most.
const BATCH: usize = 256;

type Answer = Result<(Vec<Task>, i64), String>;

struct Request {
    claim: TaskClaim,
    answer: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct Claimer {
    tx: mpsc::Sender<Request>,
}

impl Claimer {
    /// Claims one endpoint's tasks, in a transaction shared with the other claims waiting at
    /// the same moment.
    pub async fn claim(&self, claim: TaskClaim) -> Answer {
        let (answer, answered) = oneshot::channel();
        let gone = || "the worker is stopping".to_owned();
        self.tx
            .send(Request { claim, answer })
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// Starts the claimer; it stops once every [`Claimer`] handle is dropped.
pub fn spawn(store: Arc<dyn QueueStore>, node: String) -> Claimer {
    let (tx, mut rx) = mpsc::channel::<Request>(BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let claims: Vec<TaskClaim> = batch.iter().map(|r| r.claim.clone()).collect();
            match store
                .claim_tasks_of(&node, herald_core::time::now(), &claims)
                .await
            {
                Ok(claimed) => {
                    for (request, tasks) in batch.drain(..).zip(claimed) {
                        let _ = request.answer.send(Ok(tasks));
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    for request in batch.drain(..) {
                        let _ = request.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    });
    Claimer { tx }
}
