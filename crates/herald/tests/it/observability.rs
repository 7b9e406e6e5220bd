//! Metrics and logs: `/metrics` in the Prometheus text format, and structured logs.

use std::process::Stdio;
use std::time::Duration;

use herald_core::model::DeliveryStatus;
use prometheus_parse::{Sample, Scrape, Value as Metric};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::child::{self, ChildServer};
use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

async fn scrape(t: &TestApp, token: Option<&str>) -> Scrape {
    let mut request = t.client.get(t.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the Prometheus text format")
}

/// The value of the counter or gauge `name` whose labels include `labels` (0 when absent).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && has(s, labels))
        .map(|s| match &s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
        .sum()
}

fn has(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

/// The number of observations of histogram `name` with `labels`.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && has(s, labels))
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_move_as_deliveries_happen() {
    let r = Receiver::start().await;
    r.script("/hook", vec![Step::Status(503)]);
    let t = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/hook")}))
        .await;
    // The registry is the process's, shared with other tests: use an event type of our own and
    // compare before and after.
    let event_type = format!("metrics.test-{}", herald_core::token::random_base62(6));
    // Only the catalogue's event types label metrics.
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": event_type, "description": "d"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = scrape(&t, None).await;
    let success = [("outcome", "success"), ("status_class", "2xx")];
    let failure = [("outcome", "failure"), ("status_class", "5xx")];
    let mut msgs = Vec::new();
    for _ in 0..3 {
        msgs.push(
            t.publish(&app, json!({"eventType": event_type, "payload": {}}))
                .await,
        );
    }
    for m in &msgs {
        t.wait_status(m, &ep, DeliveryStatus::Success, Duration::from_secs(10))
            .await;
    }
    let after = scrape(&t, None).await;
    assert_eq!(
        value(
            &after,
            "herald_messages_published_total",
            &[("event_type", &event_type)]
        ),
        3.0
    );
    assert!(
        value(&after, "herald_attempts_total", &success)
            >= value(&before, "herald_attempts_total", &success) + 3.0
    );
    assert!(
        value(&after, "herald_attempts_total", &failure)
            >= value(&before, "herald_attempts_total", &failure) + 1.0
    );
    assert!(
        observations(&after, "herald_attempt_duration_seconds", &[])
            >= observations(&before, "herald_attempt_duration_seconds", &[]) + 4.0
    );
    assert!(
        observations(&after, "herald_publish_to_success_seconds", &[])
            >= observations(&before, "herald_publish_to_success_seconds", &[]) + 3.0
    );
    for gauge in [
        "herald_tasks_due",
        "herald_tasks_scheduled",
        "herald_attempts_in_flight",
        "herald_endpoints_disabled",
    ] {
        assert!(
            after.samples.iter().any(|s| s.metric == gauge),
            "{gauge} is missing"
        );
    }
    assert!(
        value(
            &after,
            "herald_db_pool_max_connections",
            &[("pool", "writer")]
        ) >= 1.0
    );
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "herald_db_pool_connections"
                && has(s, &[("pool", "reader"), ("state", "idle")]))
    );
    // No label names a message; endpoint labels are off by default.
    for sample in &after.samples {
        for (name, value) in sample.labels.iter() {
            assert!(
                !value.starts_with("msg_"),
                "{} has {name}={value}",
                sample.metric
            );
            assert_ne!(
                value, &ep,
                "{} is labelled with the endpoint",
                sample.metric
            );
        }
    }
    assert!(after.docs.contains_key("herald_attempts_total"));
    t.stop().await;
}

