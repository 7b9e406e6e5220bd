//! Inboxes end to end: management, Firebase-style writes and reads on `/in/…`, entries,
//! streamed JSON and CSV exports, signature verification on ingest, limits, and forwarding into
//! an application as signed messages.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json as body_json};
use crate::receiver::Receiver;

/// Creates an inbox and returns (its answer, its token).
async fn inbox(t: &TestApp, body: Value) -> (Value, String) {
    let (status, out) = t.post("/api/v1/inbox", body).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    let token = out["token"].as_str().unwrap().to_owned();
    (out, token)
}

/// The URL of `path` (`/in/…`) with the token and `query` in its query string.
fn in_url(t: &TestApp, path: &str, token: &str, query: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&t.url(path)).unwrap();
    url.query_pairs_mut().append_pair("token", token);
    for (k, v) in query {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

/// A request to `/in/{path}` with the token in the query.
async fn send(
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

async fn read(t: &TestApp, path: &str, token: &str, query: &[(&str, &str)]) -> Value {
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
    assert_eq!(created["ingestUrl"], t.url("/in/factory").as_str());
    assert_eq!(created["forward"], json!({"eventTypeFrom": "path"}));
    let id = created["id"].as_str().unwrap();

    let (status, got) = t.get("/api/v1/inbox/factory").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], id);
    assert!(got.get("token").is_none(), "the token is shown once");
    let (_, list) = t.get("/api/v1/inbox").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Names are unique; bad settings are 422 naming the field.
    let (status, _) = t.post("/api/v1/inbox", json!({"name": "factory"})).await;
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
    let (status, _) = send(&t, Method::POST, "factory/x", new_token, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

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
async fn exports_stream_json_and_csv() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "factory"})).await;
    let bodies = [
        json!({"device_id": "a1", "mac": "0c:2a", "type": "imp005", "msg": "Message from an imp"}),
        json!({"device_id": "a2", "net": {"rssi": -60, "ssid": "lab, 2nd floor"}, "key": "k"}),
        json!({"device_id": "a3", "mac": "0c:2b", "tags": ["x", "y"], "msg": "line one\nline \"two\""}),
    ];
    let mut keys = Vec::new();
    for body in &bodies {
        let (_, out) = send(
            &t,
            Method::POST,
            "factory/testresult.json",
            &token,
            Some(body.clone()),
        )
        .await;
        keys.push(out["name"].as_str().unwrap().to_owned());
    }
    send(
        &t,
        Method::POST,
        "factory/blessing.json",
        &token,
        Some(json!({"other": true})),
    )
    .await;

    let response = t
        .request(
            Method::GET,
            "/api/v1/inbox/factory/export?format=csv&path=testresult",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-herald-entry-count"], "3");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        headers,
        [
            "key",
            "path",
            "receivedAt",
            "device_id",
            "mac",
            "type",
            "msg",
            "net.rssi",
            "net.ssid",
            "body.key",
            "tags.0",
            "tags.1"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let cell = |row: usize, column: &str| -> String {
        let i = headers.iter().position(|h| h == column).unwrap();
        rows[row][i].to_owned()
    };
    assert_eq!(cell(0, "key"), keys[0]);
    assert_eq!(cell(0, "path"), "testresult");
    assert!(chrono::DateTime::parse_from_rfc3339(&cell(0, "receivedAt")).is_ok());
    assert_eq!(cell(0, "msg"), "Message from an imp");
    assert_eq!(cell(1, "mac"), "", "a missing field is an empty cell");
    assert_eq!(cell(1, "net.ssid"), "lab, 2nd floor");
    assert_eq!(cell(1, "net.rssi"), "-60");
    assert_eq!(cell(1, "body.key"), "k");
    assert_eq!(cell(2, "msg"), "line one\nline \"two\"");
    assert_eq!(cell(2, "tags.1"), "y");

    let response = t
        .request(Method::GET, "/api/v1/inbox/factory/export?format=json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-herald-entry-count"], "4");
    let all: Value = response.json().await.unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["key"], keys[0].as_str());
    assert_eq!(all[0]["value"], bodies[0]);
    assert_eq!(all[3]["path"], "blessing");

    // An empty export is still well formed.
    let (_, token2) = inbox(&t, json!({"name": "empty"})).await;
    let _ = token2;
    let text = t
        .request(Method::GET, "/api/v1/inbox/empty/export?format=csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.trim(), "key,path,receivedAt");
    let empty: Value = t
        .request(Method::GET, "/api/v1/inbox/empty/export")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!([]));
}

