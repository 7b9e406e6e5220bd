//! The delivery worker.
//!
//! The database is the queue (see ARCHITECTURE.md). This module turns its rows into HTTP
//! requests:
//!
//! - The **dispatcher** (this module) owns endpoints, not tasks: it claims endpoints that have
//!   due work (with a lease, renewed while it works on them) and runs one [`actor`] per owned
//!   endpoint. A publish wakes it at once through [`Wakeup`] (on Postgres also one made through
//!   another node, announced by the database); a periodic sweep picks up scheduled retries and
//!   endpoints whose previous owner died. Several nodes sweep the same database safely: a claim
//!   skips what another node is claiming.
//! - Each **actor** claims that endpoint's due tasks (leased to this node) within its capacity
//!   and runs the attempts ([`attempt`]); no database transaction is open during an HTTP call.
//!   Claims made at the same moment share one transaction ([`claims`]).
//! - Results go through the **completion writer** ([`completion`]), which commits them in
//!   batches.
//!
//! On shutdown the worker stops claiming, waits for attempts in flight up to the grace period,
//! and hands everything it still holds back to the queue.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use herald_core::crypto::Keyring;
use herald_core::id::EndpointId;
use herald_store::QueueStore;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::operational::Operational;
use crate::outbound::Outbound;
use crate::wakeup::{Wakeup, forward_wakeups};

pub mod actor;
pub mod attempt;
pub mod claims;
pub mod completion;
pub mod shaping;
pub mod snapshot;

/// Settings of the delivery worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This process's name in leases; unique per start.
    pub node_id: String,
    /// The server-wide retry schedule (endpoints may set their own).
    pub retry_schedule: Vec<Duration>,
    /// Per-attempt timeout unless the endpoint sets `timeoutSeconds`.
    pub default_timeout: Duration,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: chrono::Duration,
    /// How long shutdown waits for attempts in flight.
    pub shutdown_grace: Duration,
    /// Endpoint ownership lease; renewed every third of it.
    pub endpoint_lease: Duration,
    /// Added to an attempt's timeout to make its task lease.
    pub attempt_lease_margin: Duration,
    /// How often to look for due retries and orphaned endpoints.
    pub sweep_interval: Duration,
    /// Response bodies are stored up to this many bytes.
    pub max_response_bytes: usize,
    /// Send `svix-id`, `svix-timestamp` and `svix-signature` next to the Standard Webhooks
    /// headers, for receivers on older Svix libraries.
    pub svix_headers: bool,
    /// Label attempt metrics with the endpoint id (one series per endpoint).
    pub metrics_endpoint_labels: bool,
    /// Most attempts in flight at once on this node, over every endpoint (`--max-in-flight`).
    pub max_in_flight: usize,
    /// URLs a transformation chooses must be `https` (`--require-https`).
    pub require_https: bool,
}

/// The worker of a `herald serve` process: the delivery and metrics settings it was started
/// with (their defaults are those of
/// [`DeliveryConfig`](crate::config::DeliveryConfig)), and a node id new at each start.
impl From<&Config> for WorkerConfig {
    fn from(config: &Config) -> Self {
        let delivery = &config.delivery;
        Self {
            node_id: format!("node-{}", herald_core::token::random_base62(12)),
            retry_schedule: delivery.retry_schedule.clone(),
            default_timeout: delivery.timeout,
            // At most a year (see `config`), far inside chrono's range.
            disable_after: chrono::Duration::from_std(delivery.disable_after)
                .unwrap_or(chrono::Duration::MAX),
            shutdown_grace: delivery.shutdown_grace,
            endpoint_lease: delivery.lease_duration,
            // The clock margin: a dead node's in-flight tasks wait this much past their
            // attempt's timeout, in case its clock was behind.
            attempt_lease_margin: delivery.lease_duration / 2,
            sweep_interval: Duration::from_millis(250),
            max_response_bytes: 20_000,
            svix_headers: delivery.svix_headers,
            metrics_endpoint_labels: config.metrics.endpoint_labels,
            max_in_flight: delivery.max_in_flight,
            require_https: delivery.require_https,
        }
    }
}

/// What the actors share.
pub struct Shared {
    /// The queue role only: all the worker reads and writes.
    pub store: Arc<dyn QueueStore>,
    pub keyring: Arc<Keyring>,
    pub outbound: Arc<Outbound>,
    pub completions: completion::Completions,
    pub claims: claims::Claimer,
    pub config: WorkerConfig,
    /// The node's attempt slots (`WorkerConfig::max_in_flight`): a claimed task holds one until
    /// its result is recorded. Handed out in turn, so no endpoint waiting for one starves.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Runs endpoints' transformations (`herald_transform`).
    pub sandbox: herald_transform::Sandbox,
}

