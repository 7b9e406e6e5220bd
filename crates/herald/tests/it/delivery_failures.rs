//! How every kind of failure is recorded, endpoint disabling, resend and recover, and the
//! network policy.

use std::time::Duration;

use herald_core::model::{DeliveryStatus, Trigger};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sends one message to a fresh endpoint at `url` with no retries and returns its only attempt.
async fn one_attempt(
    t: &TestApp,
    app: &str,
    url: &str,
    extra: serde_json::Value,
) -> herald_store::Attempt {
    let event = format!("e{}", herald_core::token::random_base62(6));
    let mut body = json!({"url": url, "eventTypes": [event], "retrySchedule": []});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let ep = t.create_endpoint(app, body).await;
    let msg = t
        .publish(app, json!({"eventType": event, "payload": {"k": "v"}}))
        .await;
    let d = t
        .wait_status(&msg, &ep, DeliveryStatus::Fail, Duration::from_secs(10))
        .await;
    assert_eq!(d.attempts, 1);
    let attempts = t.attempts(&msg).await;
    assert_eq!(attempts.len(), 1);
    attempts.into_iter().next().unwrap()
}

#[tokio::test]
async fn every_kind_of_failure_fails_the_attempt_and_is_recorded() {
    let r = Receiver::start().await;
    let t = TestApp::spawn_with(|c| c.delivery.shutdown_grace = ms(200)).await;
    let app = t.create_app("Acme").await;

    for status in [301, 302, 400, 404, 500] {
        r.always(
            &format!("/s{status}"),
            Step::Respond(
                status,
                vec![("location", r.url("/target"))],
                format!("status {status}"),
            ),
        );
        let a = one_attempt(&t, &app, &r.url(&format!("/s{status}")), json!({})).await;
        assert_eq!(a.status_code, status);
        assert_eq!(
            a.response.as_deref(),
            Some(format!("status {status}").as_str())
        );
        assert!(!a.success);
    }
    // Redirects are never followed.
    assert!(r.received("/target").is_empty());

    // Timeout (the endpoint's timeoutSeconds covers the whole exchange).
    r.always("/hang", Step::Hang);
    let a = one_attempt(&t, &app, &r.url("/hang"), json!({"timeoutSeconds": 1})).await;
    assert_eq!(a.status_code, 0);
    assert!(a.error.as_deref().unwrap().contains("timed out"), "{a:?}");
    assert!((900..3000).contains(&a.duration_ms), "{}", a.duration_ms);

    // Connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = one_attempt(&t, &app, &format!("http://{closed}/x"), json!({})).await;
    assert_eq!(a.status_code, 0);
    assert!(a.error.as_deref().unwrap().contains("connection"), "{a:?}");

    // Reset in the middle of the body.
    r.always("/reset", Step::ResetMidBody);
    let a = one_attempt(&t, &app, &r.url("/reset"), json!({})).await;
    assert!(a.error.is_some(), "{a:?}");

    // TLS to a plain-HTTP server: the TLS error is recorded.
    let a = one_attempt(
        &t,
        &app,
        &format!("https://{}/tls", r.addr),
        json!({"timeoutSeconds": 5}),
    )
    .await;
    assert_eq!(a.status_code, 0);
    let error = a.error.unwrap();
    assert!(!error.contains("timed out"), "{error}");
    eprintln!("TLS failure recorded as: {error}");
    t.stop().await;
}

