//! No request can crash Herald. Nesting up to 100,000 levels, in every syntax a route parses
//! (form field names with plain and percent-encoded brackets, JSON arrays and objects, GraphQL
//! lists, objects, selections and variable defaults), is refused with a 4xx before anything
//! recurses, and the process serves on. Herald runs as a child process, so that a stack
//! overflow shows as a dead server rather than a dead test binary.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::child::{ChildServer, TOKEN, free_port};

async fn alive(server: &ChildServer, after: &str) {
    let health = server
        .client
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("herald died after {after}: {e}"));
    assert_eq!(health.status(), StatusCode::NO_CONTENT, "after {after}");
}

/// POSTs `body` as `content_type` to `path` with `token`, and the status.
async fn post_raw(
    server: &ChildServer,
    path: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> StatusCode {
    let response = server
        .client
        .post(server.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) => r.status(),
        Err(e) => panic!("{path}: no answer ({e})"),
    }
}

fn arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn objects(depth: usize) -> String {
    format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_in_every_syntax_is_refused_and_the_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path(), free_port(), &[]).await;
    let app = server.post("/api/v1/app", json!({"name": "Deep"})).await;
    let app = app["id"].as_str().unwrap().to_owned();
    let inbox = server
        .post("/api/v1/inbox", json!({"name": "deep", "appId": app}))
        .await;
    let ingest = inbox["token"].as_str().unwrap().to_owned();
    let form = "application/x-www-form-urlencoded";
    let json_type = "application/json";

    // Within the limits: accepted.
    let name = format!("a{}", "[b]".repeat(62));
    assert!(
        post_raw(&server, "/in/deep/ok", &ingest, form, format!("{name}=1"))
            .await
            .is_success()
    );

    for depth in [100, 1_000, 3_000, 100_000] {
        let cases: Vec<(&str, String, &str, String, StatusCode)> = vec![
            (
                "a form field name",
                format!("/in/deep/d{depth}"),
                form,
                format!("a{}=1", "[b]".repeat(depth)),
                StatusCode::BAD_REQUEST,
            ),
            (
                "a form field name with percent-encoded brackets",
                format!("/in/deep/e{depth}"),
                form,
                format!("x=1&a{}=1", "%5Bb%5D".repeat(depth)),
                StatusCode::BAD_REQUEST,
            ),
            (
                "JSON arrays in an inbox write",
                format!("/in/deep/f{depth}"),
                json_type,
                arrays(depth),
                StatusCode::BAD_REQUEST,
            ),
            (
                "JSON objects in an inbox write",
                format!("/in/deep/g{depth}"),
                json_type,
                objects(depth),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (what, path, content_type, body, expected) in cases {
            let status = post_raw(&server, &path, &ingest, content_type, body).await;
            assert_eq!(status, expected, "{what}, {depth} levels");
            alive(&server, &format!("{what}, {depth} levels")).await;
        }

        let msg_path = format!("/api/v1/app/{app}/msg");
        for (what, payload) in [("arrays", arrays(depth)), ("objects", objects(depth))] {
            let body = format!(r#"{{"eventType": "e", "payload": {{"p": {payload}}}}}"#);
            let status = post_raw(&server, &msg_path, TOKEN, json_type, body).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "a payload of {what}, {depth}"
            );
            alive(&server, &format!("a payload of {what}, {depth} levels")).await;
        }

        let endpoint_path = format!("/api/v1/app/{app}/endpoint");
        let queries = [
            (
                "a list argument",
                format!("query {{ a(x: {}) }}", arrays(depth)),
            ),
            (
                "an object argument",
                format!("query {{ a(x: {}) }}", objects(depth).replace('"', "")),
            ),
            (
                "selections",
                format!("query {}a{}", "{ a ".repeat(depth), " }".repeat(depth)),
            ),
            (
                "a variable's default",
                format!("query($v: [Int] = {}) {{ a }}", arrays(depth)),
            ),
        ];
        for (what, query) in queries {
            let body = json!({"url": "https://example.com/hook", "graphql": {"query": query}});
            let status =
                post_raw(&server, &endpoint_path, TOKEN, json_type, body.to_string()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "a GraphQL query nesting {what}, {depth} levels"
            );
            alive(&server, &format!("a GraphQL query nesting {what}, {depth}")).await;
        }
        let filter = format!(
            r#"{{"url": "https://example.com/hook", "filter": {{"a": {}}}}}"#,
            objects(depth)
        );
        let status = post_raw(&server, &endpoint_path, TOKEN, json_type, filter).await;
        assert!(
            status.is_client_error(),
            "a filter, {depth} levels: {status}"
        );
        alive(&server, &format!("a filter, {depth} levels")).await;
    }

    // The inbox still reads.
    let tree = server
        .client
        .get(server.url(&format!("/in/deep/ok.json?token={ingest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(tree.status(), StatusCode::OK);
    let tree: Value = tree.json().await.unwrap();
    assert_eq!(tree.as_object().map(|o| o.len()), Some(1), "{tree}");
    server.terminate().await;
}

/// An OpenAPI document given as text (`specRaw`, JSON or YAML) is held to the same nesting as
/// JSON bodies: flow-style brackets are counted before parsing, block-style indentation by the
/// YAML parser's budget, and `$ref` chains by the importer's own bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_as_text_are_bounded_and_the_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path(), free_port(), &[]).await;
    let path = "/api/v1/event-type/import/openapi";
    let json_type = "application/json";
    for depth in [100, 1_000, 100_000] {
        for (what, raw) in [
            ("flow arrays", arrays(depth)),
            ("flow objects", objects(depth)),
        ] {
            let body = json!({ "specRaw": raw }).to_string();
            let status = post_raw(&server, path, TOKEN, json_type, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}, {depth}");
            alive(&server, &format!("specRaw of {what}, {depth} levels")).await;
        }
    }
    for depth in [100, 700] {
        let block: String = (0..depth)
            .map(|level| format!("{}k{level}:\n", " ".repeat(level)))
            .collect::<String>()
            + &format!("{}leaf: 1\n", " ".repeat(depth));
        let body = json!({ "specRaw": block }).to_string();
        let status = post_raw(&server, path, TOKEN, json_type, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "block style, {depth}"
        );
        alive(&server, &format!("block-style YAML, {depth} levels")).await;
    }
}
