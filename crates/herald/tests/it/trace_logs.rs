//! Secrets never reach the logs, even at trace level for every crate: the whole API is
//! exercised with every kind of secret Herald holds, then the log is searched for each.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::child;
use crate::observability::{collect_log, start_with_json_logs_and_env};
use crate::receiver::{Receiver, Step};

const ENCRYPTION_KEY: &str = "dHJhY2UtbG9nLXRlc3QtZW5jcnlwdGlvbi1rZXkhISE=";
const METRICS_TOKEN: &str = "trace-test-metrics-token-5b1e";
const ENDPOINT_SECRET: &str = "whsec_dHJhY2UtdGVzdC1lbmRwb2ludC1zZWNyZXQ=";
const ROTATED_SECRET: &str = "whsec_cm90YXRlZC10cmFjZS10ZXN0LXNlY3JldA==";
const HEADER_VALUE: &str = "Bearer receiver-credential-71d3";
const GRAPHQL_CREDENTIAL: &str = "Bearer graphql-credential-9c2a";
const INBOX_SECRET: &str = "inbox-verification-secret-4e7f";
const IMPILO_SECRET: &str = "impilo-webhook-secret-2d8a";
const TRANSFORMATION_VARIABLE: &str = "transformation-variable-6f0c";

#[tokio::test]
async fn trace_logs_hold_no_secret() {
    let r = Receiver::start().await;
    r.always("/fails", Step::Status(500));
    let (_dir, server, stderr) = start_with_json_logs_and_env(
        "trace",
        &[
            "--allow-network",
            "127.0.0.0/8",
            "--retry-schedule",
            "100ms",
        ],
        &[
            ("HERALD_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("HERALD_METRICS_TOKEN", METRICS_TOKEN),
        ],
    )
    .await;
    let collected = collect_log(stderr);
    let mut secrets: Vec<String> = [
        child::TOKEN,
        ENCRYPTION_KEY,
        METRICS_TOKEN,
        ENDPOINT_SECRET,
        ROTATED_SECRET,
        HEADER_VALUE,
        GRAPHQL_CREDENTIAL,
        INBOX_SECRET,
        TRANSFORMATION_VARIABLE,
    ]
    .map(str::to_owned)
    .to_vec();

    let app = server
        .post(
            "/api/v1/app",
            json!({"name": "Acme", "graphqlApi": {"url": r.url("/graphql"),
                   "headers": {"Authorization": GRAPHQL_CREDENTIAL}}}),
        )
        .await;
    let app = app["id"].as_str().unwrap().to_owned();
    let given = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/ok"), "secret": ENDPOINT_SECRET,
                   "headers": {"Authorization": HEADER_VALUE}}),
        )
        .await;
    let generated = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/fails"), "signature": {"scheme": "standard-v1a"}}),
        )
        .await;
    let generated_secret = server
        .get(&format!(
            "/api/v1/app/{app}/endpoint/{}/secret",
            generated["id"].as_str().unwrap()
        ))
        .await;
    secrets.push(generated_secret["key"].as_str().unwrap().to_owned());
    server
        .post(
            &format!(
                "/api/v1/app/{app}/endpoint/{}/secret/rotate",
                given["id"].as_str().unwrap()
            ),
            json!({"key": ROTATED_SECRET, "gracePeriodSeconds": 60}),
        )
        .await;
    let key = server
        .post("/api/v1/api-key", json!({"role": "app", "appId": app}))
        .await;
    let api_token = key["token"].as_str().unwrap().to_owned();
    secrets.push(api_token.clone());
    let portal = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    secrets.push(portal["token"].as_str().unwrap().to_owned());
    let inbox = server
        .post(
            "/api/v1/inbox",
            json!({"name": "factory", "verification": {"scheme": "hmac-sha256-hex",
                   "secret": INBOX_SECRET, "header": "x-signature"}}),
        )
        .await;
    let inbox_token = inbox["token"].as_str().unwrap().to_owned();
    secrets.push(inbox_token.clone());
    let ops = server
        .post(
            "/api/v1/operational-webhook/endpoint",
            json!({"url": r.url("/ops")}),
        )
        .await;
    let ops_secret = server
        .get(&format!(
            "/api/v1/operational-webhook/endpoint/{}/secret",
            ops["id"].as_str().unwrap()
        ))
        .await;
    secrets.push(ops_secret["key"].as_str().unwrap().to_owned());

    // The application's webhook secret, set through Impilo's API with the key in its header,
    // and sent by an Impilo webhook.
    let impilo = server
        .client
        .post(server.url("/api/v3/webhook-secret"))
        .header("Impilo-API-Key", &api_token)
        .json(&json!({"secret": IMPILO_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(impilo.status(), StatusCode::OK);
    secrets.push(IMPILO_SECRET.to_owned());
    server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": r.url("/impilo"), "profile": "impilo"}),
        )
        .await;

    // A transformation whose variable goes out in a header it adds.
    let transformation = server
        .client
        .patch(server.url(&format!(
            "/api/v1/app/{app}/endpoint/{}/transformation",
            given["id"].as_str().unwrap()
        )))
        .bearer_auth(child::TOKEN)
        .json(&json!({
            "code": "function handler(w) { w.headers['X-Token'] = w.variables.token; return w; }",
            "enabled": true,
            "variables": {"token": TRANSFORMATION_VARIABLE},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(transformation.status(), StatusCode::NO_CONTENT);

    // Every secret in use: tokens on requests, secrets signing deliveries, the inbox token in
    // a query string and a header, the metrics token.
    let used_key = server
        .client
        .get(server.url(&format!("/api/v1/app/{app}/msg")))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(used_key.status(), StatusCode::OK);
    server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.paid", "payload": {"n": 1}}),
        )
        .await;
    for request in [
        server
            .client
            .post(server.url(&format!("/in/factory/a?token={inbox_token}"))),
        server
            .client
            .post(server.url("/in/factory/b"))
            .bearer_auth(&inbox_token),
    ] {
        // Unsigned: refused by the inbox's verification, after the token was checked.
        let status = request
            .json(&json!({"x": 1}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let ok = r.wait_for("/ok", 1, Duration::from_secs(20)).await;
    assert_eq!(ok[0].header("x-token"), Some(TRANSFORMATION_VARIABLE));
    r.wait_for("/fails", 2, Duration::from_secs(20)).await;
    r.wait_for("/ops", 1, Duration::from_secs(20)).await;
    let impilo = r.wait_for("/impilo", 1, Duration::from_secs(20)).await;
    assert_eq!(
        impilo[0].header("impilo-webhook-secret"),
        Some(IMPILO_SECRET)
    );

    assert_eq!(server.terminate().await.code(), Some(0));
    let all = collected.await.unwrap();
    // Trace level was on, and the log covers queries, requests and deliveries.
    for expected in [
        r#""level":"TRACE""#,
        "sqlx::query",
        "on_request",
        "herald::worker",
    ] {
        assert!(all.contains(expected), "no {expected} in the log:\n{all}");
    }
    for secret in &secrets {
        let found: Vec<&str> = all
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            found.is_empty(),
            "{secret} was logged:\n{}",
            found.join("\n")
        );
    }
    // Secrets are also not logged in another spelling (base64 content of a whsec_ secret).
    for secret in [ENDPOINT_SECRET, ROTATED_SECRET] {
        let inner = secret.trim_start_matches("whsec_");
        assert!(!all.contains(inner), "{inner} was logged");
    }
}