/// A running worker.
pub struct Worker {
    stop: CancellationToken,
    dispatcher: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
    /// Relays other nodes' wake-ups (Postgres).
    forwarder: Option<tokio::task::JoinHandle<()>>,
    store: Arc<dyn QueueStore>,
    config: WorkerConfig,
}

impl Worker {
    /// Starts the dispatcher and the completion writer.
    pub fn start(
        store: Arc<dyn QueueStore>,
        keyring: Arc<Keyring>,
        outbound: Arc<Outbound>,
        sandbox: herald_transform::Sandbox,
        config: WorkerConfig,
        wakeup: Wakeup,
        operational: Operational,
    ) -> Self {
        let (completions, writer) = completion::spawn(
            store.clone(),
            config.node_id.clone(),
            config.disable_after,
            operational,
        );
        let claims = claims::spawn(store.clone(), config.node_id.clone());
        let shared = Arc::new(Shared {
            store: store.clone(),
            keyring,
            outbound,
            completions,
            claims,
            config: config.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1))),
            sandbox,
        });
        let stop = CancellationToken::new();
        let forwarder = store
            .subscribe_wakeups()
            .map(|wakeups| tokio::spawn(forward_wakeups(wakeups, wakeup.clone())));
        let dispatcher = tokio::spawn(dispatch(shared, wakeup, stop.clone()));
        Self {
            stop,
            dispatcher,
            writer,
            forwarder,
            store,
            config,
        }
    }

    /// Stops claiming, waits up to the grace period for attempts in flight, records what
    /// finished and hands the rest back to the queue.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Some(forwarder) = &self.forwarder {
            // Dropping its receiver ends the database subscription too.
            forwarder.abort();
        }
        let grace = self.config.shutdown_grace;
        let mut dispatcher = self.dispatcher;
        if tokio::time::timeout(grace, &mut dispatcher).await.is_err() {
            tracing::warn!(
                ?grace,
                "attempts still in flight after the grace period; abandoning them"
            );
            dispatcher.abort();
            let _ = dispatcher.await;
        }
        // The dispatcher held the last handles of the completion writer: it drains and stops.
        if tokio::time::timeout(Duration::from_secs(5), self.writer)
            .await
            .is_err()
        {
            tracing::warn!("attempt results could not all be recorded before exit");
        }
        if let Err(e) = self
            .store
            .release_node(&self.config.node_id, herald_core::time::now())
            .await
        {
            tracing::warn!(error = %e, "could not release leases; they expire on their own");
        }
    }
}

struct ActorHandle {
    notify: Arc<Notify>,
}

async fn dispatch(shared: Arc<Shared>, wakeup: Wakeup, stop: CancellationToken) {
    let node = shared.config.node_id.clone();
    let mut actors = Actors::default();
    let mut sweep = tokio::time::interval(shared.config.sweep_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renew = tokio::time::interval(shared.config.endpoint_lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease = chrono::Duration::from_std(shared.config.endpoint_lease).unwrap_or_default();

    loop {
        let mut must_sweep = false;
        tokio::select! {
            () = stop.cancelled() => break,
            () = wakeup.notified() => {
                let (endpoints, everything) = wakeup.take();
                must_sweep = everything;
                for endpoint in endpoints {
                    match actors.handles.get(&endpoint) {
                        Some(actor) => {
                            actor.notify.notify_one();
                            // It may be past its last look and about to end.
                            actors.woken.insert(endpoint);
                        }
                        None => must_sweep = true,
                    }
                }
            }
            _ = sweep.tick() => must_sweep = true,
            _ = renew.tick() => renew_leases(&shared, &node, lease).await,
            Some(joined) = actors.running.join_next(), if !actors.running.is_empty() => {
                match joined {
                    Ok((endpoint, _released)) => {
                        actors.handles.remove(&endpoint);
                        if actors.woken.remove(&endpoint) {
                            // A wake-up reached it too late: look for the work it announced.
                            must_sweep = true;
                        }
                        if actors.reclaimed.remove(&endpoint) {
                            // Claimed again while it was ending: this node owns it, and only an
                            // actor gives it up.
                            actors.spawn(&shared, endpoint, &stop);
                        }
                    }
                    // Actors catch their own panics; only cancellation ends up here.
                    Err(e) => tracing::debug!(error = %e, "an endpoint dispatcher was cancelled"),
                }
            }
        }
        if must_sweep {
            claim_endpoints(&shared, &mut actors, &stop, lease).await;
        }
    }

    // Shutdown: actors stop claiming and finish their attempts.
    while actors.running.join_next().await.is_some() {}
}

/// Renews this node's endpoint leases, unless it cannot serve them: while its attempt results
/// have not committed for a third of the lease, the leases are left to lapse so that a node
/// whose database calls stall hands its endpoints to others. The renewal itself gets a third of
/// the lease too, so a stalled call never holds up the dispatcher. Guarded by
/// `worker::tests::a_node_that_cannot_record_results_stops_renewing`.
async fn renew_leases(shared: &Shared, node: &str, lease: chrono::Duration) {
    let third = shared.config.endpoint_lease / 3;
    if !may_renew(
        shared.completions.stalled_for(),
        shared.config.endpoint_lease,
    ) {
        tracing::warn!(
            stalled_for = ?shared.completions.stalled_for(),
            "attempt results are not committing; letting endpoint leases lapse"
        );
        return;
    }
    let renewal = shared
        .store
        .renew_endpoint_leases(node, herald_core::time::now() + lease);
    match tokio::time::timeout(third, renewal).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "renewing endpoint leases failed"),
        Err(_) => tracing::warn!("renewing endpoint leases timed out"),
    }
}

