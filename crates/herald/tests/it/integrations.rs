//! Integrations: a third party's key manages one application's endpoints and nothing else;
//! it is listed with every credential, rotated (the old key stops at once) and deleted with
//! its integration.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn an_integration_key_manages_its_applications_endpoints_only() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Mine").await;
    let other = t.create_app("Other").await;
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "beta.thing", "description": "Flagged", "featureFlags": ["beta"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, created) = t
        .post(
            &format!("/api/v1/app/{app}/integration"),
            json!({"name": "Zapier", "featureFlags": ["beta"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("integ_"), "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    // What it may: the application's endpoints, reading the application and event types.
    let endpoints = format!("/api/v1/app/{app}/endpoint");
    let (status, ep) = t
        .call_as(
            &key,
            Method::POST,
            &endpoints,
            Some(json!({"url": "https://example.com/zap"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let ep = ep["id"].as_str().unwrap().to_owned();
    let (status, list) = t.call_as(&key, Method::GET, &endpoints, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    let (status, _) = t
        .call_as(&key, Method::GET, &format!("{endpoints}/{ep}/secret"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call_as(&key, Method::GET, &format!("/api/v1/app/{app}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, types) = t
        .call_as(&key, Method::GET, "/api/v1/event-type", None)
        .await;
    assert!(names(&types).contains(&"beta.thing".to_owned()), "{types}");

    // What it may not.
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "a.b", "payload": {}})),
        ),
        (Method::GET, format!("/api/v1/app/{app}/msg"), None),
        (
            Method::PUT,
            format!("/api/v1/app/{app}"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, "/api/v1/api-key".to_owned(), None),
        (Method::GET, format!("/api/v1/app/{app}/integration"), None),
        (
            Method::POST,
            format!("/api/v1/app/{app}/integration/{id}/key/rotate"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/event-type".to_owned(),
            Some(json!({"name": "x.y", "description": "x"})),
        ),
    ] {
        let (status, out) = t.call_as(&key, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {out}");
    }
    let (status, _) = t
        .call_as(
            &key,
            Method::GET,
            &format!("/api/v1/app/{other}/endpoint"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another application");

    // Without the flag, the flagged event type is hidden from it.
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("/api/v1/app/{app}/integration/{id}"),
            Some(json!({"name": "Zapier v2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, types) = t
        .call_as(&key, Method::GET, "/api/v1/event-type", None)
        .await;
    assert!(!names(&types).contains(&"beta.thing".to_owned()), "{types}");

    // Listed with every credential, as an integration key.
    let (_, keys) = t.get("/api/v1/api-key?limit=250").await;
    let listed: Vec<&Value> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "integration")
        .collect();
    assert_eq!(listed.len(), 1, "{keys}");
    assert_eq!(listed[0]["appId"], json!(app_id(&t, &app).await));

    // Rotated: the old key stops at once, the new one works.
    let (status, rotated) = t
        .post(
            &format!("/api/v1/app/{app}/integration/{id}/key/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let (status, _) = t.call_as(&key, Method::GET, &endpoints, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = t.call_as(&new_key, Method::GET, &endpoints, None).await;
    assert_eq!(status, StatusCode::OK);

    let (_, got) = t.get(&format!("/api/v1/app/{app}/integration/{id}")).await;
    assert_eq!(got["name"], "Zapier v2");
    let (_, list) = t.get(&format!("/api/v1/app/{app}/integration")).await;
    assert_eq!(list["data"][0]["id"], json!(id));
    let (status, _) = t
        .get(&format!("/api/v1/app/{other}/integration/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: its key goes with it.
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/integration/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.call_as(&new_key, Method::GET, &endpoints, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An application's own key manages its integrations, and the keys it issues cannot outlive
    // it: revoking it ends them. A customer's portal token cannot issue any.
    let (_, app_key) = t
        .post("/api/v1/api-key", json!({"role": "app", "appId": app}))
        .await;
    let app_key_id = app_key["id"].as_str().unwrap().to_owned();
    let app_key = app_key["token"].as_str().unwrap().to_owned();
    let (status, own) = t
        .call_as(
            &app_key,
            Method::POST,
            &format!("/api/v1/app/{app}/integration"),
            Some(json!({"name": "Own"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let own_key = own["key"].as_str().unwrap().to_owned();
    let (status, _) = t.call_as(&own_key, Method::GET, &endpoints, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/api-key/{app_key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.call_as(&own_key, Method::GET, &endpoints, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked with the key that issued it"
    );
    let (_, access) = t
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let portal = access["token"].as_str().unwrap().to_owned();
    let (status, _) = t
        .call_as(
            &portal,
            Method::POST,
            &format!("/api/v1/app/{app}/integration"),
            Some(json!({"name": "Nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn app_id(t: &TestApp, app: &str) -> String {
    let (_, out) = t.get(&format!("/api/v1/app/{app}")).await;
    out["id"].as_str().unwrap_or_default().to_owned()
}