#[tokio::test]
async fn ingest_verifies_signatures_and_counts_failures_without_storing() {
    let t = TestApp::spawn().await;
    // A Herald endpoint delivering into a Herald inbox: Standard Webhooks end to end.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (_, token) = inbox(
        &t,
        json!({"name": "upstream", "verification": {"scheme": "standard-v1", "secret": secret}}),
    )
    .await;
    let app = t.create_app("Sender").await;
    t.create_endpoint(
        &app,
        json!({"url": format!("{}?token={token}", t.url("/in/upstream/events.json")), "secret": secret}),
    )
    .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "device.blessed", "payload": {"device": "a1"}}),
        )
        .await;
    let mut entries = Value::Null;
    for _ in 0..250 {
        entries = read(&t, "upstream/events.json", &token, &[]).await;
        if !entries.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: Vec<&Value> = entries
        .as_object()
        .expect("the delivery was stored")
        .values()
        .collect();
    assert_eq!(stored, [&json!({"device": "a1"})]);
    let (_, listed) = t.get("/api/v1/inbox/upstream/entries").await;
    assert_eq!(listed["data"][0]["headers"]["webhook-id"], msg.as_str());

    // Forged or unsigned requests: 401, counted, not stored.
    let forged = t
        .client
        .post(in_url(&t, "/in/upstream/events.json", &token, &[]))
        .header("webhook-id", "msg_x")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,AAAA")
        .json(&json!({"device": "evil"}))
        .send()
        .await
        .unwrap();
    let (status, out) = body_json(forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
    assert_eq!(out["code"], "verification_failed");
    let (status, _) = send(
        &t,
        Method::POST,
        "upstream/events",
        &token,
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, got) = t.get("/api/v1/inbox/upstream").await;
    assert_eq!(got["rejectedCount"], 2);
    assert_eq!(got["verification"]["scheme"], "standard-v1");
    assert!(got["verification"].get("secret").is_none());
    assert_eq!(
        read(&t, "upstream/events.json", &token, &[])
            .await
            .as_object()
            .unwrap()
            .len(),
        1
    );

    // HMAC-SHA1 hex (Ideavate-style), computed here independently.
    let (_, token) = inbox(
        &t,
        json!({"name": "ideavate", "verification": {"scheme": "hmac-sha1-hex", "secret": "ideavate-shared-key-7Qz"}}),
    )
    .await;
    let body = br#"{"trigger":"energy"}"#;
    let good = crate::signatures::hex(&crate::signatures::hmac1(b"ideavate-shared-key-7Qz", body));
    for (signature, expected) in [
        (good.as_str(), StatusCode::OK),
        ("00ff", StatusCode::UNAUTHORIZED),
    ] {
        let response = t
            .client
            .post(in_url(&t, "/in/ideavate/hooks", &token, &[]))
            .header("content-type", "application/json")
            .header("X-Signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let (_, got) = t.get("/api/v1/inbox/ideavate").await;
    assert_eq!(got["rejectedCount"], 1);

    // A static-header secret is checked, and not kept with the entry.
    let (_, token) = inbox(
        &t,
        json!({"name": "impilo", "verification": {"scheme": "static-header", "secret": "impilo-static-secret-9Xw"}}),
    )
    .await;
    let response = t
        .client
        .post(in_url(&t, "/in/impilo/hooks", &token, &[]))
        .header("Impilo-Webhook-Secret", "impilo-static-secret-9Xw")
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, listed) = t.get("/api/v1/inbox/impilo/entries").await;
    assert!(
        listed["data"][0]["headers"]
            .get("impilo-webhook-secret")
            .is_none()
    );

    // The verification secrets are sealed at rest.
    let dir = t.stop().await;
    for file in ["herald.db", "herald.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        for needle in [&b"ideavate-shared-key-7Qz"[..], b"impilo-static-secret-9Xw"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{file} holds a verification secret in the clear"
            );
        }
    }
}

