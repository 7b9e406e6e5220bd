//! Herald under test: this same binary, started as `herald serve` in a child process, the way
//! it is deployed. Being a separate process, its memory is its own and can be read from
//! `/proc/<pid>/status`, and the benchmark's load generator and sink cannot hide inside its
//! runtime.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token of every node the benchmark starts.
pub const TOKEN: &str = "herald-bench-admin-token-0123456789";

/// The last lines a node wrote to stderr, for the error message when it fails.
const STDERR_TAIL: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot start `herald serve`: {0}")]
    Spawn(std::io::Error),
    #[error("`herald serve` did not start: {0}")]
    Start(String),
    #[error("{what}: {detail}")]
    Api { what: String, detail: String },
}

/// Where a node keeps its state.
pub enum Storage<'a> {
    /// A SQLite database in the node's data directory.
    Sqlite,
    /// A shared Postgres database; nodes on it need the same encryption key.
    Postgres { url: &'a str, key: &'a str },
}

pub struct Node {
    child: Child,
    pid: u32,
    pub base: String,
    pub http: reqwest::Client,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Node {
    /// Starts `herald serve` on a free loopback port with deliveries to loopback allowed, and
    /// waits until it listens. `data_dir` is where it may write (the SQLite database, if any).
    pub async fn start(storage: Storage<'_>, data_dir: &Path) -> Result<Self, NodeError> {
        let exe = std::env::current_exe().map_err(NodeError::Spawn)?;
        let mut cmd = Command::new(exe);
        // Only what is set here: a HERALD_* variable of the caller's (a production database
        // URL, say) must not reach the node under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERALD_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--allow-network", "127.0.0.0/8"])
            // The benchmark is one token publishing for a whole platform: the per-token limit
            // (1000/s by default) would measure itself.
            .args(["--api-rate-limit", "0", "--max-endpoints-per-app", "100000"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("HERALD_ADMIN_TOKEN", TOKEN)
            // Attempts hanging on purpose must not hold up the end of a scenario.
            .env("HERALD_SHUTDOWN_GRACE", "1s")
            // A harness killed without warning leaves no node burning a core.
            .env("HERALD_EXIT_WITH_PARENT", "true")
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Storage::Postgres { url, key } = storage {
            cmd.args(["--database-url", url])
                .env("HERALD_ENCRYPTION_KEY", key);
        }
        let mut child = cmd.spawn().map_err(NodeError::Spawn)?;
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let listening = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let address = line
                    .split_once("listening on http://")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(str::to_owned);
                remember(&stderr, line);
                if address.is_some() {
                    return address;
                }
            }
            None
        };
        let address = tokio::time::timeout(Duration::from_secs(60), listening).await;
        let Ok(Some(address)) = address else {
            let _ = child.start_kill();
            return Err(NodeError::Start(tail(&stderr)));
        };
        // Keep reading, or the node blocks on a full pipe.
        tokio::spawn({
            let stderr = stderr.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    remember(&stderr, line);
                }
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client configuration is valid");
        Ok(Self {
            child,
            pid,
            base: format!("http://{address}"),
            http,
            stderr,
        })
    }

    /// The node's resident memory now and at its peak, in MiB (`VmRSS`, `VmHWM`).
    pub fn memory_mb(&self) -> Option<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        Some((
            status_kb(&status, "VmRSS:")? / 1024.0,
            status_kb(&status, "VmHWM:")? / 1024.0,
        ))
    }

    /// What the node last wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr)
    }

    /// SIGTERM, then SIGKILL if it has not exited within a few seconds.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Value, NodeError> {
        let fail = |detail: String| NodeError::Api {
            what: format!("POST {path}"),
            detail,
        };
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("{status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
    }

