//! The event type catalogue over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};

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

/// `featureFlags` and `groupName` are stored and shown; an event type with flags is visible to
/// a customer's portal token only when the token carries one of them (admin keys and the
/// operator see everything), in lists and by name.
#[tokio::test]
async fn feature_flags_gate_what_portal_tokens_see_and_groups_are_kept() {
    let t = TestApp::spawn().await;
    for body in [
        json!({"name": "beta.thing", "description": "b", "featureFlags": ["beta"], "groupName": "Beta"}),
        json!({"name": "lab.thing", "description": "l", "featureFlag": "lab"}),
        json!({"name": "plain.thing", "description": "p"}),
    ] {
        let (status, et) = t.post("/api/v1/event-type", body).await;
        assert_eq!(status, StatusCode::CREATED, "{et}");
    }
    let (_, beta) = t.get("/api/v1/event-type/beta.thing").await;
    assert_eq!(beta["featureFlags"], json!(["beta"]));
    assert_eq!(beta["featureFlag"], "beta");
    assert_eq!(beta["groupName"], "Beta");
    let (_, lab) = t.get("/api/v1/event-type/lab.thing").await;
    assert_eq!(
        lab["featureFlags"],
        json!(["lab"]),
        "the older single flag is the list's first"
    );
    let (status, body) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "both.thing", "description": "", "featureFlag": "a", "featureFlags": ["b"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let names = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let app = t.create_app("Acme").await;
    let portal = |flags: Value| {
        let t = &t;
        let app = app.clone();
        async move {
            let (status, access) = t
                .post(
                    &format!("/api/v1/auth/app-portal-access/{app}"),
                    json!({"featureFlags": flags}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{access}");
            access["token"].as_str().unwrap().to_owned()
        }
    };
    let plain = portal(json!([])).await;
    let beta_token = portal(json!(["beta"])).await;
    // The token is listed with its flags, as every credential is.
    let (_, keys) = t.get("/api/v1/api-key?limit=250").await;
    assert!(
        keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["featureFlags"] == json!(["beta"])),
        "{keys}"
    );
    let (_, all) = t.get("/api/v1/event-type").await;
    assert_eq!(names(&all), vec!["beta.thing", "lab.thing", "plain.thing"]);
    let (_, seen) = t
        .call_as(&plain, Method::GET, "/api/v1/event-type", None)
        .await;
    assert_eq!(names(&seen), vec!["plain.thing"]);
    let (_, seen) = t
        .call_as(&beta_token, Method::GET, "/api/v1/event-type", None)
        .await;
    assert_eq!(names(&seen), vec!["beta.thing", "plain.thing"]);
    let (status, _) = t
        .call_as(&plain, Method::GET, "/api/v1/event-type/beta.thing", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .call_as(
            &beta_token,
            Method::GET,
            "/api/v1/event-type/beta.thing",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Hidden items do not end a paged list early: page by page, the flagged ones are skipped.
    let (_, first) = t
        .call_as(&plain, Method::GET, "/api/v1/event-type?limit=1", None)
        .await;
    assert!(
        names(&first).is_empty() && first["done"] == false,
        "{first}"
    );

    // Without flags an event type is everyone's again.
    let (status, patched) = t
        .call(
            Method::PATCH,
            "/api/v1/event-type/beta.thing",
            Some(json!({"featureFlags": null, "groupName": "General"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["groupName"], "General");
    let (_, seen) = t
        .call_as(&plain, Method::GET, "/api/v1/event-type", None)
        .await;
    assert_eq!(names(&seen), vec!["beta.thing", "plain.thing"]);
    // A flag that is not a name is refused.
    let (status, _) = t
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({"featureFlags": ["not a flag"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}

/// An OpenAPI document's webhooks become event types with their schemas; a dry run changes
/// nothing; `replaceAll` archives the rest; YAML is read too; a recursive schema is a 422 that
/// says where.
#[tokio::test]
async fn openapi_webhooks_are_imported_as_event_types() {
    let t = TestApp::spawn().await;
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "old.type", "description": "Not in the document"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let spec = json!({
        "openapi": "3.1.0",
        "webhooks": {
            "pet.new": {"post": {
                "summary": "A pet was added",
                "x-svix-group-name": "pets",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}
            }}
        },
        "components": {"schemas": {"Pet": {"type": "object", "properties": {"id": {"type": "integer"}}}}}
    });
    let (status, out) = t
        .post(
            "/api/v1/event-type/import/openapi",
            json!({"spec": spec, "dryRun": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["data"]["modified"], json!([]));
    assert_eq!(out["data"]["to_modify"][0]["name"], "pet.new");
    assert_eq!(
        out["data"]["to_modify"][0]["schemas"]["1"]["properties"]["id"],
        json!({"type": "integer"})
    );
    let (status, _) = t.get("/api/v1/event-type/pet.new").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a dry run changes nothing");

    let (status, out) = t
        .post(
            "/api/v1/event-type/import/openapi",
            json!({"spec": spec, "replaceAll": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["data"]["modified"], json!(["pet.new", "old.type"]));
    assert!(out["data"].get("to_modify").is_none());
    let (_, pet) = t.get("/api/v1/event-type/pet.new?with_content=true").await;
    assert_eq!(pet["description"], "A pet was added");
    assert_eq!(pet["groupName"], "pets");
    assert_eq!(pet["schemas"]["1"]["type"], "object");
    let (_, old) = t.get("/api/v1/event-type/old.type").await;
    assert_eq!(old["archived"], true);

    // The same document again changes nothing.
    let (_, out) = t
        .post("/api/v1/event-type/import/openapi", json!({"spec": spec}))
        .await;
    assert_eq!(out["data"]["modified"], json!([]));

    let yaml = "openapi: 3.0.0\nx-webhooks:\n  pet.gone:\n    post:\n      description: A pet left\n      deprecated: true\n";
    let (status, out) = t
        .post(
            "/api/v1/event-type/import/openapi",
            json!({"specRaw": yaml}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["data"]["modified"], json!(["pet.gone"]));
    let (_, gone) = t.get("/api/v1/event-type/pet.gone").await;
    assert_eq!(gone["deprecated"], true);

    let cyclic = json!({
        "webhooks": {"tree": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Node"}}}}}}},
        "components": {"schemas": {"Node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}
    });
    let (status, out) = t
        .post("/api/v1/event-type/import/openapi", json!({"spec": cyclic}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(
        error_locs(&out),
        vec!["body.spec.webhooks.tree.post.requestBody.schema"]
    );
    // A YAML alias bomb is refused by the parser's budget, not expanded.
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let (status, out) = t
        .post(
            "/api/v1/event-type/import/openapi",
            json!({"specRaw": bomb}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let (status, _) = t.post("/api/v1/event-type/import/openapi", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
