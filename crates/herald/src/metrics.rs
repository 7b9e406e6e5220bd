//! Prometheus metrics, served at `GET /metrics`.
//!
//! Counters and histograms are recorded where things happen (the publish handler, the delivery
//! actor) through the `metrics` facade; the queue's and the database pools' state are read when
//! `/metrics` is scraped, so they cost nothing between scrapes.
//!
//! Label cardinality stays bounded: no label ever names a message; the event type labels
//! published messages only when it is in the catalogue ([`EventTypeLabels`]; any other name,
//! which any publisher may make up, counts as `other`); endpoint ids label attempt metrics only
//! when the operator turns `--metrics-endpoint-labels` on (one series per endpoint and
//! outcome).

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::id::EndpointId;
use herald_store::{PoolStats, QueueMetrics};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const MESSAGES_PUBLISHED: &str = "herald_messages_published_total";
pub const ATTEMPTS: &str = "herald_attempts_total";
pub const ATTEMPT_DURATION: &str = "herald_attempt_duration_seconds";
pub const PUBLISH_TO_SUCCESS: &str = "herald_publish_to_success_seconds";
pub const ATTEMPTS_IN_FLIGHT: &str = "herald_attempts_in_flight";
pub const TASKS_DUE: &str = "herald_tasks_due";
pub const TASKS_SCHEDULED: &str = "herald_tasks_scheduled";
pub const ENDPOINTS_DISABLED: &str = "herald_endpoints_disabled";
pub const DB_POOL_CONNECTIONS: &str = "herald_db_pool_connections";
pub const DB_POOL_MAX_CONNECTIONS: &str = "herald_db_pool_max_connections";
pub const TRANSFORMATIONS: &str = "herald_transformations_total";
pub const TRANSFORMATION_DURATION: &str = "herald_transformation_duration_seconds";
pub const TRANSFORMATIONS_STUCK: &str = "herald_transformations_stuck_total";
pub const POLLED_MESSAGES: &str = "herald_polled_messages_total";

/// Transformation runs: the time limit is 50 ms by default, at most 10 s.
const TRANSFORMATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0,
];
/// Attempt durations: the delivery timeout is at most 60 s.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// From publish to a successful delivery: milliseconds when all is well, hours through retries.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 7200.0,
    18000.0, 36000.0, 86400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's metrics registry, installed as the `metrics` recorder on first use. Several
/// servers in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(ATTEMPT_DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(PUBLISH_TO_SUCCESS.into()), LATENCY_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(TRANSFORMATION_DURATION.into()),
                    TRANSFORMATION_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        MESSAGES_PUBLISHED,
        "Messages accepted for delivery, by event type."
    );
    describe_counter!(
        ATTEMPTS,
        "Delivery attempts by outcome (success, failure, canceled by a transformation) and \
         response status class (2xx, 4xx, 5xx, …; none when no response arrived)."
    );
    describe_counter!(
        TRANSFORMATIONS,
        "Transformation runs by outcome: sent (the handler returned a webhook to send), \
         canceled (it set cancel), failed (error, time or memory limit, bad return value)."
    );
    describe_histogram!(
        TRANSFORMATION_DURATION,
        Unit::Seconds,
        "Duration of transformation runs, from the queue to the answer."
    );
    describe_counter!(
        TRANSFORMATIONS_STUCK,
        "Transformation runs past their time limit inside a built-in, whose sandbox thread was \
         replaced (see SECURITY.md)."
    );
    describe_histogram!(
        ATTEMPT_DURATION,
        Unit::Seconds,
        "Duration of delivery attempts, from the request to the end of the response."
    );
    describe_histogram!(
        PUBLISH_TO_SUCCESS,
        Unit::Seconds,
        "Time from a message's publication to its successful delivery to an endpoint."
    );
    describe_gauge!(
        ATTEMPTS_IN_FLIGHT,
        "Delivery attempts in flight in this process."
    );
    describe_gauge!(TASKS_DUE, "Pending deliveries whose attempt is due now.");
    describe_gauge!(
        TASKS_SCHEDULED,
        "Pending deliveries waiting for a later retry."
    );
    describe_gauge!(ENDPOINTS_DISABLED, "Disabled endpoints.");
    describe_counter!(
        POLLED_MESSAGES,
        "Messages read from polling endpoints, by endpoint kind and reader (poll: the \
         iterator route; consumer: a consumer Herald tracks)."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database connections by pool and state (in_use, idle)."
    );
    describe_gauge!(
        DB_POOL_MAX_CONNECTIONS,
        "Largest size of each database connection pool."
    );
}

/// The label of published messages whose event type is not in the catalogue.
pub const OTHER_EVENT_TYPE: &str = "other";

/// The event types of the catalogue, the only ones that label metrics: the catalogue is the
/// operator's (only admins write it), while a publisher may name any event type. Loaded at
/// start, kept in step with this node's catalogue changes, and reloaded every minute for those
/// made through other nodes.
#[derive(Debug, Default)]
pub struct EventTypeLabels(RwLock<HashSet<String>>);

