//! The scenarios. Each starts its own Herald (a fresh SQLite database, or the Postgres
//! database it is given), sets up applications and endpoints through the API, measures, and
//! stops it: no scenario inherits another's rows or memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;

use super::load::{self, Publishing};
use super::node::{self, Node, ScratchDir, Storage};
use super::pg;
use super::report::{
    self, Backlog, DatabaseCost, Fanout, Isolation, Lag, PublishLatency, Throughput, ms,
};
use super::sink::Sink;
use super::{BenchError, Scale};

/// Messages carry about this much payload.
pub(super) const PAYLOAD_BYTES: usize = 1024;

/// Where the nodes of a scenario keep their state.
#[derive(Clone, Copy)]
pub enum Database<'a> {
    Sqlite,
    Postgres { url: &'a str },
}

/// Nodes of one scenario, and the directories they write to.
pub(super) struct Cluster {
    nodes: Vec<Node>,
    _dirs: Vec<ScratchDir>,
}

impl Cluster {
    pub(super) async fn start(database: Database<'_>, count: usize) -> Result<Self, BenchError> {
        // One key for the whole run: the clusters of one run share the Postgres database, and
        // each must open the secrets the previous one sealed.
        static KEY: std::sync::OnceLock<zeroize::Zeroizing<String>> = std::sync::OnceLock::new();
        let key = KEY.get_or_init(herald_core::crypto::DataKey::generate_base64);
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..count {
            let dir = ScratchDir::new(&format!("node{i}")).map_err(BenchError::Io)?;
            let storage = match database {
                Database::Sqlite => Storage::Sqlite,
                Database::Postgres { url } => Storage::Postgres { url, key },
            };
            nodes.push(Node::start(storage, dir.path()).await?);
            dirs.push(dir);
        }
        Ok(Self { nodes, _dirs: dirs })
    }

    pub(super) fn first(&self) -> &Node {
        &self.nodes[0]
    }

