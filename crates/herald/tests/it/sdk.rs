//! The official Svix SDKs against a running Herald.
//!
//! These need Python with the `svix` and `standardwebhooks` packages (`HERALD_SDK_PYTHON`: the
//! interpreter) and Node with the same npm packages (`HERALD_SDK_NODE_MODULES`: a node_modules
//! directory holding them).
//! `.ci/run` prepares both; elsewhere the tests skip and say so.

use tokio::process::Command;

use crate::helpers::{ADMIN_TOKEN, TestApp};

fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Runs an SDK script against a fresh Herald and fails the test with its output if it fails.
async fn run_against_herald(program: &str, script: &std::path::Path) {
    let t = TestApp::spawn().await;
    let out = Command::new(program)
        .arg(script)
        .env("HERALD_URL", &t.base)
        .env("HERALD_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    eprintln!("{}", text.trim());
    t.stop().await;
}

fn python() -> Option<String> {
    let python = std::env::var("HERALD_SDK_PYTHON").ok();
    if python.is_none() {
        eprintln!(
            "skipping: set HERALD_SDK_PYTHON to a Python with `svix` and `standardwebhooks` installed"
        );
    }
    python
}

/// Node resolves packages from the script's directory upwards: the script runs as a copy placed
/// next to the node_modules that `HERALD_SDK_NODE_MODULES` names.
fn node_script(name: &str) -> Option<std::path::PathBuf> {
    let Ok(modules) = std::env::var("HERALD_SDK_NODE_MODULES") else {
        eprintln!(
            "skipping: set HERALD_SDK_NODE_MODULES to a node_modules with `svix` and `standardwebhooks`"
        );
        return None;
    };
    let script = std::path::Path::new(&modules)
        .parent()
        .unwrap()
        .join(format!("herald_{name}"));
    std::fs::copy(repo_file(&format!("tests/sdk/{name}")), &script).unwrap();
    Some(script)
}

#[tokio::test]
async fn svix_python_sdk() {
    if let Some(python) = python() {
        run_against_herald(&python, &repo_file("tests/sdk/svix_python.py")).await;
    }
}

#[tokio::test]
async fn svix_javascript_sdk() {
    if let Some(script) = node_script("svix_js.mjs") {
        run_against_herald("node", &script).await;
    }
}

/// Real deliveries verify with `standardwebhooks`, the Svix SDK's `Webhook` and plain HMAC in
/// Python: the README's receiver examples.
#[tokio::test]
async fn receivers_verify_deliveries_in_python() {
    if let Some(python) = python() {
        run_against_herald(&python, &repo_file("tests/sdk/verify_python.py")).await;
    }
}

/// The same in JavaScript, plus Ed25519 (`standard-v1a`) with only the public key.
#[tokio::test]
async fn receivers_verify_deliveries_in_javascript() {
    if let Some(script) = node_script("verify_js.mjs") {
        run_against_herald("node", &script).await;
    }
}
