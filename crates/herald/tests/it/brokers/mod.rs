//! Broker destinations (issue 26): endpoints whose URL is an MQTT topic, a NATS subject (a
//! JetStream stream's when one holds it), an AMQP exchange and routing key, or a Redis
//! stream, delivered by the same engine as HTTP endpoints, against the real brokers this
//! machine runs (each test skips, saying so, when its broker is not running).
//!
//! For each broker: 1,000 messages to a FIFO endpoint arrive in publish order, each verified
//! with the Standard Webhooks library, exactly once where the broker acknowledges per message
//! and de-duplicates (JetStream) or confirms (AMQP), at least once otherwise; and the broker
//! going away mid-run (a proxy in front of it stops, cutting every connection) loses nothing.

mod consumers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};
use crate::tcp_proxy::TcpProxy;
use consumers::{Got, unique};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MQTT: u16 = 1883;
const NATS: u16 = 4222;
const AMQP: u16 = 5672;
const REDIS: u16 = 6379;

/// Whether the broker answers on loopback; a test without it skips, saying so.
async fn running(port: u16, test: &str) -> bool {
    let up = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if !up {
        eprintln!("skipping {test}: no broker on 127.0.0.1:{port} (`.ci/run` starts it)");
    }
    up
}

fn upstream(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A FIFO endpoint to `url`, retried every second.
async fn fifo_endpoint(t: &TestApp, app: &str, url: &str) -> String {
    t.create_endpoint(
        app,
        json!({"url": url, "secret": SECRET, "ordering": "fifo", "retrySchedule": vec![1; 30]}),
    )
    .await
}

/// A server with an application and a FIFO endpoint to `url`: the server, the application
/// and the endpoint.
async fn fifo_app(url: &str) -> (TestApp, String, String) {
    let t = TestApp::spawn().await;
    let app = t.create_app("Devices").await;
    let ep = fifo_endpoint(&t, &app, url).await;
    (t, app, ep)
}

/// Publishes `{"seq": 0}` … `{"seq": n - 1}`, one after another.
async fn publish_sequence(t: &TestApp, app: &str, n: u64) {
    for seq in 0..n {
        t.publish(
            app,
            json!({"eventType": "device.reading", "payload": {"seq": seq}}),
        )
        .await;
    }
}

/// Waits (at most `limit`) until `count` reaches `n`.
async fn wait_for<F, Fut, N>(limit: Duration, n: N, mut count: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = N>,
    N: PartialOrd + std::fmt::Debug + Copy,
{
    let deadline = Instant::now() + limit;
    loop {
        let have = count().await;
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{have:?} of {n:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message verifies with the Standard Webhooks library; the sequence, with repeats of
/// a message next to each other folded (a FIFO retry after a lost acknowledgement), is every
/// message in publish order; with `exactly_once`, nothing is repeated at all.
fn check(got: &[Got], n: u64, exactly_once: bool) {
    let webhook = standardwebhooks::Webhook::new(SECRET).unwrap();
    let mut seqs = Vec::new();
    for g in got {
        webhook
            .verify(&g.body, &g.headers)
            .unwrap_or_else(|e| panic!("{e:?}: {:?}", g.headers));
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        seqs.push(body["seq"].as_u64().unwrap());
    }
    let mut distinct = seqs.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        (0..n).collect::<Vec<_>>(),
        "every message once, in publish order"
    );
    if exactly_once {
        assert_eq!(seqs.len() as u64, n, "no message twice");
    }
}

/// How many different messages `got` holds (a retry after a lost acknowledgement may repeat
/// one: counting copies would say "all there" too early).
fn distinct(got: &[Got]) -> u64 {
    got.iter()
        .filter_map(|g| serde_json::from_slice::<Value>(&g.body).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64
}

/// The broker "stops" (every connection cut, the port closed) once `before` messages have
/// arrived, and comes back two seconds later.
async fn stop_and_start<F, Fut>(proxy: &TcpProxy, before: u64, count: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    wait_for(Duration::from_secs(60), before, count).await;
    proxy.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.start_again().await;
}

#[tokio::test]
async fn mqtt_delivers_every_message_in_order_at_least_once() {
    if !running(MQTT, "mqtt_delivers_every_message_in_order_at_least_once").await {
        return;
    }
    let topic = unique("herald-test/readings/");
    let subscriber = consumers::MqttSubscriber::start(MQTT, &topic).await;
    let (t, app, _) = fifo_app(&format!("mqtt://127.0.0.1:{MQTT}/{topic}?qos=1")).await;
    publish_sequence(&t, &app, 1000).await;
    wait_for(Duration::from_secs(120), 1000, || async {
        subscriber.distinct()
    })
    .await;
    check(&subscriber.take(), 1000, false);
}

#[tokio::test]
async fn mqtt_loses_nothing_when_the_broker_stops() {
    if !running(MQTT, "mqtt_loses_nothing_when_the_broker_stops").await {
        return;
    }
    let proxy = TcpProxy::start(upstream(MQTT)).await;
    let topic = unique("herald-test/stop/");
    let subscriber = consumers::MqttSubscriber::start(MQTT, &topic).await;
    let (t, app, _) = fifo_app(&format!("mqtt://127.0.0.1:{}/{topic}", proxy.port())).await;
    publish_sequence(&t, &app, 300).await;
    stop_and_start(&proxy, 100, || async { subscriber.count() as u64 }).await;
    wait_for(Duration::from_secs(60), 300, || async {
        subscriber.distinct()
    })
    .await;
    check(&subscriber.take(), 300, false);
}

#[tokio::test]
async fn jetstream_delivers_every_message_in_order_exactly_once() {
    if !running(
        NATS,
        "jetstream_delivers_every_message_in_order_exactly_once",
    )
    .await
    {
        return;
    }
    let subject = unique("herald.test.");
    let stream = consumers::JetStream::create(NATS, &subject).await;
    let (t, app, ep) = fifo_app(&format!("nats://127.0.0.1:{NATS}/{subject}")).await;
    publish_sequence(&t, &app, 1000).await;
    wait_for(Duration::from_secs(120), 1000, || stream.count()).await;
    // Every attempt was acknowledged by the stream (no core publish).
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 1000}}))
        .await;
    let d = t
        .wait_status(
            &msg,
            &ep,
            herald_core::model::DeliveryStatus::Success,
            Duration::from_secs(10),
        )
        .await;
    let attempts = t.attempts(&msg).await;
    let response = attempts[0].response.as_deref().unwrap_or_default();
    assert!(
        response.starts_with("JetStream ack: stream"),
        "{d:?} {attempts:?}"
    );
    // Sent again (a resend, as a retry after a lost acknowledgement would): the same
    // Nats-Msg-Id, so the stream keeps one copy and says so.
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    let attempts = attempts_at_least(&t, &msg, 2).await;
    assert!(
        attempts.iter().any(|a| a
            .response
            .as_deref()
            .unwrap_or_default()
            .contains("a duplicate")),
        "{attempts:?}"
    );
    check(&stream.read_all().await, 1001, true);
    stream.delete().await;
}

#[tokio::test]
async fn jetstream_loses_nothing_and_keeps_one_copy_when_the_server_stops() {
    if !running(
        NATS,
        "jetstream_loses_nothing_and_keeps_one_copy_when_the_server_stops",
    )
    .await
    {
        return;
    }
    let proxy = TcpProxy::start(upstream(NATS)).await;
    let subject = unique("herald.stop.");
    let stream = consumers::JetStream::create(NATS, &subject).await;
    let (t, app, _) = fifo_app(&format!("nats://127.0.0.1:{}/{subject}", proxy.port())).await;
    publish_sequence(&t, &app, 300).await;
    stop_and_start(&proxy, 100, || stream.count()).await;
    wait_for(Duration::from_secs(60), 300, || stream.count()).await;
    // A publish whose acknowledgement the cut lost is retried with the same Nats-Msg-Id:
    // the stream's de-duplication keeps one copy.
    check(&stream.read_all().await, 300, true);
    stream.delete().await;
}

#[tokio::test]
async fn core_nats_without_a_stream_is_a_flushed_publish() {
    if !running(NATS, "core_nats_without_a_stream_is_a_flushed_publish").await {
        return;
    }
    core_nats_gets(NATS, 20).await;
}

/// `n` messages to a subject no stream holds on the server at `port` reach a subscriber, once
/// each, in order, verified.
async fn core_nats_gets(port: u16, n: u64) {
    let subject = unique("herald.core.");
    let mut subscriber = consumers::nats_subscribe(port, &subject).await;
    let (t, app, _) = fifo_app(&format!("nats://127.0.0.1:{port}/{subject}")).await;
    publish_sequence(&t, &app, n).await;
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(consumers::nats_next(&mut subscriber).await);
    }
    check(&got, n, true);
}

