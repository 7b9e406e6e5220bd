//! Load generators: the ceiling's direct POSTs, closed-loop publishers for throughput, and an
//! open-loop publisher at a fixed rate for latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_core::id::MessageId;
use herald_core::net::NetworkPolicy;
use reqwest::header::{HeaderMap, HeaderValue};

use super::node;
use super::sink::{Counter, Sink};
use crate::outbound::{Outbound, SystemLookup};

/// Published messages that may await delivery before closed-loop publishers hold back, so that
/// a throughput figure is a rate the system sustains, not a burst into a growing backlog.
pub const MAX_OUTSTANDING: u64 = 2_000;

/// The rate of `counter` between `from` and `to` (both in the future): requests per second.
pub async fn rate_between(counter: &Counter, from: Instant, to: Instant) -> f64 {
    tokio::time::sleep_until(from.into()).await;
    let (start, at) = (counter.get(), Instant::now());
    tokio::time::sleep_until(to.into()).await;
    let (end, until) = (counter.get(), Instant::now());
    (end - start) as f64 / (until - at).as_secs_f64()
}

/// The window a timed phase is measured over: after a tenth of it, to its end.
pub fn window(started: Instant, duration: Duration) -> (Instant, Instant) {
    (started + duration / 10, started + duration)
}

/// POSTs 1 KB payloads, signed as Herald signs them (Standard Webhooks v1), straight to the
/// sink through Herald's own outbound client, from `concurrency` senders for `duration`.
/// Returns requests per second.
pub async fn ceiling(sink: &Sink, concurrency: usize, duration: Duration) -> f64 {
    let policy = NetworkPolicy::new(vec!["127.0.0.0/8".parse().expect("a valid network")]);
    let outbound = Arc::new(Outbound::new(policy, Arc::new(SystemLookup), 20_000));
    let secret = herald_core::signing::Scheme::StandardV1.generate_secret();
    let secret: Arc<str> = Arc::from(secret.as_str());
    let body = Bytes::from(vec![b'x'; 1024]);
    let url: Arc<str> = Arc::from(sink.url("/ok/ceiling"));
    let started = Instant::now();
    let deadline = started + duration;
    let senders: Vec<_> = (0..concurrency)
        .map(|_| {
            let (outbound, secret, body, url) =
                (outbound.clone(), secret.clone(), body.clone(), url.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let id = MessageId::generate();
                    let timestamp = chrono::Utc::now().timestamp();
                    let Ok(signature) =
                        herald_core::signing::sign_v1(&secret, id.as_str(), timestamp, &body)
                    else {
                        return;
                    };
                    let mut headers = HeaderMap::new();
                    let mut set = |name: &'static str, value: &str| {
                        if let Ok(value) = HeaderValue::from_str(value) {
                            headers.insert(name, value);
                        }
                    };
                    set("content-type", "application/json");
                    set("webhook-id", id.as_str());
                    set("webhook-timestamp", &timestamp.to_string());
                    set("webhook-signature", &signature);
                    let _ = outbound
                        .post(&url, headers, body.clone(), Duration::from_secs(15))
                        .await;
                }
            })
        })
        .collect();
    let (from, to) = window(started, duration);
    let rps = rate_between(sink.ok(), from, to).await;
    for sender in senders {
        let _ = sender.await;
    }
    rps
}

/// Where closed-loop publishers send, and what.
pub struct Publishing {
    /// Publish URLs (one per node); publishers take turns.
    pub urls: Vec<String>,
    /// Message bodies; publishers take turns.
    pub bodies: Vec<Bytes>,
    pub publishers: usize,
}

/// Counts of a closed-loop run.
#[derive(Default)]
pub struct Published {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// Publishes as fast as the publishers are answered until `deadline`, holding back while more
/// than [`MAX_OUTSTANDING`] messages await delivery (`delivered` minus `base` counts what
/// arrived). Returns at once; the counts fill as it runs.
pub fn publish_closed_loop(
    http: &reqwest::Client,
    load: Publishing,
    deadline: Instant,
    delivered: impl Fn() -> u64 + Send + Sync + 'static,
) -> (Arc<Published>, Vec<tokio::task::JoinHandle<()>>) {
    let counts = Arc::new(Published::default());
    let next = Arc::new(AtomicUsize::new(0));
    let load = Arc::new(load);
    let delivered = Arc::new(delivered);
    let tasks = (0..load.publishers)
        .map(|_| {
            let (http, counts, next, load, delivered) = (
                http.clone(),
                counts.clone(),
                next.clone(),
                load.clone(),
                delivered.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if counts.ok.load(Ordering::Relaxed) > delivered() + MAX_OUTSTANDING {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let url = &load.urls[i % load.urls.len()];
                    let body = load.bodies[i % load.bodies.len()].clone();
                    match node::publish(&http, url, body).await {
                        Ok(_) => counts.ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            *counts.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            // Do not spin on a failing server.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            counts.errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    (counts, tasks)
}

/// Latencies of an open-loop run, each measured from when its request was due to be sent, so
/// that a stall delays the requests scheduled behind it and shows in the tail (no coordinated
/// omission).
pub struct FixedRate {
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    pub elapsed: Duration,
}

/// Publishes `rate` messages per second for `duration` to `url`, taking `bodies` in turn.
pub async fn publish_fixed_rate(
    http: &reqwest::Client,
    url: &str,
    bodies: &[Bytes],
    rate: f64,
    duration: Duration,
) -> FixedRate {
    let total = (rate * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..total {
        let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        let body = bodies[i % bodies.len()].clone();
        let (http, url, tx) = (http.clone(), url.to_owned(), tx.clone());
        tokio::spawn(async move {
            let result = node::publish(&http, &url, body).await;
            let _ = tx.send(result.map(|_| super::report::ms(due.elapsed())));
        });
    }
    drop(tx);
    let mut latencies_ms = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(result) = rx.recv().await {
        match result {
            Ok(latency) => latencies_ms.push(latency),
            Err(_) => errors += 1,
        }
    }
    FixedRate {
        latencies_ms,
        errors,
        elapsed: started.elapsed(),
    }
}
