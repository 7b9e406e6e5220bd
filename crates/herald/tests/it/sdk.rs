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

/// Polling endpoints through the SDK's `message.poller` (`poll`, `consumer_poll`,
/// `consumer_seek`), each message verified with `standardwebhooks`.
#[tokio::test]
async fn svix_python_sdk_message_poller() {
    if let Some(python) = python() {
        run_against_herald(&python, &repo_file("tests/sdk/poller_python.py")).await;
    }
}

#[tokio::test]
async fn svix_javascript_sdk_message_poller() {
    if let Some(script) = node_script("poller_js.mjs") {
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

/// README's list of the operations of the official Svix Python SDK (the pinned version) and
/// whether Herald serves each cannot go stale: its rows are the SDK's operations, read from
/// the installed SDK's own code (`tests/sdk/operations.py`), and "yes" is written exactly
/// where Herald's OpenAPI document has the route.
#[tokio::test]
async fn the_readme_lists_every_sdk_operation_and_whether_herald_serves_it() {
    use std::collections::{BTreeMap, BTreeSet};
    let Some(python) = python() else {
        return;
    };
    let out = Command::new(&python)
        .arg(repo_file("tests/sdk/operations.py"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        sdk.len() > 100,
        "the SDK's operations were not found: {sdk:?}"
    );

    let t = TestApp::spawn().await;
    let (_, doc) = t.get("/api/v1/openapi.json").await;
    t.stop().await;
    let mut served = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let mut normalized = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    normalized.push_str("{}");
                }
                '}' => in_param = false,
                c if !in_param => normalized.push(c),
                _ => {}
            }
        }
        for method in ops.as_object().unwrap().keys() {
            served.insert(format!("{} {normalized}", method.to_uppercase()));
        }
    }

    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .split("<!-- sdk-operations:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- sdk-operations:end -->").next())
        .expect("README has the sdk-operations section");
    let listed: BTreeMap<String, bool> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let op = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((op.to_owned(), cells.get(2)?.starts_with("yes")))
        })
        .collect();
    let expected: BTreeMap<String, bool> = sdk
        .iter()
        .map(|op| (op.clone(), served.contains(op)))
        .collect();
    if listed != expected {
        let rows: String = expected
            .iter()
            .map(|(op, yes)| format!("| `{op}` | {} |\n", if *yes { "yes" } else { "not yet" }))
            .collect();
        panic!(
            "README's SDK operation list is out of date; the operations and what Herald serves:\n{rows}"
        );
    }
    let count = expected.values().filter(|yes| **yes).count();
    eprintln!(
        "Herald serves {count} of the SDK's {} operations",
        expected.len()
    );
}
