//! The OpenAPI document and the offline docs page.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// Routes of the reference Svix spec that Herald serves so far (the attempt, stats, recover,
/// resend, send-example and content-expunge routes arrive with the delivery engine and logs).
const LATER: &[&str] = &[
    "attempt",
    "stats",
    "recover",
    "resend",
    "send-example",
    "content",
    "/msg/{msg_id}/endpoint",
    "/endpoint/{endpoint_id}/msg",
];

#[tokio::test]
async fn openapi_document_covers_the_compatible_routes() {
    let t = TestApp::spawn().await;
    let response = t
        .client
        .get(t.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let served: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    let reference: Value = serde_json::from_str(include_str!(
        "../../../../tests/reference/svix-openapi.json"
    ))
    .unwrap();
    for (path, item) in reference["paths"].as_object().unwrap() {
        if LATER.iter().any(|l| path.contains(l)) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            // HEAD is answered by every GET route.
            if method == "head" || method == "parameters" {
                continue;
            }
            assert!(
                served.contains(&(path.clone(), method.clone())),
                "{method} {path} is missing"
            );
        }
    }
    // Every operation has an id and declares its error shapes.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(op["responses"]["400"].is_object(), "{method} {path}");
        }
    }
    assert!(doc["components"]["securitySchemes"]["HTTPBearer"].is_object());
    t.stop().await;
}

#[tokio::test]
async fn docs_page_is_self_contained() {
    let t = TestApp::spawn().await;
    let response = t.client.get(t.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("/api/v1/app/{app_id}/msg"));
    assert!(html.contains("id=\"schema-MessageIn\""));
    // Nothing is loaded from elsewhere.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http"));
    assert!(!html.contains("<link"));
    t.stop().await;
}