/// A NATS server without JetStream: deliveries are core publishes (the JetStream lookup finds
/// nobody to answer it), not failures.
#[tokio::test]
async fn nats_without_jetstream_gets_core_publishes() {
    let server = std::path::Path::new("/usr/sbin/nats-server");
    if !server.exists() {
        eprintln!("skipping nats_without_jetstream_gets_core_publishes: no /usr/sbin/nats-server");
        return;
    }
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let _server = tokio::process::Command::new(server)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    core_nats_gets(port, 5).await;
}

#[tokio::test]
async fn amqp_delivers_every_message_in_order_exactly_once() {
    if !running(AMQP, "amqp_delivers_every_message_in_order_exactly_once").await {
        return;
    }
    let queue = consumers::AmqpQueue::declare(AMQP).await;
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{AMQP}/%2f?routingKey={}",
        queue.name
    );
    let (t, app, _) = fifo_app(&url).await;
    publish_sequence(&t, &app, 1000).await;
    wait_for(Duration::from_secs(120), 1000, || queue.count()).await;
    check(&queue.drain().await, 1000, true);
}

#[tokio::test]
async fn amqp_loses_nothing_when_the_broker_stops() {
    if !running(AMQP, "amqp_loses_nothing_when_the_broker_stops").await {
        return;
    }
    let proxy = TcpProxy::start(upstream(AMQP)).await;
    let queue = consumers::AmqpQueue::declare(AMQP).await;
    let url = format!(
        "amqp://127.0.0.1:{}/%2f?routingKey={}",
        proxy.port(),
        queue.name
    );
    let (t, app, _) = fifo_app(&url).await;
    publish_sequence(&t, &app, 300).await;
    stop_and_start(&proxy, 100, || async { u64::from(queue.count().await) }).await;
    // A message confirmed after the cut may come twice (its id is `message_id`, for the
    // consumer's de-duplication); none is missing or out of order.
    let got = std::sync::Mutex::new(Vec::new());
    wait_for(Duration::from_secs(60), 300, || async {
        let more = queue.drain().await;
        let mut got = got.lock().unwrap();
        got.extend(more);
        distinct(&got)
    })
    .await;
    check(&got.into_inner().unwrap(), 300, false);
}

