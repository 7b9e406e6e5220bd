//! The Herald nodes under test, as child processes the suite can kill, stop, restart and skew,
//! and what sits between them and their database (a TCP proxy per node, for Postgres).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub use crate::support::{Tmpfs, free_port};
use crate::tcp_proxy::TcpProxy;

pub const TOKEN: &str = "faults-suite-admin-token-0123456789";
/// The nodes' shared encryption key (base64 of 32 bytes).
const KEY: &str = "ZmF1bHRzLXN1aXRlLWVuY3J5cHRpb24ta2V5LTMyYnk=";
/// Short lease, so that a dead node's endpoints move within seconds.
pub const LEASE: Duration = Duration::from_secs(5);
/// Attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// libfaketime, from Debian's `faketime` package.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

pub struct Node {
    pub name: String,
    pub port: u16,
    database_url: String,
    data_dir: PathBuf,
    child: Option<Child>,
    /// `Some("+2s")` while the node runs under libfaketime.
    pub skew: Option<String>,
    /// For Postgres: the proxy between this node and the database.
    pub proxy: Option<TcpProxy>,
    /// More options of `herald serve` (the soak's short retention).
    pub extra_args: Vec<String>,
}

/// The `herald` binary, without this process's `HERALD_` variables. A long run may name a copy
/// in `HERALD_FAULTS_BINARY`, so that builds meanwhile do not change the binary under it.
pub fn herald_command() -> Command {
    let binary = std::env::var("HERALD_FAULTS_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_herald").to_owned());
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

impl Node {
    pub fn new(name: &str, database_url: String, data_dir: &Path, proxy: Option<TcpProxy>) -> Self {
        Self {
            name: name.to_owned(),
            port: free_port(),
            database_url,
            data_dir: data_dir.to_owned(),
            child: None,
            skew: None,
            proxy,
            extra_args: Vec::new(),
        }
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the node and waits until it answers.
    pub async fn start(&mut self) {
        let postgres = self.database_url.starts_with("postgres");
        let mut cmd = herald_command();
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--allow-network", "127.0.0.0/8"])
            .args(["--database-url", &self.database_url])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--lease-duration", &format!("{}s", LEASE.as_secs())])
            .args([
                "--delivery-timeout",
                &format!("{}s", ATTEMPT_TIMEOUT.as_secs()),
            ])
            // Retries keep coming through every fault, never running out for a healthy
            // endpoint: over two minutes of them.
            .args([
                "--retry-schedule",
                &["100ms", "200ms", "500ms", "1s", "1s", "2s", "2s"]
                    .into_iter()
                    .chain(std::iter::repeat_n("5s", 25))
                    .collect::<Vec<_>>()
                    .join(","),
            ])
            .args(["--shutdown-grace", "5s"])
            .env("HERALD_ADMIN_TOKEN", TOKEN)
            .env("HERALD_ENCRYPTION_KEY", KEY)
            .env("HERALD_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("HERALD_FAULTS_NODE_LOGS") {
                // A directory: each node's log in `<name>.log` there, across its restarts.
                Some(dir) => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Path::new(&dir).join(format!("{}.log", self.name)))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
                None => Stdio::null(),
            })
            .kill_on_drop(true);
        if postgres {
            cmd.args(["--database-statement-timeout", "10s"]);
        }
        cmd.args(&self.extra_args);
        if let Some(skew) = &self.skew {
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", skew)
                // Timers keep real time: only the wall clock (leases, timestamps) is off.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        self.child = Some(cmd.spawn().expect("herald starts"));
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client
                .get(format!("{}/api/v1/health", self.base()))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                && r.status() == 204
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not start", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
    }

    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM, and waits (SIGKILL after 20 s).
    pub async fn terminate(&mut self) {
        self.resume();
        self.signal("-TERM");
        if let Some(mut child) = self.child.take()
            && tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// Restarts the machine's Postgres (`pg_ctlcluster <version> main restart`).
pub fn restart_postgres() -> Result<(), String> {
    let version = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or("no cluster in /etc/postgresql")?;
    // Through a shell that first closes every inherited descriptor above stderr: the new
    // server would otherwise keep whatever the suite inherited (a build lock held by `flock`,
    // say) for as long as it runs.
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done; \
             exec pg_ctlcluster --skip-systemctl-redirect \"$0\" main restart",
            &version,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

pub fn faketime_available() -> bool {
    Path::new(FAKETIME_LIB).exists()
}
