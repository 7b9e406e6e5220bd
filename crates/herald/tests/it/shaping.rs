//! Payload shaping and routing end to end: encodings, envelopes, GraphQL selections (local and
//! against a GraphQL server started here), filters, event-type patterns, reserved headers and
//! `send-example`. Bodies are compared byte for byte and signatures checked over them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};
use crate::receiver::{Received, Receiver};
use crate::signatures::{hex, hmac1};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "sharedSecret";

fn text(r: &Received) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

/// An endpoint signing with hex HMAC-SHA1 (so the test checks the signature over the exact
/// bytes) plus `extra` settings.
async fn endpoint(t: &TestApp, app: &str, url: String, extra: Value) -> String {
    let mut body = json!({"url": url, "secret": KEY, "signature": {"scheme": "hmac-sha1-hex"}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    t.create_endpoint(app, body).await
}

fn assert_signed(r: &Received) {
    assert_eq!(
        r.header("x-signature").unwrap(),
        hex(&hmac1(KEY.as_bytes(), &r.body)),
        "signature over the bytes received"
    );
}

#[tokio::test]
async fn encodings_and_envelopes_shape_the_bytes_that_are_signed() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Shapes").await;
    let cases = [
        ("/raw", json!({}), "application/json"),
        (
            "/form",
            json!({"encoding": "form"}),
            "application/x-www-form-urlencoded",
        ),
        ("/typed", json!({"envelope": "typed"}), "application/json"),
        (
            "/typed-form",
            json!({"envelope": "typed", "encoding": "form"}),
            "application/x-www-form-urlencoded",
        ),
        (
            "/graphql",
            json!({"envelope": "graphql"}),
            "application/json",
        ),
    ];
    for (path, extra, _) in &cases {
        endpoint(&t, &app, r.url(path), extra.clone()).await;
    }
    let payload = r#"{"device_id": "30000c2a690a1e0b", "imp_id": "0c2a690a1e0b",  "tags": ["a", "b"], "battery": {"level": 7, "low": true}}"#;
    let (status, out) = t
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "blessing", "payload": serde_json::from_str::<Value>(payload).unwrap()})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    let msg = out["id"].as_str().unwrap();
    // The typed envelope's id is the message's serial, an integer (Impilo's).
    let serial = out["serial"].as_i64().unwrap();
    let published = serde_json::to_string(&out["payload"]).unwrap();
    let date = out["timestamp"].as_str().unwrap().to_owned();
    for (path, _, content_type) in &cases {
        let got = &r.wait_for(path, 1, WAIT).await[0];
        assert_eq!(got.header("content-type"), Some(*content_type), "{path}");
        assert_signed(got);
        let expected = match *path {
            "/raw" => published.clone(),
            "/form" => "device_id=30000c2a690a1e0b&imp_id=0c2a690a1e0b&tags%5B0%5D=a&tags%5B1%5D=b\
                        &battery%5Blevel%5D=7&battery%5Blow%5D=true"
                .to_owned(),
            "/typed" => format!(r#"{{"id":{serial},"type":"blessing","payload":{published}}}"#),
            "/typed-form" => format!(
                "id={serial}&type=blessing&payload%5Bdevice_id%5D=30000c2a690a1e0b\
                 &payload%5Bimp_id%5D=0c2a690a1e0b&payload%5Btags%5D%5B0%5D=a\
                 &payload%5Btags%5D%5B1%5D=b&payload%5Bbattery%5D%5Blevel%5D=7\
                 &payload%5Bbattery%5D%5Blow%5D=true"
            ),
            _ => {
                // Without a query, the graphql envelope carries the whole payload as `data`.
                let body: Value = serde_json::from_slice(&got.body).unwrap();
                assert_eq!(body["webhook"]["id"], msg);
                assert_eq!(body["webhook"]["trigger"], "blessing");
                assert_eq!(
                    chrono::DateTime::parse_from_rfc3339(body["webhook"]["date"].as_str().unwrap())
                        .unwrap(),
                    chrono::DateTime::parse_from_rfc3339(&date).unwrap()
                );
                assert_eq!(body["query"]["api"], "herald:payload");
                assert_eq!(
                    body["data"],
                    serde_json::from_str::<Value>(payload).unwrap()
                );
                continue;
            }
        };
        assert_eq!(text(got), expected, "{path}");
    }
    t.stop().await;
}

