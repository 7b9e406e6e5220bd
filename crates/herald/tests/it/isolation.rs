//! Tenant isolation, walked over every route of the OpenAPI document: another application's
//! token gets 403 or 404 and never the data, a read-only token cannot write anywhere, and
//! nothing of the first application changes on the way.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::receiver::Receiver;

/// Values that belong to tenant A and appear in no request of the walk: finding one in a
/// response means A's data leaked.
const PRIVATE: &[&str] = &[
    "Tenant A Corp",
    "a-private-payload-marker",
    "tenant-a-hook",
    "whsec_dGVuYW50LWEtc2VjcmV0LTAxMjM0NTY3",
    "tenant-a-header-value",
    "tenant-a-device-marker",
    "tenant-a-key-name",
    "tenant-a-inbox-marker",
    "operator-ops-hook",
];

/// Tenant A's resources, named by the path parameters that address them.
struct TenantA {
    params: BTreeMap<&'static str, String>,
    /// The operational webhook endpoint, for `{endpoint_id}` under /operational-webhook.
    ops_endpoint: String,
}

async fn tenant_a(t: &TestApp, r: &Receiver) -> TenantA {
    let (status, app) = t
        .post(
            "/api/v1/app",
            json!({"name": "Tenant A Corp", "uid": "tenant-a"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let app = app["id"].as_str().unwrap().to_owned();
    let endpoint = t
        .create_endpoint(
            &app,
            json!({
                "url": r.url("/tenant-a-hook"),
                "secret": "whsec_dGVuYW50LWEtc2VjcmV0LTAxMjM0NTY3",
                "headers": {"x-tenant": "tenant-a-header-value"},
            }),
        )
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "a.private", "payload": {"m": "a-private-payload-marker"}}),
        )
        .await;
    t.wait_status(
        &msg,
        &endpoint,
        DeliveryStatus::Success,
        Duration::from_secs(10),
    )
    .await;
    let attempt = t.attempts(&msg).await.remove(0).id.as_str().to_owned();
    let device_path = format!("/api/v1/app/{app}/device/dev-a");
    let (status, _) = t
        .call(
            Method::PUT,
            &device_path,
            Some(json!({"name": "tenant-a-device-marker", "kind": "private"})),
        )
        .await;
    assert!(status.is_success());
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("/api/v1/app/{app}/device-group/grp-a"),
            Some(json!({"test": true})),
        )
        .await;
    assert!(status.is_success());
    let (status, key) = t
        .post(
            "/api/v1/api-key",
            json!({"role": "app", "appId": app, "name": "tenant-a-key-name"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, inbox) = t
        .post(
            "/api/v1/inbox",
            json!({"name": "inbox-a", "description": "tenant-a-inbox-marker", "appId": app}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inbox}");
    let (status, ops) = t
        .post(
            "/api/v1/operational-webhook/endpoint",
            json!({"url": r.url("/operator-ops-hook")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ops}");
    let (status, _) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "a.private", "description": "A's event"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, task) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{endpoint}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    let (status, integration) = t
        .post(
            &format!("/api/v1/app/{app}/integration"),
            json!({"name": "A's integration"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{integration}");
    // An Impilo webhook (`/api/v3/webhook/{webhook_id}`): an endpoint with Impilo's profile.
    let (status, impilo) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/impilo-a"), "eventTypes": ["a.private"], "profile": "impilo"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{impilo}");
    // A polling endpoint with a consumer (`/poller/{sink_id}/consumer/{consumer_id}`).
    let sink = t.create_endpoint(&app, json!({"type": "polling"})).await;
    let (status, _) = t
        .get(&format!(
            "/api/v1/app/{app}/poller/{sink}/consumer/consumer-a"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let params = BTreeMap::from([
        ("sink_id", sink),
        ("consumer_id", "consumer-a".to_owned()),
        ("task_id", task["id"].as_str().unwrap().to_owned()),
        ("integ_id", integration["id"].as_str().unwrap().to_owned()),
        ("app_id", app),
        ("endpoint_id", endpoint),
        ("msg_id", msg),
        ("attempt_id", attempt),
        ("device_id", "dev-a".to_owned()),
        ("group", "grp-a".to_owned()),
        ("key_id", key["id"].as_str().unwrap().to_owned()),
        ("inbox_id", inbox["id"].as_str().unwrap().to_owned()),
        ("inbox", "inbox-a".to_owned()),
        ("path", "readings".to_owned()),
        ("event_type_name", "a.private".to_owned()),
        ("webhook_id", impilo["serial"].to_string()),
    ]);
    TenantA {
        params,
        ops_endpoint: ops["id"].as_str().unwrap().to_owned(),
    }
}

/// Every (method, path) of the OpenAPI document, with tenant A's ids filled in.
/// Every route of the OpenAPI document: its method, its template, and its path with tenant A's
/// values.
fn routes(a: &TenantA) -> Vec<(Method, String, String)> {
    let doc = serde_json::to_value(herald::api::openapi_document()).unwrap();
    let mut routes = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let mut path = template.clone();
            for (name, value) in &a.params {
                let value = if *name == "endpoint_id" && template.contains("operational-webhook") {
                    &a.ops_endpoint
                } else {
                    value
                };
                path = path.replace(&format!("{{{name}}}"), value);
            }
            assert!(
                !path.contains('{'),
                "a parameter of {template} has no value"
            );
            routes.push((method, template.clone(), path));
        }
    }
    assert!(routes.len() > 70, "only {} routes", routes.len());
    routes
}

/// Sends an empty write to `path` with `token`: `None` when it is refused (403; 401 on `/in/…`,
/// which takes inbox tokens only), else what happened.
async fn unrefused_write(t: &TestApp, token: &str, method: Method, path: &str) -> Option<String> {
    let response = t
        .request_as(token, method.clone(), path)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let expected = if path.starts_with("/in/") {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    };
    (status != expected).then(|| format!("{method} {path}: {status}"))
}

/// Everything of tenant A an admin can read, to compare before and after the walk.
async fn snapshot(t: &TestApp, a: &TenantA) -> Vec<Value> {
    let app = &a.params["app_id"];
    let ep = &a.params["endpoint_id"];
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/app/{app}"),
        format!("/api/v1/app/{app}/endpoint"),
        format!("/api/v1/app/{app}/endpoint/{ep}/secret"),
        format!("/api/v1/app/{app}/endpoint/{ep}/headers"),
        format!("/api/v1/app/{app}/msg?with_content=true"),
        format!("/api/v1/app/{app}/attempt/endpoint/{ep}"),
        format!("/api/v1/app/{app}/device"),
        format!("/api/v1/app/{app}/device-group"),
        "/api/v1/api-key".to_owned(),
        "/api/v1/inbox".to_owned(),
        "/api/v1/event-type".to_owned(),
        "/api/v1/operational-webhook/endpoint".to_owned(),
    ] {
        let (status, body) = t.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        out.push(body);
    }
    out
}

#[tokio::test]
async fn another_applications_token_gets_nothing_on_any_route() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let a = tenant_a(&t, &r).await;
    let b = t.create_app("Tenant B").await;
    let b_token = t.api_key(json!({"role": "app", "appId": b})).await;
    let before = snapshot(&t, &a).await;

    let mut report = Vec::new();
    for (method, _, path) in routes(&a) {
        if path == "/api/v1/auth/logout" {
            continue; // Ends the caller's own session; nothing of A's.
        }
        let mut request = t.request_as(&b_token, method.clone(), &path);
        if method != Method::GET {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        let leaked: Vec<&&str> = PRIVATE.iter().filter(|p| body.contains(**p)).collect();
        // A route naming A's resources answers 403 or 404 (`/in/…` takes inbox tokens only:
        // 401). Installation-wide routes may serve B for itself: lists answer with B's own
        // items, and B may create its own inbox (so an empty body is a 422).
        // (Event types are the installation's catalogue, shared by every application.) Impilo's
        // API (`/api/v3`) serves the key's own application: B may change its own there.
        let names_a = a
            .params
            .iter()
            .filter(|(name, _)| **name != "event_type_name")
            .any(|(_, v)| path.split('/').any(|s| s == v))
            || path.contains(&a.ops_endpoint);
        let allowed = match status {
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => true,
            StatusCode::UNAUTHORIZED => path.starts_with("/in/"),
            s if s.is_success() => {
                (method == Method::GET || path.starts_with("/api/v3/")) && !names_a
            }
            StatusCode::UNPROCESSABLE_ENTITY => !names_a,
            _ => false,
        };
        if !allowed || !leaked.is_empty() {
            report.push(format!(
                "{method} {path}: {status} leaked={leaked:?} {body}"
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    // B's own inbox cannot be attached to A, and the answer is the one for an application
    // that does not exist.
    let attach = |app: String| {
        t.call_as(
            &b_token,
            Method::POST,
            "/api/v1/inbox",
            Some(json!({"name": "sneaky", "appId": app})),
        )
    };
    let to_a = attach(a.params["app_id"].clone()).await;
    assert_eq!(to_a.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(to_a, attach("no-such-app".into()).await);
    assert_eq!(snapshot(&t, &a).await, before, "tenant A changed");
    t.stop().await;
}

#[tokio::test]
async fn a_read_only_token_cannot_write_on_any_route() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let a = tenant_a(&t, &r).await;
    let app = a.params["app_id"].clone();
    let scoped = t.api_key(json!({"role": "read-only", "appId": app})).await;
    let unscoped = t.api_key(json!({"role": "read-only"})).await;
    let before = snapshot(&t, &a).await;

    let mut report = Vec::new();
    for token in [&scoped, &unscoped] {
        for (method, _, path) in routes(&a) {
            // Ending its own session, or opening a console session of its own (read-only)
            // role, changes nothing of anyone's data (see `api_auth::whoami_and_console_sessions`).
            if method == Method::GET
                || path == "/api/v1/auth/logout"
                || path == "/api/v1/auth/console-session"
            {
                continue;
            }
            report.extend(unrefused_write(&t, token, method, &path).await);
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    assert_eq!(snapshot(&t, &a).await, before, "tenant A changed");
    t.stop().await;
}

/// What a customer's portal token may change: its application's endpoints and their
/// deliveries. Walked over every route of the OpenAPI document: every other write is 403 (the
/// application itself, publishing, inboxes, devices, keys, portal access, expunging), and
/// tenant A is unchanged.
#[tokio::test]
async fn a_portal_token_changes_nothing_but_what_a_customer_may() {
    const CUSTOMER_MAY: &[(&str, &str)] = &[
        ("POST", "/api/v1/app/{app_id}/endpoint"),
        ("PUT", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
        ("PATCH", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
        ("DELETE", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
        ("PUT", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
        (
            "PATCH",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
        ),
        (
            "PATCH",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation",
        ),
        (
            "POST",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation/simulate",
        ),
        ("POST", "/api/v1/auth/logout"),
    ];
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let a = tenant_a(&t, &r).await;
    let app = a.params["app_id"].clone();
    let (_, access) = t
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let portal = access["token"].as_str().unwrap().to_owned();
    let before = snapshot(&t, &a).await;

    let mut report = Vec::new();
    let mut refused = 0;
    for (method, template, path) in routes(&a) {
        if method == Method::GET || CUSTOMER_MAY.contains(&(method.as_str(), template.as_str())) {
            continue;
        }
        match unrefused_write(&t, &portal, method, &path).await {
            None => refused += 1,
            Some(line) => report.push(line),
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    assert!(refused > 30, "only {refused} writes walked");
    assert_eq!(snapshot(&t, &a).await, before, "tenant A changed");

    // And what it may, it can: a customer manages their endpoints.
    let (status, created) = t
        .call_as(
            &portal,
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://customer.example.com/hook"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ep = created["id"].as_str().unwrap();
    let (status, _) = t
        .call_as(
            &portal,
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"description": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call_as(
            &portal,
            Method::DELETE,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    t.stop().await;
}
