//! Impilo (seed 004) as its customers' scripts and receivers expect it: the seed's own curl
//! requests against `/api/v3/…` with `Impilo-API-Key`, its responses field by field and type
//! by type, and a webhook created there delivering exactly as Impilo's do (typed envelope with
//! an integer id, `Impilo-Webhook-Secret`, retries after 15 minutes).

use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json as read_json};
use crate::receiver::{Receiver, Step};

/// The seed's requests, sent as its curl commands send them: the key in `Impilo-API-Key`.
async fn impilo(
    t: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, t.url(path))
        .header("Impilo-API-Key", key);
    if let Some(body) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    read_json(req.send().await.unwrap()).await
}

/// The keys of an object, sorted, for comparing shapes.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn is_seconds_timestamp(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    s.len() == 20 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn the_seeds_requests_and_deliveries() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Impilo customer").await;
    let (status, _) = t
        .post("/api/v1/event-type/import", json!({"catalog": "impilo"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let key = t.api_key(json!({"role": "app", "appId": app})).await;

    // Create Webhook, exactly the seed's request; the response has the seed's fields and types.
    let (status, created) = impilo(
        &t,
        &key,
        Method::POST,
        "/api/v3/webhook",
        Some(json!({"type": "order.status", "url": r.url("/impilo")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(keys(&created), ["id", "type", "url"]);
    assert_eq!(created["type"], "order.status");
    assert_eq!(created["url"], r.url("/impilo"));
    let id = created["id"].as_i64().expect("an integer id");

    // The webhook secret: generated from `{}`, set when given.
    let (status, generated) = impilo(
        &t,
        &key,
        Method::POST,
        "/api/v3/webhook-secret",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    assert_eq!(keys(&generated), ["secret"]);
    assert!(generated["secret"].as_str().unwrap().len() >= 32);
    let (status, set) = impilo(
        &t,
        &key,
        Method::POST,
        "/api/v3/webhook-secret",
        Some(json!({"secret": "secret"})),
    )
    .await;
    assert_eq!((status, set), (StatusCode::OK, json!({"secret": "secret"})));

    // A message of that type arrives as Impilo's do: `{"id": <integer>, "type", "payload"}`,
    // the secret in `Impilo-Webhook-Secret`. The first answer fails: the retry is due in
    // exactly 15 minutes.
    r.always("/impilo", Step::Status(500));
    let (status, msg) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.status", "payload": {"id": 1234, "event": "shipped"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{msg}");
    let serial = msg["serial"].as_i64().expect("MessageOut.serial");
    let msg_id = msg["id"].as_str().unwrap().to_owned();
    let got = r.wait_for("/impilo", 1, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"id": serial, "type": "order.status", "payload": {"id": 1234, "event": "shipped"}})
    );
    assert_eq!(keys(&body), ["id", "payload", "type"]);
    assert_eq!(got[0].header("impilo-webhook-secret"), Some("secret"));
    assert_eq!(got[0].header("webhook-signature"), None);
    let (_, endpoint) = t.get(&format!("/api/v1/app/{app}/endpoint?limit=10")).await;
    let ep = endpoint["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["data"][0]["serial"], id);
    let delivery = t
        .wait_status(
            &msg_id,
            &ep,
            DeliveryStatus::Pending,
            Duration::from_secs(10),
        )
        .await;
    let last = delivery.last_attempt_at.unwrap();
    let wait = delivery.next_attempt_at.unwrap() - last;
    assert!(
        (wait - chrono::Duration::seconds(900)).num_seconds().abs() <= 1,
        "Impilo's first retry is 15 minutes after the failure, exactly: {wait}"
    );

    // A retry (here asked for at once) carries the same integer id.
    r.always("/impilo", Step::Status(200));
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{msg_id}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = r.wait_for("/impilo", 2, Duration::from_secs(10)).await;
    let again: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(again["id"], serial);
    t.wait_status(
        &msg_id,
        &ep,
        DeliveryStatus::Success,
        Duration::from_secs(10),
    )
    .await;

    // A real retry: the endpoint's own schedule (1 s) wins over the profile's, for the test.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"retrySchedule": [1]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    r.script("/impilo", vec![Step::Status(500)]);
    let (_, retried_msg) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.status", "payload": {"id": 1234}}),
        )
        .await;
    let retried_id = retried_msg["id"].as_str().unwrap().to_owned();
    t.wait_status(
        &retried_id,
        &ep,
        DeliveryStatus::Success,
        Duration::from_secs(15),
    )
    .await;

    // Webhook logs, the seed's request with its four parameters: only the retried delivery
    // has a last retry.
    let window = "startTimestamp=2022-03-10T16:15:50Z&endTimestamp=2099-03-10T16:15:50Z\
                  &startLastRetryTimestamp=2022-03-10T16:15:50Z\
                  &endLastRetryTimestamp=2099-03-10T16:15:50Z";
    let (status, logs) = impilo(
        &t,
        &key,
        Method::GET,
        &format!("/api/v3/webhook/logs?{window}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    assert_eq!(
        keys(&logs),
        ["content", "first", "last", "page", "size", "total"]
    );
    assert_eq!(
        (&logs["page"], &logs["total"], &logs["first"], &logs["last"]),
        (&json!(1), &json!(1), &json!(true), &json!(true)),
        "{logs}"
    );
    let record = &logs["content"][0];
    assert_eq!(
        keys(record),
        [
            "createTimestamp",
            "lastResponseStatus",
            "lastRetryTimestamp",
            "payload",
            "retryAttempts",
            "webhookId",
            "webhookType",
            "webhookUrl"
        ]
    );
    assert_eq!(record["webhookId"], id);
    assert_eq!(record["webhookType"], "order.status");
    assert_eq!(record["webhookUrl"], r.url("/impilo"));
    let payload: Value = serde_json::from_str(record["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, json!({"id": 1234}));
    assert_eq!(record["lastResponseStatus"], 200);
    assert_eq!(record["retryAttempts"], 1);
    assert!(is_seconds_timestamp(&record["createTimestamp"]), "{record}");
    assert!(
        is_seconds_timestamp(&record["lastRetryTimestamp"]),
        "{record}"
    );
    // Without the retry filters, every delivery; one attempted once shows no retry.
    let (_, logs) = impilo(
        &t,
        &key,
        Method::GET,
        "/api/v3/webhook/logs?size=1&page=2",
        None,
    )
    .await;
    assert_eq!(
        (&logs["total"], &logs["last"], &logs["first"]),
        (&json!(2), &json!(true), &json!(false))
    );
    assert_eq!(logs["content"][0]["retryAttempts"], 0, "{logs}");
    assert_eq!(logs["content"][0]["lastRetryTimestamp"], Value::Null);
    let (status, out) = impilo(
        &t,
        &key,
        Method::GET,
        "/api/v3/webhook/logs?webhookId=1",
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown parameters are refused: {out}"
    );

    // The rest of the webhook routes.
    let (status, list) = impilo(&t, &key, Method::GET, "/api/v3/webhook", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["content"], json!([created]));
    let path = format!("/api/v3/webhook/{id}");
    let (_, one) = impilo(&t, &key, Method::GET, &path, None).await;
    assert_eq!(one, created);
    let (status, changed) = impilo(
        &t,
        &key,
        Method::PUT,
        &path,
        Some(json!({"type": "patient.created", "url": r.url("/patients")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed,
        json!({"type": "patient.created", "url": r.url("/patients"), "id": id})
    );
    let (status, out) = impilo(
        &t,
        &key,
        Method::POST,
        "/api/v3/webhook",
        Some(json!({"type": "no.such.type", "url": r.url("/x")})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let (status, _) = impilo(&t, &key, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = impilo(&t, &key, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_impilo_api_takes_only_a_key_of_one_application() {
    let t = TestApp::spawn().await;
    let app = t.create_app("A").await;
    let other = t.create_app("B").await;
    t.post("/api/v1/event-type/import", json!({"catalog": "impilo"}))
        .await;
    let key = t.api_key(json!({"role": "app", "appId": app})).await;
    let other_key = t.api_key(json!({"role": "app", "appId": other})).await;
    let (_, created) = impilo(
        &t,
        &key,
        Method::POST,
        "/api/v3/webhook",
        Some(json!({"type": "reading.weight", "url": "https://example.com/webhook"})),
    )
    .await;
    let path = format!("/api/v3/webhook/{}", created["id"]);

    let missing = reqwest::Client::new()
        .get(t.url("/api/v3/webhook"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = impilo(&t, "wrong", Method::GET, "/api/v3/webhook", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = impilo(
        &t,
        crate::helpers::ADMIN_TOKEN,
        Method::GET,
        "/api/v3/webhook",
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the admin token names no application"
    );
    let (status, _) = impilo(&t, &other_key, Method::GET, &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another application's webhook"
    );
    // The header is Impilo's API's only: the Svix routes still want a bearer token.
    let (status, _) = impilo(&t, &key, Method::GET, &format!("/api/v1/app/{app}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Endpoints made through the Svix API without the profile are not Impilo webhooks.
    t.create_endpoint(&app, json!({"url": "https://example.com/svix"}))
        .await;
    let (_, list) = impilo(&t, &key, Method::GET, "/api/v3/webhook", None).await;
    assert_eq!(list["total"], 1);
}
