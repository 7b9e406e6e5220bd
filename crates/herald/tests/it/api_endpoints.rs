//! Endpoints, their headers and their secrets over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};

#[tokio::test]
async fn endpoint_lifecycle() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let base = format!("/api/v1/app/{app}/endpoint");
    let (status, ep) = t
        .post(
            &base,
            json!({
                "url": "https://example.com/hook",
                "description": "orders",
                "uid": "orders",
                "filterTypes": ["order.status"],
                "channels": ["team.qa"],
                "rateLimit": 5,
                "metadata": {"owner": "ops"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap();
    assert!(id.starts_with("ep_"));
    // The older names are aliases of eventTypes and throttleRate.
    assert_eq!(ep["eventTypes"], json!(["order.status"]));
    assert_eq!(ep["throttleRate"], 5);
    assert_eq!(ep["disabled"], false);
    assert!(
        ep.get("secret").is_none(),
        "the secret is never part of the endpoint"
    );

    assert_eq!(t.get(&format!("{base}/orders")).await.1["id"], id);
    assert_eq!(
        t.get(&format!("{base}/{id}")).await.1["description"],
        "orders"
    );
    let (_, list) = t.get(&base).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // PATCH: null clears a list, absent leaves it.
    let (status, patched) = t
        .call(
            Method::PATCH,
            &format!("{base}/{id}"),
            Some(json!({"eventTypes": null, "disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["eventTypes"], Value::Null);
    assert_eq!(patched["channels"], json!(["team.qa"]));
    assert_eq!(patched["disabled"], true);

    // PUT replaces every field.
    let (status, put) = t
        .call(
            Method::PUT,
            &format!("{base}/{id}"),
            Some(json!({"url": "https://example.org/new"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["url"], "https://example.org/new");
    assert_eq!(put["channels"], Value::Null);
    assert_eq!(
        put["uid"], "orders",
        "a PUT without a uid keeps the endpoint's"
    );
    assert_eq!(put["disabled"], false);
    // PUT with an unknown uid creates.
    let (status, created) = t
        .call(
            Method::PUT,
            &format!("{base}/billing"),
            Some(json!({"url": "https://example.org/b"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["uid"], "billing");

    // Repeated PUTs to a uid address one endpoint.
    let (status, again) = t
        .call(
            Method::PUT,
            &format!("{base}/billing"),
            Some(json!({"url": "https://example.org/b2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], created["id"]);
    assert_eq!(again["uid"], "billing");

    // uids are unique within an application.
    let (status, _) = t
        .post(&base, json!({"url": "https://e.com", "uid": "billing"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let other = t.create_app("Other").await;
    t.create_endpoint(&other, json!({"url": "https://e.com", "uid": "billing"}))
        .await;
    // And endpoints are only reachable under their application.
    assert_eq!(
        t.get(&format!("/api/v1/app/{other}/endpoint/{id}")).await.0,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        t.call(Method::DELETE, &format!("{base}/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&format!("{base}/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    t.stop().await;
}

#[tokio::test]
async fn headers_are_kept_with_sensitive_values_hidden() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let id = t
        .create_endpoint(
            &app,
            json!({"url": "https://example.com", "headers": {"X-Team": "qa"}}),
        )
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{id}/headers");
    assert_eq!(
        t.get(&path).await.1,
        json!({"headers": {"X-Team": "qa"}, "sensitive": []})
    );

    let (status, _) = t
        .call(
            Method::PUT,
            &path,
            Some(json!({"headers": {"X-A": "1", "Authorization": "Bearer s3cret"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get(&path).await.1,
        json!({"headers": {"X-A": "1"}, "sensitive": ["Authorization"]})
    );

    let (status, _) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!({"headers": {"X-A": null, "X-B": "2"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get(&path).await.1,
        json!({"headers": {"X-B": "2"}, "sensitive": ["Authorization"]})
    );

    // Herald's own headers cannot be overridden, and invalid names are refused.
    for bad in [
        "webhook-signature",
        "Content-Type",
        "svix-id",
        "User-Agent",
        "bad header",
    ] {
        let (status, body) = t
            .call(Method::PATCH, &path, Some(json!({"headers": {bad: "x"}})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(error_locs(&body), vec![format!("body.headers.{bad}")]);
    }
    let (status, _) = t
        .call(
            Method::PUT,
            &path,
            Some(json!({"headers": {"X-Bad": "line\nbreak"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A credential may hide under any name: read-only and portal tokens see every value
    // masked; full-access tokens (admin, application keys) read them.
    let (status, _) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!({"headers": {"X-Custom-Auth": "s3cret"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let app_key = t.api_key(json!({"role": "app", "appId": app})).await;
    let reader = t.api_key(json!({"role": "read-only"})).await;
    let (_, portal) = t
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let portal = portal["token"].as_str().unwrap().to_owned();
    let full =
        json!({"headers": {"X-B": "2", "X-Custom-Auth": "s3cret"}, "sensitive": ["Authorization"]});
    let masked = json!({"headers": {"X-B": "****", "X-Custom-Auth": "****"}, "sensitive": ["Authorization"]});
    assert_eq!(t.get(&path).await.1, full);
    for (token, expected) in [(&app_key, &full), (&reader, &masked), (&portal, &masked)] {
        let (status, body) = t.call_as(token, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body, expected);
    }
    t.stop().await;
}

#[tokio::test]
async fn secrets_are_generated_readable_and_rotatable() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let id = t
        .create_endpoint(&app, json!({"url": "https://example.com"}))
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{id}/secret");
    let (status, secret) = t.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let key = secret["key"].as_str().unwrap();
    // whsec_ + base64 of 24 random bytes.
    assert!(key.starts_with("whsec_") && key.len() == 6 + 32, "{key}");

    // Rotation without a key generates one; with a key uses it (prefix optional).
    let (status, rotated) = t.post(&format!("{path}/rotate"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["key"], secret["key"]);
    assert_eq!(t.get(&path).await.1["key"], rotated["key"]);
    let (status, _) = t
        .post(
            &format!("{path}/rotate"),
            json!({"key": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "gracePeriodSeconds": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        t.get(&path).await.1["key"],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    // An empty body is a rotation with defaults.
    let empty = t
        .request(Method::POST, &format!("{path}/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::OK);

    for bad in [
        json!({"key": "short"}),
        json!({"gracePeriodSeconds": -1}),
        json!({"gracePeriodSeconds": 604801}),
    ] {
        let (status, body) = t.post(&format!("{path}/rotate"), bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }

    // A chosen secret at creation.
    let chosen = t
        .create_endpoint(&app, json!({"url": "https://example.com", "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}))
        .await;
    assert_eq!(
        t.get(&format!("/api/v1/app/{app}/endpoint/{chosen}/secret"))
            .await
            .1["key"],
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    );
    t.stop().await;
}

#[tokio::test]
async fn secrets_and_header_values_are_not_in_the_database_file_in_the_clear() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let id = t
        .create_endpoint(&app, json!({"url": "https://example.com", "secret": secret, "headers": {"X-Api-Key": "hunter2-header-value"}}))
        .await;
    t.post(
        &format!("/api/v1/app/{app}/endpoint/{id}/secret/rotate"),
        json!({"key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await;
    let data_dir = t.data_dir.clone();
    let _dir = t.stop().await;
    let mut bytes = Vec::new();
    for file in ["herald.db", "herald.db-wal"] {
        if let Ok(b) = std::fs::read(data_dir.join(file)) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty());
    for needle in [
        "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "hunter2-header-value",
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in the database file"
        );
    }
    // The base64-decoded secret bytes are not there either.
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .unwrap();
    assert!(!bytes.windows(raw.len()).any(|w| w == raw.as_slice()));
}
