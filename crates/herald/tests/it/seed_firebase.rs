//! Electric Imp's Firebase tutorial (seed 001) replayed against an inbox as a customer would:
//! impCentral's Blessing and BlinkUp webhooks and the factory agent's test results posted
//! without a token (Firebase's write rule `auth == null`, Herald's `publicWrite`), each answered
//! with a Firebase push id, and the data exported as the tree Firebase's console exports; then
//! Firebase's REST details (`shallow`, `print`, `DELETE`, `PUT null`) and the per-address limit
//! on tokenless writes.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json as body_json};
use crate::inbox::{in_url, inbox, read, send};

mod rest;

/// impCentral's Blessing webhook body (Electric Imp's catalog example).
fn blessing() -> Value {
    json!({"device_id": "2349b1e0c6d5a07f", "imp_id": "0c2a690b3f418e52"})
}

/// impCentral's BlinkUp webhook body.
fn blinkup() -> Value {
    json!({"device_id": "2349b1e0c6d5a07f", "plan_id": "7d3e91a04bc25f68", "token": "e41f08c79a2b6d35"})
}

/// The tutorial's agent table: `device_id`, `mac`, `type`, `msg`.
fn testresult() -> Value {
    json!({"device_id": "c0010c2a69f088a4", "mac": "0c2a69f088a4", "type": "imp005",
           "msg": "Message from an imp"})
}

