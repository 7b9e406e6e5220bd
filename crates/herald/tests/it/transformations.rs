//! Transformations (issue 25): an endpoint's JavaScript `handler(webhook)`, saved with checks,
//! simulated, and run by the worker in the sandbox for every delivery: rewriting the payload
//! (signed over the new bytes), the method, the URL (still under the network policy) and the
//! headers, or canceling; stopped at its time and memory limits without holding up the rest.

use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::verify;
use crate::helpers::{TestApp, error_locs};
use crate::receiver::{Receiver, Step};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn set(t: &TestApp, app: &str, ep: &str, body: Value) -> (StatusCode, Value) {
    t.call(
        Method::PATCH,
        &format!("/api/v1/app/{app}/endpoint/{ep}/transformation"),
        Some(body),
    )
    .await
}

async fn endpoint_with(t: &TestApp, app: &str, mut body: Value, code: &str) -> String {
    body["secret"] = json!(SECRET);
    let ep = t.create_endpoint(app, body).await;
    let (status, out) = set(t, app, &ep, json!({"code": code, "enabled": true})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{out}");
    ep
}

/// The first attempt of `msg` to `endpoint`, once recorded (at most 10 s).
async fn first_attempt(t: &TestApp, msg: &str, endpoint: &str) -> herald_store::Attempt {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = t
            .attempts(msg)
            .await
            .into_iter()
            .find(|a| a.endpoint_id.as_str() == endpoint);
        if let Some(attempt) = found {
            return attempt;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Slack-style rewrite with a variable, `PUT` and an added header: the receiver gets the new
/// body, signed over exactly those bytes, and the attempt records what was sent.
#[tokio::test]
async fn a_transformation_rewrites_the_payload_and_the_signature_covers_it() {
    let r = Receiver::start().await;
    r.always("/slack?channel=ops", Step::Status(200));
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let code = r#"function handler(webhook) {
        webhook.payload = { text: "New user: " + webhook.payload.name + " (" + webhook.eventType + ")",
                            token: webhook.variables.slackToken };
        webhook.url = webhook.url + "?channel=ops";
        webhook.method = "PUT";
        webhook.headers["X-Slack-Team"] = "T123";
        return webhook;
    }"#;
    let ep = endpoint_with(&t, &app, json!({"url": r.url("/slack")}), code).await;
    let (status, out) = set(
        &t,
        &app,
        &ep,
        json!({"variables": {"slackToken": "xoxb-1"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{out}");
    let msg = t
        .publish(
            &app,
            json!({"eventType": "user.created", "payload": {"name": "Ada"}}),
        )
        .await;
    let got = r
        .wait_for("/slack?channel=ops", 1, Duration::from_secs(10))
        .await;
    let req = &got[0];
    assert_eq!(req.method, "PUT");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({"text": "New user: Ada (user.created)", "token": "xoxb-1"})
    );
    assert_eq!(req.header("x-slack-team"), Some("T123"));
    assert_eq!(req.header("webhook-id"), Some(msg.as_str()));
    assert!(verify(
        SECRET,
        req.header("webhook-id").unwrap(),
        req.header("webhook-timestamp").unwrap(),
        &req.body,
        req.header("webhook-signature").unwrap()
    ));
    t.wait_status(&msg, &ep, DeliveryStatus::Success, Duration::from_secs(5))
        .await;
    let attempts = t.attempts(&msg).await;
    assert_eq!(attempts[0].url, r.url("/slack?channel=ops"));
    assert_eq!(
        attempts[0].request_body.as_deref().map(str::as_bytes),
        Some(req.body.as_slice())
    );
    // Headers a transformation adds may carry its variables: recorded hidden.
    let recorded = attempts[0].request_headers.as_deref().unwrap();
    assert!(recorded.contains("x-slack-team"), "{recorded}");
    assert!(!recorded.contains("T123"), "{recorded}");
    t.stop().await;
}

/// A URL the network policy refuses stays refused when a transformation chooses it: nothing
/// connects there, and the failed attempt says why.
#[tokio::test]
async fn a_transformation_cannot_send_to_a_refused_address() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = endpoint_with(
        &t,
        &app,
        json!({"url": r.url("/hook")}),
        "function handler(w) { w.url = 'http://169.254.169.254/latest/meta-data'; return w; }",
    )
    .await;
    let msg = t
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let attempt = first_attempt(&t, &msg, &ep).await;
    assert!(!attempt.success);
    assert_eq!(attempt.url, "http://169.254.169.254/latest/meta-data");
    let error = attempt.error.as_deref().unwrap_or_default();
    assert!(error.contains("refused by the network policy"), "{error}");
    assert_eq!(r.total(), 0);
    let delivery = t.deliveries(&msg).await;
    assert_eq!(delivery[0].endpoint_id.as_str(), ep);
    assert_eq!(
        delivery[0].status,
        DeliveryStatus::Pending,
        "retried on the schedule"
    );
    t.stop().await;
}

/// A handler that loops forever, and one that allocates without bound, are stopped at their
/// limits; their attempts fail with the reason; another endpoint's deliveries go on meanwhile.
#[tokio::test]
async fn runaway_handlers_are_stopped_and_others_keep_delivering() {
    let r = Receiver::start().await;
    r.always("/healthy", Step::Status(200));
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let looping = endpoint_with(
        &t,
        &app,
        json!({"url": r.url("/loop"), "filterTypes": ["loop"]}),
        "function handler(w) { for (;;) {} }",
    )
    .await;
    let hungry = endpoint_with(
        &t,
        &app,
        json!({"url": r.url("/hungry"), "filterTypes": ["loop"]}),
        "function handler(w) { const a = []; for (;;) { a.push('x'.repeat(65536) + a.length); } }",
    )
    .await;
    let healthy = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/healthy"), "filterTypes": ["ok"]}),
        )
        .await;
    // Many runaway attempts at once, and healthy messages published after them.
    for _ in 0..10 {
        t.publish(&app, json!({"eventType": "loop", "payload": {}}))
            .await;
    }
    let hungry_msg = t
        .publish(&app, json!({"eventType": "loop", "payload": {}}))
        .await;
    let mut healthy_msgs = Vec::new();
    for i in 0..20 {
        healthy_msgs.push(
            t.publish(&app, json!({"eventType": "ok", "payload": {"i": i}}))
                .await,
        );
    }
    r.wait_for("/healthy", 20, Duration::from_secs(10)).await;
    for msg in &healthy_msgs {
        t.wait_status(
            msg,
            &healthy,
            DeliveryStatus::Success,
            Duration::from_secs(5),
        )
        .await;
    }
    let reason_of = |endpoint: String| {
        let msg = hungry_msg.clone();
        let t = &t;
        async move {
            let attempt = first_attempt(t, &msg, &endpoint).await;
            assert!(!attempt.success);
            attempt.error.unwrap_or_default()
        }
    };
    let looped = reason_of(looping.clone()).await;
    assert!(
        looped.contains("ran longer than its limit of 50 ms"),
        "{looped}"
    );
    let hungry_reason = reason_of(hungry.clone()).await;
    assert!(
        hungry_reason.contains("bytes of memory") || hungry_reason.contains("ran longer"),
        "{hungry_reason}"
    );
    assert_eq!(r.received("/loop").len(), 0);
    assert_eq!(r.received("/hungry").len(), 0);
    t.stop().await;
}

/// `cancel = true` skips the delivery: nothing is sent, the delivery is Canceled, and the
/// attempt says so; other messages to the same endpoint are delivered.
#[tokio::test]
async fn a_transformation_may_cancel_a_delivery() {
    let r = Receiver::start().await;
    r.always("/hook", Step::Status(200));
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = endpoint_with(
        &t,
        &app,
        json!({"url": r.url("/hook")}),
        "function handler(w) { if (w.payload.internal) { w.cancel = true; } return w; }",
    )
    .await;
    let skipped = t
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {"internal": true}}),
        )
        .await;
    let sent = t
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {"internal": false}}),
        )
        .await;
    t.wait_status(
        &skipped,
        &ep,
        DeliveryStatus::Canceled,
        Duration::from_secs(10),
    )
    .await;
    t.wait_status(&sent, &ep, DeliveryStatus::Success, Duration::from_secs(10))
        .await;
    let got = r.received("/hook");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), Some(sent.as_str()));
    let attempts = t.attempts(&skipped).await;
    assert_eq!(attempts.len(), 1);
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("canceled by the endpoint's transformation"))
    );
    t.stop().await;
}

