//! The delivery engine end to end: the request as sent, retries, ordering, rates, isolation.

use std::time::{Duration, Instant};

use base64::Engine;
use herald_core::model::DeliveryStatus;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::Sha256;

use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Standard Webhooks verification written out here, independently of Herald's signer.
pub(crate) fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header.split(' ').any(|s| s == expected)
}

#[tokio::test]
async fn a_delivery_is_the_exact_payload_signed_with_every_header() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/hook"), "secret": SECRET, "headers": {"X-Team": "qa"}}),
        )
        .await;
    let raw = r#"{"eventType":"order.status","payload":{"b": 2,  "a": [1, "x"]}}"#;
    let response = t
        .request(Method::POST, &format!("/api/v1/app/{app}/msg"))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let msg: serde_json::Value = response.json().await.unwrap();
    let msg_id = msg["id"].as_str().unwrap();

    let got = r.wait_for("/hook", 1, Duration::from_secs(5)).await;
    let req = &got[0];
    assert_eq!(
        req.body, br#"{"b": 2,  "a": [1, "x"]}"#,
        "the payload bytes as published"
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("user-agent"),
        Some(concat!("Herald/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(req.header("webhook-id"), Some(msg_id));
    assert_eq!(req.header("x-team"), Some("qa"));
    let ts = req.header("webhook-timestamp").unwrap();
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..=10).contains(&age), "timestamp {ts}");
    let sig = req.header("webhook-signature").unwrap();
    assert!(
        verify(SECRET, msg_id, ts, &req.body, sig),
        "signature {sig} does not verify"
    );
    // The older Svix names carry the same values.
    assert_eq!(req.header("svix-id"), Some(msg_id));
    assert_eq!(req.header("svix-timestamp"), Some(ts));
    assert_eq!(req.header("svix-signature"), Some(sig));

    let d = t
        .wait_status(msg_id, &ep, DeliveryStatus::Success, Duration::from_secs(5))
        .await;
    assert_eq!(d.attempts, 1);
    let attempts = t.attempts(msg_id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, 200);
    assert_eq!(attempts[0].response.as_deref(), Some("ok"));
    assert_eq!(attempts[0].url, r.url("/hook"));
    assert!(attempts[0].success);
    assert!(attempts[0].id.as_str().starts_with("atmpt_"));
    t.stop().await;
}

