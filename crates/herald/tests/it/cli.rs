//! The `herald` binary: help, configuration errors, first start, migrate, shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

fn herald(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn help_documents_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "serve",
        "migrate",
        "version",
        "HERALD_ADMIN_TOKEN",
        "HERALD_ENCRYPTION_KEY",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
    let out = herald(dir.path())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--listen",
        "HERALD_LISTEN",
        "--data-dir",
        "HERALD_DATA_DIR",
        "--database-url",
        "HERALD_DATABASE_URL",
        "--allow-network",
        "HERALD_ALLOW_NETWORKS",
        "--config",
        "--max-body-bytes",
        "--max-url-length",
        "--max-description-length",
        "--public-url",
        "--log-format",
    ] {
        assert!(text.contains(option), "serve --help lacks {option}");
    }
    let out = herald(dir.path())
        .args(["migrate", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("--database-url")
    );
    let out = herald(dir.path()).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("herald {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs `serve` with a bad setting: exit 2, one message naming the option, nothing created.
fn bad_config(args: &[&str], env: &[(&str, &str)], toml: Option<&str>, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(toml) = toml {
        std::fs::write(dir.path().join("herald.toml"), toml).unwrap();
    }
    let mut cmd = herald(dir.path());
    cmd.arg("serve").args(args).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    for word in expected {
        assert!(
            stderr.contains(word),
            "{args:?} {env:?}: {stderr:?} lacks {word}"
        );
    }
    // Herald's own messages are one line; clap's usage errors add a usage hint.
    if !stderr.starts_with("error:") {
        assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
    }
    assert!(
        !dir.path().join("herald-data").exists(),
        "nothing may be created"
    );
}

#[test]
fn bad_values_exit_2_naming_the_option() {
    bad_config(
        &["--listen", "nowhere"],
        &[],
        None,
        &["--listen", "nowhere"],
    );
    bad_config(
        &[],
        &[("HERALD_LISTEN", "nowhere")],
        None,
        &["HERALD_LISTEN"],
    );
    bad_config(
        &["--allow-network", "10.0.0.0/99"],
        &[],
        None,
        &["--allow-network"],
    );
    bad_config(
        &[],
        &[("HERALD_ALLOW_NETWORKS", "10.0.0.0/8,banana")],
        None,
        &["HERALD_ALLOW_NETWORKS", "banana"],
    );
    bad_config(
        &["--database-url", "mysql://x"],
        &[],
        None,
        &["--database-url"],
    );
    bad_config(&["--role", "everything"], &[], None, &["--role"]);
    // SQLite serves one process: it must run both halves.
    bad_config(&["--role", "api"], &[], None, &["--role", "Postgres"]);
    bad_config(
        &[],
        &[("HERALD_ROLE", "worker")],
        None,
        &["HERALD_ROLE", "Postgres"],
    );
    bad_config(
        &[],
        &[],
        Some("role = \"api\"\n"),
        &["`role` in herald.toml"],
    );
    // The database's tuning is checked at start: Postgres options on SQLite, out of bounds.
    bad_config(
        &["--database-pool-size", "20"],
        &[],
        None,
        &["--database-pool-size", "Postgres only"],
    );
    bad_config(
        &[
            "--database-url",
            "postgres://h/db",
            "--database-pool-size",
            "0",
        ],
        &[],
        None,
        &["--database-pool-size", "between 2 and 1000"],
    );
    bad_config(
        &[],
        &[("HERALD_DATABASE_STATEMENT_TIMEOUT", "5s")],
        None,
        &["HERALD_DATABASE_STATEMENT_TIMEOUT", "Postgres only"],
    );
    bad_config(
        &[
            "--database-url",
            "postgres://h/db",
            "--database-statement-timeout",
            "10ms",
        ],
        &[],
        None,
        &["--database-statement-timeout", "100ms"],
    );
    bad_config(
        &["--lease-duration", "2s"],
        &[],
        None,
        &["--lease-duration", "5s and 10m"],
    );
    bad_config(
        &["--database-url", "postgres://"],
        &[],
        None,
        &["--database-url"],
    );
    bad_config(
        &["--max-body-bytes", "lots"],
        &[],
        None,
        &["--max-body-bytes"],
    );
    bad_config(&["--max-url-length", "5"], &[], None, &["--max-url-length"]);
    bad_config(&["--log-format", "xml"], &[], None, &["--log-format"]);
    bad_config(
        &["--payload-retention-days", "0"],
        &[],
        None,
        &["--payload-retention-days"],
    );
    bad_config(
        &[],
        &[("HERALD_RESPONSE_RETENTION_DAYS", "soon")],
        None,
        &["HERALD_RESPONSE_RETENTION_DAYS"],
    );
    bad_config(
        &["--log-retention-days", "0"],
        &[],
        None,
        &["--log-retention-days"],
    );
    // The rows never go before their payloads: the log retention is at least the payload's.
    bad_config(
        &["--log-retention-days", "30"],
        &[],
        None,
        &[
            "--log-retention-days",
            "--payload-retention-days",
            "30",
            "90",
        ],
    );
    bad_config(
        &["--payload-retention-days", "120"],
        &[("HERALD_LOG_RETENTION_DAYS", "100")],
        None,
        &["HERALD_LOG_RETENTION_DAYS", "--payload-retention-days"],
    );
    bad_config(
        &["--log-retention-days", "0.0001"],
        &[],
        None,
        &["--log-retention-days", "between 0.001 and 36500"],
    );
    bad_config(
        &[],
        &[],
        Some("log_retention_days = 7\npayload_retention_days = 8\n"),
        &[
            "`log_retention_days` in herald.toml",
            "`payload_retention_days` in herald.toml",
        ],
    );
    bad_config(
        &[],
        &[("HERALD_METRICS_TOKEN", "short token")],
        None,
        &["HERALD_METRICS_TOKEN"],
    );
    bad_config(
        &["--metrics-endpoint-labels", "maybe"],
        &[],
        None,
        &["--metrics-endpoint-labels"],
    );
    bad_config(&["--public-url", "ftp://x"], &[], None, &["--public-url"]);
    bad_config(
        &[],
        &[("HERALD_ADMIN_TOKEN", "short")],
        None,
        &["HERALD_ADMIN_TOKEN"],
    );
    bad_config(
        &[],
        &[("HERALD_ENCRYPTION_KEY", "c2hvcnQ=")],
        None,
        &["HERALD_ENCRYPTION_KEY"],
    );
    bad_config(
        &[],
        &[],
        Some("listen = \"x\"\n"),
        &["`listen` in herald.toml"],
    );
    bad_config(
        &[],
        &[],
        Some("lisen = \"127.0.0.1:1\"\n"),
        &["herald.toml", "lisen"],
    );
    bad_config(&["--config", "missing.toml"], &[], None, &["missing.toml"]);
    // clap's own errors also exit 2.
    bad_config(&["--no-such-flag"], &[], None, &["--no-such-flag"]);
}

#[test]
fn flags_beat_environment_beat_file() {
    // Each layer names a port; a successful start reports the winner.
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("herald.toml"),
        format!("listen = \"127.0.0.1:{file_port}\"\n"),
    )
    .unwrap();
    for (env, flag, expected) in [
        (None, None, file_port),
        (Some(env_port), None, env_port),
        (Some(env_port), Some(flag_port), flag_port),
    ] {
        let mut cmd = herald(dir.path());
        cmd.arg("serve")
            .env("HERALD_ADMIN_TOKEN", "a-long-enough-admin-token");
        if let Some(port) = env {
            cmd.env("HERALD_LISTEN", format!("127.0.0.1:{port}"));
        }
        if let Some(port) = flag {
            cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        wait_for_health(expected);
        terminate(&mut child);
    }
}

fn wait_for_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("127.0.0.1:{port}");
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(&url) {
            use std::io::{Read, Write};
            // A server that accepts but never answers fails the test instead of hanging it.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream
                .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 204") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("herald did not become healthy on port {port}");
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            // Not left running: it would hold the test harness's output open.
            let _ = child.kill();
            panic!("herald did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server whose stderr has gone (its log collector died) still logs without panicking and
/// stops on SIGTERM. tracing-subscriber's fallback `eprintln!` used to panic in the signal
/// handler's task, and the server then ignored SIGTERM for good.
#[test]
fn sigterm_stops_the_server_after_its_stderr_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = herald(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained until the server is up: start-up logs more at debug than a pipe holds, and a
    // full pipe would stop the server before it serves. The reader then closes the pipe at
    // its next read, which the requests below cause.
    let stderr = child.stderr.take().unwrap();
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drain = {
        let up = up.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while !up.load(std::sync::atomic::Ordering::SeqCst) {
                if matches!(stderr.read(&mut buf), Ok(0) | Err(_)) {
                    break;
                }
            }
        })
    };
    wait_for_health(port);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    // Requests log (at debug) into the closed pipe.
    for _ in 0..3 {
        let _ = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/api/v1/health"),
            ])
            .status();
    }
    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    drain.join().unwrap();
}

