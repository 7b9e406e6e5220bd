//! `broker`: deliveries/s to each broker kind running on this machine's loopback (Mosquitto on
//! 1883, NATS with JetStream on 4222, RabbitMQ on 5672, Redis on 6379), against a plain HTTP
//! endpoint in the same run, on one node.
//!
//! Each phase gives a fresh application `ENDPOINTS` endpoints to one destination, publishes
//! its messages as fast as four publishers can, and times until the node has counted every
//! delivery as acknowledged (its own `herald_attempts_total{outcome="success"}` for that
//! destination kind): the publish path, the queue and the publish to the broker, end to end.
//! A broker that does not answer is skipped and named in the report.
//!
//! What each destination needs is made for the run and removed after: a JetStream stream on
//! the subject (so the publishes are acknowledged by a stream, as a production NATS endpoint's
//! would be), an AMQP queue bound by name, a Redis stream key. MQTT needs nothing (the
//! broker acknowledges QoS 1 publishes without subscribers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::node::{self, Node};
use super::report::{BrokerKindRun, Brokers};
use super::scenarios::{Cluster, Database, PAYLOAD_BYTES};
use super::sink::Sink;
use super::{BenchError, Scale};

/// Endpoints per destination: they share the node's one connection to their broker.
const ENDPOINTS: usize = 4;

/// The destinations measured, with the loopback port each needs.
const KINDS: [(&str, u16); 5] = [
    ("http", 0),
    ("mqtt", 1883),
    ("nats", 4222),
    ("amqp", 5672),
    ("redis", 6379),
];

pub async fn brokers(sink: &Arc<Sink>, scale: &Scale) -> Result<Brokers, BenchError> {
    let messages = scale.broker_messages;
    let cluster = Cluster::start(Database::Sqlite, 1).await?;
    let node = cluster.first();
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for (kind, port) in KINDS {
        if port != 0 && !listening(port).await {
            super::progress(&format!(
                "  {kind}: nothing listens on 127.0.0.1:{port}, skipped"
            ));
            skipped.push(kind.to_owned());
            continue;
        }
        let tag = herald_core::token::random_base62(8).to_lowercase();
        let destination = Destination::prepare(kind, port, &tag, sink).await?;
        let run = phase(node, kind, &destination.url, messages).await;
        destination.remove().await;
        let run = run?;
        super::progress(&format!(
            "  {kind}: {} deliveries in {:.2} s: {:.0}/s",
            run.deliveries, run.seconds, run.rps
        ));
        runs.push(run);
    }
    cluster.stop().await;
    let http_rps = runs
        .iter()
        .find(|r| r.kind == "http")
        .map_or(f64::NAN, |r| r.rps);
    Ok(Brokers {
        endpoints: ENDPOINTS,
        messages,
        http_rps,
        runs,
        skipped,
    })
}

async fn listening(port: u16) -> bool {
    tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .is_ok_and(|c| c.is_ok())
}