#[tokio::test]
async fn redis_stream_gets_every_message_in_order() {
    if !running(REDIS, "redis_stream_gets_every_message_in_order").await {
        return;
    }
    let stream = consumers::RedisStream::new(REDIS, "herald-test:").await;
    let url = format!(
        "redis://127.0.0.1:{REDIS}/0?stream={}&maxlen=5000",
        stream.key
    );
    let (t, app, _) = fifo_app(&url).await;
    publish_sequence(&t, &app, 1000).await;
    wait_for(Duration::from_secs(120), 1000, || stream.distinct()).await;
    check(&stream.read().await, 1000, false);
    stream.delete().await;
}

#[tokio::test]
async fn redis_loses_nothing_when_the_server_stops() {
    if !running(REDIS, "redis_loses_nothing_when_the_server_stops").await {
        return;
    }
    let proxy = TcpProxy::start(upstream(REDIS)).await;
    let stream = consumers::RedisStream::new(REDIS, "herald-stop:").await;
    let url = format!("redis://127.0.0.1:{}/0?stream={}", proxy.port(), stream.key);
    let (t, app, _) = fifo_app(&url).await;
    publish_sequence(&t, &app, 300).await;
    stop_and_start(&proxy, 100, || stream.len()).await;
    wait_for(Duration::from_secs(60), 300, || stream.distinct()).await;
    check(&stream.read().await, 300, false);
    stream.delete().await;
}

