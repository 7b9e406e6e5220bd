//! The dispatcher of one endpoint, running while this node owns the endpoint.
//!
//! It claims due tasks up to the endpoint's free capacity (its concurrency cap, one at a time
//! for FIFO, and its throttle), runs each attempt as its own task, and releases the endpoint
//! once nothing is due or in flight. Because every endpoint has its own actor and its own
//! capacity, a slow, hanging or failing endpoint only ever holds its own slots: deliveries to
//! other endpoints are not delayed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use herald_core::id::EndpointId;
use herald_core::model::{DEFAULT_MAX_CONCURRENCY, IMPILO_SECRET_HEADER, Ordering};
use herald_core::retry::RetryPolicy;
use herald_core::secrets::{EndpointSecrets, GraphqlApi, open_map};
use herald_core::signing::{Scheme, SignatureConfig};
use herald_store::{DispatchTarget, Task, TaskClaim};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::attempt;
use super::snapshot::{ActiveTransformation, EndpointSnapshot};

/// How long an actor with attempts in flight waits before looking for newly due tasks
/// (retries falling due while it holds the endpoint).
const RECHECK: Duration = Duration::from_millis(500);

/// Spaces attempt starts so that at most `rate` start per second, allowing a burst of a tenth
/// of a second's worth.
struct Throttle {
    interval: Duration,
    burst: u32,
    /// The theoretical start time of the next attempt (GCRA).
    next: Instant,
}

impl Throttle {
    fn new(rate: u16) -> Self {
        Self {
            interval: Duration::from_secs(1) / u32::from(rate.max(1)),
            burst: u32::from((rate / 10).max(1)),
            next: Instant::now(),
        }
    }

    /// How many attempts may start now, at most `want`.
    fn available(&mut self, want: usize) -> usize {
        let now = Instant::now();
        let earliest = now - self.interval * (self.burst - 1);
        if self.next < earliest {
            self.next = earliest;
        }
        let mut n = 0;
        let mut next = self.next;
        while n < want && next <= now {
            next += self.interval;
            n += 1;
        }
        n
    }

    fn take(&mut self, n: usize) {
        self.next += self.interval * u32::try_from(n).unwrap_or(u32::MAX);
    }

    fn ready_at(&self) -> Instant {
        self.next
    }
}

/// Up to `want` of the node's attempt slots, waiting in turn for the first when none is free.
/// `None` when the wait ended otherwise (an attempt of this endpoint finished, freeing
/// capacity, or the worker is stopping): look again.
async fn take_slots(
    slots: &Arc<Semaphore>,
    want: usize,
    in_flight: &mut JoinSet<()>,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    let want = u32::try_from(want.max(1)).unwrap_or(u32::MAX);
    let free = |up_to: u32| {
        u32::try_from(slots.available_permits())
            .unwrap_or(u32::MAX)
            .min(up_to)
    };
    // Free slots are only ever free when nobody waits: a released slot goes to the first
    // waiter, so taking one here never jumps the queue.
    if free(want) > 0
        && let Ok(taken) = slots.clone().try_acquire_many_owned(free(want))
    {
        return Some(taken);
    }
    let mut first = tokio::select! {
        taken = slots.clone().acquire_owned() => taken.ok()?,
        Some(_) = in_flight.join_next(), if !in_flight.is_empty() => return None,
        () = stop.cancelled() => return None,
    };
    let more = free(want - 1);
    if more > 0
        && let Ok(taken) = slots.clone().try_acquire_many_owned(more)
    {
        first.merge(taken);
    }
    Some(first)
}