impl EventTypeLabels {
    /// The label for `event_type`.
    fn label(&self, event_type: &str) -> String {
        let known = self
            .0
            .read()
            .map(|names| names.contains(event_type))
            .unwrap_or(false);
        if known {
            event_type.to_owned()
        } else {
            OTHER_EVENT_TYPE.to_owned()
        }
    }

    pub fn insert(&self, name: &str) {
        if let Ok(mut names) = self.0.write() {
            names.insert(name.to_owned());
        }
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut names) = self.0.write() {
            names.remove(name);
        }
    }

    /// Replaces the set with the catalogue's names.
    pub fn replace(&self, names: HashSet<String>) {
        if let Ok(mut current) = self.0.write() {
            *current = names;
        }
    }

    /// Reads the whole catalogue (archived types too) from `store`.
    pub async fn reload(&self, store: &dyn herald_store::Store) -> herald_store::Result<()> {
        let mut names = HashSet::new();
        let mut params =
            herald_core::page::ListParams::first(herald_core::page::MAX_LIMIT, Default::default());
        loop {
            let page = store.list_event_types(&params, true).await?;
            let last = page.items.last().map(|e| e.name.clone());
            let done = page.done();
            names.extend(page.items.into_iter().map(|e| e.name));
            match last {
                Some(last) if !done => {
                    params.cursor = Some(herald_core::page::Cursor::after(last));
                }
                _ => break,
            }
        }
        self.replace(names);
        Ok(())
    }
}

pub fn message_published(labels: &EventTypeLabels, event_type: &str) {
    metrics::counter!(MESSAGES_PUBLISHED, "event_type" => labels.label(event_type)).increment(1);
}

/// `2xx`, `4xx`, … or `none` when no response arrived.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Records a finished attempt. `destination` is the destination kind (`http`, `mqtt`, `nats`,
/// `amqp`, `redis`); `endpoint` is the endpoint label, when per-endpoint labels are on;
/// `published_at` is the message's creation, for the latency of successful deliveries.
pub fn attempt_finished(
    destination: &'static str,
    status: u16,
    next: &herald_store::NextStep,
    duration: Duration,
    published_at: DateTime<Utc>,
    endpoint: Option<&EndpointId>,
) {
    let success = *next == herald_store::NextStep::Done;
    let outcome = match next {
        herald_store::NextStep::Done => "success",
        herald_store::NextStep::Canceled => "canceled",
        _ => "failure",
    };
    let mut labels = vec![
        ("outcome", outcome.to_owned()),
        ("status_class", status_class(status).to_owned()),
        ("destination", destination.to_owned()),
    ];
    let endpoint_label: Vec<(&'static str, String)> = endpoint
        .map(|e| vec![("endpoint", e.as_str().to_owned())])
        .unwrap_or_default();
    labels.extend(endpoint_label.iter().cloned());
    metrics::counter!(ATTEMPTS, &labels).increment(1);
    metrics::histogram!(ATTEMPT_DURATION, &endpoint_label).record(duration.as_secs_f64());
    if success {
        let latency = (Utc::now() - published_at).to_std().unwrap_or_default();
        metrics::histogram!(PUBLISH_TO_SUCCESS, &endpoint_label).record(latency.as_secs_f64());
    }
}

/// Records a transformation run: `outcome` is `sent`, `canceled` or `failed`.
pub fn transformation_ran(outcome: &'static str, duration: Duration) {
    metrics::counter!(TRANSFORMATIONS, "outcome" => outcome).increment(1);
    metrics::histogram!(TRANSFORMATION_DURATION).record(duration.as_secs_f64());
}

/// Sets the count of stuck transformation runs, read from the sandbox at scrape time.
pub fn set_transformations_stuck(count: u64) {
    metrics::counter!(TRANSFORMATIONS_STUCK).absolute(count);
}

/// Counts an attempt in flight for as long as the guard lives.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        metrics::gauge!(ATTEMPTS_IN_FLIGHT).increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(ATTEMPTS_IN_FLIGHT).decrement(1.0);
    }
}

/// Sets the gauges read from the database at scrape time.
pub fn set_queue(queue: &QueueMetrics) {
    // Counts far below 2^53 are exact as f64.
    metrics::gauge!(TASKS_DUE).set(queue.due as f64);
    metrics::gauge!(TASKS_SCHEDULED).set(queue.scheduled as f64);
    metrics::gauge!(ENDPOINTS_DISABLED).set(queue.disabled_endpoints as f64);
}

/// Sets the connection pool gauges.
pub fn set_pools(pools: &[PoolStats]) {
    for pool in pools {
        let in_use = pool.size.saturating_sub(pool.idle);
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool.name, "state" => "in_use")
            .set(f64::from(in_use));
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool.name, "state" => "idle")
            .set(f64::from(pool.idle));
        metrics::gauge!(DB_POOL_MAX_CONNECTIONS, "pool" => pool.name).set(f64::from(pool.max));
    }
}

/// The text exposition of every metric.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(status_class(0), "none");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(410), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