/// Refused credentials and an unroutable message are failed attempts naming the reason, and
/// retried; the credentials never show, and fixed ones (sent back masked where unchanged)
/// deliver.
#[tokio::test]
async fn amqp_refusals_fail_the_attempt_with_the_reason() {
    if !running(AMQP, "amqp_refusals_fail_the_attempt_with_the_reason").await {
        return;
    }
    let queue = consumers::AmqpQueue::declare(AMQP).await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Devices").await;
    let wrong = format!(
        "amqp://guest:not-the-password@127.0.0.1:{AMQP}/%2f?routingKey={}",
        queue.name
    );
    let (status, ep) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": wrong, "secret": SECRET, "retrySchedule": vec![1; 30]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let masked = format!("amqp://****@127.0.0.1:{AMQP}/%2f?routingKey={}", queue.name);
    assert_eq!(ep["url"], json!(masked));
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 0}}))
        .await;
    let attempt = attempt_matching(&t, &msg, |a| a.error.is_some()).await;
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot connect"),
        "{attempt:?}"
    );
    assert_eq!(attempt.url, masked);
    assert!(!format!("{attempt:?}").contains("not-the-password"));

    // Unroutable: the credentials kept (the masked URL sent back), the routing key changed.
    let unroutable = format!(
        "amqp://****@127.0.0.1:{AMQP}/%2f?routingKey=no-such-queue-{}",
        queue.name
    );
    let (status, out) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep_id}"),
            Some(json!({"url": unroutable})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (_, stored) = t.get(&format!("/api/v1/app/{app}/endpoint/{ep_id}")).await;
    assert_eq!(stored["url"], json!(unroutable));
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 0}}))
        .await;
    let attempt = attempt_matching(&t, &msg, |a| a.error.is_some()).await;
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot connect"),
        "kept credentials are still wrong: {attempt:?}"
    );

    // The right password: both messages go through on their retries (the second to nowhere
    // still: it was published while the key was unroutable, and is refused by name).
    let right = format!(
        "amqp://guest:guest@127.0.0.1:{AMQP}/%2f?routingKey=no-such-queue-{}",
        queue.name
    );
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep_id}"),
            Some(json!({"url": right})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    attempt_matching(&t, &msg, |a| {
        a.error
            .as_deref()
            .is_some_and(|e| e.contains("could not route the message"))
    })
    .await;
    let good = format!("amqp://****@127.0.0.1:{AMQP}/%2f?routingKey={}", queue.name);
    t.call(
        Method::PATCH,
        &format!("/api/v1/app/{app}/endpoint/{ep_id}"),
        Some(json!({"url": good})),
    )
    .await;
    t.wait_status(
        &msg,
        &ep_id,
        herald_core::model::DeliveryStatus::Success,
        Duration::from_secs(20),
    )
    .await;
    wait_for(Duration::from_secs(20), 2, || queue.count()).await;
}

/// The message's attempts once there are at least `n` (at most 20 s).
async fn attempts_at_least(t: &TestApp, msg: &str, n: usize) -> Vec<herald_store::Attempt> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempts = t.attempts(msg).await;
        if attempts.len() >= n {
            return attempts;
        }
        assert!(Instant::now() < deadline, "{attempts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first attempt of `msg` that `wanted` accepts (at most 20 s).
async fn attempt_matching(
    t: &TestApp,
    msg: &str,
    wanted: impl Fn(&herald_store::Attempt) -> bool,
) -> herald_store::Attempt {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempts = t.attempts(msg).await;
        if let Some(a) = attempts.iter().find(|a| wanted(a)) {
            return a.clone();
        }
        assert!(Instant::now() < deadline, "{attempts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A broker that accepts connections and never answers holds its own endpoint's attempts
/// until their timeout, and nobody else's: an HTTP endpoint and a healthy broker of the same
/// application get every message meanwhile.
#[tokio::test]
async fn a_hung_broker_never_holds_up_other_destinations() {
    if !running(REDIS, "a_hung_broker_never_holds_up_other_destinations").await {
        return;
    }
    let hung = TcpProxy::start(upstream(REDIS)).await;
    hung.black_hole(true);
    let receiver = crate::receiver::Receiver::start().await;
    receiver.always("/hook", crate::receiver::Step::Status(200));
    let healthy = consumers::RedisStream::new(REDIS, "herald-healthy:").await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Devices").await;
    let hung_ep = t
        .create_endpoint(
            &app,
            json!({"url": format!("redis://127.0.0.1:{}/0?stream=hung", hung.port()),
                   "timeoutSeconds": 3, "maxConcurrency": 5}),
        )
        .await;
    t.create_endpoint(&app, json!({"url": receiver.url("/hook")}))
        .await;
    t.create_endpoint(
        &app,
        json!({"url": format!("redis://127.0.0.1:{REDIS}/0?stream={}", healthy.key)}),
    )
    .await;
    let probe = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 0}}))
        .await;
    publish_sequence(&t, &app, 49).await;
    // Each of the hung broker's attempts holds on for its 3 s; the 50 messages to the others
    // do not wait for them.
    receiver
        .wait_for("/hook", 50, Duration::from_secs(15))
        .await;
    wait_for(Duration::from_secs(15), 50, || healthy.len()).await;
    assert!(hung.accepted() >= 1, "the hung broker was tried");
    let timed_out = attempt_matching(&t, &probe, |a| a.endpoint_id.as_str() == hung_ep).await;
    assert_eq!(
        timed_out.error.as_deref(),
        Some("timed out after 3s"),
        "{timed_out:?}"
    );
    // Attempts are counted by destination kind.
    let metrics = reqwest::get(t.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["redis", "http"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("herald_attempts_total{")
                    && l.contains(&format!("destination=\"{kind}\""))
                    && l.contains("outcome=\"success\"")),
            "{metrics}"
        );
    }
    healthy.delete().await;
}