#[tokio::test]
async fn graphql_selections_run_on_the_payload() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Ideavate").await;
    let query = "query Switch($full: Boolean = false) {\n  \
                   switch: energySwitch { ...Basic supplier { name tariff @include(if: $full) } }\n  \
                   missing\n}\nfragment Basic on EnergySwitch { id status }";
    endpoint(
        &t,
        &app,
        r.url("/full"),
        json!({"envelope": "graphql", "graphql": {"query": query, "variables": {"full": true}}}),
    )
    .await;
    // Per event type: this query for EnergySwitchAdded, the default one for the rest.
    endpoint(
        &t,
        &app,
        r.url("/by-type"),
        json!({"graphql": {"query": query}, "graphqlByEventType": {
            "EnergySwitchAdded": {"query": "{ energySwitch { id } }"}}}),
    )
    .await;
    let payload = json!({"energySwitch": {"__typename": "EnergySwitch", "id": "sw-9",
        "status": "COMMISSIONED", "supplier": {"name": "Octo", "tariff": "Fixed"}, "secret": "x"}});
    for trigger in ["EnergySwitchUpdated", "EnergySwitchAdded"] {
        t.publish(&app, json!({"eventType": trigger, "payload": payload}))
            .await;
    }
    let full = r.wait_for("/full", 2, WAIT).await;
    let body: Value = serde_json::from_slice(&full[0].body).unwrap();
    assert_signed(&full[0]);
    assert_eq!(
        body["data"],
        json!({"switch": {"id": "sw-9", "status": "COMMISSIONED",
                          "supplier": {"name": "Octo", "tariff": "Fixed"}}, "missing": null})
    );
    assert_eq!(body["query"]["query"], query);
    assert_eq!(body["query"]["variables"], json!({"full": true}));
    assert_eq!(body["query"]["api"], "herald:payload");

    let by_type = r.wait_for("/by-type", 2, WAIT).await;
    let mut bodies: Vec<String> = by_type.iter().map(|r| text(r).to_owned()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![
            r#"{"energySwitch":{"id":"sw-9"}}"#.to_owned(),
            r#"{"switch":{"id":"sw-9","status":"COMMISSIONED","supplier":{"name":"Octo"}},"missing":null}"#
                .to_owned(),
        ]
    );
    t.stop().await;
}