#[tokio::test]
async fn publish_is_answered_only_after_message_and_tasks_are_committed() {
    // 192.0.2.0/24 (documentation, unroutable) is opened so that the endpoints can be saved and
    // their attempts hang instead of failing at once.
    let t = TestApp::spawn_with(|c| c.allow_networks.push("192.0.2.0/24".parse().unwrap())).await;
    let app = t.create_app("Acme").await;
    let mut eps = Vec::new();
    for (types, channels) in [
        (json!(null), json!(null)),
        (json!(["order.status"]), json!(null)),
        (json!(["reading.weight"]), json!(null)),
        (json!(null), json!(["team.qa"])),
        (json!(null), json!(["team.ops"])),
    ] {
        // Unroutable so that nothing completes while we look.
        eps.push(
            t.create_endpoint(
                &app,
                json!({"url": "http://192.0.2.1/x", "eventTypes": types, "channels": channels}),
            )
            .await,
        );
    }
    let disabled = t
        .create_endpoint(&app, json!({"url": "http://192.0.2.1/y", "disabled": true}))
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "order.status", "payload": {}, "channels": ["team.qa"]}),
        )
        .await;
    // Right after the 202 the tasks are in the database, for exactly the matching endpoints.
    let mut got: Vec<String> = t
        .deliveries(&msg)
        .await
        .into_iter()
        .map(|d| d.endpoint_id.into_string())
        .collect();
    got.sort();
    let mut expected = vec![eps[0].clone(), eps[1].clone(), eps[3].clone()];
    expected.sort();
    assert_eq!(got, expected);
    assert!(!got.contains(&disabled));
    // A message that matches nothing has no task.
    let none = t
        .publish(
            &app,
            json!({"eventType": "other", "payload": {}, "channels": ["nope"]}),
        )
        .await;
    assert_eq!(
        t.deliveries(&none).await.len(),
        1,
        "only the catch-all endpoint"
    );

    // A database that cannot commit gives 503, never 202.
    t.store.close().await;
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.status", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    t.stop().await;
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_with_a_stable_webhook_id() {
    let r = Receiver::start().await;
    let t =
        TestApp::spawn_with(|c| c.delivery.retry_schedule = vec![ms(100), ms(100), ms(100)]).await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/flaky")}))
        .await;
    r.script(
        "/flaky",
        vec![Step::Status(500), Step::Status(503), Step::Status(200)],
    );
    let msg = t
        .publish(&app, json!({"eventType": "a", "payload": {"n": 1}}))
        .await;
    let got = r.wait_for("/flaky", 3, Duration::from_secs(10)).await;
    let ids: Vec<_> = got
        .iter()
        .map(|g| g.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec![msg.clone(), msg.clone(), msg.clone()],
        "the same webhook-id on every retry"
    );
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= ms(70),
            "retries follow the schedule (±20 %), gap {gap:?}"
        );
    }
    let d = t
        .wait_status(&msg, &ep, DeliveryStatus::Success, Duration::from_secs(5))
        .await;
    assert_eq!(d.attempts, 3);
    let codes: Vec<u16> = t
        .attempts(&msg)
        .await
        .iter()
        .map(|a| a.status_code)
        .collect();
    assert_eq!(codes, vec![500, 503, 200]);

    // When the schedule runs out the task has failed.
    r.always("/down", Step::Status(500));
    let ep2 = t
        .create_endpoint(&app, json!({"url": r.url("/down"), "eventTypes": ["b"]}))
        .await;
    let msg2 = t
        .publish(&app, json!({"eventType": "b", "payload": {}}))
        .await;
    let d = t
        .wait_status(&msg2, &ep2, DeliveryStatus::Fail, Duration::from_secs(10))
        .await;
    assert_eq!(d.attempts, 4, "the first attempt and three retries");
    assert_eq!(r.received("/down").len(), 4);
    t.stop().await;
}

#[tokio::test]
async fn endpoint_schedule_window_and_retry_after() {
    let r = Receiver::start().await;
    // The server's own schedule is far too slow for this test: the endpoints' settings win.
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let own = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/own"), "eventTypes": ["own"], "retrySchedule": [1]}),
        )
        .await;
    let (_, out) = t.get(&format!("/api/v1/app/{app}/endpoint/{own}")).await;
    assert_eq!(out["retrySchedule"], json!([1]));
    r.script("/own", vec![Step::Status(500)]);
    let msg = t
        .publish(&app, json!({"eventType": "own", "payload": {}}))
        .await;
    let got = r.wait_for("/own", 2, Duration::from_secs(5)).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= ms(750) && gap < ms(2000),
        "retry after about a second, was {gap:?}"
    );
    t.wait_status(&msg, &own, DeliveryStatus::Success, Duration::from_secs(5))
        .await;

    // A retry window ends retries: the next attempt would fall after it.
    let windowed = t
        .create_endpoint(&app, json!({"url": r.url("/windowed"), "eventTypes": ["win"], "retrySchedule": [2], "retryWindowSeconds": 1}))
        .await;
    r.always("/windowed", Step::Status(500));
    let msg = t
        .publish(&app, json!({"eventType": "win", "payload": {}}))
        .await;
    let d = t
        .wait_status(
            &msg,
            &windowed,
            DeliveryStatus::Fail,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(d.attempts, 1);

    // Retry-After on 429 (seconds) and 503 (HTTP date) pushes the next attempt back.
    let polite = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/polite"), "eventTypes": ["p"], "retrySchedule": [0, 0]}),
        )
        .await;
    let date = (chrono::Utc::now() + chrono::Duration::seconds(6))
        .to_rfc2822()
        .replace("+0000", "GMT");
    r.script(
        "/polite",
        vec![
            Step::Respond(429, vec![("retry-after", "2".into())], "slow down".into()),
            Step::Respond(503, vec![("retry-after", date)], "later".into()),
        ],
    );
    let msg = t
        .publish(&app, json!({"eventType": "p", "payload": {}}))
        .await;
    let got = r.wait_for("/polite", 3, Duration::from_secs(15)).await;
    assert!(
        got[1].at - got[0].at >= ms(1900),
        "Retry-After: 2 was honoured: {:?}",
        got[1].at - got[0].at
    );
    assert!(
        got[2].at - got[1].at >= ms(1500),
        "the HTTP-date form too: {:?}",
        got[2].at - got[1].at
    );
    t.wait_status(
        &msg,
        &polite,
        DeliveryStatus::Success,
        Duration::from_secs(5),
    )
    .await;
    t.stop().await;
}