#[tokio::test]
async fn metrics_token_and_endpoint_labels() {
    let r = Receiver::start().await;
    const TOKEN: &str = "metrics-token-0123456789";
    let t = TestApp::spawn_with(|c| {
        c.metrics.token = Some(zeroize::Zeroizing::new(TOKEN.to_owned()));
        c.metrics.endpoint_labels = true;
    })
    .await;
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(super::helpers::ADMIN_TOKEN),
    ] {
        let mut request = t.client.get(t.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/hook")}))
        .await;
    let msg = t
        .publish(&app, json!({"eventType": "a", "payload": {}}))
        .await;
    t.wait_status(&msg, &ep, DeliveryStatus::Success, Duration::from_secs(10))
        .await;
    let scrape = scrape(&t, Some(TOKEN)).await;
    assert_eq!(
        value(
            &scrape,
            "herald_attempts_total",
            &[("endpoint", &ep), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(
        observations(
            &scrape,
            "herald_attempt_duration_seconds",
            &[("endpoint", &ep)]
        ),
        1.0
    );
    t.stop().await;
}

/// Reads `stderr` lines until one satisfies `pick` (or panics after a while).
async fn line_where(
    lines: &mut tokio::io::Lines<BufReader<ServerLog>>,
    seen: &mut Vec<String>,
    pick: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no such log line; got:\n{}", seen.join("\n")))
            .unwrap()
            .expect("stderr open");
        seen.push(line.clone());
        // The start-up notices for people (where the admin token is) are not log lines.
        if line.starts_with("herald: ") {
            continue;
        }
        let parsed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if pick(&parsed) {
            return parsed;
        }
    }
}

#[tokio::test]
async fn json_logs_filtered_by_rust_log_with_one_span_per_attempt_and_no_secrets() {
    let r = Receiver::start().await;
    r.always("/hook", Step::Status(500));
    let (_dir, server, stderr) = start_with_json_logs(
        "warn,herald::worker=info",
        &["--allow-network", "127.0.0.0/8"],
    )
    .await;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = server.post("/api/v1/app", json!({"name": "Acme"})).await;
    let app_id = app["id"].as_str().unwrap();
    let ep = server
        .post(
            &format!("/api/v1/app/{app_id}/endpoint"),
            json!({"url": r.url("/hook"), "secret": SECRET, "headers": {"Authorization": "Bearer receiver-credential"}}),
        )
        .await;
    let msg = server
        .post(
            &format!("/api/v1/app/{app_id}/msg"),
            json!({"eventType": "a", "payload": {"card": "4111-1111"}}),
        )
        .await;
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let failed = line_where(&mut lines, &mut seen, |l| {
        l["fields"]["message"] == "attempt failed"
    })
    .await;
    assert_eq!(failed["level"], "INFO");
    let span = &failed["span"];
    assert_eq!(span["name"], "attempt");
    assert_eq!(span["msg_id"], msg["id"]);
    assert_eq!(span["endpoint_id"], ep["id"]);
    assert!(span["attempt_id"].as_str().unwrap().starts_with("atmpt_"));
    assert_eq!(failed["fields"]["status"], 500);
    assert_eq!(server.terminate().await.code(), Some(0));
    // The rest of the log, to the end.
    while let Ok(Some(line)) = lines.next_line().await {
        seen.push(line);
    }
    let all = seen.join("\n");
    // `RUST_LOG` applies: no information from outside the worker (the start-up line is one).
    assert!(!all.contains("herald is listening"), "{all}");
    for secret in [SECRET, child::TOKEN, "receiver-credential", "4111-1111"] {
        assert!(!all.contains(secret), "{secret} was logged:\n{all}");
    }
}

/// Request logs name the path, never the query string: an inbox token in `?token=` stays out of
/// the logs even at debug level.
#[tokio::test]
async fn request_logs_leave_out_query_strings() {
    let (_dir, server, stderr) = start_with_json_logs("debug", &[]).await;
    let collected = collect_log(stderr);
    let inbox = server
        .post("/api/v1/inbox", json!({"name": "factory"}))
        .await;
    let token = inbox["token"].as_str().unwrap().to_owned();
    let response = server
        .client
        .post(server.url(&format!("/in/factory/blessing.json?token={token}")))
        .json(&json!({"device_id": "30000c2a690a1e0b"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    assert_eq!(server.terminate().await.code(), Some(0));
    let all = collected.await.unwrap();
    assert!(
        all.contains("/in/factory/blessing.json"),
        "requests are logged:\n{all}"
    );
    assert!(!all.contains(&token), "the inbox token was logged:\n{all}");
}

/// A server's stderr, read from its start (see [`start_with_json_logs_and_env`]).
pub type ServerLog = tokio::io::DuplexStream;

/// Reads the whole log in the background (a full pipe would stop the server); the task ends
/// with the log when the server exits.
pub fn collect_log(stderr: ServerLog) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all.join("\n")
    })
}

/// Starts `herald serve` with JSON logs filtered by `rust_log` on stderr, and waits until it
/// answers.
async fn start_with_json_logs(
    rust_log: &str,
    extra_args: &[&str],
) -> (tempfile::TempDir, ChildServer, ServerLog) {
    start_with_json_logs_and_env(rust_log, extra_args, &[]).await
}

/// [`start_with_json_logs`] with extra environment variables.
pub async fn start_with_json_logs_and_env(
    rust_log: &str,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, ChildServer, ServerLog) {
    let dir = tempfile::tempdir().unwrap();
    let port = child::free_port();
    let mut cmd = child::herald_command(dir.path());
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--log-format",
        "json",
    ])
    .args(extra_args)
    .env("HERALD_ADMIN_TOKEN", child::TOKEN)
    .env("RUST_LOG", rust_log)
    .envs(env.iter().copied())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut process = cmd.spawn().unwrap();
    // Read from the start, into a buffer the test reads at its pace: at trace level the start
    // alone logs close to a pipe's 64 kB, and a server blocked on a full pipe never answers.
    let mut pipe = process.stderr.take().unwrap();
    let (mut buffer, stderr) = tokio::io::duplex(64 << 20);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut pipe, &mut buffer).await;
    });
    let server = ChildServer {
        child: process,
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server
        .client
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 204)
    {
        assert!(std::time::Instant::now() < deadline, "herald did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (dir, server, stderr)
}

/// Only event types of the catalogue label published messages: 300 made-up event types add no
/// series (they count as `other`), so no publisher can grow `/metrics` without bound.
#[tokio::test]
async fn event_types_outside_the_catalogue_add_no_metric_series() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Labels").await;
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "catalogued.type", "description": "d"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = scrape(&t, None).await;
    let name = "herald_messages_published_total";
    let others_before = value(&before, name, &[("event_type", "other")]);
    let known_before = value(&before, name, &[("event_type", "catalogued.type")]);
    for i in 0..300 {
        t.publish(
            &app,
            json!({"eventType": format!("made.up.{i}"), "payload": {}}),
        )
        .await;
    }
    t.publish(&app, json!({"eventType": "catalogued.type", "payload": {}}))
        .await;
    let after = scrape(&t, None).await;
    assert!(
        !after.samples.iter().any(|s| s.metric == name
            && s.labels
                .get("event_type")
                .is_some_and(|l| l.starts_with("made.up."))),
        "a made-up event type labels a series"
    );
    assert!(value(&after, name, &[("event_type", "other")]) >= others_before + 300.0);
    assert_eq!(
        value(&after, name, &[("event_type", "catalogued.type")]),
        known_before + 1.0
    );
    t.stop().await;
}
