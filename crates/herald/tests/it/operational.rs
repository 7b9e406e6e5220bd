//! Operational webhooks: the operator's endpoints, and the signed events they receive.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::TestApp;
use crate::receiver::{Received, Receiver, Step};

const OPS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OPS: &str = "/api/v1/operational-webhook/endpoint";

/// Standard Webhooks verification, written out independently of Herald's signer.
fn verified(secret: &str, request: &Received) -> Value {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let id = request.header("webhook-id").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let header = request.header("webhook-signature").unwrap();
    assert!(
        header.split(' ').any(|s| s == expected),
        "operational event not signed with the operational endpoint's secret"
    );
    serde_json::from_slice(&request.body).unwrap()
}

/// Waits until the operational receiver got an event of `event_type` matching `pick`.
async fn event(r: &Receiver, path: &str, event_type: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = r
            .received(path)
            .iter()
            .map(|req| verified(OPS_SECRET, req))
            .find(|e| e["type"] == event_type && pick(&e["data"]));
        if let Some(found) = found {
            return found;
        }
        let seen: Vec<Value> = r
            .received(path)
            .iter()
            .map(|req| serde_json::from_slice::<Value>(&req.body).unwrap()["type"].clone())
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "no {event_type} event arrived; got {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn types(r: &Receiver, path: &str) -> Vec<String> {
    r.received(path)
        .iter()
        .map(|req| {
            serde_json::from_slice::<Value>(&req.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn operational_events_arrive_signed_for_410_exhaustion_and_recovery() {
    let r = Receiver::start().await;
    r.always("/gone", Step::Status(410));
    r.always("/down", Step::Status(500));
    r.script("/flaky", vec![Step::Status(503)]);
    let t = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::from_millis(200), Duration::from_millis(200)];
    })
    .await;
    let (status, ops) = t
        .post(OPS, json!({"url": r.url("/ops"), "secret": OPS_SECRET}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ops}");
    let app = t
        .post("/api/v1/app", json!({"name": "Acme", "uid": "acme"}))
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/gone"), "eventTypes": ["a"], "uid": "gone-ep"}),
        )
        .await;
    let down = t
        .create_endpoint(&app, json!({"url": r.url("/down"), "eventTypes": ["b"]}))
        .await;
    let flaky = t
        .create_endpoint(&app, json!({"url": r.url("/flaky"), "eventTypes": ["c"]}))
        .await;

    let created = event(&r, "/ops", "endpoint.created", |d| {
        d["endpointId"] == gone.as_str()
    })
    .await;
    assert_eq!(
        created["data"],
        json!({"appId": app, "appUid": "acme", "endpointId": gone, "endpointUid": "gone-ep"})
    );

    // 410 Gone disables the endpoint: `endpoint.disabled`, automatic.
    t.publish(&app, json!({"eventType": "a", "payload": {}}))
        .await;
    let disabled = event(&r, "/ops", "endpoint.disabled", |d| {
        d["endpointId"] == gone.as_str()
    })
    .await;
    assert_eq!(disabled["data"]["trigger"], "automatic");
    assert_eq!(disabled["data"]["appId"], app.as_str());
    assert_eq!(disabled["data"]["endpointUid"], "gone-ep");
    assert!(disabled["data"]["failSince"].is_string());

    // Failing, then out of retries: `message.attempt.failing` once, then `exhausted`.
    let msg = t
        .publish(
            &app,
            json!({"eventType": "b", "eventId": "evt-1", "payload": {}}),
        )
        .await;
    let failing = event(&r, "/ops", "message.attempt.failing", |d| {
        d["endpointId"] == down.as_str()
    })
    .await;
    assert_eq!(failing["data"]["msgId"], msg.as_str());
    let exhausted = event(&r, "/ops", "message.attempt.exhausted", |d| {
        d["msgId"] == msg.as_str()
    })
    .await;
    assert_eq!(exhausted["data"]["appUid"], "acme");
    assert_eq!(exhausted["data"]["msgEventId"], "evt-1");
    assert_eq!(exhausted["data"]["endpointId"], down.as_str());
    assert_eq!(exhausted["data"]["lastAttempt"]["responseStatusCode"], 500);
    assert!(
        exhausted["data"]["lastAttempt"]["id"]
            .as_str()
            .unwrap()
            .starts_with("atmpt_")
    );
    assert_eq!(t.attempts(&msg).await.len(), 3);
    let failing_events = || {
        r.received("/ops")
            .iter()
            .map(|req| verified(OPS_SECRET, req))
            .filter(|e| {
                e["type"] == "message.attempt.failing" && e["data"]["endpointId"] == down.as_str()
            })
            .count()
    };
    assert_eq!(
        failing_events(),
        1,
        "at most one `failing` per endpoint an hour"
    );

    // A failure then a success: `failing`, then `recovered`.
    let flaky_msg = t
        .publish(&app, json!({"eventType": "c", "payload": {}}))
        .await;
    event(&r, "/ops", "message.attempt.failing", |d| {
        d["endpointId"] == flaky.as_str()
    })
    .await;
    let recovered = event(&r, "/ops", "message.attempt.recovered", |d| {
        d["endpointId"] == flaky.as_str()
    })
    .await;
    assert_eq!(recovered["data"]["msgId"], flaky_msg.as_str());
    assert_eq!(recovered["data"]["lastAttempt"]["responseStatusCode"], 200);

    // Updating, disabling by hand and deleting an endpoint are reported too.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{down}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    event(&r, "/ops", "endpoint.updated", |d| {
        d["endpointId"] == down.as_str()
    })
    .await;
    let manual = event(&r, "/ops", "endpoint.disabled", |d| {
        d["endpointId"] == down.as_str()
    })
    .await;
    assert_eq!(manual["data"]["trigger"], "manual");
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/endpoint/{flaky}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    event(&r, "/ops", "endpoint.deleted", |d| {
        d["endpointId"] == flaky.as_str()
    })
    .await;

    // Every event is an ordinary delivery of the operational endpoint: it has attempts.
    let ops_id = ops["id"].as_str().unwrap();
    let first = r.received("/ops")[0]
        .header("webhook-id")
        .unwrap()
        .to_owned();
    let msg_id = herald_core::id::MessageId::parse(&first).unwrap();
    let deliveries = t.store.deliveries_for_message(&msg_id).await.unwrap();
    assert_eq!(deliveries[0].endpoint_id.as_str(), ops_id);
    t.stop().await;
}