/// A broker endpoint's transformation rewrites the body and adds headers (signed over the new
/// bytes, carried as stream fields); one that changes the URL fails the attempt by name.
#[tokio::test]
async fn a_transformation_shapes_what_a_broker_gets() {
    if !running(REDIS, "a_transformation_shapes_what_a_broker_gets").await {
        return;
    }
    let stream = consumers::RedisStream::new(REDIS, "herald-transform:").await;
    let url = format!("redis://127.0.0.1:{REDIS}/0?stream={}", stream.key);
    let (t, app, ep) = fifo_app(&url).await;
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/transformation");
    let code = r#"function handler(webhook) {
        webhook.payload = { seq: webhook.payload.seq, wrapped: true };
        webhook.headers["x-tenant"] = "acme";
        return webhook;
    }"#;
    let (status, out) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!({"code": code, "enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{out}");
    publish_sequence(&t, &app, 1).await;
    wait_for(Duration::from_secs(10), 1, || stream.len()).await;
    let got = stream.read().await;
    check(&got, 1, true);
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        json!({"seq": 0, "wrapped": true})
    );
    assert_eq!(got[0].headers["x-tenant"], "acme");

    let moving =
        r#"function handler(webhook) { webhook.url = "https://example.com/"; return webhook; }"#;
    let (status, out) = t
        .call(Method::PATCH, &path, Some(json!({"code": moving})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{out}");
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 1}}))
        .await;
    let failed = attempt_matching(&t, &msg, |a| a.error.is_some()).await;
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot change the URL"),
        "{failed:?}"
    );
    stream.delete().await;
}

/// A broker that stops answering on an open connection: the attempt times out (recorded as
/// such, never stuck), the connection is dropped, and the retry reconnects and delivers.
#[tokio::test]
async fn a_publish_that_times_out_drops_its_connection_and_the_retry_delivers() {
    if !running(
        REDIS,
        "a_publish_that_times_out_drops_its_connection_and_the_retry_delivers",
    )
    .await
    {
        return;
    }
    let proxy = TcpProxy::start(upstream(REDIS)).await;
    let stream = consumers::RedisStream::new(REDIS, "herald-timeout:").await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Devices").await;
    let url = format!("redis://127.0.0.1:{}/0?stream={}", proxy.port(), stream.key);
    t.create_endpoint(
        &app,
        json!({"url": url, "secret": SECRET, "timeoutSeconds": 2, "retrySchedule": vec![1; 10]}),
    )
    .await;
    t.publish(&app, json!({"eventType": "x", "payload": {"seq": 0}}))
        .await;
    wait_for(Duration::from_secs(10), 1, || stream.len()).await;
    proxy.freeze();
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 1}}))
        .await;
    let failed = attempt_matching(&t, &msg, |a| a.error.is_some()).await;
    assert_eq!(
        failed.error.as_deref(),
        Some("timed out after 2s"),
        "{failed:?}"
    );
    proxy.black_hole(false);
    wait_for(Duration::from_secs(15), 2, || stream.len()).await;
    check(&stream.read().await, 2, true);
    stream.delete().await;
}

