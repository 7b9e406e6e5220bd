//! The official Svix SDKs against a running Herald.
//!
//! These need Python with the `svix` package (`HERALD_SDK_PYTHON`: the interpreter) and Node
//! with the `svix` npm package (`HERALD_SDK_NODE_MODULES`: a node_modules directory holding it).
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

#[tokio::test]
async fn svix_python_sdk() {
    let Ok(python) = std::env::var("HERALD_SDK_PYTHON") else {
        eprintln!(
            "skipping svix_python_sdk: set HERALD_SDK_PYTHON to a Python with `svix` installed"
        );
        return;
    };
    run_against_herald(&python, &repo_file("tests/sdk/svix_python.py")).await;
}

#[tokio::test]
async fn svix_javascript_sdk() {
    let Ok(modules) = std::env::var("HERALD_SDK_NODE_MODULES") else {
        eprintln!(
            "skipping svix_javascript_sdk: set HERALD_SDK_NODE_MODULES to a node_modules with `svix`"
        );
        return;
    };
    // Node resolves `svix` from the script's directory upwards: run a copy placed next to the
    // given node_modules.
    let script = std::path::Path::new(&modules)
        .parent()
        .unwrap()
        .join("herald_svix_js.mjs");
    std::fs::copy(repo_file("tests/sdk/svix_js.mjs"), &script).unwrap();
    run_against_herald("node", &script).await;
}