#[tokio::test]
async fn operational_endpoints_are_admin_only_and_hidden_from_applications() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let (status, ep) = t
        .post(
            OPS,
            json!({"url": r.url("/ops"), "uid": "pager", "eventTypes": ["endpoint.disabled"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap();
    assert!(ep["eventTypes"] == json!(["endpoint.disabled"]));

    let (status, list) = t.get(OPS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (status, got) = t.get(&format!("{OPS}/pager")).await;
    assert_eq!((status, got["id"].as_str()), (StatusCode::OK, Some(id)));
    let (status, patched) = t
        .call(
            Method::PATCH,
            &format!("{OPS}/{id}"),
            Some(json!({"description": "on-call"})),
        )
        .await;
    assert_eq!(
        (status, patched["description"].clone()),
        (StatusCode::OK, json!("on-call"))
    );
    let (status, replaced) = t
        .call(
            Method::PUT,
            &format!("{OPS}/{id}"),
            Some(json!({"url": r.url("/ops2")})),
        )
        .await;
    assert_eq!(
        (status, replaced["url"].clone()),
        (StatusCode::OK, json!(r.url("/ops2")))
    );
    let (status, secret) = t.get(&format!("{OPS}/{id}/secret")).await;
    assert_eq!(status, StatusCode::OK);
    let old = secret["key"].as_str().unwrap().to_owned();
    assert!(old.starts_with("whsec_"));
    let (status, rotated) = t
        .post(&format!("{OPS}/{id}/secret/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["key"].as_str().unwrap(), old);
    let (status, body) = t.post(OPS, json!({"url": "not a url"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The reserved application is invisible to the application API.
    let reserved = herald_core::model::OPERATIONAL_APP_ID;
    let (status, _) = t.get(&format!("/api/v1/app/{reserved}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.get(&format!("/api/v1/app/{reserved}/endpoint")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{reserved}/msg"),
            json!({"eventType": "endpoint.created", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, apps) = t.get("/api/v1/app").await;
    assert!(
        apps["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != reserved)
    );
    let (status, _) = t
        .post("/api/v1/api-key", json!({"role": "app", "appId": reserved}))
        .await;
    assert_ne!(status, StatusCode::CREATED);

    // Application tokens cannot reach operational endpoints; read-only admins can read.
    let app = t.create_app("Acme").await;
    let app_token = t.api_key(json!({"role": "app", "appId": app})).await;
    let (status, _) = t.call_as(&app_token, Method::GET, OPS, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .call_as(
            &app_token,
            Method::POST,
            OPS,
            Some(json!({"url": r.url("/x")})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reader = t.api_key(json!({"role": "read-only"})).await;
    let (status, _) = t.call_as(&reader, Method::GET, OPS, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call_as(&reader, Method::GET, &format!("{OPS}/{id}/secret"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .call_as(&reader, Method::DELETE, &format!("{OPS}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = t.call(Method::DELETE, &format!("{OPS}/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.get(&format!("{OPS}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn operational_endpoint_failures_report_nothing_about_themselves() {
    let r = Receiver::start().await;
    r.always("/ops-broken", Step::Status(410));
    r.always("/ops-down", Step::Status(500));
    let t = TestApp::spawn_with(|c| {
        c.delivery.retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    for (path, secret) in [
        ("/ops", Some(OPS_SECRET)),
        ("/ops-broken", None),
        ("/ops-down", None),
    ] {
        let mut body = json!({"url": r.url(path)});
        if let Some(secret) = secret {
            body["secret"] = json!(secret);
        }
        let (status, _) = t.post(OPS, body).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, list) = t.get(OPS).await;
    let broken = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == r.url("/ops-broken"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": r.url("/hook")}))
        .await;
    event(&r, "/ops", "endpoint.created", |_| true).await;
    // The broken operational endpoint got the event too, answered 410 and is now disabled; the
    // failing one exhausted its retry.
    r.wait_for("/ops-down", 2, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, ep) = t.get(&format!("{OPS}/{broken}")).await;
        if ep["disabled"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not disabled: {ep}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a wrongly published event time to arrive, then check none did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(types(&r, "/ops"), vec!["endpoint.created"]);
    t.stop().await;
}

/// An operational endpoint's custom headers (`…/operational-webhook/endpoint/{id}/headers`) go
/// out with every operational event; limited tokens cannot set them.
#[tokio::test]
async fn operational_endpoint_headers_are_sent_with_each_event() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let (status, ep) = t
        .post(
            OPS,
            json!({"url": r.url("/ops"), "secret": OPS_SECRET, "eventTypes": ["endpoint.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap();
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("{OPS}/{id}/headers"),
            Some(json!({"headers": {"X-Pager": "team-ops"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, headers) = t.get(&format!("{OPS}/{id}/headers")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["headers"], json!({"X-Pager": "team-ops"}));

    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": r.url("/hook")}))
        .await;
    event(&r, "/ops", "endpoint.created", |_| true).await;
    let sent = r.received("/ops");
    assert_eq!(sent[0].header("x-pager"), Some("team-ops"));

    let key = t.api_key(json!({"role": "app", "appId": app})).await;
    let (status, _) = t
        .call_as(
            &key,
            Method::PUT,
            &format!("{OPS}/{id}/headers"),
            Some(json!({"headers": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    t.stop().await;
}

/// An event is committed with the change it reports. The process dies (crash point, as
/// SIGKILL would) after the change committed and before its event became a message, then
/// after the message and before the outbox row was deleted; each time the next start delivers
/// the event, exactly once.
#[tokio::test]
async fn an_event_survives_a_crash_between_the_change_and_its_publish() {
    use crate::child::{ChildServer, free_port};
    for point in ["operational-relay", "operational-relayed"] {
        let r = Receiver::start().await;
        r.always("/ops", Step::Status(200));
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server = ChildServer::start(dir.path(), port, &[("HERALD_CRASH_AT", point)]).await;
        server
            .post(OPS, json!({"url": r.url("/ops"), "secret": OPS_SECRET}))
            .await;
        let app = server.post("/api/v1/app", json!({"name": "Crash"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The relay aborts the process once the endpoint (and its event) committed, maybe
        // before the answer went out.
        let _ = server
            .client
            .post(server.url(&format!("/api/v1/app/{app}/endpoint")))
            .bearer_auth(crate::child::TOKEN)
            .json(&json!({"url": r.url("/app"), "uid": "the-endpoint"}))
            .send()
            .await;
        let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
            .await
            .expect("the crash point was not reached")
            .unwrap();
        assert!(!status.success(), "{point}: {status}");
        if point == "operational-relay" {
            assert!(types(&r, "/ops").is_empty(), "{:?}", types(&r, "/ops"));
        }

        let server = ChildServer::start(dir.path(), port, &[]).await;
        let created = event(&r, "/ops", "endpoint.created", |d| {
            d["endpointUid"] == "the-endpoint"
        })
        .await;
        assert_eq!(created["data"]["appId"], app.as_str(), "{point}");
        // Once: a second pass would have had time to deliver it again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(types(&r, "/ops"), ["endpoint.created"], "{point}");
        server.terminate().await;
    }
}