    pub(super) async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// An application with `count` endpoints on the sink at `/{kind}/{prefix}{i}`, each receiving
/// the event type `bench.{prefix}{i}`; returns the application's id and one message body per
/// endpoint.
async fn app_with_endpoints(
    node: &Node,
    sink: &Sink,
    kind: &str,
    prefix: &str,
    count: usize,
) -> Result<(String, Vec<bytes::Bytes>), BenchError> {
    let app = node.create_app(&format!("bench {prefix}")).await?;
    node.create_endpoints(&app, count, |i| {
        json!({
            "url": sink.url(&format!("/{kind}/{prefix}{i}")),
            "eventTypes": [format!("bench.{prefix}{i}")],
        })
    })
    .await?;
    let bodies = (0..count)
        .map(|i| node::message_body(&format!("bench.{prefix}{i}"), PAYLOAD_BYTES))
        .collect();
    Ok((app, bodies))
}

/// Deliveries per second from closed-loop publishers spread over `endpoints` endpoints (one
/// delivery per message), through `count` nodes.
pub async fn throughput(
    sink: &Arc<Sink>,
    scale: &Scale,
    database: Database<'_>,
    count: usize,
) -> Result<Throughput, BenchError> {
    let cluster = Cluster::start(database, count).await?;
    let node = cluster.first();
    let (app, bodies) =
        app_with_endpoints(node, sink, "ok", "tp", scale.throughput_endpoints).await?;
    let urls = cluster.nodes.iter().map(|n| n.publish_url(&app)).collect();
    let before = match database {
        Database::Postgres { url } => {
            Some((pg::postgres_cpu_ms(), pg::TableStats::read(url).await))
        }
        Database::Sqlite => None,
    };
    let base = sink.ok().get();
    let measured = closed_loop(node, sink, urls, bodies, scale).await?;
    let delivered = sink.ok().get() - base;
    let peak_rss_mb = match database {
        Database::Sqlite => node.memory_mb().map(|(_, peak)| peak),
        Database::Postgres { .. } => None,
    };
    let mut cost = DatabaseCost::default();
    if let (Database::Postgres { url }, Some((cpu_before, stats_before))) = (database, before) {
        let cpu_after = pg::postgres_cpu_ms();
        let per_delivery = |x: f64| (delivered > 0).then(|| x / delivered as f64);
        cost.postgres_cpu_ms_per_delivery = cpu_before
            .zip(cpu_after)
            .and_then(|(before, after)| per_delivery(after - before));
        match (stats_before, pg::TableStats::read(url).await) {
            (Ok(before), Ok(after)) => {
                let d = before.since(after);
                if d.inserted > 0 {
                    cost.row_updates_per_delivery = Some(d.updated as f64 / d.inserted as f64);
                    cost.vacuum_updates_per_delivery =
                        Some((d.updated - d.hot_updated) as f64 / d.inserted as f64);
                }
                if d.updated > 0 {
                    cost.hot_update_pct = Some(100.0 * d.hot_updated as f64 / d.updated as f64);
                }
                cost.dead_rows_at_end = Some(d.dead);
            }
            (Err(e), _) | (_, Err(e)) => {
                super::progress(&format!("  cannot read the table statistics: {e}"));
            }
        }
    }
    if matches!(database, Database::Postgres { .. }) {
        // The next run shares the database: leave no backlog for it to deliver. Deleting an
        // application with a large backlog while nodes deliver it may time out: try again,
        // and if it still fails, say so and go on (the measurement is taken).
        let mut tries = 0;
        while let Err(e) = node.delete_app(&app).await {
            tries += 1;
            if tries == 3 {
                super::progress(&format!("  could not delete the application: {e}"));
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    cluster.stop().await;
    Ok(Throughput {
        database: match database {
            Database::Sqlite => "sqlite".into(),
            Database::Postgres { .. } => "postgres".into(),
        },
        nodes: count,
        endpoints: scale.throughput_endpoints,
        publishers: scale.publishers,
        published_rps: measured.published_rps,
        delivered_rps: measured.delivered_rps,
        peak_rss_mb,
        database_cost: cost,
    })
}

struct ClosedLoop {
    published_rps: f64,
    delivered_rps: f64,
}

/// Publishes closed-loop for `duration` and measures deliveries on the sink's `/ok` paths.
async fn closed_loop(
    node: &Node,
    sink: &Arc<Sink>,
    urls: Vec<String>,
    bodies: Vec<bytes::Bytes>,
    scale: &Scale,
) -> Result<ClosedLoop, BenchError> {
    let duration = scale.duration;
    let base = sink.ok().get();
    let delivered = {
        let sink = sink.clone();
        move || sink.ok().get() - base
    };
    let started = Instant::now();
    let (counts, tasks) = load::publish_closed_loop(
        &node.http,
        Publishing {
            urls,
            bodies,
            publishers: scale.publishers,
        },
        started + duration,
        delivered,
    );
    let (from, to) = load::window(started, duration);
    let delivered_rps = load::rate_between(sink.ok(), from, to).await;
    for task in tasks {
        let _ = task.await;
    }
    let ok = counts.ok.load(std::sync::atomic::Ordering::Relaxed);
    let errors = counts.errors.load(std::sync::atomic::Ordering::Relaxed);
    if errors > 0 {
        let last = counts
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        super::progress(&format!(
            "  {errors} publishes failed (last: {last}); {}",
            node.stderr_tail().lines().last().unwrap_or("")
        ));
        if ok == 0 {
            return Err(BenchError::Scenario(format!(
                "every publish failed: {last}"
            )));
        }
    }
    Ok(ClosedLoop {
        published_rps: ok as f64 / duration.as_secs_f64(),
        delivered_rps,
    })
}

/// Publish latency at a fixed rate, while the deliveries it causes run.
pub async fn publish_latency(
    sink: &Arc<Sink>,
    scale: &Scale,
) -> Result<PublishLatency, BenchError> {
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let (app, bodies) =
        app_with_endpoints(node, sink, "ok", "pl", scale.throughput_endpoints).await?;
    let url = node.publish_url(&app);
    // Open the connections first.
    for body in bodies.iter().take(20) {
        node::publish(&node.http, &url, body.clone())
            .await
            .map_err(BenchError::Scenario)?;
    }
    let run = load::publish_fixed_rate(
        &node.http,
        &url,
        &bodies,
        scale.publish_rate,
        scale.duration,
    )
    .await;
    cluster.stop().await;
    let l = &run.latencies_ms;
    Ok(PublishLatency {
        target_rps: scale.publish_rate,
        achieved_rps: l.len() as f64 / run.elapsed.as_secs_f64(),
        requests: l.len(),
        errors: run.errors,
        p50_ms: report::percentile(l, 50.0),
        p99_ms: report::percentile(l, 99.0),
        max_ms: report::percentile(l, 100.0),
    })
}

/// Publish-to-delivery time of single messages on an otherwise idle node.
pub async fn lag(sink: &Arc<Sink>, scale: &Scale) -> Result<Lag, BenchError> {
    const WARM_UP: usize = 5;
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let (app, bodies) = app_with_endpoints(node, sink, "track", "lag", 1).await?;
    let url = node.publish_url(&app);
    let mut samples = Vec::with_capacity(scale.lag_samples);
    for i in 0..WARM_UP + scale.lag_samples {
        let sent = Instant::now();
        let id = node::publish(&node.http, &url, bodies[0].clone())
            .await
            .map_err(BenchError::Scenario)?;
        let arrived = sink
            .arrival_of(&id, Duration::from_secs(30))
            .await
            .ok_or_else(|| BenchError::Scenario(format!("message {id} was not delivered")))?;
        if i >= WARM_UP {
            samples.push(ms(arrived - sent));
        }
        // Idle: let the delivery's completion and the endpoint's release finish first.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.stop().await;
    Ok(Lag {
        samples: samples.len(),
        p50_ms: report::percentile(&samples, 50.0),
        p99_ms: report::percentile(&samples, 99.0),
    })
}

/// One message to many endpoints: time to the publish's answer, and to the last delivery.
pub async fn fanout(sink: &Arc<Sink>, scale: &Scale) -> Result<Fanout, BenchError> {
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let endpoints = scale.fanout_endpoints;
    let app = node.create_app("bench fan-out").await?;
    node.create_endpoints(
        &app,
        endpoints,
        |i| json!({"url": sink.url(&format!("/ok/fan{i}"))}),
    )
    .await?;
    let url = node.publish_url(&app);
    let body = node::message_body("bench.fanout", PAYLOAD_BYTES);
    let (mut acks, mut alls) = (Vec::new(), Vec::new());
    for _ in 0..scale.fanout_runs {
        let base = sink.ok().get();
        let sent = Instant::now();
        node::publish(&node.http, &url, body.clone())
            .await
            .map_err(BenchError::Scenario)?;
        acks.push(ms(sent.elapsed()));
        wait_for(
            || sink.ok().get() - base >= endpoints as u64,
            "fan-out deliveries",
        )
        .await?;
        let last = sink.last_arrival(sink.ok()).unwrap_or_else(Instant::now);
        alls.push(ms(last - sent));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.stop().await;
    Ok(Fanout {
        endpoints,
        ack_ms: report::percentile(&acks, 50.0),
        all_delivered_ms: report::percentile(&alls, 50.0),
        runs_ack_ms: acks,
        runs_all_delivered_ms: alls,
    })
}

/// Waits (up to ten minutes) until `done` holds.
async fn wait_for(done: impl Fn() -> bool, what: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        if Instant::now() > deadline {
            return Err(BenchError::Scenario(format!(
                "timed out waiting for {what}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Healthy deliveries per second with and without one more endpoint that never answers,
/// alternating fresh nodes so that neither phase runs on the other's database.
pub async fn isolation(sink: &Arc<Sink>, scale: &Scale) -> Result<Isolation, BenchError> {
    // Phases of half the usual length, alternated, each pair compared on its own: on a shared
    // machine the same phase varies by a fifth between minutes, far more than the effect
    // measured, and a pair of neighbouring phases shares most of that drift. The loss is the
    // median over the pairs.
    let phase = Scale {
        duration: scale.duration / 2,
        ..scale.clone()
    };
    let (mut without, mut with, mut losses) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..scale.isolation_rounds {
        // Which comes first alternates too, so that a trend over the run does not favour one.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = [0.0; 2];
        for hanging in order {
            let rps = isolation_phase(sink, &phase, hanging).await?;
            pair[usize::from(hanging)] = rps;
            if hanging {
                with.push(rps);
            } else {
                without.push(rps);
            }
        }
        losses.push((1.0 - pair[1] / pair[0]) * 100.0);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(Isolation {
        healthy_endpoints: scale.isolation_healthy,
        hang_timeout_s: scale.hang_timeout_s,
        without_hanging_rps: mean(&without),
        with_hanging_rps: mean(&with),
        loss_pct: report::percentile(&losses, 50.0),
        round_losses_pct: losses,
    })
}

async fn isolation_phase(
    sink: &Arc<Sink>,
    scale: &Scale,
    hanging: bool,
) -> Result<f64, BenchError> {
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let (app, bodies) =
        app_with_endpoints(node, sink, "ok", "iso", scale.isolation_healthy).await?;
    let url = node.publish_url(&app);
    let trickle = if hanging {
        node.create_endpoint(
            &app,
            json!({
                "url": sink.url("/hang/0"),
                "eventTypes": ["bench.hang"],
                "timeoutSeconds": scale.hang_timeout_s,
            }),
        )
        .await?;
        // Twice what its slots can take, so that they are always all hanging.
        let rate = 2.0 * 10.0 / scale.hang_timeout_s as f64;
        let (http, url) = (node.http.clone(), url.clone());
        let body = node::message_body("bench.hang", PAYLOAD_BYTES);
        let duration = scale.duration;
        Some(tokio::spawn(async move {
            load::publish_fixed_rate(&http, &url, &[body], rate, duration).await
        }))
    } else {
        None
    };
    let measured = closed_loop(node, sink, vec![url], bodies, scale).await?;
    if let Some(trickle) = trickle {
        let _ = trickle.await;
    }
    cluster.stop().await;
    Ok(measured.delivered_rps)
}

/// Deliveries/s through endpoints with a trivial transformation against the same endpoints
/// without one: the sandbox's cost per delivery (a context per run, the payload parsed into
/// JavaScript and back, the body re-encoded). Phases alternate as in `isolation`, for the same
/// reason.
pub async fn transform(sink: &Arc<Sink>, scale: &Scale) -> Result<report::Transform, BenchError> {
    let phase = Scale {
        duration: scale.duration / 2,
        ..scale.clone()
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..scale.isolation_rounds.min(3) {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for transformed in order {
            let rps = transform_phase(sink, &phase, transformed).await?;
            if transformed {
                with.push(rps);
            } else {
                without.push(rps);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (without_rps, with_rps) = (mean(&without), mean(&with));
    Ok(report::Transform {
        endpoints: scale.throughput_endpoints,
        without_rps,
        with_rps,
        ratio: with_rps / without_rps,
    })
}

async fn transform_phase(
    sink: &Arc<Sink>,
    scale: &Scale,
    transformed: bool,
) -> Result<f64, BenchError> {
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let app = node.create_app("bench transform").await?;
    let mut bodies = Vec::new();
    for i in 0..scale.throughput_endpoints {
        let endpoint = node
            .create_endpoint(
                &app,
                json!({
                    "url": sink.url(&format!("/ok/tf{i}")),
                    "eventTypes": [format!("bench.tf{i}")],
                }),
            )
            .await?;
        if transformed {
            node.set_transformation(
                &app,
                &endpoint,
                "function handler(webhook) { return webhook; }",
            )
            .await?;
        }
        bodies.push(node::message_body(&format!("bench.tf{i}"), PAYLOAD_BYTES));
    }
    let url = node.publish_url(&app);
    let measured = closed_loop(node, sink, vec![url], bodies, scale).await?;
    cluster.stop().await;
    Ok(measured.delivered_rps)
}

/// Pending deliveries to endpoints that are down (they accept connections and answer nothing):
/// the node's memory while they wait, and the drain rate once the endpoints come back, over the
/// whole drain or three timed phases, whichever is shorter.
pub async fn backlog(sink: &Arc<Sink>, scale: &Scale) -> Result<Backlog, BenchError> {
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let (endpoints, messages) = (scale.backlog_endpoints, scale.backlog_messages);
    let pending = endpoints * messages;
    let app = node.create_app("bench backlog").await?;
    node.create_endpoints(&app, endpoints, |i| {
        json!({
            "url": sink.url(&format!("/down/{i}")),
            // One held connection per endpoint; attempts hang until it is back.
            "maxConcurrency": 1,
            "timeoutSeconds": 60,
            "retrySchedule": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        })
    })
    .await?;
    let url = node.publish_url(&app);
    let body = node::message_body("bench.backlog", PAYLOAD_BYTES);
    let started = Instant::now();
    let results: Vec<Result<String, String>> = futures::stream::iter(0..messages)
        .map(|_| node::publish(&node.http, &url, body.clone()))
        .buffer_unordered(4)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(BenchError::Scenario(format!("publishing the backlog: {e}")));
    }
    let create_s = started.elapsed().as_secs_f64();
    super::progress(&format!(
        "  {pending} deliveries pending after {create_s:.1} s"
    ));
    // Let it settle with everything pending (the endpoints' actors idle, waiting).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_mb, peak_rss_mb) = node.memory_mb().unwrap_or((f64::NAN, f64::NAN));

    let base = sink.down().get();
    let up = Instant::now();
    sink.bring_up();
    // Watched until it has drained or for the drain window, whichever comes first: a million
    // deliveries can take longer than a benchmark should.
    let window = scale.duration * 3;
    while sink.down().get() - base < pending as u64 && up.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = usize::try_from(sink.down().get() - base).unwrap_or(usize::MAX);
    let drain_s = if drained >= pending {
        ms(sink.last_arrival(sink.down()).unwrap_or_else(Instant::now) - up) / 1000.0
    } else {
        up.elapsed().as_secs_f64()
    };
    let peak_after = node.memory_mb().map_or(f64::NAN, |(_, peak)| peak);
    cluster.stop().await;
    Ok(Backlog {
        endpoints,
        messages,
        pending,
        create_s,
        rss_mb,
        peak_rss_mb,
        drain_s,
        drained,
        drain_rps: drained as f64 / drain_s,
        peak_rss_during_drain_mb: peak_after,
    })
}
