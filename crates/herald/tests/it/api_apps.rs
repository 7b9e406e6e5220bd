//! Applications over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn application_lifecycle() {
    let t = TestApp::spawn().await;
    let (status, app) = t
        .post("/api/v1/app", json!({"name": "Acme", "uid": "acme", "metadata": {"tier": "gold"}, "throttleRate": 50}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = app["id"].as_str().unwrap();
    assert!(id.starts_with("app_"));
    assert_eq!(app["metadata"], json!({"tier": "gold"}));
    assert_eq!(app["throttleRate"], 50);
    assert!(app["createdAt"].as_str().unwrap().ends_with('Z'));

    // By id and by uid.
    assert_eq!(t.get(&format!("/api/v1/app/{id}")).await.1["uid"], "acme");
    assert_eq!(t.get("/api/v1/app/acme").await.1["id"], id);

    // A second create with the same uid conflicts, unless get_if_exists (or get_or_create) asks
    // for the existing one.
    let (status, body) = t
        .post("/api/v1/app", json!({"name": "Again", "uid": "acme"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "conflict");
    for query in ["get_if_exists=true", "get_or_create=true"] {
        let (status, body) = t
            .post(
                &format!("/api/v1/app?{query}"),
                json!({"name": "Again", "uid": "acme"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(body["id"], id);
        assert_eq!(body["name"], "Acme");
    }

    // PUT updates an existing application (full replacement) ...
    let (status, body) = t
        .call(
            Method::PUT,
            "/api/v1/app/acme",
            Some(json!({"name": "Acme Corp", "uid": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "Acme Corp");
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(body["throttleRate"], serde_json::Value::Null);
    // ... and creates one under a new uid.
    let (status, body) = t
        .call(
            Method::PUT,
            "/api/v1/app/globex",
            Some(json!({"name": "Globex"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["uid"], "globex");
    // Repeated PUTs without a uid in the body keep addressing the same application.
    let (status, again) = t
        .call(
            Method::PUT,
            "/api/v1/app/globex",
            Some(json!({"name": "Globex 2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], body["id"]);
    assert_eq!(again["uid"], "globex");
    // A made-up id is not taken as a uid to create.
    let (status, _) = t
        .call(
            Method::PUT,
            "/api/v1/app/app_0000000000000000000000",
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // PATCH changes only what it names; null clears nullable fields.
    let (status, body) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{id}"),
            Some(json!({"uid": null, "metadata": {"a": "b"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["uid"], serde_json::Value::Null);
    assert_eq!(body["name"], "Acme Corp");
    assert_eq!(body["metadata"], json!({"a": "b"}));
    assert_eq!(t.get("/api/v1/app/acme").await.0, StatusCode::NOT_FOUND);

    let (status, list) = t.get("/api/v1/app?order=descending").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Globex 2", "Acme Corp"]);
    assert_eq!(list["done"], true);

    let (status, body) = t
        .call(Method::DELETE, &format!("/api/v1/app/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        t.get(&format!("/api/v1/app/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.call(Method::DELETE, &format!("/api/v1/app/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    t.stop().await;
}

#[tokio::test]
async fn deleting_an_application_removes_its_endpoints_and_messages() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Gone").await;
    t.create_endpoint(&app, json!({"url": "https://example.com/a", "uid": "ep-a"}))
        .await;
    let (status, msg) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    t.call(Method::DELETE, &format!("/api/v1/app/{app}"), None)
        .await;
    let app_id = herald_core::id::AppId::parse(&app).unwrap();
    assert!(
        t.store
            .get_endpoint(&app_id, "ep-a")
            .await
            .unwrap()
            .is_none()
    );
    let msg_id = herald_core::id::MessageId::parse(msg["id"].as_str().unwrap()).unwrap();
    assert!(
        t.store
            .get_message(&app_id, &msg_id)
            .await
            .unwrap()
            .is_none()
    );
    t.stop().await;
}

#[tokio::test]
async fn health_answers_without_a_token_and_reports_the_database() {
    let t = TestApp::spawn().await;
    let ok = t.client.get(t.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let head = t.client.head(t.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    let ping = t
        .client
        .get(t.url("/api/v1/health/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::NO_CONTENT);
    // With the database gone, readiness fails while liveness still answers.
    t.store.close().await;
    let down = t.client.get(t.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ping = t
        .client
        .get(t.url("/api/v1/health/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::NO_CONTENT);
    // And writes answer 503, not 500.
    let (status, body) = t.post("/api/v1/app", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    t.stop().await;
}
