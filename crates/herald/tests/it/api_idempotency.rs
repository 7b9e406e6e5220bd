//! Idempotency-Key on POST.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, json as read};

#[tokio::test]
async fn the_same_key_returns_the_first_response_and_does_nothing_again() {
    let t = TestApp::spawn().await;
    let send = |key: &'static str, name: &'static str| {
        t.request(Method::POST, "/api/v1/app")
            .header("idempotency-key", key)
            .json(&json!({"name": name}))
            .send()
    };
    let first = send("key-1", "Once").await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let (status, first) = read(first).await;
    assert_eq!(status, StatusCode::CREATED);
    let again = send("key-1", "Once").await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let (status, again) = read(again).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first);
    assert_eq!(
        t.get("/api/v1/app").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Reusing the key for another request is an error, and does nothing.
    let (status, body) = read(send("key-1", "Different").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        t.get("/api/v1/app").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Error answers are replayed too (the request did run).
    let (status, _) = read(
        t.request(Method::POST, "/api/v1/app")
            .header("idempotency-key", "key-2")
            .json(&json!({"name": ""}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let replay = t
        .request(Method::POST, "/api/v1/app")
        .header("idempotency-key", "key-2")
        .json(&json!({"name": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");

    // Keys are per caller: another token's key-1 is a new request.
    let other = t.api_key(json!({"role": "admin"})).await;
    let (status, _) = read(
        t.request_as(&other, Method::POST, "/api/v1/app")
            .header("idempotency-key", "key-1")
            .json(&json!({"name": "Once"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        t.get("/api/v1/app").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Messages: a retried publish with the same key creates one message, and gets the first
    // answer back (recorded by the publish's own transaction).
    let app = first["id"].as_str().unwrap();
    let mut answers = Vec::new();
    for attempt in 0..3 {
        let r = t
            .request(Method::POST, &format!("/api/v1/app/{app}/msg"))
            .header("idempotency-key", "publish-1")
            .json(&json!({"eventType": "a", "payload": {"n": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("idempotent-replayed").is_some(),
            attempt > 0
        );
        let (status, body) = read(r).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        answers.push(body);
    }
    assert_eq!(answers[0]["payload"], json!({"n": 1}));
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(
        t.get(&format!("/api/v1/app/{app}/msg")).await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let too_long = "k".repeat(257);
    let (status, _) = read(
        t.request(Method::POST, "/api/v1/app")
            .header("idempotency-key", too_long)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}

#[tokio::test]
async fn a_purged_key_is_fresh_again() {
    let t = TestApp::spawn().await;
    let send = || {
        t.request(Method::POST, "/api/v1/app")
            .header("idempotency-key", "day-key")
            .json(&json!({"name": "Daily"}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::CREATED);
    // The maintenance task purges records older than the 24-hour window (the window itself is
    // checked by the store conformance suite); a purged key starts over.
    let removed = t
        .store
        .purge_idempotency(herald_core::time::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let second = send().await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert!(second.headers().get("idempotent-replayed").is_none());
    t.stop().await;
}
