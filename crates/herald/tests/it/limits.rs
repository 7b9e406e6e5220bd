//! Input limits and protection against greedy or slow clients: per-token rate limits, header
//! count and size, JSON depth, endpoints per application, and the client timeout.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

#[tokio::test]
async fn each_token_is_rate_limited_with_retry_after() {
    const RATE: u32 = 2;
    let t = TestApp::spawn_with(|c| c.api_rate_limit = RATE).await;
    let app = t.create_app("Acme").await;
    let token = t.api_key(json!({"role": "app", "appId": app})).await;
    // Give the admin token's bucket time to refill after the set-up above.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let started = Instant::now();
    let requests = (0..30).map(|_| {
        let request = t.request_as(&token, Method::GET, &format!("/api/v1/app/{app}"));
        async move { request.send().await.unwrap() }
    });
    let responses = futures::future::join_all(requests).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut passed = 0;
    let mut limited = None;
    for response in responses {
        match response.status() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => limited = Some(response),
            other => panic!("unexpected {other}"),
        }
    }
    // A full bucket (one second's worth), plus what refilled while the requests ran.
    let most = f64::from(RATE) * (1.0 + elapsed) + 1.0;
    assert!(
        passed >= 1 && f64::from(passed) <= most,
        "{passed} passed in {elapsed}s"
    );
    let limited = limited.expect("requests over the rate are refused");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("--api-rate-limit"),
        "{body}"
    );

    // Another token has its own bucket.
    assert_eq!(t.get(&format!("/api/v1/app/{app}")).await.0, StatusCode::OK);
    // Waiting as told is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _) = t
        .call_as(&token, Method::GET, &format!("/api/v1/app/{app}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn header_count_and_size_are_capped() {
    let t = TestApp::spawn().await;
    let mut many = t.request(Method::GET, "/api/v1/app");
    for i in 0..120 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    assert_eq!(
        many.send().await.unwrap().status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let huge = t
        .request(Method::GET, "/api/v1/app")
        .header("x-huge", "a".repeat(80 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Ordinary requests still pass.
    assert_eq!(t.get("/api/v1/app").await.0, StatusCode::OK);
    t.stop().await;
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[tokio::test]
async fn json_nesting_is_bounded() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/msg");
    // The message object itself is one level.
    let (status, _) = t
        .post(&path, json!({"eventType": "e", "payload": nested(63)}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = t
        .post(&path, json!({"eventType": "e", "payload": nested(64)}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("64 levels"),
        "{body}"
    );
    // Deeper than serde_json's own recursion limit: the same clear answer.
    let very_deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let response = t
        .request(Method::POST, &path)
        .header("content-type", "application/json")
        .body(format!(r#"{{"eventType": "e", "payload": {very_deep}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    t.stop().await;
}

#[tokio::test]
async fn endpoints_per_application_are_capped() {
    let t = TestApp::spawn_with(|c| c.limits.max_endpoints_per_app = 2).await;
    let app = t.create_app("Acme").await;
    let other = t.create_app("Other").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    for i in 0..2 {
        t.create_endpoint(&app, json!({"url": format!("https://e.com/{i}")}))
            .await;
    }
    let (status, body) = t.post(&path, json!({"url": "https://e.com/3"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.to_string().contains("--max-endpoints-per-app"),
        "{body}"
    );
    // Creating by uid with PUT counts too; other applications have their own allowance.
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("{path}/by-uid"),
            Some(json!({"url": "https://e.com/4"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.create_endpoint(&other, json!({"url": "https://e.com/o"}))
        .await;
    t.stop().await;
}

/// Fifty creates at once against a limit of eight leave eight (the conformance suite checks the
/// same on Postgres).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_cap_holds_under_parallel_creates() {
    let t = TestApp::spawn_with(|c| c.limits.max_endpoints_per_app = 8).await;
    let app = t.create_app("Race").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    let statuses: Vec<StatusCode> = futures::future::join_all((0..50).map(|i| {
        let request = t
            .request(Method::POST, &path)
            .json(&json!({"url": format!("https://e.com/{i}")}));
        async move { request.send().await.unwrap().status() }
    }))
    .await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 8, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::CREATED | StatusCode::UNPROCESSABLE_ENTITY))
    );
    let (_, list) = t.get(&format!("{path}?limit=100")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 8);
    t.stop().await;
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the server closed the connection in time");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let t = TestApp::spawn_with(|c| c.client_timeout = Duration::from_secs(1)).await;
    let addr = t.base.trim_start_matches("http://").to_owned();

    // Headers that never finish (slowloris).
    let mut slow_headers = TcpStream::connect(&addr).await.unwrap();
    slow_headers
        .write_all(b"GET /api/v1/app HTTP/1.1\r\nhost: herald\r\nx-slow: ")
        .await
        .unwrap();
    // An idle connection that never sends a request.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    // A body that stops halfway.
    let mut slow_body = TcpStream::connect(&addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/app HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer {}\r\n\
                 content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\": ",
                crate::helpers::ADMIN_TOKEN
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    let within = Duration::from_secs(10);
    read_until_closed(&mut slow_headers, within).await;
    read_until_closed(&mut idle, within).await;
    let answer = read_until_closed(&mut slow_body, within).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--client-timeout"), "{answer}");
    // Nothing was created from the half body, and the server still serves.
    let (status, apps) = t.get("/api/v1/app").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apps["data"].as_array().unwrap().len(), 0);
    t.stop().await;
}