/// Whether a node whose result writer has been stuck for `stalled` may renew leases of
/// `lease`.
fn may_renew(stalled: Duration, lease: Duration) -> bool {
    stalled < lease / 3
}

/// The actors of the endpoints this node owns.
#[derive(Default)]
struct Actors {
    handles: HashMap<EndpointId, ActorHandle>,
    running: JoinSet<(EndpointId, bool)>,
    /// Endpoints woken while their actor ran: it may have ended without seeing the wake-up.
    woken: HashSet<EndpointId>,
    /// Endpoints claimed while their actor ran: it gave them up and is ending (or lost its
    /// lease), so a new actor must take over once it has.
    reclaimed: HashSet<EndpointId>,
}

impl Actors {
    fn spawn(&mut self, shared: &Arc<Shared>, endpoint: EndpointId, stop: &CancellationToken) {
        let notify = Arc::new(Notify::new());
        self.handles.insert(
            endpoint.clone(),
            ActorHandle {
                notify: notify.clone(),
            },
        );
        let shared = shared.clone();
        let stop = stop.clone();
        self.running.spawn(async move {
            let run = actor::run(shared.clone(), endpoint.clone(), notify, stop.clone());
            let released = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(released) => released,
                Err(_) => {
                    tracing::error!(%endpoint, "the endpoint's dispatcher panicked");
                    false
                }
            };
            if !released {
                abandon(&shared, &endpoint, &stop).await;
            }
            (endpoint, released)
        });
    }
}

/// Gives an endpoint up so that it is claimed again when due (by this node or another). Keeps
/// trying while the database is unavailable: a lease renewed with no actor behind it would
/// strand the endpoint's work.
async fn abandon(shared: &Shared, endpoint: &EndpointId, stop: &CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match shared
            .store
            .abandon_endpoint(&shared.config.node_id, endpoint)
            .await
        {
            Ok(()) => return,
            // Shutdown releases every lease of the node anyway.
            Err(_) if stop.is_cancelled() => return,
            Err(e) => {
                tracing::warn!(error = %e, %endpoint, "could not give up endpoint; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Claims due endpoints without a live owner and starts an actor for each.
async fn claim_endpoints(
    shared: &Arc<Shared>,
    actors: &mut Actors,
    stop: &CancellationToken,
    lease: chrono::Duration,
) {
    const BATCH: usize = 256;
    loop {
        let now = herald_core::time::now();
        let claimed = match shared
            .store
            .claim_due_endpoints(&shared.config.node_id, now, now + lease, BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming endpoints failed");
                return;
            }
        };
        let full = claimed.len() == BATCH;
        for endpoint in claimed {
            if let Some(actor) = actors.handles.get(&endpoint) {
                // Its actor released it and has not ended yet, or lost its lease while the
                // database was away. Wake it in case it still runs; if it ends, another
                // starts.
                actor.notify.notify_one();
                actors.reclaimed.insert(endpoint);
                continue;
            }
            actors.spawn(shared, endpoint, stop);
        }
        if !full {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_cannot_record_results_stops_renewing() {
        let lease = Duration::from_secs(30);
        assert!(may_renew(Duration::ZERO, lease));
        assert!(may_renew(Duration::from_secs(9), lease));
        assert!(!may_renew(Duration::from_secs(10), lease));
        assert!(!may_renew(Duration::from_secs(600), lease));
    }
}