#[tokio::test]
async fn size_and_rate_limits() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(
        &t,
        json!({"name": "small", "maxBodyBytes": 16, "rateLimit": 3}),
    )
    .await;
    let (status, out) = send(
        &t,
        Method::POST,
        "small/x",
        &token,
        Some(json!({"long": "0123456789abcdef"})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{out}");
    let (status, _) = send(&t, Method::POST, "small/x", &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::OK);
    let mut limited = None;
    for _ in 0..5 {
        let response = t
            .client
            .post(in_url(&t, "/in/small/x", &token, &[]))
            .json(&json!({"a": 1}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the fourth request within a second is limited");
    assert_eq!(limited.headers()["retry-after"], "1");
    let (status, out) = t
        .post(
            "/api/v1/inbox",
            json!({"name": "huge", "maxBodyBytes": 100_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
}

#[tokio::test]
async fn forwarding_turns_writes_into_signed_messages() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Gateway").await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    t.create_endpoint(
        &app,
        json!({"url": r.url("/sub"), "secret": secret, "eventTypes": ["factory.blessing"]}),
    )
    .await;
    let (_, token) = inbox(
        &t,
        json!({"name": "imp", "appId": app, "forward": {"eventTypeFrom": "path"}}),
    )
    .await;
    let raw = r#"{"device_id": "c0010c2a69f088a4",  "result": "pass"}"#;
    let response = t
        .client
        .post(in_url(&t, "/in/imp/factory/blessing.json", &token, &[]))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (status, out) = body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let got = r.wait_for("/sub", 1, Duration::from_secs(5)).await;
    assert_eq!(got[0].body, raw.as_bytes(), "the body byte for byte");
    let msg_id = got[0].header("webhook-id").unwrap().to_owned();
    let args = [
        "--secret",
        secret,
        "-H",
        &format!("webhook-id: {msg_id}"),
        "-H",
        &format!(
            "webhook-timestamp: {}",
            got[0].header("webhook-timestamp").unwrap()
        ),
        "-H",
        &format!(
            "webhook-signature: {}",
            got[0].header("webhook-signature").unwrap()
        ),
    ];
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("verify")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    verify
        .stdin
        .as_ref()
        .unwrap()
        .write_all(&got[0].body)
        .unwrap();
    let output = verify.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let (_, message) = t.get(&format!("/api/v1/app/{app}/msg/{msg_id}")).await;
    assert_eq!(message["eventType"], "factory.blessing");
    let (_, entries) = t.get("/api/v1/inbox/imp/entries").await;
    assert_eq!(message["eventId"], entries["data"][0]["id"]);

    // The event type from a header: a write without it is refused (422) and stores nothing.
    let (status, _) = t
        .call(
            Method::PATCH,
            "/api/v1/inbox/imp",
            Some(json!({"forward": {"eventTypeFrom": "header", "header": "X-Event"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, out) = send(&t, Method::POST, "imp/any", &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let response = t
        .client
        .put(in_url(&t, "/in/imp/devices/abc", &token, &[]))
        .header("X-Event", "factory.blessing")
        .json(&json!("blessed"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let got = r.wait_for("/sub", 2, Duration::from_secs(5)).await;
    assert_eq!(
        got[1].body, br#"{"value":"blessed"}"#,
        "a value that is not an object is wrapped"
    );
    let (_, entries) = t.get("/api/v1/inbox/imp/entries").await;
    assert_eq!(entries["data"].as_array().unwrap().len(), 2);
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
