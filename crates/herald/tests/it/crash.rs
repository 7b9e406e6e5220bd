//! `herald serve` as a child process: SIGKILL mid-delivery loses nothing, SIGTERM drains.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::child::{ChildServer as Server, TOKEN, free_port};
use crate::receiver::{Receiver, Step};

async fn start(dir: &std::path::Path, port: u16) -> Server {
    Server::start(dir, port, &[]).await
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// A server on a fresh data directory with one application whose endpoint is `endpoint`.
async fn server_with_endpoint(endpoint: Value) -> (Server, tempfile::TempDir, u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port).await;
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{}/api/v1/app", server.base),
        json!({"name": "Crash"}),
    )
    .await;
    let app = app["id"].as_str().unwrap().to_owned();
    post(
        &client,
        format!("{}/api/v1/app/{app}/endpoint", server.base),
        endpoint,
    )
    .await;
    (server, dir, port, app)
}

/// Distinct webhook ids seen, and the total number of requests.
fn tally(r: &Receiver, path: &str) -> (HashMap<String, usize>, usize) {
    let got = r.received(path);
    let mut ids = HashMap::new();
    for req in &got {
        *ids.entry(req.header("webhook-id").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    (ids, got.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_acknowledged_message() {
    let r = Receiver::start().await;
    // 10 attempts in flight at 40 ms each: about 250 deliveries a second, so the kill lands
    // in the middle of the run.
    r.always(
        "/crash",
        Step::Delay(Duration::from_millis(40), Box::new(Step::Status(200))),
    );
    let (mut server, dir, port, app) =
        server_with_endpoint(json!({"url": r.url("/crash"), "maxConcurrency": 10})).await;
    let client = reqwest::Client::new();

    // Publish 1,000 messages, 16 at a time; every one of them is acknowledged.
    let url = format!("{}/api/v1/app/{app}/msg", server.base);
    let acked: Vec<String> = futures::stream::iter(0..1000)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let out = post(
                    &client,
                    url,
                    json!({"eventType": "crash.test", "payload": {"i": i}}),
                )
                .await;
                out["id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(acked.len(), 1000);

    // Kill it mid-delivery.
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.received("/crash").len() < 300 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let (before, _) = tally(&r, "/crash");
    assert!(
        before.len() < 1000,
        "the kill must land mid-delivery ({} delivered)",
        before.len()
    );
    eprintln!("killed with {} of 1000 messages delivered", before.len());

    // Restart on the same data: everything acknowledged arrives.
    let mut server = start(dir.path(), port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ids, _) = tally(&r, "/crash");
        if acked.iter().all(|id| ids.contains_key(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 1000 arrived after the restart",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let stragglers land, then count duplicates: at most one per attempt in flight at the kill
    // (the endpoint's cap is 10).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ids, total) = tally(&r, "/crash");
    let duplicates = total - ids.len();
    eprintln!(
        "{total} requests for {} messages: {duplicates} duplicates",
        ids.len()
    );
    assert_eq!(ids.len(), 1000);
    assert!(duplicates <= 10, "{duplicates} duplicates");
    assert!(ids.values().all(|n| *n <= 2));
    server.child.start_kill().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_attempts_in_flight_and_exits_0() {
    let r = Receiver::start().await;
    r.always(
        "/slow",
        Step::Delay(Duration::from_secs(1), Box::new(Step::Status(200))),
    );
    let (mut server, dir, port, app) = server_with_endpoint(json!({"url": r.url("/slow")})).await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        post(
            &client,
            format!("{}/api/v1/app/{app}/msg", server.base),
            json!({"eventType": "a", "payload": {"i": i}}),
        )
        .await;
    }
    r.wait_for("/slow", 5, Duration::from_secs(10)).await;
    let pid = server.child.id().unwrap().to_string();
    let asked = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = server.child.wait().await.unwrap();
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert!(
        asked.elapsed() >= Duration::from_millis(500),
        "it waited for the attempts in flight"
    );

    // They were recorded as delivered: a restart sends nothing again.
    let mut server = start(dir.path(), port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.received("/slow").len(), 5);
    server.child.start_kill().unwrap();
}
