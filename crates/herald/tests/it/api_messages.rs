//! Messages over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_are_stored_exactly_and_listed() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let base = format!("/api/v1/app/{app}/msg");
    // The payload is kept byte for byte, spacing and key order included.
    let raw = r#"{"eventType":"order.status","eventId":"order-1","channels":["team.qa"],"payload":{"z": 1,  "a": [true, null], "n": 1.50}}"#;
    let response = t
        .request(Method::POST, &base)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#""payload":{"z": 1,  "a": [true, null], "n": 1.50}"#),
        "{text}"
    );
    let msg: Value = serde_json::from_str(&text).unwrap();
    let id = msg["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(msg["eventId"], "order-1");
    assert_eq!(msg["channels"], json!(["team.qa"]));
    let stored = t
        .store
        .get_message(
            &herald_core::id::AppId::parse(&app).unwrap(),
            &herald_core::id::MessageId::parse(id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.payload.as_deref(),
        Some(r#"{"z": 1,  "a": [true, null], "n": 1.50}"#)
    );
    assert_eq!(
        (stored.payload_expires_at - stored.created_at).num_days(),
        90
    );

    // A second message with the same eventId is refused and nothing is created.
    let (status, body) = t
        .post(
            &base,
            json!({"eventType": "order.status", "eventId": "order-1", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(ids(&t.get(&base).await.1).len(), 1);
    // The same eventId in another application is fine.
    let other = t.create_app("Other").await;
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{other}/msg"),
            json!({"eventType": "order.status", "eventId": "order-1", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Get by id or eventId; with_content=false leaves the payload out.
    assert_eq!(t.get(&format!("{base}/{id}")).await.1["payload"]["z"], 1);
    assert_eq!(t.get(&format!("{base}/order-1")).await.1["id"], id);
    assert_eq!(
        t.get(&format!("{base}/{id}?with_content=false")).await.1["payload"],
        json!({})
    );
    assert_eq!(
        t.get(&format!("{base}/msg_0000000000000000000000")).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, second) = t
        .post(&format!("{base}?with_content=false"), json!({"eventType": "reading.weight", "payload": {"w": 80}, "payloadRetentionPeriod": 5}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(second["payload"], json!({}));
    let second_id = second["id"].as_str().unwrap().to_owned();
    let third = t.post(&base, json!({"eventType": "reading.temperature", "payload": {}, "channels": ["group.a", "team.qa"]})).await.1;
    let third_id = third["id"].as_str().unwrap().to_owned();

    // Newest first; filters by event types (repeated or comma-separated), channel and time.
    assert_eq!(
        ids(&t.get(&base).await.1),
        vec![third_id.clone(), second_id.clone(), id.to_owned()]
    );
    assert_eq!(
        ids(&t
            .get(&format!("{base}?event_types=reading.weight,order.status"))
            .await
            .1),
        vec![second_id.clone(), id.to_owned()]
    );
    assert_eq!(
        ids(&t
            .get(&format!(
                "{base}?event_types=reading.weight&event_types=reading.temperature"
            ))
            .await
            .1),
        vec![third_id.clone(), second_id.clone()]
    );
    assert_eq!(
        ids(&t.get(&format!("{base}?channel=team.qa")).await.1),
        vec![third_id.clone(), id.to_owned()]
    );
    let second_at = second["timestamp"].as_str().unwrap();
    let enc = |s: &str| s.replace(':', "%3A").replace('+', "%2B");
    assert_eq!(
        ids(&t.get(&format!("{base}?before={}", enc(second_at))).await.1),
        vec![id.to_owned()]
    );
    assert_eq!(
        ids(&t.get(&format!("{base}?after={}", enc(second_at))).await.1),
        vec![third_id.clone()]
    );
    let (_, no_content) = t.get(&format!("{base}?with_content=false")).await;
    assert_eq!(no_content["data"][0]["payload"], json!({}));
    t.stop().await;
}

#[tokio::test]
async fn inline_application_is_created_with_the_message() {
    let t = TestApp::spawn().await;
    let (status, _) = t
        .post(
            "/api/v1/app/customer-7/msg",
            json!({"eventType": "a.b", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, msg) = t
        .post(
            "/api/v1/app/customer-7/msg",
            json!({"eventType": "a.b", "payload": {"k": 1}, "application": {"name": "Customer 7"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{msg}");
    let (_, app) = t.get("/api/v1/app/customer-7").await;
    assert_eq!(app["name"], "Customer 7");
    // Once it exists the inline application is ignored.
    let (status, _) = t
        .post(
            "/api/v1/app/customer-7/msg",
            json!({"eventType": "a.b", "payload": {}, "application": {"name": "Renamed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        t.get("/api/v1/app/customer-7").await.1["name"],
        "Customer 7"
    );
    t.stop().await;
}
