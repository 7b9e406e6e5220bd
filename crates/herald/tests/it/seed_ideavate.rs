//! Ideavate (seed 003) as its receivers expect it: only 200 counts, retries fill a 72-hour
//! window, data-model queries are answered from the payload, and a delivery without a query
//! still carries `"query": ""`.

use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

#[tokio::test]
async fn only_the_listed_statuses_count_as_delivered() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Ideavate").await;
    r.always("/strict", Step::Status(201));
    r.always("/profile", Step::Status(201));
    r.always("/default", Step::Status(201));
    let strict = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/strict"), "successStatuses": [200], "retrySchedule": []}),
        )
        .await;
    let profiled = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/profile"), "profile": "ideavate"}),
        )
        .await;
    let default = t
        .create_endpoint(&app, json!({"url": r.url("/default")}))
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "EnergySwitchAdded", "payload": {"id": "sw-1"}}),
        )
        .await;
    t.wait_status(&msg, &strict, DeliveryStatus::Fail, Duration::from_secs(10))
        .await;
    t.wait_status(
        &msg,
        &default,
        DeliveryStatus::Success,
        Duration::from_secs(10),
    )
    .await;
    // The profile's 72-hour window keeps a 201 pending, retried.
    r.wait_for("/profile", 1, Duration::from_secs(10)).await;
    let delivery = t
        .wait_status(
            &msg,
            &profiled,
            DeliveryStatus::Pending,
            Duration::from_secs(10),
        )
        .await;
    assert!(
        delivery.attempts >= 1 && delivery.next_attempt_at.is_some(),
        "{delivery:?}"
    );

    let (_, out) = t
        .get(&format!("/api/v1/app/{app}/endpoint/{profiled}"))
        .await;
    assert_eq!(out["profile"], "ideavate");
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/x"), "successStatuses": [200, 200, 99]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/x"), "profile": "kobiton-ish"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A window alone is filled: 5 s, 10 s, 20 s, … With a 20-second window that is three
/// attempts (the third retry would fall after the window), where the server's schedule (5 s,
/// then 5 min) would have given up after two.
#[tokio::test]
async fn a_retry_window_alone_is_filled_with_retries() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Window").await;
    r.always("/down", Step::Status(500));
    let ep = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/down"), "retryWindowSeconds": 20}),
        )
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "EnergySwitchAdded", "payload": {"id": "sw-1"}}),
        )
        .await;
    let delivery = t
        .wait_status(&msg, &ep, DeliveryStatus::Fail, Duration::from_secs(40))
        .await;
    assert_eq!(delivery.attempts, 3, "{delivery:?}");
}

#[tokio::test]
async fn data_model_queries_are_answered_from_the_payload() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Queries").await;
    let query = "query($id: ID!) { energySwitch(id: $id) { id status supplier { name } } }";
    t.create_endpoint(
        &app,
        json!({"url": r.url("/q"), "envelope": "graphql",
               "graphqlByEventType": {"EnergySwitchAdded": {"query": query}}}),
    )
    .await;
    t.publish(
        &app,
        json!({"eventType": "EnergySwitchAdded",
               "payload": {"id": "sw-1", "status": "commissioned", "supplier": {"name": "Octo"}}}),
    )
    .await;
    t.publish(
        &app,
        json!({"eventType": "UserAdded", "payload": {"id": "u-1"}}),
    )
    .await;
    let got = r.wait_for("/q", 2, Duration::from_secs(10)).await;
    let bodies: Vec<Value> = got
        .iter()
        .map(|g| serde_json::from_slice(&g.body).unwrap())
        .collect();
    let switch = bodies
        .iter()
        .find(|b| b["webhook"]["trigger"] == "EnergySwitchAdded")
        .unwrap();
    assert_eq!(
        switch["data"],
        json!({"energySwitch": {"id": "sw-1", "status": "commissioned", "supplier": {"name": "Octo"}}})
    );
    assert_eq!(switch["query"]["query"], query);
    assert_eq!(switch["query"]["variables"], json!({"id": "sw-1"}));
    let user = bodies
        .iter()
        .find(|b| b["webhook"]["trigger"] == "UserAdded")
        .unwrap();
    assert_eq!(
        user["query"]["query"], "",
        "a string, as Ideavate's shape has it"
    );
    assert_eq!(user["data"], json!({"id": "u-1"}));
}
