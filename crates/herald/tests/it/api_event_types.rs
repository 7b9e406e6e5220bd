//! The event type catalogue over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn event_type_lifecycle() {
    let t = TestApp::spawn().await;
    let schema = json!({"1": {"type": "object", "properties": {"weight": {"type": "number"}}}});
    let (status, et) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "reading.weight", "description": "A weight", "schemas": schema}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{et}");
    assert_eq!(et["schemas"], schema);
    assert_eq!(et["archived"], false);
    assert_eq!(et["deprecated"], false);
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "reading.weight", "description": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    assert_eq!(
        t.get("/api/v1/event-type/reading.weight").await.1["schemas"],
        schema
    );
    // Lists leave schemas out unless asked.
    let (_, list) = t.get("/api/v1/event-type").await;
    assert_eq!(list["data"][0]["schemas"], Value::Null);
    let (_, list) = t.get("/api/v1/event-type?with_content=true").await;
    assert_eq!(list["data"][0]["schemas"], schema);

    // PUT updates, or creates.
    let (status, put) = t
        .call(
            Method::PUT,
            "/api/v1/event-type/reading.weight",
            Some(json!({"description": "Body weight", "deprecated": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(put["deprecated"], true);
    assert_eq!(put["schemas"], Value::Null);
    let (status, _) = t
        .call(
            Method::PUT,
            "/api/v1/event-type/reading.temperature",
            Some(json!({"description": "Temperature"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // PATCH.
    let (status, patched) = t
        .call(
            Method::PATCH,
            "/api/v1/event-type/reading.weight",
            Some(json!({"schemas": schema, "deprecated": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["schemas"], schema);
    assert_eq!(patched["description"], "Body weight");

    // DELETE archives; archived types leave the list unless include_archived.
    assert_eq!(
        t.call(Method::DELETE, "/api/v1/event-type/reading.weight", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get("/api/v1/event-type/reading.weight").await.1["archived"],
        true
    );
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&t.get("/api/v1/event-type").await.1),
        vec!["reading.temperature"]
    );
    assert_eq!(
        names(&t.get("/api/v1/event-type?include_archived=true").await.1),
        vec!["reading.temperature", "reading.weight"]
    );
    // Creating it again un-archives it.
    let (status, revived) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "reading.weight", "description": "Back"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(revived["archived"], false);
    // expunge deletes.
    assert_eq!(
        t.call(
            Method::DELETE,
            "/api/v1/event-type/reading.weight?expunge=true",
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get("/api/v1/event-type/reading.weight").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.call(Method::DELETE, "/api/v1/event-type/reading.weight", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Schemas must be objects of objects.
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "x.y", "description": "d", "schemas": {"1": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "x.y", "description": "d", "schemas": [1]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}
