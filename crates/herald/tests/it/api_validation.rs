//! Every validation rule answers in the documented shape and loses nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};

async fn expect_422(t: &TestApp, method: Method, path: &str, body: Value, loc: &str) {
    let (status, out) = t.call(method.clone(), path, Some(body.clone())).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{method} {path} {body}: {out}"
    );
    let locs = error_locs(&out);
    assert!(
        locs.iter().any(|l| l == loc),
        "{body}: expected {loc} in {locs:?}"
    );
    for item in out["detail"].as_array().unwrap() {
        assert!(item["msg"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(item["type"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn field_rules() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = format!("/api/v1/app/{app}/endpoint");
    let msg = format!("/api/v1/app/{app}/msg");
    let long = "x".repeat(257);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        // uid: ^[a-zA-Z0-9\-_.]{1,256}$
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "uid": "has space"}),
            "body.uid",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "uid": "slash/no"}),
            "body.uid",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "uid": ""}),
            "body.uid",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "uid": long}),
            "body.uid",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": ""}),
            "body.name",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "throttleRate": 0}),
            "body.throttleRate",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "throttleRate": 70000}),
            "body.throttleRate",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"uid": "a"}),
            "body.name",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": 5}),
            "body.name",
        ),
        (
            Method::POST,
            "/api/v1/app".into(),
            json!({"name": "a", "metadata": {"k": 1}}),
            "body.metadata.k",
        ),
        (
            Method::POST,
            "/api/v1/event-type".into(),
            json!({"name": "bad name", "description": "d"}),
            "body.name",
        ),
        (
            Method::POST,
            "/api/v1/event-type".into(),
            json!({"name": "ok"}),
            "body.description",
        ),
        // URL: absolute http(s), no credentials.
        (Method::POST, ep.clone(), json!({}), "body.url"),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "/relative"}),
            "body.url",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "ftp://example.com/x"}),
            "body.url",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://user:pw@example.com/"}),
            "body.url",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "not a url"}),
            "body.url",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "description": "d".repeat(513)}),
            "body.description",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "uid": "bad uid"}),
            "body.uid",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "eventTypes": []}),
            "body.eventTypes",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "eventTypes": ["ok", "bad type"]}),
            "body.eventTypes.1",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "eventTypes": ["a", "a"]}),
            "body.eventTypes.1",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "channels": (0..11).map(|i| format!("c{i}")).collect::<Vec<_>>()}),
            "body.channels",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "channels": ["x".repeat(129)]}),
            "body.channels.0",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "secret": "whsec_tooshort"}),
            "body.secret",
        ),
        (
            Method::POST,
            ep.clone(),
            json!({"url": "https://e.com", "disabled": "yes"}),
            "body.disabled",
        ),
        // Messages.
        (
            Method::POST,
            msg.clone(),
            json!({"payload": {}}),
            "body.eventType",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a"}),
            "body.payload",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a", "payload": [1, 2]}),
            "body.payload",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a", "payload": "text"}),
            "body.payload",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a b", "payload": {}}),
            "body.eventType",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a", "payload": {}, "eventId": "no spaces"}),
            "body.eventId",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a", "payload": {}, "channels": ["a", "b", "c", "d", "e", "f"]}),
            "body.channels",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a", "payload": {}, "payloadRetentionPeriod": 4}),
            "body.payloadRetentionPeriod",
        ),
        (
            Method::POST,
            msg.clone(),
            json!({"eventType": "a", "payload": {}, "payloadRetentionPeriod": 91}),
            "body.payloadRetentionPeriod",
        ),
    ];
    for (method, path, body, loc) in cases {
        expect_422(&t, method, &path, body, loc).await;
    }
    // Nothing was created by any of them.
    assert_eq!(t.get(&ep).await.1["data"], json!([]));
    assert_eq!(t.get(&msg).await.1["data"], json!([]));
    assert_eq!(
        t.get("/api/v1/app").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.stop().await;
}

#[tokio::test]
async fn query_rules() {
    let t = TestApp::spawn().await;
    for (path, loc) in [
        ("/api/v1/app?limit=251", "query.limit"),
        ("/api/v1/app?limit=ten", "query.limit"),
        ("/api/v1/app?order=sideways", "query.order"),
        (
            "/api/v1/event-type?include_archived=maybe",
            "query.include_archived",
        ),
    ] {
        let (status, body) = t.get(path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(error_locs(&body), vec![loc], "{path}");
    }
    assert_eq!(t.get("/api/v1/app?limit=250").await.0, StatusCode::OK);
    // 0 is allowed by the reference API and means the default.
    assert_eq!(t.get("/api/v1/app?limit=0").await.0, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_400_with_the_parser_message() {
    let t = TestApp::spawn().await;
    let response = t
        .request(Method::POST, "/api/v1/app")
        .header("content-type", "application/json")
        .body(r#"{"name": "x",}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    assert!(
        body["detail"].as_str().unwrap().contains("line 1 column"),
        "{body}"
    );

    let trailing = t
        .request(Method::POST, "/api/v1/app")
        .header("content-type", "application/json")
        .body(r#"{"name": "x"} {}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(trailing.status(), StatusCode::BAD_REQUEST);
    let wrong_type = t
        .request(Method::POST, "/api/v1/app")
        .header("content-type", "text/plain")
        .body(r#"{"name": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(t.get("/api/v1/app").await.1["data"], json!([]));
    t.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let big = json!({"eventType": "a", "payload": {"blob": "x".repeat(1024 * 1024)}});
    let (status, body) = t.post(&format!("/api/v1/app/{app}/msg"), big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    // Also through the idempotency layer, which reads the body first.
    let response = t
        .request(Method::POST, &format!("/api/v1/app/{app}/msg"))
        .header("idempotency-key", "k1")
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    t.stop().await;

    // The limit is configurable.
    let t = TestApp::spawn_with(|c| c.max_body_bytes = 2048).await;
    let app = t.create_app("Acme").await;
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a", "payload": {"blob": "x".repeat(3000)}}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    t.stop().await;
}

#[tokio::test]
async fn url_and_description_limits_are_configurable() {
    let t = TestApp::spawn_with(|c| {
        c.limits.max_url_length = 512;
        c.limits.max_description_length = 50;
    })
    .await;
    let app = t.create_app("Acme").await;
    let ep = format!("/api/v1/app/{app}/endpoint");
    let url = format!("https://example.com/{}", "p".repeat(500));
    expect_422(&t, Method::POST, &ep, json!({"url": url}), "body.url").await;
    expect_422(
        &t,
        Method::POST,
        &ep,
        json!({"url": "https://e.com", "description": "d".repeat(51)}),
        "body.description",
    )
    .await;
    let ok = format!("https://example.com/{}", "p".repeat(400));
    t.create_endpoint(&app, json!({"url": ok})).await;
    t.stop().await;

    // 8,192 characters by default.
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let at = |n: usize| format!("https://example.com/{}", "p".repeat(n - 20));
    assert_eq!(at(8_192).len(), 8_192);
    t.create_endpoint(&app, json!({"url": at(8_192)})).await;
    expect_422(
        &t,
        Method::POST,
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": at(8_193)}),
        "body.url",
    )
    .await;
    t.stop().await;
    // An operator may allow up to 65,536.
    let t = TestApp::spawn_with(|c| c.limits.max_url_length = 65_536).await;
    let app = t.create_app("Acme").await;
    t.create_endpoint(&app, json!({"url": at(60_000)})).await;
    t.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let t = TestApp::spawn().await;
    let (status, body) = t.get("/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let (status, body) = t.call(Method::PATCH, "/api/v1/app", Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");
    t.stop().await;
}