/// Saving checks the code: a syntax error is a 422 with its line and column; code without a
/// `handler`, top-level code that loops, `enabled` without code and bad variables are 422s;
/// GET shows what was saved, with the variables to full-access tokens only.
#[tokio::test]
async fn saving_checks_the_code_and_get_shows_it() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": "https://example.com/hook"}))
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/transformation");

    let (status, out) = t.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        out,
        json!({"code": null, "enabled": false, "variables": {}, "updatedAt": null})
    );

    let (status, out) = set(
        &t,
        &app,
        &ep,
        json!({"code": "function handler(webhook) {\n  return webhook +;\n}"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), ["body.code"]);
    assert_eq!(out["detail"][0]["ctx"]["line"], 2, "{out}");
    assert!(out["detail"][0]["ctx"]["column"].is_u64(), "{out}");
    assert!(
        out["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("SyntaxError"),
        "{out}"
    );

    for (body, loc) in [
        (
            json!({"code": "function other(w) { return w; }"}),
            "body.code",
        ),
        (
            json!({"code": "while (true) {} function handler(w) { return w; }"}),
            "body.code",
        ),
        (json!({"enabled": true}), "body.enabled"),
        (
            json!({"variables": {"bad name": "x"}}),
            "body.variables.bad name",
        ),
        (json!({"variables": {"token": 3}}), "body.variables.token"),
        (json!({"codes": "x"}), "body.codes"),
    ] {
        let (status, out) = set(&t, &app, &ep, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {out}");
        assert_eq!(error_locs(&out), [loc], "{body}: {out}");
    }

    let code = "const handler = (webhook) => webhook;";
    let (status, out) = set(
        &t,
        &app,
        &ep,
        json!({"code": code, "enabled": true, "variables": {"token": "s3cret"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{out}");
    let (_, out) = t.get(&path).await;
    assert_eq!(out["code"], code);
    assert_eq!(out["enabled"], true);
    assert_eq!(out["variables"], json!({"token": "s3cret"}));
    assert!(out["updatedAt"].is_string());
    let reader = t.api_key(json!({"role": "read-only"})).await;
    let (status, masked) = t.call_as(&reader, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{masked}");
    assert_eq!(masked["variables"], json!({"token": "****"}));
    // The variables are sealed at rest.
    let stored = t
        .store
        .get_transformation(&herald_core::id::EndpointId::parse(&ep).unwrap())
        .await
        .unwrap();
    let sealed = stored.variables.unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("s3cret"));

    // Removing the code turns it off.
    let (status, _) = set(&t, &app, &ep, json!({"code": null})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, out) = t.get(&path).await;
    assert_eq!(out["code"], Value::Null);
    assert_eq!(out["enabled"], false);
    assert_eq!(out["variables"], json!({"token": "s3cret"}));
    t.stop().await;
}

/// `simulate` answers with what would be sent (method, URL, encoded body, headers), sends
/// nothing, and reports what a delivery would refuse.
#[tokio::test]
async fn simulate_shows_what_would_be_sent() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/hook"), "envelope": "typed", "encoding": "form"}),
        )
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/transformation/simulate");
    let code = "function handler(w) { w.payload = {kind: w.payload.type, id: w.payload.payload.id}; w.headers['X-A'] = '1'; return w; }";
    let (status, out) = t
        .post(
            &path,
            json!({"code": code, "eventType": "user.created", "payload": {"id": 7}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out,
        json!({
            "method": "POST",
            "url": r.url("/hook"),
            "payload": "kind=user.created&id=7",
            "contentType": "application/x-www-form-urlencoded",
            "headers": {"X-A": "1"},
            "cancel": false,
        })
    );
    for (code, needle) in [
        (
            "function handler(w) { w.url = 'http://10.0.0.1/'; return w; }",
            "network policy",
        ),
        (
            "function handler(w) { w.headers['webhook-signature'] = 'x'; return w; }",
            "set by Herald",
        ),
        ("function handler(w) {\n  null.x;\n}", "TypeError"),
        ("function handler(w) { for (;;) {} }", "limit of 50 ms"),
    ] {
        let (status, out) = t
            .post(
                &path,
                json!({"code": code, "eventType": "a.b", "payload": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {out}");
        let msg = out["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.contains(needle), "{code}: {msg}");
    }
    // A handler never sees channels: sending them is a 422 naming the field, not ignored.
    let (status, out) = t
        .post(
            &path,
            json!({"code": code, "eventType": "a.b", "payload": {}, "channels": ["x"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), ["body.channels"]);
    assert_eq!(r.total(), 0);
    t.stop().await;
}

/// The portal edits and simulates a transformation with the API's checks: a syntax error
/// shows its line, valid code is saved and enabled, a simulation shows the body.
#[tokio::test]
async fn the_portal_edits_and_simulates_a_transformation() {
    use crate::portal::{portal_session, portal_token};
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": "https://example.com/hook"}))
        .await;
    let token = portal_token(&t, &app).await;
    let mut b = portal_session(&t, &token).await;
    let page = format!("/portal/app/{app}/endpoint/{ep}/transformation");
    let detail = b.get(&format!("/portal/app/{app}/endpoint/{ep}")).await;
    assert!(detail.body.contains("/transformation"), "{}", detail.body);
    let csrf = b.csrf(&page).await;

    let refused = b
        .post(
            &page,
            &[
                ("_csrf", &csrf),
                ("code", "function handler(w) {\n  return w +;\n}"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(refused.body.contains("SyntaxError"), "{}", refused.body);
    assert!(refused.body.contains("line 2"), "{}", refused.body);

    let code = "function handler(w) { w.payload = {hello: w.payload.name}; return w; }";
    let saved = b
        .post(
            &page,
            &[
                ("_csrf", &csrf),
                ("code", code),
                ("enabled", "on"),
                ("variables", "token=abc"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, out) = t
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}/transformation"))
        .await;
    assert_eq!(out["code"], code);
    assert_eq!(out["enabled"], true);
    assert_eq!(out["variables"], json!({"token": "abc"}));

    let simulated = b
        .post(
            &format!("{page}/simulate"),
            &[
                ("_csrf", &csrf),
                ("code", code),
                ("eventType", "user.created"),
                ("payload", r#"{"name": "Ada"}"#),
            ],
        )
        .await;
    assert_eq!(simulated.status, StatusCode::OK, "{}", simulated.body);
    assert!(
        simulated
            .body
            .contains("{&quot;hello&quot;:&quot;Ada&quot;}"),
        "{}",
        simulated.body
    );
    t.stop().await;
}
