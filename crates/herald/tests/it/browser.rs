//! The portal and the operator console in a real browser: `tests/browser/portal.mjs` drives
//! Debian's Chromium with `playwright-core` against a Herald and a test receiver started here.
//!
//! It needs `HERALD_BROWSER_NODE_MODULES` (a node_modules holding `playwright-core`) and
//! Chromium at `/usr/bin/chromium` (or `CHROMIUM`); `.ci/run` prepares both, elsewhere the test
//! skips and says why. Screenshots go to `target/browser-screenshots/` (or
//! `HERALD_BROWSER_SCREENSHOTS`).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::receiver::{Receiver, Step};

fn repo_path(path: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The script, copied next to the node_modules so that Node finds `playwright-core`, and the
/// browser; `None` (after saying why) when either is missing.
fn prerequisites() -> Option<(PathBuf, String)> {
    let Ok(modules) = std::env::var("HERALD_BROWSER_NODE_MODULES") else {
        eprintln!(
            "skipping: set HERALD_BROWSER_NODE_MODULES to a node_modules with `playwright-core` (.ci/run does)"
        );
        return None;
    };
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        eprintln!("skipping: no Chromium at {chromium} (apt-get install chromium)");
        return None;
    }
    let script = std::path::Path::new(&modules)
        .parent()
        .unwrap()
        .join("herald_portal.mjs");
    std::fs::copy(repo_path("tests/browser/portal.mjs"), &script).unwrap();
    Some((script, chromium))
}

fn screenshots() -> PathBuf {
    std::env::var("HERALD_BROWSER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_path("target/browser-screenshots"))
}

/// Opens a portal link, creates an endpoint, sends an example, sees the message and its
/// successful attempt, resends, reads the message log, rotates the secret, signs out; then the
/// operator signs in and exports an inbox as CSV. Each step saves a screenshot.
#[tokio::test]
async fn portal_and_console_in_chromium() {
    let Some((script, chromium)) = prerequisites() else {
        return;
    };
    let t = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let app = t
        .post("/api/v1/app", json!({"name": "Acme Corp", "uid": "acme"}))
        .await;
    assert_eq!(app.0, StatusCode::CREATED, "{}", app.1);
    let (status, out) = t
        .post(
            "/api/v1/event-type",
            json!({"name": "order.status", "description": "An order changed status",
                "schemas": {"1": {"type": "object",
                    "properties": {"id": {"type": "integer"}, "status": {"type": "string"}},
                    "examples": [{"id": 1234, "status": "shipped"}]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    // A second endpoint that always fails, so that the log shows failures too.
    receiver.always("/down", Step::Status(500));
    t.create_endpoint(
        "acme",
        json!({"url": receiver.url("/down"), "description": "Old receiver",
            "eventTypes": ["order.status"], "retrySchedule": [1]}),
    )
    .await;
    let (_, link) = t
        .post("/api/v1/auth/app-portal-access/acme", json!({}))
        .await;
    let (status, inbox) = t.post("/api/v1/inbox", json!({"name": "factory"})).await;
    assert_eq!(status, StatusCode::CREATED, "{inbox}");
    let ingest = inbox["token"].as_str().unwrap();
    for device in ["c0010c2a69f088a4", "c0010c2a69f088b5"] {
        let written = t
            .client
            .post(t.url(&format!("/in/factory/testresult.json?token={ingest}")))
            .json(&json!({"device_id": device, "type": "imp005"}))
            .send()
            .await
            .unwrap();
        assert!(written.status().is_success());
    }

    let shots = screenshots();
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new("node")
            .arg(&script)
            .env("HERALD_URL", &t.base)
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .env("PORTAL_URL", link["url"].as_str().unwrap())
            .env("RECEIVER_URL", receiver.url("/orders"))
            .env("APP", "acme")
            .env("EVENT_TYPE", "order.status")
            .env("INBOX", "factory")
            .env("SCREENSHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output(),
    )
    .await
    .expect("the browser script finishes within 3 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser script failed");
    let summary: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();

    // What the browser did happened: two deliveries of one message (example, resend) ...
    let received = receiver
        .wait_for("/orders", 2, Duration::from_secs(10))
        .await;
    let ids: Vec<_> = received.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids[0], Some(summary["message"].as_str().unwrap()));
    assert_eq!(ids[0], ids[1]);
    assert_eq!(
        serde_json::from_slice::<Value>(&received[0].body).unwrap(),
        json!({"id": 1234, "status": "shipped"})
    );
    // ... the rotated secret is the endpoint's ...
    let endpoint = summary["endpoint"].as_str().unwrap();
    let (_, secret) = t
        .get(&format!("/api/v1/app/acme/endpoint/{endpoint}/secret"))
        .await;
    assert_eq!(secret["key"], summary["secret"]);
    let (_, e) = t
        .get(&format!("/api/v1/app/acme/endpoint/{endpoint}"))
        .await;
    assert_eq!(e["timeoutSeconds"], 10);
    assert_eq!(e["retrySchedule"], json!([1, 2, 3]));
    assert_eq!(e["eventTypes"], json!(["order.status"]));
    // ... and the export holds the inbox's entries.
    let csv = summary["csv"].as_str().unwrap();
    assert!(
        csv.contains("c0010c2a69f088a4") && csv.contains("c0010c2a69f088b5"),
        "{csv}"
    );
    for name in [
        "endpoint",
        "message-log",
        "message",
        "attempt",
        "secret",
        "dashboard",
        "inbox",
    ] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}.png"
        );
    }
    t.stop().await;
}