async fn phase(
    node: &Node,
    kind: &'static str,
    url: &str,
    messages: usize,
) -> Result<BrokerKindRun, BenchError> {
    let app = node.create_app(&format!("bench {kind}")).await?;
    for _ in 0..ENDPOINTS {
        node.create_endpoint(&app, json!({"url": url})).await?;
    }
    let before = acknowledged(node, kind).await?;
    let target = before + (messages * ENDPOINTS) as u64;
    let publish_url = node.publish_url(&app);
    let body = node::message_body("bench.broker", PAYLOAD_BYTES);
    let started = Instant::now();
    let publishing = futures::stream::iter(0..messages)
        .map(|_| node::publish(&node.http, &publish_url, body.clone()))
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    if let Some(Err(e)) = publishing.await.into_iter().find(Result::is_err) {
        return Err(BenchError::Scenario(format!("publishing to {kind}: {e}")));
    }
    let deadline = started + Duration::from_secs(120);
    let mut done = acknowledged(node, kind).await?;
    while done < target {
        if Instant::now() > deadline {
            return Err(BenchError::Scenario(format!(
                "{kind}: {} of {} deliveries acknowledged after 120 s",
                done - before,
                target - before
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = acknowledged(node, kind).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let deliveries = messages * ENDPOINTS;
    node.delete_app(&app).await?;
    Ok(BrokerKindRun {
        kind: kind.to_owned(),
        deliveries,
        seconds,
        rps: deliveries as f64 / seconds,
    })
}

/// The node's count of acknowledged attempts to `kind` destinations.
async fn acknowledged(node: &Node, kind: &str) -> Result<u64, BenchError> {
    let text = node
        .http
        .get(node.url("/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| BenchError::Scenario(format!("reading /metrics: {e}")))?
        .text()
        .await
        .map_err(|e| BenchError::Scenario(format!("reading /metrics: {e}")))?;
    let destination = format!("destination=\"{kind}\"");
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("herald_attempts_total{")
                && l.contains(&destination)
                && l.contains("outcome=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// A destination made for a phase, and what to remove after it.
struct Destination {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    Stream(async_nats::jetstream::Context, String),
    Queue(lapin::Connection),
    Key(redis::aio::MultiplexedConnection, String),
}

impl Destination {
    async fn prepare(
        kind: &str,
        port: u16,
        tag: &str,
        sink: &Arc<Sink>,
    ) -> Result<Self, BenchError> {
        let failed = |e: String| BenchError::Scenario(format!("preparing {kind}: {e}"));
        Ok(match kind {
            "mqtt" => Self {
                url: format!("mqtt://127.0.0.1:{port}/herald-bench/{tag}?qos=1"),
                cleanup: Cleanup::None,
            },
            "nats" => {
                let client = async_nats::connect(format!("127.0.0.1:{port}"))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let jetstream = async_nats::jetstream::new(client);
                let name = format!("HERALD_BENCH_{}", tag.to_uppercase());
                let subject = format!("herald.bench.{tag}");
                jetstream
                    .create_stream(async_nats::jetstream::stream::Config {
                        name: name.clone(),
                        subjects: vec![subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Self {
                    url: format!("nats://127.0.0.1:{port}/{subject}"),
                    cleanup: Cleanup::Stream(jetstream, name),
                }
            }
            "amqp" => {
                let connection = lapin::Connection::connect(
                    &format!("amqp://127.0.0.1:{port}/%2f"),
                    lapin::ConnectionProperties::default(),
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                let channel = connection
                    .create_channel()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let queue = format!("herald-bench-{tag}");
                channel
                    .queue_declare(
                        queue.as_str().into(),
                        lapin::options::QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..Default::default()
                        },
                        lapin::types::FieldTable::default(),
                    )
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Self {
                    url: format!("amqp://127.0.0.1:{port}/%2f?routingKey={queue}"),
                    cleanup: Cleanup::Queue(connection),
                }
            }
            "redis" => {
                let connection = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
                    .map_err(|e| failed(e.to_string()))?
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let key = format!("herald-bench:{tag}");
                Self {
                    url: format!("redis://127.0.0.1:{port}/0?stream={key}"),
                    cleanup: Cleanup::Key(connection, key),
                }
            }
            _ => Self {
                url: sink.url(&format!("/ok/broker-{tag}")),
                cleanup: Cleanup::None,
            },
        })
    }

    async fn remove(self) {
        match self.cleanup {
            Cleanup::None => {}
            Cleanup::Stream(jetstream, name) => {
                let _ = jetstream.delete_stream(&name).await;
            }
            // The queue is exclusive: it goes with its connection.
            Cleanup::Queue(connection) => {
                let _ = connection.close(200, "bench done".into()).await;
            }
            Cleanup::Key(mut connection, key) => {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await;
            }
        }
    }
}