#[tokio::test]
async fn concurrency_is_capped_per_endpoint() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": r.url("/capped"), "maxConcurrency": 2}))
        .await;
    r.always("/capped", Step::Delay(ms(150), Box::new(Step::Status(200))));
    for i in 0..8 {
        t.publish(&app, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    r.wait_for("/capped", 8, Duration::from_secs(10)).await;
    assert_eq!(r.max_in_flight("/capped"), 2);

    // The default cap is 10.
    let r2 = Receiver::start().await;
    let app2 = t.create_app("Other").await;
    t.create_endpoint(&app2, json!({"url": r2.url("/default")}))
        .await;
    r2.always(
        "/default",
        Step::Delay(ms(300), Box::new(Step::Status(200))),
    );
    for i in 0..25 {
        t.publish(&app2, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    r2.wait_for("/default", 25, Duration::from_secs(10)).await;
    assert_eq!(r2.max_in_flight("/default"), 10);
    t.stop().await;
}

/// `--max-in-flight` caps attempts over every endpoint of the node together; endpoints wait in
/// turn for a free slot, so every one of them is served early, none starves.
#[tokio::test]
async fn attempts_in_flight_are_capped_over_every_endpoint_and_none_starves() {
    let r = Receiver::start().await;
    let t = TestApp::spawn_with(|c| c.delivery.max_in_flight = 3).await;
    let app = t.create_app("Many").await;
    for e in 0..6 {
        let path = format!("/e{e}");
        r.always(&path, Step::Delay(ms(200), Box::new(Step::Status(200))));
        t.create_endpoint(
            &app,
            json!({"url": r.url(&path), "eventTypes": [format!("e{e}")]}),
        )
        .await;
    }
    for i in 0..4 {
        for e in 0..6 {
            t.publish(
                &app,
                json!({"eventType": format!("e{e}"), "payload": {"i": i}}),
            )
            .await;
        }
    }
    for e in 0..6 {
        r.wait_for(&format!("/e{e}"), 4, Duration::from_secs(20))
            .await;
    }
    assert_eq!(r.max_in_flight_total(), 3);
    let mut arrivals = r.all_received();
    arrivals.sort_by_key(|a| a.at);
    for e in 0..6 {
        let path = format!("/e{e}");
        let first = arrivals.iter().position(|a| a.path == path).unwrap();
        assert!(first < 12, "{path} waited for {first} of 24 deliveries");
    }
    t.stop().await;
}

#[tokio::test]
async fn throttle_rate_limits_messages_per_second() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": r.url("/slow"), "throttleRate": 5}))
        .await;
    for i in 0..10 {
        t.publish(&app, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    let got = r.wait_for("/slow", 10, Duration::from_secs(10)).await;
    let span = got[9].at - got[0].at;
    assert!(
        span >= ms(1700),
        "10 messages at 5/s take about 1.8 s, took {span:?}"
    );
    for (i, req) in got.iter().enumerate() {
        let in_window = got[i..]
            .iter()
            .filter(|o| o.at - req.at < Duration::from_secs(1))
            .count();
        assert!(in_window <= 6, "{in_window} deliveries within one second");
    }
    // An application's rate applies to its endpoints that set none.
    let r2 = Receiver::start().await;
    let (_, app2) = t
        .post(
            "/api/v1/app",
            json!({"name": "Slow app", "throttleRate": 4}),
        )
        .await;
    let app2 = app2["id"].as_str().unwrap().to_owned();
    t.create_endpoint(&app2, json!({"url": r2.url("/app-rate")}))
        .await;
    for i in 0..5 {
        t.publish(&app2, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    let got = r2.wait_for("/app-rate", 5, Duration::from_secs(10)).await;
    assert!(
        got[4].at - got[0].at >= ms(900),
        "{:?}",
        got[4].at - got[0].at
    );
    t.stop().await;
}

#[tokio::test]
async fn fifo_delivers_in_publish_order_and_a_failing_head_holds_back_only_its_endpoint() {
    let r = Receiver::start().await;
    let t =
        TestApp::spawn_with(|c| c.delivery.retry_schedule = vec![ms(200), ms(200), ms(200)]).await;
    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": r.url("/fifo"), "ordering": "fifo"}))
        .await;
    t.create_endpoint(&app, json!({"url": r.url("/free")}))
        .await;
    r.script("/fifo", vec![Step::Status(500), Step::Status(500)]);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            t.publish(&app, json!({"eventType": "a", "payload": {"i": i}}))
                .await,
        );
    }
    // The unordered endpoint gets everything at once, while the FIFO head is being retried.
    let free = r.wait_for("/free", 5, Duration::from_secs(5)).await;
    let fifo_so_far = r.received("/fifo");
    assert!(
        fifo_so_far.len() < 7,
        "the FIFO endpoint is still held back by its head"
    );
    assert!(free[4].at < Instant::now());
    let got = r.wait_for("/fifo", 7, Duration::from_secs(10)).await;
    let order: Vec<&str> = got
        .iter()
        .map(|g| g.header("webhook-id").unwrap())
        .collect();
    let mut expected = vec![ids[0].as_str(), ids[0].as_str(), ids[0].as_str()];
    expected.extend(ids[1..].iter().map(String::as_str));
    assert_eq!(
        order, expected,
        "the head's retries first, then the rest in publish order"
    );
    assert_eq!(r.max_in_flight("/fifo"), 1);
    t.stop().await;
}

#[tokio::test]
async fn one_hanging_endpoint_does_not_delay_the_others() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": r.url("/hang"), "timeoutSeconds": 10}))
        .await;
    t.create_endpoint(&app, json!({"url": r.url("/healthy")}))
        .await;
    r.always("/hang", Step::Hang);
    let start = Instant::now();
    for i in 0..50 {
        t.publish(&app, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    let got = r.wait_for("/healthy", 50, Duration::from_secs(9)).await;
    let took = got[49].at - start;
    assert!(
        took < Duration::from_secs(3),
        "all 50 healthy deliveries took {took:?}, the hanging endpoint's timeout is 10 s"
    );
    // The hanging endpoint holds only its own ten slots.
    assert_eq!(r.max_in_flight("/hang"), 10);
    t.stop().await;
}

#[tokio::test]
async fn no_transaction_is_held_across_an_http_call() {
    // SQLite has a single writer: if an attempt kept a write transaction open while its request
    // hangs, the publishes below would wait for it.
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/hang"), "timeoutSeconds": 30}))
        .await;
    r.always("/hang", Step::Hang);
    let first = t
        .publish(&app, json!({"eventType": "a", "payload": {}}))
        .await;
    r.wait_for("/hang", 1, Duration::from_secs(5)).await;
    t.wait_status(&first, &ep, DeliveryStatus::Sending, Duration::from_secs(5))
        .await;
    let start = Instant::now();
    for _ in 0..20 {
        t.publish(&app, json!({"eventType": "a", "payload": {}}))
            .await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "writes went on while a request hung"
    );
    t.stop().await;
}