#[test]
fn first_start_generates_the_admin_token_once_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let start = || {
        herald(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = start();
    wait_for_health(port);
    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let file = dir.path().join("herald-data/admin-token");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(token.starts_with("hadm_"));
    assert!(
        stderr.contains(&token),
        "the token is printed once: {stderr}"
    );
    assert!(stderr.contains("admin-token"), "and where to find it again");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = dir.path().join("herald-data/encryption.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The database holds only its hash.
    let db = std::fs::read(dir.path().join("herald-data/herald.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));

    // A second start does not print it again, and the same token still works.
    let mut child = start();
    wait_for_health(port);
    let ok = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://127.0.0.1:{port}/api/v1/app"),
        ])
        .output();
    terminate(&mut child);
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains(&token), "{stderr}");
    assert!(stderr.contains("admin-token"), "{stderr}");
    if let Ok(out) = ok {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }
}

#[test]
fn migrate_creates_the_schema_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(dir.path())
        .args(["migrate", "--data-dir", "state"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("state/herald.db").exists());
    let again = herald(dir.path())
        .args(["migrate", "--data-dir", "state"])
        .output()
        .unwrap();
    assert!(again.status.success());
}

/// `herald stats storage` reads the database (also through `HERALD_DATA_DIR`): each main table's
/// rows and bytes, the database's size, the oldest message; `--json` the same as one object. A
/// database that is not there is reported, not created.
#[tokio::test]
async fn stats_storage_reports_tables_sizes_and_the_oldest_message() {
    use herald_store::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let missing = herald(dir.path())
        .args(["stats", "storage", "--data-dir", "state"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database"));
    assert!(!dir.path().join("state/herald.db").exists());

    std::fs::create_dir(dir.path().join("state")).unwrap();
    let url = format!("sqlite://{}", dir.path().join("state/herald.db").display());
    let store = herald_store::SqliteStore::open(&url).await.unwrap();
    let app = herald_store::conformance::sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut first = None;
    for _ in 0..3 {
        let msg = herald_store::conformance::sample_message(&app.id, "a", None);
        store.create_message(&msg).await.unwrap();
        first.get_or_insert(msg);
    }
    store.close().await;
    let first = first.unwrap();

    let out = herald(dir.path())
        .args(["stats", "storage", "--data-dir", "state"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |table: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("no {table} row in {text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("TABLE"), ["TABLE", "ROWS", "BYTES"]);
    assert_eq!(row("messages")[1], "3");
    assert!(row("messages")[2].parse::<u64>().unwrap() > 0);
    for table in ["deliveries", "attempts", "applications", "endpoints"] {
        row(table);
    }
    assert!(text.contains("(sqlite)"), "{text}");
    let oldest = first
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        text.contains(&format!("oldest message: {oldest}")),
        "{text}"
    );
    assert!(text.contains("oldest attempt: none"), "{text}");

    let out = herald(dir.path())
        .args(["stats", "storage", "--json"])
        .env("HERALD_DATA_DIR", "state")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["engine"], "sqlite");
    assert!(json["databaseBytes"].as_u64().unwrap() > 0);
    assert!(json["freeBytes"].is_u64());
    let messages = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "messages")
        .unwrap();
    assert_eq!(messages["rows"], 3);
    assert!(
        json["oldestMessage"]
            .as_str()
            .unwrap()
            .starts_with(&oldest[..19])
    );
    assert_eq!(json["oldestAttempt"], serde_json::Value::Null);
}

#[test]
fn a_wrong_encryption_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = herald(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env(
            "HERALD_ENCRYPTION_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_health(port);
    terminate(&mut child);
    let out = herald(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env(
            "HERALD_ENCRYPTION_KEY",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("encryption key"));
    // With the old key listed for reading, it starts.
    let mut child = herald(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env(
            "HERALD_ENCRYPTION_KEY",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        )
        .env(
            "HERALD_ENCRYPTION_OLD_KEYS",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_health(port);
    assert!(terminate(&mut child).success());
}

/// The database, its WAL and shared-memory files, its lock file, the key file and the admin
/// token file are readable by their owner alone, even in an existing directory open to
/// everyone; a database an older Herald left readable by others is narrowed at start.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private_even_in_a_loose_directory() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("herald-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = crate::child::ChildServer::start(dir.path(), crate::child::free_port(), &[]).await;
    // A write, so that the WAL holds something.
    server
        .post("/api/v1/app", serde_json::json!({"name": "Private"}))
        .await;
    for file in [
        "herald.db",
        "herald.db-wal",
        "herald.db-shm",
        "herald.db.lock",
        "encryption.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert!(server.terminate().await.success());

    // A database left readable by others (as an older Herald's umask made it) is narrowed.
    for file in ["herald.db", "herald.db.lock"] {
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = crate::child::ChildServer::start(dir.path(), crate::child::free_port(), &[]).await;
    for file in [
        "herald.db",
        "herald.db-wal",
        "herald.db-shm",
        "herald.db.lock",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file} after a restart");
    }
    assert!(server.terminate().await.success());
}

/// Whether the process `pid` still runs (a zombie waiting for its reaper does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// `--exit-with-parent`: a server whose parent dies without stopping it (a benchmark harness
/// killed with SIGKILL, say) stops by itself instead of running on as an orphan.
#[test]
fn exit_with_parent_stops_an_orphaned_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The shell starts the server, says its pid, and exits while the server runs.
    let script = format!(
        "'{BIN}' serve --exit-with-parent --listen 127.0.0.1:{port} --data-dir '{}' \
         >/dev/null 2>&1 & echo $!; sleep 2",
        dir.path().display()
    );
    let mut parent = Command::new("sh");
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            parent.env_remove(key);
        }
    }
    let mut parent = parent
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let pid = line.trim().to_owned();
    wait_for_health(port);
    assert!(parent.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while running(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let orphan_lives = running(&pid);
    if orphan_lives {
        // Not left running: it would hold the harness's files open.
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
    assert!(!orphan_lives, "the orphaned server kept running");
}
