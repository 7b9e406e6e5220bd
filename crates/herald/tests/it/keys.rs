//! Rotating the encryption key with `herald secrets rotate-key`, both ways, and finishing an
//! interrupted rotation.

use std::path::Path;

use serde_json::json;

use crate::child::{ChildServer, free_port, herald_command};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// Starts a server, creates an endpoint with a known secret, stops; returns the secret's path.
async fn seed(dir: &Path, port: u16, env: &[(&str, &str)]) -> String {
    let server = ChildServer::start(dir, port, env).await;
    let app = server.post("/api/v1/app", json!({"name": "Keys"})).await;
    let app = app["id"].as_str().unwrap();
    let ep = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://example.com", "secret": SECRET, "headers": {"X-K": "v"}}),
        )
        .await;
    assert!(server.terminate().await.success());
    format!(
        "/api/v1/app/{app}/endpoint/{}/secret",
        ep["id"].as_str().unwrap()
    )
}

async fn rotate(dir: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = herald_command(dir)
        .args(["secrets", "rotate-key"])
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_with_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret_path = seed(dir.path(), port, &[]).await;
    let key_file = dir.path().join("herald-data/encryption.key");
    let before = std::fs::read_to_string(&key_file).unwrap();

    // Refused while a server holds the database.
    let running = ChildServer::start(dir.path(), port, &[]).await;
    let (code, err) = rotate(dir.path(), &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another herald process"), "{err}");
    assert!(running.terminate().await.success());

    let (code, err) = rotate(dir.path(), &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("re-encrypted 2 stored values"),
        "the secret and the headers: {err}"
    );
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after, "a new key file");
    assert!(!dir.path().join("herald-data/encryption.key.new").exists());

    let server = ChildServer::start(dir.path(), port, &[]).await;
    assert_eq!(server.get(&secret_path).await["key"], SECRET);
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret_path = seed(dir.path(), port, &[("HERALD_ENCRYPTION_KEY", KEY_A)]).await;
    // The new key alone cannot read the database yet.
    let (code, err) = rotate(dir.path(), &[("HERALD_ENCRYPTION_KEY", KEY_B)]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("encryption key"), "{err}");
    let (code, err) = rotate(
        dir.path(),
        &[
            ("HERALD_ENCRYPTION_KEY", KEY_B),
            ("HERALD_ENCRYPTION_OLD_KEYS", KEY_A),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // Now the new key alone reads everything, and the old one no longer does.
    let server = ChildServer::start(dir.path(), port, &[("HERALD_ENCRYPTION_KEY", KEY_B)]).await;
    assert_eq!(server.get(&secret_path).await["key"], SECRET);
    server.terminate().await;
    let out = herald_command(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HERALD_ENCRYPTION_KEY", KEY_A)
        .env("HERALD_ADMIN_TOKEN", crate::child::TOKEN)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret_path = seed(dir.path(), port, &[]).await;
    // As if rotate-key died right after writing the new key.
    let new_key = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    std::fs::write(dir.path().join("herald-data/encryption.key.new"), new_key).unwrap();
    let server = ChildServer::start(dir.path(), port, &[]).await;
    assert_eq!(server.get(&secret_path).await["key"], SECRET);
    server.terminate().await;
    assert!(!dir.path().join("herald-data/encryption.key.new").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("herald-data/encryption.key")).unwrap(),
        new_key
    );
}