/// A tokenless POST of `body` as JSON, as impCentral and the agent's `http.post` send it.
async fn post_public(t: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    t.client
        .post(t.url(path))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Checks a POST's answer field by field: `{"name": <push id>}` and nothing else, the push id
/// stamped between `from` and `to` (milliseconds). Returns the push id.
async fn push_answer(response: reqwest::Response, from: i64, to: i64) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE].to_str().unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.unwrap();
    let fields = body.as_object().expect("the answer is an object");
    assert_eq!(fields.len(), 1, "{body}");
    let name = fields["name"].as_str().expect("`name` is a string");
    assert_eq!(name.len(), 20, "{name}");
    assert!(name.starts_with('-'), "{name}");
    assert!(
        name.bytes()
            .all(|b| herald_core::inbox::push_id::PUSH_CHARS.contains(&b)),
        "{name}"
    );
    let at = herald_core::inbox::push_id::timestamp_millis(name).unwrap() as i64;
    assert!(
        (from..=to).contains(&at),
        "{name} stamped {at}, not in {from}..={to}"
    );
    name.to_owned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn the_tutorial_flow_with_public_writes_and_a_tree_export() {
    let t = TestApp::spawn().await;
    let (created, token) = inbox(&t, json!({"name": "factory", "publicWrite": true})).await;
    assert_eq!(created["publicWrite"], true);
    let (_, got) = t.get("/api/v1/inbox/factory").await;
    assert_eq!(got["publicWrite"], true);
    let (_, list) = t.get("/api/v1/inbox").await;
    assert_eq!(list["data"][0]["publicWrite"], true);

    // What the customer pastes into impCentral and the agent: the ingest URL plus a file name.
    let ingest = created["ingestUrl"].as_str().unwrap();
    assert_eq!(ingest, t.url("/in/factory"));
    let from = now_ms();
    let blessed = push_answer(
        post_public(&t, "/in/factory/blessing.json", &blessing()).await,
        from,
        now_ms(),
    )
    .await;
    let blinked = push_answer(
        post_public(&t, "/in/factory/blinkup.json", &blinkup()).await,
        from,
        now_ms(),
    )
    .await;
    let tested = push_answer(
        post_public(&t, "/in/factory/testresult.json", &testresult()).await,
        from,
        now_ms(),
    )
    .await;
    assert!(
        blessed < blinked && blinked < tested,
        "keys sort in arrival order"
    );

    // The export Firebase's console makes: the data tree, no entry metadata, keys in order.
    let mut expected = json!({
        "blessing": {blessed.clone(): blessing()},
        "blinkup": {blinked.clone(): blinkup()},
        "testresult": {tested.clone(): testresult()},
    });
    let response = t
        .request(Method::GET, "/api/v1/inbox/factory/export?format=tree")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_DISPOSITION].to_str().unwrap(),
        "attachment; filename=\"factory-export.json\""
    );
    let text = response.text().await.unwrap();
    let exported: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(exported, expected);
    herald_core::inbox::tree::sort_keys(&mut expected);
    assert_eq!(text, expected.to_string(), "keys in byte order");
    // With `path`, the tree below it; the root read gives the same tree.
    let (status, below) = t
        .get("/api/v1/inbox/factory/export?format=tree&path=testresult")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(below, expected["testresult"]);
    assert_eq!(read(&t, "factory/.json", &token, &[]).await, expected);
    let by_auth = t
        .client
        .get(t.url(&format!("/in/factory/.json?auth={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(by_auth).await.1, expected);
    // Time filters belong to the entry exports.
    let (status, out) = t
        .get("/api/v1/inbox/factory/export?format=tree&after=2024-01-01T00:00:00Z")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(crate::helpers::error_locs(&out), ["query.after"]);

    // Reads and exports still need the token or an API key.
    for path in ["/in/factory/.json", "/in/factory/testresult.json"] {
        let response = t.client.get(t.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let anonymous = t
        .client
        .get(t.url("/api/v1/inbox/factory/export?format=tree"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A wrong token is refused, even where none is needed, and nothing is stored.
    let wrong = t
        .client
        .post(in_url(&t, "/in/factory/testresult.json", "hin_wrong", &[]))
        .json(&testresult())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        read(&t, "factory/testresult", &token, &[("shallow", "true")]).await,
        json!({tested: true})
    );

    // An inbox without publicWrite still wants its token, and says so as for a wrong one.
    inbox(&t, json!({"name": "private"})).await;
    let (status, out) =
        body_json(post_public(&t, "/in/private/blessing.json", &blessing()).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
    // Turned off, the factory inbox refuses tokenless writes too.
    let (status, patched) = t
        .call(
            Method::PATCH,
            "/api/v1/inbox/factory",
            Some(json!({"publicWrite": false})),
        )
        .await;
    assert_eq!(
        (status, &patched["publicWrite"]),
        (StatusCode::OK, &json!(false))
    );
    let (status, out) = t
        .call(
            Method::PATCH,
            "/api/v1/inbox/factory",
            Some(json!({"publicWrite": null})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(crate::helpers::error_locs(&out), ["body.publicWrite"]);
    let refused = post_public(&t, "/in/factory/blessing.json", &blessing()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

/// A client whose requests come from `address` (any of 127.0.0.0/8 reaches the server).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn public_writes_are_limited_per_source_address() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(
        &t,
        json!({"name": "slow", "publicWrite": true, "rateLimit": 1}),
    )
    .await;
    let url = t.url("/in/slow/blessing.json");
    let first = client_from("127.0.0.1");
    let second = client_from("127.0.0.2");
    assert_eq!(
        first
            .post(&url)
            .json(&blessing())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let limited = first.post(&url).json(&blessing()).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()[RETRY_AFTER].to_str().unwrap(), "1");
    let (_, out) = body_json(limited).await;
    assert!(
        out["detail"].as_str().unwrap().contains("from one address"),
        "{out}"
    );
    // Another address has its own bucket, and the token's holder the inbox's.
    assert_eq!(
        second
            .post(&url)
            .json(&blessing())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, _) = send(&t, Method::POST, "slow/blessing", &token, Some(blessing())).await;
    assert_eq!(status, StatusCode::OK);
    // The bucket fills again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        first
            .post(&url)
            .json(&blessing())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Without a rateLimit, 10 a second from one address.
    inbox(&t, json!({"name": "busy", "publicWrite": true})).await;
    let busy = t.url("/in/busy/testresult.json");
    let sends = (0..14).map(|_| first.post(&busy).json(&testresult()).send());
    let statuses: Vec<StatusCode> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((10..=11).contains(&accepted), "{statuses:?}");
    assert_eq!(accepted + limited, 14, "{statuses:?}");
}

#[tokio::test]
async fn verification_applies_to_tokenless_writes() {
    let t = TestApp::spawn().await;
    let secret = "imp-static-secret-4Kq";
    inbox(
        &t,
        json!({"name": "signed", "publicWrite": true,
               "verification": {"scheme": "static-header", "header": "X-Imp-Secret", "secret": secret}}),
    )
    .await;
    let url = t.url("/in/signed/blessing.json");
    let unsigned = t.client.post(&url).json(&blessing()).send().await.unwrap();
    let (status, out) = body_json(unsigned).await;
    assert_eq!(
        (status, &out["code"]),
        (StatusCode::UNAUTHORIZED, &json!("verification_failed"))
    );
    let signed = t
        .client
        .post(&url)
        .header("X-Imp-Secret", secret)
        .json(&blessing())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    let (_, inbox) = t.get("/api/v1/inbox/signed").await;
    assert_eq!(inbox["rejectedCount"], 1);
}

#[test]
fn the_openapi_document_describes_public_writes_deletes_and_tree_exports() {
    let doc = serde_json::to_value(herald::api::openapi_document()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for schema in ["InboxIn", "InboxPatch", "InboxOut"] {
        assert!(
            schemas[schema]["properties"]["publicWrite"].is_object(),
            "{schema} lacks publicWrite"
        );
    }
    assert!(
        schemas["InboxOut"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("publicWrite"))
    );
    let formats = schemas["ExportFormat"].to_string();
    for format in ["json", "csv", "tree"] {
        assert!(formats.contains(&format!("\"{format}\"")), "{formats}");
    }
    let ingest = &doc["paths"]["/in/{inbox}/{path}"];
    assert!(
        ingest["delete"].is_object(),
        "DELETE /in/… is not documented"
    );
    let params: Vec<&str> = ingest["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["shallow", "print", "orderBy", "limitToFirst"] {
        assert!(params.contains(&name), "{name} missing from {params:?}");
    }
    assert!(schemas["FirebasePrint"].to_string().contains("silent"));
}

/// The console shows an inbox as the Firebase console shows a database: a tree that opens and
/// closes, bounded, next to the entries; and exports the tree.
#[tokio::test]
async fn the_console_shows_the_inbox_as_a_tree() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "factory"})).await;
    let (_, posted) = send(
        &t,
        Method::POST,
        "factory/blessing",
        &token,
        Some(blessing()),
    )
    .await;
    let key = posted["name"].as_str().unwrap();
    for i in 0..55 {
        let at = format!("factory/testresult/r{i:02}");
        send(&t, Method::PUT, &at, &token, Some(json!({"n": i}))).await;
    }
    let mut console = crate::portal::Browser::new(&t);
    let csrf = console.csrf("/admin").await;
    console
        .post(
            "/admin/session",
            &[("_csrf", &csrf), ("token", crate::helpers::ADMIN_TOKEN)],
        )
        .await;
    let page = console.get("/admin/inbox/factory").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for expect in [
        "<details open><summary><code>factory</code>",
        "<code>blessing</code>",
        &format!("<code>{key}</code>"),
        "<code>testresult</code> <span class=\"hint\">(55)</span>",
        "…5 more",
        "Export tree",
        "Entries",
    ] {
        assert!(page.body.contains(expect), "the page lacks {expect}");
    }
    // Filtered by path, the tree starts there.
    let page = console.get("/admin/inbox/factory?path=blessing").await;
    assert!(
        page.body
            .contains("<details open><summary><code>blessing</code>")
    );
    assert!(!page.body.contains("<code>testresult</code>"));
    // The console's tree export is the API's.
    let exported = console.get("/admin/inbox/factory/export?format=tree").await;
    assert_eq!(exported.status, StatusCode::OK);
    let (_, api) = t.get("/api/v1/inbox/factory/export?format=tree").await;
    assert_eq!(serde_json::from_str::<Value>(&exported.body).unwrap(), api);
}
