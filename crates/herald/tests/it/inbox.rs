//! Inboxes end to end: management, scoping, Firebase-style writes and reads on `/in/…`, and
//! the entries list (exports, verification, limits and forwarding: `inbox_gateway`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json as body_json};

/// Creates an inbox and returns (its answer, its token).
pub(crate) async fn inbox(t: &TestApp, body: Value) -> (Value, String) {
    let (status, out) = t.post("/api/v1/inbox", body).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    let token = out["token"].as_str().unwrap().to_owned();
    (out, token)
}

/// The URL of `path` (`/in/…`) with the token and `query` in its query string.
pub(crate) fn in_url(t: &TestApp, path: &str, token: &str, query: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&t.url(path)).unwrap();
    url.query_pairs_mut().append_pair("token", token);
    for (k, v) in query {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

/// A request to `/in/{path}` with the token in the query.
pub(crate) async fn send(
    t: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = t
        .client
        .request(method, in_url(t, &format!("/in/{path}"), token, &[]));
    if let Some(body) = body {
        req = req.json(&body);
    }
    body_json(req.send().await.unwrap()).await
}

pub(crate) async fn read(t: &TestApp, path: &str, token: &str, query: &[(&str, &str)]) -> Value {
    let response = t
        .client
        .get(in_url(t, &format!("/in/{path}"), token, query))
        .send()
        .await
        .unwrap();
    let (status, out) = body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

#[tokio::test]
async fn inboxes_are_managed_and_tokens_are_shown_once_and_stored_hashed() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Factory").await;
    let (created, token) = inbox(
        &t,
        json!({"name": "factory", "appId": app, "description": "impCentral webhooks",
               "forward": {"eventTypeFrom": "path"}}),
    )
    .await;
    assert!(token.starts_with("hin_"), "{token}");
    assert_eq!(created["name"], "factory");
    assert_eq!(created["appId"], app.as_str());
    assert_eq!(
        created["ingestUrl"],
        t.url(&format!("/in/{app}/factory")).as_str()
    );
    assert_eq!(created["forward"], json!({"eventTypeFrom": "path"}));
    let id = created["id"].as_str().unwrap();

    let (status, got) = t.get("/api/v1/inbox/factory").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], id);
    assert!(got.get("token").is_none(), "the token is shown once");
    let (_, list) = t.get("/api/v1/inbox").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Names are unique within an application; bad settings are 422 naming the field.
    let (status, _) = t
        .post("/api/v1/inbox", json!({"name": "factory", "appId": app}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, out) = t
        .post(
            "/api/v1/inbox",
            json!({"name": "bad name", "forward": {"eventTypeFrom": "header"},
                   "verification": {"scheme": "hmac-sha1-hex"}, "rateLimit": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let locs = crate::helpers::error_locs(&out);
    for loc in [
        "body.name",
        "body.forward.header",
        "body.verification.secret",
        "body.rateLimit",
    ] {
        assert!(
            locs.contains(&loc.to_owned()),
            "{loc} missing from {locs:?}"
        );
    }
    let (status, out) = t
        .post(
            "/api/v1/inbox",
            json!({"name": "ok", "forward": {"eventTypeFrom": "path"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        crate::helpers::error_locs(&out),
        ["body.forward"],
        "forwarding needs an application"
    );

    let (status, patched) = t
        .call(
            Method::PATCH,
            "/api/v1/inbox/factory",
            Some(json!({"description": "changed", "forward": null, "maxBodyBytes": 2048})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "changed");
    assert_eq!(patched["forward"], Value::Null);
    assert_eq!(patched["maxBodyBytes"], 2048);

    // The token works, and stops working when rotated.
    let (status, _) = send(&t, Method::POST, "factory/x", &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, rotated) = t
        .post("/api/v1/inbox/factory/token/rotate", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_token = rotated["token"].as_str().unwrap();
    let (status, out) = send(&t, Method::POST, "factory/x", &token, Some(json!({"a": 2}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
    let (status, _) = send(
        &t,
        Method::POST,
        "factory/x",
        new_token,
        Some(json!({"a": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = t
        .call(Method::DELETE, &format!("/api/v1/inbox/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A deleted (or never created) inbox answers as a wrong token does: names cannot be probed.
    let gone = send(&t, Method::POST, "factory/x", new_token, Some(json!({}))).await;
    assert_eq!(gone.0, StatusCode::UNAUTHORIZED);
    let never = send(&t, Method::POST, "nobody/x", new_token, Some(json!({}))).await;
    assert_eq!(gone, never);

    let dir = t.stop().await;
    let db = std::fs::read(dir.path().join("herald.db")).unwrap();
    let wal = std::fs::read(dir.path().join("herald.db-wal")).unwrap_or_default();
    for secret in [&token, new_token] {
        let needle = secret.as_bytes();
        for file in [&db, &wal] {
            assert!(
                !file.windows(needle.len()).any(|w| w == needle),
                "an ingest token is stored in the clear"
            );
        }
    }
}

#[tokio::test]
async fn post_put_and_patch_follow_firebase() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "factory"})).await;

    // POST appends with a generated, time-ordered key, as the impCentral blessing webhook does.
    let (status, first) = send(
        &t,
        Method::POST,
        "factory/blessing.json",
        &token,
        Some(json!({"device_id": "c0010c2a69f088a4", "mac": "0c2a69f088a4"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first = first["name"].as_str().unwrap().to_owned();
    // `.json` is optional, and the token may come as a bearer token.
    let response = t
        .client
        .post(t.url("/in/factory/blessing"))
        .bearer_auth(&token)
        .json(&json!({"device_id": "c0010c2a69f088a5"}))
        .send()
        .await
        .unwrap();
    let (status, second) = body_json(response).await;
    assert_eq!(status, StatusCode::OK);
    let second = second["name"].as_str().unwrap().to_owned();
    assert!(first < second, "keys are time-ordered");
    assert_eq!(
        read(&t, "factory/blessing.json", &token, &[]).await,
        json!({
            first.clone(): {"device_id": "c0010c2a69f088a4", "mac": "0c2a69f088a4"},
            second.clone(): {"device_id": "c0010c2a69f088a5"},
        })
    );
    assert_eq!(
        read(&t, &format!("factory/blessing/{first}/mac"), &token, &[]).await,
        json!("0c2a69f088a4")
    );

    // PUT replaces the value at the path; PATCH merges children.
    let (status, out) = send(
        &t,
        Method::PUT,
        "factory/devices/abc.json",
        &token,
        Some(json!({"state": "blessed", "fw": 1})),
    )
    .await;
    assert_eq!(
        (status, out),
        (StatusCode::OK, json!({"state": "blessed", "fw": 1}))
    );
    send(
        &t,
        Method::PUT,
        "factory/devices/abc/fw",
        &token,
        Some(json!(2)),
    )
    .await;
    let (status, out) = send(
        &t,
        Method::PATCH,
        "factory/devices/abc.json",
        &token,
        Some(json!({"state": "shipped", "owner": "acme"})),
    )
    .await;
    assert_eq!(
        (status, out),
        (StatusCode::OK, json!({"state": "shipped", "owner": "acme"}))
    );
    assert_eq!(
        read(&t, "factory/devices.json", &token, &[]).await,
        json!({"abc": {"fw": 2, "owner": "acme", "state": "shipped"}})
    );
    send(
        &t,
        Method::PUT,
        "factory/devices.json",
        &token,
        Some(json!({"def": {"state": "new"}})),
    )
    .await;
    assert_eq!(
        read(&t, "factory/devices.json", &token, &[]).await,
        json!({"def": {"state": "new"}}),
        "PUT replaces everything under its path"
    );

    // Form bodies are parsed; other bodies are kept as text.
    let response = t
        .client
        .post(in_url(&t, "/in/factory/forms", &token, &[]))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("device%5Bid%5D=7&ok=true")
        .send()
        .await
        .unwrap();
    let (status, key) = body_json(response).await;
    assert_eq!(status, StatusCode::OK);
    let key = key["name"].as_str().unwrap();
    assert_eq!(
        read(&t, &format!("factory/forms/{key}"), &token, &[]).await,
        json!({"device": {"id": "7"}, "ok": "true"})
    );
    let response = t
        .client
        .put(in_url(&t, "/in/factory/note", &token, &[]))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        read(&t, "factory/note.json", &token, &[]).await,
        json!("hello")
    );
    assert_eq!(
        read(&t, "factory/nothing.json", &token, &[]).await,
        Value::Null
    );
    let root = read(&t, "factory/.json", &token, &[]).await;
    let mut keys: Vec<&String> = root.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["blessing", "devices", "forms", "note"]);

    // Bad writes are refused and store nothing.
    let (status, _) = send(
        &t,
        Method::PATCH,
        "factory/devices",
        &token,
        Some(json!([1])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&t, Method::PUT, "factory", &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&t, Method::POST, "factory/a.b/c", &token, Some(json!(1))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let response = t
        .client
        .post(in_url(&t, "/in/factory/blessing.json", &token, &[]))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = send(
        &t,
        Method::POST,
        "factory/blessing",
        "hin_wrong",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = t
        .client
        .get(t.url("/in/factory/blessing.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "reads need the token too"
    );
    let (_, entries) = t.get("/api/v1/inbox/factory/entries?path=blessing").await;
    assert_eq!(entries["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tree_reads_order_and_limit_by_key() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "readings"})).await;
    let mut keys = Vec::new();
    for i in 0..6 {
        let (_, out) = send(
            &t,
            Method::POST,
            "readings/temp",
            &token,
            Some(json!({"c": i})),
        )
        .await;
        keys.push(out["name"].as_str().unwrap().to_owned());
    }
    let children = |v: Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let by_key = [("orderBy", "\"$key\"")];
    let first = read(
        &t,
        "readings/temp.json",
        &token,
        &[by_key[0], ("limitToFirst", "2")],
    )
    .await;
    assert_eq!(children(first), keys[..2]);
    let last = read(
        &t,
        "readings/temp.json",
        &token,
        &[by_key[0], ("limitToLast", "2")],
    )
    .await;
    assert_eq!(children(last.clone()), keys[4..]);
    assert_eq!(last[&keys[5]], json!({"c": 5}));
    let start = format!("\"{}\"", keys[2]);
    let end = format!("\"{}\"", keys[3]);
    let range = read(
        &t,
        "readings/temp.json",
        &token,
        &[by_key[0], ("startAt", &start), ("endAt", &end)],
    )
    .await;
    assert_eq!(children(range), keys[2..4]);
    let paged = read(
        &t,
        "readings/temp.json",
        &token,
        &[by_key[0], ("startAt", &start), ("limitToFirst", "3")],
    )
    .await;
    assert_eq!(children(paged), keys[2..5]);
    let response = t
        .client
        .get(in_url(
            &t,
            "/in/readings/temp.json",
            &token,
            &[("orderBy", "\"$value\"")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn entries_list_with_filters_and_cursor_paging() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "box"})).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for i in 0..5 {
        send(
            &t,
            Method::POST,
            "box/blessing",
            &token,
            Some(json!({"i": i})),
        )
        .await;
        send(
            &t,
            Method::POST,
            "box/blinkup",
            &token,
            Some(json!({"i": i})),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut iterator = String::new();
    loop {
        let (status, page) = t
            .get(&format!(
                "/api/v1/inbox/box/entries?path=blessing&limit=2&iterator={iterator}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for e in page["data"].as_array().unwrap() {
            assert_eq!(e["path"], "blessing");
            assert_eq!(e["method"], "POST");
            assert_eq!(e["encoding"], "json");
            assert_eq!(e["sourceAddress"], "127.0.0.1");
            assert_eq!(e["headers"]["content-type"], "application/json");
            assert!(e["headers"].get("authorization").is_none());
            seen.push(e["value"]["i"].as_i64().unwrap());
        }
        if page["done"] == true {
            break;
        }
        iterator = page["iterator"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    let (_, newest) = t
        .get("/api/v1/inbox/box/entries?order=descending&limit=1")
        .await;
    assert_eq!(newest["data"][0]["path"], "blinkup");
    assert_eq!(newest["data"][0]["value"], json!({"i": 4}));
    let after = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (_, all) = t
        .get(&format!(
            "/api/v1/inbox/box/entries?after={}&limit=50",
            after.replace('+', "%2B")
        ))
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 10);
    let (_, none) = t
        .get(&format!(
            "/api/v1/inbox/box/entries?before={}",
            after.replace('+', "%2B")
        ))
        .await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn app_scoped_tokens_manage_only_their_applications_inboxes() {
    let t = TestApp::spawn().await;
    let mine = t.create_app("Mine").await;
    let theirs = t.create_app("Theirs").await;
    let key = t.api_key(json!({"role": "app", "appId": mine})).await;
    let (status, created) = t
        .call_as(
            &key,
            Method::POST,
            "/api/v1/inbox",
            Some(json!({"name": "own"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["appId"],
        mine.as_str(),
        "attached to the token's application"
    );
    let (status, _) = t
        .call_as(
            &key,
            Method::POST,
            "/api/v1/inbox",
            Some(json!({"name": "x", "appId": theirs})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    inbox(&t, json!({"name": "admins"})).await;
    let (status, _) = t
        .call_as(&key, Method::GET, "/api/v1/inbox/admins", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = t.call_as(&key, Method::GET, "/api/v1/inbox", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (status, _) = t
        .call_as(
            &key,
            Method::PATCH,
            "/api/v1/inbox/own",
            Some(json!({"appId": null})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reader = t.api_key(json!({"role": "read-only"})).await;
    let (status, _) = t
        .call_as(&reader, Method::GET, "/api/v1/inbox/admins/entries", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call_as(&reader, Method::DELETE, "/api/v1/inbox/admins", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn the_openapi_document_describes_the_inbox_routes() {
    let doc = serde_json::to_value(herald::api::openapi_document()).unwrap();
    let paths = &doc["paths"];
    for path in [
        "/api/v1/inbox",
        "/api/v1/inbox/{inbox_id}",
        "/api/v1/inbox/{inbox_id}/token/rotate",
        "/api/v1/inbox/{inbox_id}/entries",
        "/api/v1/inbox/{inbox_id}/export",
    ] {
        assert!(paths.get(path).is_some(), "{path} is not documented");
    }
    let ingest = &paths["/in/{inbox}/{path}"];
    for method in ["get", "post", "put", "patch"] {
        assert!(
            ingest.get(method).is_some(),
            "{method} /in/… is not documented"
        );
    }
}

/// A value stored before nesting was limited (a form write thousands of levels deep, too deep
/// for the JSON reader) reads as a marker in its place: the inbox's tree, entries and exports
/// answer 200, and a write over that place replaces it.
#[tokio::test]
async fn a_value_stored_too_deep_to_read_reads_as_a_marker() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "legacy"})).await;
    let (status, _) = send(
        &t,
        Method::PUT,
        "legacy/deep",
        &token,
        Some(json!({"a": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&t, Method::PUT, "legacy/fine", &token, Some(json!(2))).await;
    assert_eq!(status, StatusCode::OK);
    // What a write made before the limit left behind.
    let db = t.data_dir.join("herald.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    let deep = format!("{}\"1\"{}", "{\"b\":".repeat(3_000), "}".repeat(3_000));
    let changed = sqlx::query("UPDATE inbox_entries SET value = $1 WHERE key = 'deep'")
        .bind(&deep)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1);

    let marker = |value: &Value| {
        value["$unreadable"]
            .as_str()
            .is_some_and(|why| why.contains("cannot be read back"))
    };
    let tree = read(&t, "legacy/.json", &token, &[]).await;
    assert!(marker(&tree["deep"]), "{tree}");
    assert_eq!(tree["fine"], 2);
    assert!(marker(&read(&t, "legacy/deep.json", &token, &[]).await));
    let (status, entries) = t.get("/api/v1/inbox/legacy/entries").await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    assert!(
        entries["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| marker(&e["value"]))
    );
    for format in ["json", "csv"] {
        let response = t
            .request(
                Method::GET,
                &format!("/api/v1/inbox/legacy/export?format={format}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{format}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("cannot be read back")
        );
    }
    let (status, _) = send(&t, Method::PUT, "legacy/deep", &token, Some(json!("new"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read(&t, "legacy/deep.json", &token, &[]).await,
        json!("new")
    );
    t.stop().await;
}