#[tokio::test]
async fn huge_responses_are_cut_at_20000_bytes() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    r.always("/huge", Step::HugeBody);
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/huge")}))
        .await;
    let msg = t
        .publish(&app, json!({"eventType": "a", "payload": {}}))
        .await;
    t.wait_status(&msg, &ep, DeliveryStatus::Success, Duration::from_secs(10))
        .await;
    let a = &t.attempts(&msg).await[0];
    assert_eq!(a.status_code, 200);
    assert_eq!(a.response.as_ref().unwrap().len(), 20_000);
    t.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_recover_brings_messages_back() {
    let r = Receiver::start().await;
    let t =
        TestApp::spawn_with(|c| c.delivery.retry_schedule = vec![Duration::from_secs(30)]).await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/gone")}))
        .await;
    // A first message fails and waits for its retry; then the receiver says 410 Gone.
    r.script("/gone", vec![Step::Status(500), Step::Status(410)]);
    let waiting = t
        .publish(&app, json!({"eventType": "a", "payload": {"n": 1}}))
        .await;
    t.wait_status(
        &waiting,
        &ep,
        DeliveryStatus::Pending,
        Duration::from_secs(5),
    )
    .await;
    r.wait_for("/gone", 1, Duration::from_secs(5)).await;
    let gone = t
        .publish(&app, json!({"eventType": "a", "payload": {"n": 2}}))
        .await;
    t.wait_status(&gone, &ep, DeliveryStatus::Fail, Duration::from_secs(5))
        .await;
    let (_, endpoint) = t.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    assert_eq!(endpoint["disabled"], true, "410 disables at once");
    // Its pending retry is canceled, and new messages get no task.
    t.wait_status(
        &waiting,
        &ep,
        DeliveryStatus::Canceled,
        Duration::from_secs(5),
    )
    .await;
    let skipped = t
        .publish(&app, json!({"eventType": "a", "payload": {"n": 3}}))
        .await;
    assert!(t.deliveries(&skipped).await.is_empty());
    // Resending to a disabled endpoint is refused.
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{gone}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Enabling it again does not deliver what was skipped or failed ...
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(ms(500)).await;
    assert_eq!(r.received("/gone").len(), 2);
    // ... recover does, for the failed messages of the window.
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/recover"),
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["task"], "endpoint.recover");
    assert_eq!(out["status"], "running");
    t.wait_status(
        &waiting,
        &ep,
        DeliveryStatus::Success,
        Duration::from_secs(5),
    )
    .await;
    t.wait_status(&gone, &ep, DeliveryStatus::Success, Duration::from_secs(5))
        .await;
    assert!(
        t.deliveries(&skipped).await.is_empty(),
        "recover re-sends failures, not skipped messages"
    );

    // Resend makes a manual attempt, also to an endpoint that never had the message.
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{skipped}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(out, json!({}));
    t.wait_status(
        &skipped,
        &ep,
        DeliveryStatus::Success,
        Duration::from_secs(5),
    )
    .await;
    let attempts = t.attempts(&skipped).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].trigger, Trigger::Manual);
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{skipped}/endpoint/ep_nope/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn endpoints_failing_for_the_configured_period_are_disabled() {
    let r = Receiver::start().await;
    let t = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![ms(300); 20];
        c.delivery.disable_after = Duration::from_secs(1);
    })
    .await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/down")}))
        .await;
    r.always("/down", Step::Status(500));
    let msg = t
        .publish(&app, json!({"eventType": "a", "payload": {}}))
        .await;
    // Disabling cancels the retries it still had.
    t.wait_status(&msg, &ep, DeliveryStatus::Canceled, Duration::from_secs(10))
        .await;
    let (_, endpoint) = t.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    assert_eq!(endpoint["disabled"], true);
    // Svix's lists read a canceled delivery as a success unless asked to expand statuses;
    // the statistics count it as canceled.
    let sent = format!("/api/v1/app/{app}/endpoint/{ep}/msg");
    assert_eq!(t.get(&sent).await.1["data"][0]["status"], 0);
    let (_, expanded) = t.get(&format!("{sent}?expanded_statuses=true")).await;
    assert_eq!(expanded["data"][0]["status"], 4);
    assert_eq!(expanded["data"][0]["statusText"], "canceled");
    let (_, only) = t
        .get(&format!("{sent}?status=4&expanded_statuses=true"))
        .await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    let (_, stats) = t
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}/stats"))
        .await;
    assert_eq!(
        (stats["canceled"].as_u64(), stats["fail"].as_u64()),
        (Some(1), Some(0))
    );
    let (status, none) = t
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep}?status=4"))
        .await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert!(
        none["data"].as_array().unwrap().is_empty(),
        "no attempt is canceled"
    );
    let attempts = r.received("/down").len();
    assert!(
        (3..=8).contains(&attempts),
        "disabled after about a second of failures ({attempts} attempts)"
    );
    t.stop().await;
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed() {
    let r = Receiver::start().await;
    let t = TestApp::spawn_with(|c| c.allow_networks.clear()).await;
    let app = t.create_app("Acme").await;
    // A literal address the policy refuses is refused when the endpoint is saved; a hostname
    // cannot be judged then (it may resolve elsewhere later) and is refused at delivery.
    for url in [
        r.url("/secret"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::ffff:10.0.0.1]/".to_owned(),
        "http://2130706433/".to_owned(),
        "http://0x7f.1/".to_owned(),
    ] {
        let (status, body) = t
            .post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert!(body.to_string().contains("--allow-network"), "{body}");
    }
    for url in [format!("http://localhost:{}/secret", r.addr.port())] {
        let a = one_attempt(&t, &app, &url, json!({})).await;
        assert_eq!(a.status_code, 0);
        let error = a.error.unwrap();
        assert!(error.contains("refused by the network policy"), "{error}");
        assert!(error.contains("--allow-network"), "{error}");
    }
    assert!(
        r.received("/secret").is_empty(),
        "nothing reached the receiver"
    );
    t.stop().await;
}