/// What the GraphQL server saw: headers and bodies.
type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A small GraphQL API: it answers `device(id: $id)` from the variables, and errors for the
/// id `broken` until `fixed` is set.
async fn graphql_server(fixed: Arc<Mutex<bool>>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let handler = move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
        let log = log.clone();
        let fixed = fixed.clone();
        async move {
            log.lock().unwrap().push((headers.clone(), body.clone()));
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer api-key")
            {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"errors": [{"message": "no"}]})),
                );
            }
            let id = body["variables"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if id == "broken" && !*fixed.lock().unwrap() {
                return (
                    StatusCode::OK,
                    axum::Json(
                        json!({"data": null, "errors": [{"message": "device broken is unavailable"}]}),
                    ),
                );
            }
            (
                StatusCode::OK,
                axum::Json(json!({"data": {"device": {"id": id, "name": format!("Device {id}")}}})),
            )
        }
    };
    let router = axum::Router::new().route("/graphql", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn remote_graphql_api_answers_the_selection_and_its_errors_are_retried() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let fixed = Arc::new(Mutex::new(false));
    let (api, seen) = graphql_server(fixed.clone()).await;
    let (status, out) = t
        .post(
            "/api/v1/app",
            json!({"name": "Remote", "graphqlApi": {"url": api, "headers": {"Authorization": "Bearer api-key"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert_eq!(
        out["graphqlApi"],
        json!({"url": api}),
        "header values are never shown"
    );
    let app = out["id"].as_str().unwrap().to_owned();
    let query = "query($id: ID!) { device(id: $id) { id name } }";
    let ep = endpoint(
        &t,
        &app,
        r.url("/remote"),
        json!({"envelope": "graphql", "graphql": {"query": query}, "retrySchedule": [1]}),
    )
    .await;

    t.publish(
        &app,
        json!({"eventType": "device.online", "payload": {"id": "d-1", "other": 1}}),
    )
    .await;
    let got = &r.wait_for("/remote", 1, WAIT).await[0];
    assert_signed(got);
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        body["data"],
        json!({"device": {"id": "d-1", "name": "Device d-1"}})
    );
    assert_eq!(body["query"]["api"], api);
    assert_eq!(body["query"]["variables"], json!({"id": "d-1"}));
    let (headers, request) = seen.lock().unwrap()[0].clone();
    assert_eq!(request, json!({"query": query, "variables": {"id": "d-1"}}));
    assert_eq!(headers["content-type"], "application/json");

    // An error from the API fails the attempt, with the error recorded, and it is retried.
    let msg = t
        .publish(
            &app,
            json!({"eventType": "device.online", "payload": {"id": "broken"}}),
        )
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    let failed = loop {
        let attempts = t.attempts(&msg).await;
        if let Some(a) = attempts.first() {
            break a.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no attempt recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("device broken is unavailable")),
        "{failed:?}"
    );
    assert_eq!(
        r.received("/remote").len(),
        1,
        "nothing sent for the failed query"
    );
    *fixed.lock().unwrap() = true;
    t.wait_status(&msg, &ep, herald_core::model::DeliveryStatus::Success, WAIT)
        .await;
    let body: Value =
        serde_json::from_slice(&r.wait_for("/remote", 2, WAIT).await[1].body).unwrap();
    assert_eq!(body["data"]["device"]["name"], "Device broken");
    t.stop().await;
}

#[tokio::test]
async fn graphql_api_is_for_admins_and_checked() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Scoped").await;
    let token = t.api_key(json!({"role": "app", "appId": app})).await;
    let (status, out) = t
        .call_as(
            &token,
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"graphqlApi": {"url": "https://api.example.com/graphql"}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{out}");
    let (status, out) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"graphqlApi": {"url": "ftp://x", "headers": {"bad name": "v"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(
        error_locs(&out),
        vec!["body.graphqlApi.url", "body.graphqlApi.headers.bad name"]
    );
    // A PUT from a client that does not know the field keeps it; PATCH null removes it.
    let path = format!("/api/v1/app/{app}");
    let api = json!({"url": "https://api.example.com/graphql"});
    let (status, _) = t
        .call(Method::PATCH, &path, Some(json!({"graphqlApi": api})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, out) = t
        .call(Method::PUT, &path, Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(out["graphqlApi"], api);
    let (_, out) = t
        .call(Method::PATCH, &path, Some(json!({"graphqlApi": null})))
        .await;
    assert!(out.get("graphqlApi").is_none(), "{out}");
    t.stop().await;
}

#[tokio::test]
async fn invalid_queries_filters_and_patterns_are_refused_where_they_are() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Invalid").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    let (status, out) = t
        .post(
            &path,
            json!({"url": "https://example.com/hook",
                   "graphql": {"query": "query {\n  device { id\n"},
                   "graphqlByEventType": {"a.b": {"query": "mutation { delete }"}},
                   "filter": {"device.kind": {"$in": "private"}, "$where": 1},
                   "eventTypes": ["reading.*", "*", "bad space.*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let locs = error_locs(&out);
    for expected in [
        "body.graphql.query",
        "body.graphqlByEventType.a.b.query",
        "body.filter.device.kind.$in",
        "body.eventTypes.1",
        "body.eventTypes.2",
    ] {
        assert!(locs.iter().any(|l| l == expected), "{expected} in {locs:?}");
    }
    let detail = out["detail"].as_array().unwrap();
    let graphql = detail
        .iter()
        .find(|d| d["loc"] == json!(["body", "graphql", "query"]))
        .unwrap();
    let msg = graphql["msg"].as_str().unwrap();
    assert!(msg.contains("line 3, column"), "{msg}");
    assert!(
        !locs.iter().any(|l| l == "body.eventTypes.0"),
        "reading.* is a valid pattern"
    );
    t.stop().await;
}

#[tokio::test]
async fn patterns_channels_and_filters_route_end_to_end() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Routing").await;
    endpoint(
        &t,
        &app,
        r.url("/readings"),
        json!({"eventTypes": ["reading.*"]}),
    )
    .await;
    endpoint(&t, &app, r.url("/qa"), json!({"channels": ["team.qa"]})).await;
    endpoint(
        &t,
        &app,
        r.url("/low"),
        json!({"eventTypes": ["device.lowBattery"],
               "filter": {"device.kind": {"$in": ["private", "local"]}, "battery": {"$lt": 20}}}),
    )
    .await;
    let cases = [
        (
            json!({"eventType": "reading.weight", "payload": {"kg": 81}}),
            vec!["/readings"],
        ),
        (
            json!({"eventType": "device.lowBattery", "channels": ["team.qa"],
                   "payload": {"device": {"kind": "local"}, "battery": 7}}),
            vec!["/qa", "/low"],
        ),
        (
            json!({"eventType": "device.lowBattery",
                   "payload": {"device": {"kind": "public"}, "battery": 7}}),
            vec![],
        ),
        (
            json!({"eventType": "order.status", "channels": ["team.ops"], "payload": {}}),
            vec![],
        ),
    ];
    let mut expected_counts = std::collections::HashMap::new();
    for (body, targets) in cases {
        let msg = t.publish(&app, body.clone()).await;
        assert_eq!(t.deliveries(&msg).await.len(), targets.len(), "{body}");
        for target in targets {
            *expected_counts.entry(target).or_insert(0) += 1;
        }
    }
    for (path, n) in &expected_counts {
        r.wait_for(path, *n, WAIT).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/readings", "/qa", "/low"] {
        assert_eq!(r.received(path).len(), expected_counts[path], "{path}");
    }
    t.stop().await;
}

#[tokio::test]
async fn herald_headers_and_the_signature_header_cannot_be_overridden() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Headers").await;
    let ep = endpoint(&t, &app, "https://example.com/hook".into(), json!({})).await;
    for name in [
        "X-Signature",
        "webhook-id",
        "svix-signature",
        "Content-Type",
        "Host",
        "User-Agent",
    ] {
        let (status, out) = t
            .call(
                Method::PATCH,
                &format!("/api/v1/app/{app}/endpoint/{ep}/headers"),
                Some(json!({"headers": {name: "x"}})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {out}");
    }
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://example.com/x", "signature": {"scheme": "static-header"},
                   "headers": {"impilo-webhook-secret": "forged"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    t.stop().await;
}

#[tokio::test]
async fn send_example_goes_through_the_whole_pipeline_to_one_endpoint() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let (status, out) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "reading.weight", "description": "A weight reading",
                   "schemas": {"1": {"type": "object", "examples": [{"weight": 81.5, "unit": "kg"}]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    t.post(
        "/api/v1/event-type",
        json!({"name": "reading.none", "description": "No example"}),
    )
    .await;
    let app = t.create_app("Examples").await;
    let ep = endpoint(
        &t,
        &app,
        r.url("/example"),
        json!({"envelope": "typed", "eventTypes": ["order.status"]}),
    )
    .await;
    endpoint(&t, &app, r.url("/other"), json!({})).await;
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/send-example"),
            json!({"eventType": "reading.weight"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let serial = out["serial"].as_i64().unwrap();
    assert_eq!(out["payload"], json!({"weight": 81.5, "unit": "kg"}));
    let got = &r.wait_for("/example", 1, WAIT).await[0];
    assert_signed(got);
    assert_eq!(
        text(got),
        format!(
            r#"{{"id":{serial},"type":"reading.weight","payload":{{"weight":81.5,"unit":"kg"}}}}"#
        )
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        r.received("/other").is_empty(),
        "an example goes to one endpoint"
    );

    for (event_type, expected) in [
        ("reading.none", StatusCode::UNPROCESSABLE_ENTITY),
        ("reading.missing", StatusCode::NOT_FOUND),
    ] {
        let (status, out) = t
            .post(
                &format!("/api/v1/app/{app}/endpoint/{ep}/send-example"),
                json!({"eventType": event_type}),
            )
            .await;
        assert_eq!(status, expected, "{event_type}: {out}");
    }
    t.stop().await;
}