/// Broker URLs are read when saved: what cannot work is a 422 naming it, the credentials are
/// masked in every answer and kept when the mask comes back, and a setting that needs an HTTP
/// status is refused.
#[tokio::test]
async fn broker_urls_are_checked_and_their_credentials_masked() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Devices").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    for (url, says) in [
        ("mqtt://127.0.0.1/a/+", "'+'"),
        ("mqtt://127.0.0.1/t?qos=2", "qos 2"),
        ("mqtt://127.0.0.1/t?speed=9", "unknown option"),
        ("nats://127.0.0.1/a.>", "'>'"),
        ("amqp://127.0.0.1/", "routingKey"),
        ("redis://127.0.0.1/0", "stream"),
        ("ftp://127.0.0.1/x", "broker"),
    ] {
        let (status, out) = t.post(&path, json!({"url": url})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {out}");
        assert_eq!(error_locs(&out), vec!["body.url"], "{url}: {out}");
        assert!(out.to_string().contains(says), "{url}: {out}");
    }
    let (status, out) = t
        .post(
            &path,
            json!({"url": "redis://127.0.0.1/0?stream=s", "successStatuses": [200]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), vec!["body.successStatuses"]);
    let (status, out) = t
        .post(
            &path,
            json!({"url": "redis://127.0.0.1/0?stream=s", "profile": "ideavate"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), vec!["body.profile"]);
    let (status, out) = t
        .post(&path, json!({"url": "redis://****@127.0.0.1/0?stream=s"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a new endpoint has nothing to keep: {out}"
    );

    let (status, ep) = t
        .post(
            &path,
            json!({"url": "nats://herald:s3cr3t-pass@127.0.0.1:4222/orders.created"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    assert_eq!(
        ep["url"],
        json!("nats://****@127.0.0.1:4222/orders.created")
    );
    let id = ep["id"].as_str().unwrap();
    let (_, listed) = t.get(&path).await;
    assert!(!listed.to_string().contains("s3cr3t"), "{listed}");
    // A PUT of what GET returned keeps the stored credentials.
    let (status, put) = t
        .call(
            Method::PUT,
            &format!("{path}/{id}"),
            Some(json!({"url": ep["url"], "description": "kept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let sealed = stored_credentials(&t, id).await.expect("kept");
    assert!(
        !String::from_utf8_lossy(&sealed).contains("s3cr3t"),
        "sealed, not plain"
    );
    // The mask keeps them for the same broker only: sent with another host (or in plain text
    // where TLS was), they would go somewhere they were never meant for.
    for moved in [
        "nats://****@attacker.example:4222/orders.created",
        "tls://****@127.0.0.1:4222/orders.created",
        "nats://****@127.0.0.1:4223/orders.created",
    ] {
        let (status, out) = t
            .call(
                Method::PATCH,
                &format!("{path}/{id}"),
                Some(json!({"url": moved})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{moved}: {out}");
        assert_eq!(error_locs(&out), vec!["body.url"]);
    }
    let (_, same) = t.get(&format!("{path}/{id}")).await;
    assert_eq!(
        same["url"],
        json!("nats://****@127.0.0.1:4222/orders.created")
    );
    // A URL without credentials removes them.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("{path}/{id}"),
            Some(json!({"url": "nats://127.0.0.1:4222/orders.created"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored_credentials(&t, id).await, None);

    // --require-https requires the TLS schemes.
    let strict = TestApp::spawn_with(|c| c.delivery.require_https = true).await;
    let app = strict.create_app("Devices").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    let (status, out) = strict
        .post(&path, json!({"url": "mqtt://broker.example/t"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    for url in [
        "mqtts://broker.example/t",
        "tls://broker.example/s",
        "amqps://broker.example/?routingKey=q",
        "rediss://broker.example/0?stream=s",
    ] {
        let (status, out) = strict.post(&path, json!({"url": url})).await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {out}");
    }
}

/// The credentials as the store holds them (sealed).
async fn stored_credentials(t: &TestApp, id: &str) -> Option<Vec<u8>> {
    let id = herald_core::id::EndpointId::parse(id).unwrap();
    let sealed = t.store.get_endpoint_secrets(&id).await.unwrap().unwrap();
    sealed.credentials
}

/// With the default network policy (no `--allow-network`), a broker on loopback is refused
/// when saved (a literal address) or when connecting (a name resolving to it), and never
/// connected to.
#[tokio::test]
async fn a_refused_broker_address_is_never_connected_to() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = accepted.clone();
    let accepting = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let t = TestApp::spawn_with(|c| c.allow_networks.clear()).await;
    let app = t.create_app("Devices").await;
    let urls = [
        format!("mqtt://{{host}}:{port}/t"),
        format!("nats://{{host}}:{port}/s"),
        format!("amqp://{{host}}:{port}/%2f?routingKey=q"),
        format!("redis://{{host}}:{port}/0?stream=s"),
    ];
    for url in &urls {
        let literal = url.replace("{host}", "127.0.0.1");
        let (status, out) = t
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                json!({"url": literal}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{literal}: {out}");
        assert!(out.to_string().contains("network policy"), "{out}");
        t.create_endpoint(&app, json!({"url": url.replace("{host}", "localhost")}))
            .await;
    }
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 0}}))
        .await;
    for a in attempts_at_least(&t, &msg, urls.len()).await {
        let error = a.error.as_deref().unwrap_or_default();
        assert!(error.contains("refused by the network policy"), "{a:?}");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    accepting.abort();
}

/// A customer creates a broker endpoint in the portal: its pages show the URL masked, and
/// saving the edit form unchanged (the masked URL sent back) keeps the credentials.
#[tokio::test]
async fn the_portal_creates_a_broker_endpoint_and_never_shows_its_credentials() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Portal").await;
    let token = crate::portal::portal_token(&t, &app).await;
    let mut browser = crate::portal::portal_session(&t, &token).await;
    let new = format!("/portal/app/{app}/endpoint/new");
    let csrf = browser.csrf(&new).await;
    let url = "amqp://plant:hunter2-secret@127.0.0.1:5672/%2f?routingKey=readings";
    let page = browser
        .post(
            &new,
            &[("_csrf", &csrf), ("url", url), ("description", "rabbit")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, list) = t.get(&format!("/api/v1/app/{app}/endpoint")).await;
    let ep = list["data"][0]["id"].as_str().unwrap().to_owned();
    let masked = "amqp://****@127.0.0.1:5672/%2f?routingKey=readings";
    assert_eq!(list["data"][0]["url"], masked);
    let edit_path = format!("/portal/app/{app}/endpoint/{ep}/edit");
    for path in [
        format!("/portal/app/{app}/endpoint/{ep}"),
        edit_path.clone(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("amqp://****@127.0.0.1:5672"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("hunter2"), "{path}");
    }
    let csrf = browser.csrf(&edit_path).await;
    let page = browser
        .post(
            &edit_path,
            &[
                ("_csrf", &csrf),
                ("url", masked),
                ("description", "rabbit 2"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(stored_credentials(&t, &ep).await.is_some(), "kept");
}

/// The TLS schemes speak TLS: against a broker's plain-text port each attempt fails in the
/// handshake with the reason recorded (and the worker goes on), never in plain text.
#[tokio::test]
async fn tls_schemes_never_fall_back_to_plain_text() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A server that answers every connection with plain text and closes it.
    let serving = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = socket.write_all(b"-ERR plain text only\r\n").await;
        }
    });
    let t = TestApp::spawn().await;
    let app = t.create_app("Devices").await;
    for url in [
        format!("mqtts://127.0.0.1:{port}/t"),
        format!("tls://127.0.0.1:{port}/s"),
        format!("amqps://127.0.0.1:{port}/%2f?routingKey=q"),
        format!("rediss://127.0.0.1:{port}/0?stream=s"),
    ] {
        t.create_endpoint(&app, json!({"url": url, "timeoutSeconds": 5}))
            .await;
    }
    let msg = t
        .publish(&app, json!({"eventType": "x", "payload": {"seq": 0}}))
        .await;
    for a in attempts_at_least(&t, &msg, 4).await {
        assert!(!a.success, "{a:?}");
        let error = a.error.as_deref().unwrap_or_default();
        eprintln!("{}: {error}", a.url);
        assert!(error.contains("cannot connect"), "{a:?}");
    }
    serving.abort();
}