    /// Creates an application and returns its id.
    pub async fn create_app(&self, name: &str) -> Result<String, NodeError> {
        let app = self
            .post_json("/api/v1/app", &json!({"name": name}))
            .await?;
        Ok(app["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Creates an endpoint of `app` (`body` holds at least its `url`) and returns its id.
    pub async fn create_endpoint(&self, app: &str, body: Value) -> Result<String, NodeError> {
        let endpoint = self
            .post_json(&format!("/api/v1/app/{app}/endpoint"), &body)
            .await?;
        Ok(endpoint["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Gives an endpoint a transformation, enabled.
    pub async fn set_transformation(
        &self,
        app: &str,
        endpoint: &str,
        code: &str,
    ) -> Result<(), NodeError> {
        let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/transformation");
        let fail = |detail: String| NodeError::Api {
            what: format!("PATCH {path}"),
            detail,
        };
        let response = self
            .http
            .patch(self.url(&path))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"code": code, "enabled": true}))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(fail(format!(
                "{status}: {}",
                response.text().await.unwrap_or_default()
            ))),
        }
    }

    /// Creates `count` endpoints with `body(i)`, a few requests at a time.
    pub async fn create_endpoints(
        &self,
        app: &str,
        count: usize,
        body: impl Fn(usize) -> Value,
    ) -> Result<(), NodeError> {
        use futures::StreamExt as _;
        let results: Vec<Result<String, NodeError>> = futures::stream::iter(0..count)
            .map(|i| self.create_endpoint(app, body(i)))
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().try_for_each(|r| r.map(drop))
    }

    /// Deletes an application with everything it has.
    pub async fn delete_app(&self, app: &str) -> Result<(), NodeError> {
        let response = self
            .http
            .delete(self.url(&format!("/api/v1/app/{app}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(|e| NodeError::Api {
                what: format!("DELETE app {app}"),
                detail: e.to_string(),
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(NodeError::Api {
                what: format!("DELETE app {app}"),
                detail: response.status().to_string(),
            })
        }
    }

    /// The publish route of `app`, answering without the payload (the benchmark needs only the
    /// id, and echoing a kilobyte back would load the client for nothing).
    pub fn publish_url(&self, app: &str) -> String {
        self.url(&format!("/api/v1/app/{app}/msg?with_content=false"))
    }
}

/// Publishes one message (a JSON body made by [`message_body`]) and returns its id.
pub async fn publish(
    http: &reqwest::Client,
    url: &str,
    body: bytes::Bytes,
) -> Result<String, String> {
    let response = http
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.bytes().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::ACCEPTED {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&text)));
    }
    let message: Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    Ok(message["id"].as_str().unwrap_or_default().to_owned())
}

/// A message of `event_type` with a payload of about `payload_bytes` bytes.
pub fn message_body(event_type: &str, payload_bytes: usize) -> bytes::Bytes {
    let pad = "x".repeat(payload_bytes.saturating_sub(30));
    let body = json!({"eventType": event_type, "payload": {"bench": true, "pad": pad}});
    bytes::Bytes::from(serde_json::to_vec(&body).expect("JSON serializes"))
}

fn remember(stderr: &Mutex<VecDeque<String>>, line: String) {
    let mut lines = stderr.lock().unwrap_or_else(|p| p.into_inner());
    if lines.len() == STDERR_TAIL {
        lines.pop_front();
    }
    lines.push_back(line);
}

fn tail(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines = stderr.lock().unwrap_or_else(|p| p.into_inner());
    lines.iter().cloned().collect::<Vec<_>>().join("\n")
}

fn status_kb(status: &str, field: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "herald-bench-{}-{name}-{}",
            std::process::id(),
            herald_core::id::MessageId::generate().as_str()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memory_from_proc_status() {
        let status = "Name:\therald\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(102_400.0));
        assert_eq!(status_kb(status, "VmHWM:"), Some(204_800.0));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn message_bodies_are_about_the_size_asked() {
        let body = message_body("bench.t0", 1024);
        assert!((1000..1100).contains(&body.len()), "{}", body.len());
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["eventType"], "bench.t0");
    }
}
