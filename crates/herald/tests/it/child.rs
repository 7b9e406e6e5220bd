//! `herald serve` as a child process, for tests about the process itself (crashes, signals,
//! restarts with other keys).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

pub const TOKEN: &str = "child-test-admin-token-0123";

pub struct ChildServer {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

pub use crate::support::free_port;

/// A `herald` command in `dir` with no `HERALD_*` variables of the test's own environment.
pub fn herald_command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

impl ChildServer {
    /// Starts `herald serve` in `dir` on `port` (loopback deliveries allowed) with `env`, and
    /// waits until it is healthy.
    pub async fn start(dir: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        let mut cmd = herald_command(dir);
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--allow-network",
            "127.0.0.0/8",
        ])
        .env("HERALD_ADMIN_TOKEN", TOKEN)
        .env("HERALD_SHUTDOWN_GRACE", "20s")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("HERALD_TEST_CHILD_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
        let child = cmd.spawn().unwrap();
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = server.client.get(server.url("/api/v1/health")).send().await
                && r.status() == 204
            {
                return server;
            }
            assert!(Instant::now() < deadline, "herald did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with the admin token; panics unless the answer is a success.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// SIGTERM, and the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        self.child.wait().await.unwrap()
    }
}