#[tokio::test]
async fn require_https_refuses_plain_http_endpoints() {
    let t = TestApp::spawn_with(|c| c.delivery.require_https = true).await;
    let app = t.create_app("Acme").await;
    let base = format!("/api/v1/app/{app}/endpoint");
    let (status, body) = t
        .post(&base, json!({"url": "http://example.com/hook"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("--require-https"), "{body}");
    let (status, body) = t
        .post(&base, json!({"url": "https://example.com/hook"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    t.stop().await;
}

#[tokio::test]
async fn extension_fields_are_validated_and_returned() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let base = format!("/api/v1/app/{app}/endpoint");
    let (status, ep) = t
        .post(&base, json!({"url": "https://e.com", "retrySchedule": [900, 1800, 3600], "retryWindowSeconds": 259200,
                             "timeoutSeconds": 30, "maxConcurrency": 3, "ordering": "fifo"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    assert_eq!(ep["retrySchedule"], json!([900, 1800, 3600]));
    assert_eq!(ep["retryWindowSeconds"], 259200);
    assert_eq!(ep["timeoutSeconds"], 30);
    assert_eq!(ep["maxConcurrency"], 3);
    assert_eq!(ep["ordering"], "fifo");
    let id = ep["id"].as_str().unwrap();
    let (_, patched) = t
        .call(
            Method::PATCH,
            &format!("{base}/{id}"),
            Some(json!({"retrySchedule": null, "ordering": "unordered"})),
        )
        .await;
    assert!(patched.get("retrySchedule").is_none());
    assert_eq!(patched["ordering"], "unordered");
    assert_eq!(patched["timeoutSeconds"], 30);
    for (field, value) in [
        ("timeoutSeconds", json!(0)),
        ("timeoutSeconds", json!(61)),
        ("maxConcurrency", json!(0)),
        ("retryWindowSeconds", json!(0)),
        ("retrySchedule", json!([700000])),
        ("ordering", json!("random")),
    ] {
        let (status, body) = t
            .post(&base, json!({"url": "https://e.com", field: value}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}: {body}"
        );
    }
    t.stop().await;
}

/// An endpoint's own schedule is exact (Impilo's 15 minutes is 15 minutes), unless the endpoint
/// asks for a spread; `retryJitter` without a schedule of its own is refused by name.
#[tokio::test]
async fn an_endpoints_own_schedule_is_exact_unless_it_asks_for_a_spread() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Exact").await;
    r.always("/down", Step::Status(500));
    let exact = t
        .create_endpoint(&app, json!({"url": r.url("/down"), "retrySchedule": [900]}))
        .await;
    let msg = t
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    r.wait_for("/down", 1, ms(10_000)).await;
    let mut delivery = t
        .wait_status(&msg, &exact, DeliveryStatus::Pending, ms(10_000))
        .await;
    for _ in 0..200 {
        if delivery.attempts == 1 {
            break;
        }
        tokio::time::sleep(ms(20)).await;
        delivery = t
            .wait_status(&msg, &exact, DeliveryStatus::Pending, ms(10_000))
            .await;
    }
    let (Some(next), Some(last)) = (delivery.next_attempt_at, delivery.last_attempt_at) else {
        panic!("no retry scheduled: {delivery:?}");
    };
    let waited = (next - last).num_milliseconds();
    assert!(
        (899_000..=901_000).contains(&waited),
        "15 minutes exactly, not ±20 %: {waited} ms"
    );

    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/x"), "retryJitter": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/x"), "retrySchedule": [60], "retryJitter": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert_eq!(out["retryJitter"], 10);
}