async fn snapshot(
    shared: &Shared,
    endpoint_id: &EndpointId,
) -> Result<Option<Arc<EndpointSnapshot>>, String> {
    let Some(DispatchTarget {
        mut endpoint,
        secrets: sealed,
        app_rate_limit,
        graphql_api,
        webhook_secret,
        transformation,
    }) = shared
        .store
        .dispatch_target(endpoint_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let mut secrets = EndpointSecrets::open(&shared.keyring, &sealed).map_err(|e| e.to_string())?;
    // Impilo's profile sends the application's one webhook secret, in its header, in place of
    // a signature by the endpoint's own secret (see `Profile::Impilo`).
    if endpoint.options.sends_application_secret() {
        let sealed = webhook_secret
            .ok_or("the application has no webhook secret (POST /api/v3/webhook-secret)")?;
        secrets.current = shared
            .keyring
            .open_string(&sealed)
            .map_err(|e| e.to_string())?;
        secrets.previous.clear();
        endpoint.options.signature = SignatureConfig {
            scheme: Scheme::StaticHeader,
            header: Some(IMPILO_SECRET_HEADER.to_owned()),
            prefix: None,
        };
    }
    let options = &endpoint.options;
    // Only endpoints with a GraphQL selection need the application's API opened.
    let graphql_api = if options.graphql.is_some() || !options.graphql_by_event_type.is_empty() {
        graphql_api
            .map(|sealed| GraphqlApi::open(&shared.keyring, &sealed))
            .transpose()
            .map_err(|e| e.to_string())?
    } else {
        None
    };
    let window = options
        .effective_retry_window_seconds()
        .map(|s| Duration::from_secs(u64::from(s)));
    let retry = RetryPolicy {
        // The endpoint's own schedule; else, with a window, one that fills it; else the
        // server's.
        schedule: match (options.effective_retry_schedule(), window) {
            (Some(own), _) => own
                .iter()
                .map(|secs| Duration::from_secs(u64::from(*secs)))
                .collect(),
            (None, Some(window)) => herald_core::retry::filling(window),
            (None, None) => shared.config.retry_schedule.clone(),
        },
        window,
        // A schedule the endpoint gives is exact unless it asks for a spread.
        jitter: match (options.effective_retry_schedule(), options.retry_jitter) {
            (Some(_), jitter) => f64::from(jitter.unwrap_or(0)) / 100.0,
            (None, _) => herald_core::retry::JITTER,
        },
    };
    let transformation = match transformation.transformation {
        Some(t) if t.enabled && !t.code.is_empty() => Some(ActiveTransformation {
            code: Arc::from(t.code),
            variables: open_map(&shared.keyring, transformation.variables.as_deref())
                .map_err(|e| format!("cannot open the transformation's variables: {e}"))?,
        }),
        _ => None,
    };
    let timeout = options
        .effective_timeout_seconds()
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or(shared.config.default_timeout);
    Ok(Some(Arc::new(EndpointSnapshot {
        endpoint,
        secrets,
        graphql_api,
        app_rate: app_rate_limit,
        retry,
        timeout,
        transformation,
    })))
}

/// Runs until the endpoint is released or the worker shuts down. Returns `true` when it
/// released the endpoint itself.
pub async fn run(
    shared: Arc<Shared>,
    endpoint_id: EndpointId,
    notify: Arc<Notify>,
    stop: CancellationToken,
) -> bool {
    let mut in_flight = JoinSet::new();
    // Claimed, not started yet (see `claim_ahead` below), and the node's slots they hold.
    let mut ready: VecDeque<Task> = VecDeque::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut throttle: Option<(u16, Throttle)> = None;
    let mut version: i64 = -1;
    // The endpoint's capacity when last read.
    let mut last_cap: Option<usize> = None;
    let mut backoff = Duration::from_millis(100);
    // The endpoint as last loaded, and the store's dispatch version then.
    let mut loaded: Option<(Option<u64>, Arc<EndpointSnapshot>)> = None;
    loop {
        if stop.is_cancelled() {
            // Stop claiming; let the attempts in flight finish (the worker bounds the wait).
            while in_flight.join_next().await.is_some() {}
            return false;
        }
        if last_cap.is_some_and(|cap| in_flight.len() >= cap) {
            // Every slot is busy: nothing can be claimed or started until one frees, so do not
            // read the endpoint again for every wake-up (a publish to many endpoints that are
            // all busy would cost each of them its reads).
            tokio::select! {
                Some(_) = in_flight.join_next() => {
                    while in_flight.try_join_next().is_some() {}
                }
                () = notify.notified() => {}
                () = tokio::time::sleep(RECHECK) => {}
                () = stop.cancelled() => {}
            }
            continue;
        }
        // What was loaded last serves while nothing it comes from has changed (the store's
        // dispatch version; Postgres has none, so it is loaded every time).
        let version_now = shared.store.dispatch_version();
        let kept = loaded
            .as_ref()
            .filter(|(at, _)| version_now.is_some() && *at == version_now)
            .map(|(_, snapshot)| snapshot.clone());
        let fresh = match kept {
            Some(snapshot) => Ok(Some(snapshot)),
            None => snapshot(&shared, &endpoint_id).await,
        };
        let snapshot = match fresh {
            Ok(Some(snapshot)) => {
                loaded = Some((version_now, snapshot.clone()));
                snapshot
            }
            // Deleted: its tasks and queue went with it.
            Ok(None) => {
                while in_flight.join_next().await.is_some() {}
                return true;
            }
            Err(e) => {
                tracing::warn!(endpoint = %endpoint_id, error = %e, "cannot load endpoint; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let endpoint = &snapshot.endpoint;
        let fifo = endpoint.options.ordering == Ordering::Fifo;
        let cap = if fifo {
            1
        } else {
            usize::from(
                endpoint
                    .options
                    .max_concurrency
                    .unwrap_or(DEFAULT_MAX_CONCURRENCY),
            )
        };
        last_cap = Some(cap);
        let mut free = cap.saturating_sub(in_flight.len());
        let rate = match endpoint.rate_limit {
            Some(rate) => Some(rate),
            None => snapshot.app_rate,
        };
        if let Some(rate) = rate {
            if throttle.as_ref().is_none_or(|(r, _)| *r != rate) {
                throttle = Some((rate, Throttle::new(rate)));
            }
        } else {
            throttle = None;
        }
        let throttled_free = match &mut throttle {
            Some((_, t)) => t.available(free),
            None => free,
        };
        let throttled = throttled_free < free;
        free = throttled_free;

        let mut claimed = 0;
        if free > 0 && ready.is_empty() && held.is_none() {
            // An unthrottled endpoint claims a whole capacity's worth at once, whatever is free:
            // a wave of finished attempts then costs one claim, not one per freed slot (claims
            // are writes, and on SQLite every write waits for the one writer). What does not
            // fit yet waits in `ready` for at most one attempt's time, hence the longer lease.
            let claim_ahead = throttle.is_none() && !fifo;
            let (want, attempt_time) = if claim_ahead {
                (cap, 2 * snapshot.timeout)
            } else {
                (free, snapshot.timeout)
            };
            // The node-wide cap: only as many as there are slots, each claimed task holding
            // one until its result is recorded.
            let Some(mut slots) = take_slots(&shared.slots, want, &mut in_flight, &stop).await
            else {
                continue;
            };
            let now = herald_core::time::now();
            let lease = now
                + chrono::Duration::from_std(attempt_time + shared.config.attempt_lease_margin)
                    .unwrap_or_default();
            let claim = TaskClaim {
                endpoint: endpoint_id.clone(),
                lease_until: lease,
                limit: want.min(slots.num_permits()),
                fifo,
            };
            match shared.claims.claim(claim).await {
                Ok((tasks, v)) => {
                    backoff = Duration::from_millis(100);
                    if v < 0 {
                        // Another node owns the endpoint now (our lease lapsed).
                        while in_flight.join_next().await.is_some() {}
                        return false;
                    }
                    version = v;
                    claimed = tasks.len();
                    // The slots of tasks not found go back at once (dropped with `slots`).
                    held = slots.split(tasks.len());
                    ready.extend(tasks);
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint_id, error = %e, "claiming tasks failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let starting = free.min(ready.len());
        if let Some((_, t)) = &mut throttle {
            t.take(starting);
        }
        for task in ready.drain(..starting) {
            let shared = shared.clone();
            let snapshot = snapshot.clone();
            let slot = held.as_mut().and_then(|h| h.split(1));
            if held.as_ref().is_some_and(|h| h.num_permits() == 0) {
                held = None;
            }
            in_flight.spawn(async move {
                let counted = crate::metrics::InFlight::start();
                let tools = super::shaping::Tools {
                    outbound: &shared.outbound,
                    sandbox: &shared.sandbox,
                    require_https: shared.config.require_https,
                };
                let record =
                    attempt::run(&tools, &snapshot, &task, shared.config.svix_headers).await;
                drop(counted);
                crate::metrics::attempt_finished(
                    herald_core::destination::kind_label(&snapshot.endpoint.url),
                    record.status_code,
                    &record.next,
                    std::time::Duration::from_millis(
                        u64::try_from(record.duration_ms).unwrap_or(0),
                    ),
                    task.message_created_at,
                    shared
                        .config
                        .metrics_endpoint_labels
                        .then_some(&record.endpoint_id),
                );
                shared.completions.commit(record).await;
                drop(slot);
            });
        }
        if ready.is_empty() {
            held = None;
        }

        if in_flight.is_empty() && ready.is_empty() && claimed == 0 {
            if throttled {
                let ready = throttle
                    .as_ref()
                    .map(|(_, t)| t.ready_at())
                    .unwrap_or_else(Instant::now);
                tokio::select! {
                    () = tokio::time::sleep_until(ready) => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
            match shared
                .store
                .release_endpoint(
                    &shared.config.node_id,
                    &endpoint_id,
                    version,
                    fifo,
                    herald_core::time::now(),
                )
                .await
            {
                Ok(true) => return true,
                // New work arrived since the claim: go round again.
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint_id, error = %e, "releasing endpoint failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }

        // Wait for a slot, new work, a throttle slot, or the periodic re-check.
        let throttle_wait = throttle
            .as_ref()
            .filter(|_| throttled)
            .map(|(_, t)| t.ready_at())
            .unwrap_or_else(|| Instant::now() + RECHECK);
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                // Collect every other attempt that finished too, then look again once.
                while in_flight.try_join_next().is_some() {}
            }
            () = notify.notified() => {}
            () = tokio::time::sleep_until(throttle_wait) => {}
            () = stop.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttle_spaces_starts() {
        let mut t = Throttle::new(5);
        assert_eq!(t.available(10), 1);
        t.take(1);
        assert_eq!(t.available(10), 0);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(t.available(10), 1);
        t.take(1);
        // After a long idle spell the burst is still one tenth of a second's worth.
        tokio::time::advance(Duration::from_secs(10)).await;
        let mut fast = Throttle::new(100);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(fast.available(1000), 10);
        fast.take(10);
        assert_eq!(fast.available(1000), 0);
    }
}
