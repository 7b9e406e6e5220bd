//! The client commands of the `herald` binary against a running Herald: `listen` receiving and
//! verifying real deliveries, `send`, the resource tables, `inbox export`, and exit codes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::child::{free_port, herald_command};
use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::receiver::{Receiver, Step};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `herald <args>` against `t` (with `--server` and `--token` from the environment).
async fn herald(t: &TestApp, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out = herald_command(dir.path())
        .args(args)
        .env("HERALD_SERVER", &t.base)
        .env("HERALD_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `herald listen` in the background; its stdout is read line by line.
struct Listen {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    port: u16,
}

impl Listen {
    async fn start(args: &[&str]) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut child = herald_command(dir.path())
            .arg("listen")
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "herald listen did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, lines, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The printed report of the next delivery (up to its `answered` line).
    async fn next_report(&mut self) -> String {
        let mut report = String::new();
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                report.push_str(&line);
                report.push('\n');
                if line.starts_with("answered ") {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a delivery report");
        report
    }
}

#[tokio::test]
async fn listen_receives_and_verifies_a_real_herald_delivery() {
    let t = TestApp::spawn().await;
    let mut listen = Listen::start(&["--secret", SECRET]).await;
    let app = t.create_app("Dev").await;
    t.create_endpoint(&app, json!({"url": listen.url("/hook"), "secret": SECRET}))
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "device.blessed", "payload": {"device": {"id": "a1"}, "ok": true}}),
        )
        .await;
    let report = listen.next_report().await;
    assert!(report.starts_with("--- 20"), "a timestamp first: {report}");
    assert!(report.contains(" POST /hook\n"), "{report}");
    assert!(report.contains(&format!("webhook-id: {msg}\n")), "{report}");
    assert!(report.contains("webhook-signature: v1,"), "{report}");
    assert!(
        report.contains("{\n  \"device\": {\n    \"id\": \"a1\"\n  },\n  \"ok\": true\n}\n"),
        "pretty JSON: {report}"
    );
    assert!(report.contains("\nverified (standard-v1)\n"), "{report}");
    assert!(report.ends_with("answered 200\n"), "{report}");
    let endpoints = t.get(&format!("/api/v1/app/{app}/endpoint")).await.1;
    t.wait_status(
        &msg,
        endpoints["data"][0]["id"].as_str().unwrap(),
        herald_core::model::DeliveryStatus::Success,
        Duration::from_secs(5),
    )
    .await;

    // A forged delivery is printed as not verified.
    let forged = t
        .client
        .post(listen.url("/hook"))
        .header("webhook-id", msg.as_str())
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,Zm9yZ2Vk")
        .body("{\"ok\": false}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    let report = listen.next_report().await;
    assert!(
        report.contains("not verified: the signature does not match"),
        "{report}"
    );
    listen.child.kill().await.unwrap();
}

#[tokio::test]
async fn listen_forwards_and_answers_as_told() {
    let r = Receiver::start().await;
    r.script("/app/hook?x=1", vec![Step::Status(202)]);
    let mut listen = Listen::start(&["--forward-to", &r.url("/app")]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(listen.url("/hook?x=1"))
        .header("x-custom", "yes")
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the target's answer"
    );
    let report = listen.next_report().await;
    assert!(report.contains("\nplain text\n"), "{report}");
    assert!(report.contains("not verified (no --secret)"), "{report}");
    assert!(
        report.contains(&format!("forwarded to {}: 202 Accepted", r.url("/app"))),
        "{report}"
    );
    let got = r.received("/app/hook?x=1");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"plain text");
    assert_eq!(got[0].header("x-custom"), Some("yes"));
    listen.child.kill().await.unwrap();

    let mut failing = Listen::start(&["--status", "503"]).await;
    let response = client.post(failing.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(failing.next_report().await.contains("(no body)"));
    failing.child.kill().await.unwrap();
}

#[tokio::test]
async fn send_publishes_and_prints_the_message_id() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let out = herald(
        &t,
        &[
            "send",
            "--app",
            &app,
            "--event-type",
            "order.status",
            "--data",
            r#"{"id": 1234}"#,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim();
    assert!(id.starts_with("msg_"), "{}", out.stdout);
    let (status, message) = t.get(&format!("/api/v1/app/{app}/msg/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message["payload"], json!({"id": 1234}));
    assert_eq!(message["eventType"], "order.status");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.json");
    std::fs::write(&file, r#"{"from": "file"}"#).unwrap();
    let out = herald(
        &t,
        &[
            "message",
            "create",
            "--app",
            &app,
            "--event-type",
            "order.status",
            "--data",
            &format!("@{}", file.display()),
            "--event-id",
            "evt-1",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let answer: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(answer["payload"], json!({"from": "file"}));
    assert_eq!(answer["eventId"], "evt-1");

    // Usage errors exit 2, failures 1, each with one clear message.
    let bad = herald(
        &t,
        &[
            "send",
            "--app",
            &app,
            "--event-type",
            "x",
            "--data",
            "{nope",
        ],
    )
    .await;
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("--data is not valid JSON"),
        "{}",
        bad.stderr
    );
    let missing = herald(&t, &["send", "--app", &app]).await;
    assert_eq!(missing.code, 2, "clap's usage error");
    let unknown = herald(
        &t,
        &[
            "send",
            "--app",
            "nobody",
            "--event-type",
            "x",
            "--data",
            "{}",
        ],
    )
    .await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("404"), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("application not found"),
        "{}",
        unknown.stderr
    );
    let dup = herald(
        &t,
        &[
            "send",
            "--app",
            &app,
            "--event-type",
            "x",
            "--data",
            "{}",
            "--event-id",
            "evt-1",
        ],
    )
    .await;
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("409"), "{}", dup.stderr);

    let dir = tempfile::tempdir().unwrap();
    let no_token = herald_command(dir.path())
        .args(["app", "list", "--server", &t.base])
        .output()
        .await
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("HERALD_TOKEN"));
    let down = herald_command(dir.path())
        .args([
            "app",
            "list",
            "--token",
            "x",
            "--server",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach Herald"));
}

/// The start of each column in a table's lines, found from its header.
fn column_starts(header: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let bytes = header.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' && i >= 2 && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    starts
}

#[tokio::test]
async fn resource_commands_print_aligned_tables_or_json() {
    let t = TestApp::spawn().await;
    let out = herald(
        &t,
        &[
            "app",
            "create",
            "--name",
            "Acme Corporation",
            "--uid",
            "acme",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("FIELD"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("uid ") && l.ends_with("  acme")),
        "{}",
        out.stdout
    );
    herald(
        &t,
        &["app", "create", "--name", "B", "--uid", "b-with-a-long-uid"],
    )
    .await;

    let list = herald(&t, &["app", "list"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", list.stdout);
    let starts = column_starts(lines[0]);
    assert_eq!(starts.len(), 4, "ID UID NAME CREATED: {}", lines[0]);
    assert!(lines[0].starts_with("ID"));
    for line in &lines[1..] {
        for &s in &starts[1..] {
            assert_eq!(&line[s - 2..s], "  ", "aligned columns:\n{}", list.stdout);
            assert_ne!(&line[s..s + 1], " ", "aligned columns:\n{}", list.stdout);
        }
    }
    assert!(lines[1].contains("acme") && lines[1].contains("Acme Corporation"));
    let json_list = herald(&t, &["app", "list", "--json"]).await;
    let parsed: Value = serde_json::from_str(&json_list.stdout).unwrap();
    assert_eq!(parsed["data"].as_array().unwrap().len(), 2);
    let one = herald(&t, &["app", "list", "--limit", "1"]).await;
    assert_eq!(one.stdout.lines().count(), 2);
    assert!(
        one.stderr.contains("(more: --iterator app_"),
        "{}",
        one.stderr
    );

    let ep = herald(
        &t,
        &[
            "endpoint",
            "create",
            "--app",
            "acme",
            "--url",
            "https://hooks.example.com/h",
            "--event-type",
            "order.status",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep.code, 0, "{}", ep.stderr);
    let ep: Value = serde_json::from_str(&ep.stdout).unwrap();
    let eps = herald(&t, &["endpoint", "list", "--app", "acme"]).await;
    assert!(eps.stdout.starts_with("ID"), "{}", eps.stdout);
    assert!(
        eps.stdout
            .contains("https://hooks.example.com/h  order.status"),
        "{}",
        eps.stdout
    );
    let got = herald(
        &t,
        &[
            "endpoint",
            "get",
            "--app",
            "acme",
            ep["id"].as_str().unwrap(),
        ],
    )
    .await;
    assert!(got.stdout.contains("https://hooks.example.com/h"));

    let et = herald(
        &t,
        &[
            "event-type",
            "create",
            "--name",
            "order.status",
            "--description",
            "An order moved",
        ],
    )
    .await;
    assert_eq!(et.code, 0, "{}", et.stderr);
    let ets = herald(&t, &["event-type", "list"]).await;
    assert!(
        ets.stdout.contains("order.status  An order moved"),
        "{}",
        ets.stdout
    );
    let gone = herald(&t, &["event-type", "delete", "order.status", "--expunge"]).await;
    assert_eq!(
        (gone.code, gone.stdout.as_str()),
        (0, "deleted order.status\n")
    );

    herald(
        &t,
        &[
            "send",
            "--app",
            "acme",
            "--event-type",
            "order.status",
            "--data",
            "{}",
            "--event-id",
            "e1",
        ],
    )
    .await;
    let msgs = herald(&t, &["message", "list", "--app", "acme"]).await;
    assert!(msgs.stdout.starts_with("ID"), "{}", msgs.stdout);
    assert!(msgs.stdout.contains("order.status  e1"), "{}", msgs.stdout);
    let msg = herald(&t, &["message", "get", "--app", "acme", "e1", "--json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&msg.stdout).unwrap()["eventId"],
        "e1"
    );

    let deleted = herald(
        &t,
        &[
            "endpoint",
            "delete",
            "--app",
            "acme",
            ep["id"].as_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let deleted = herald(&t, &["app", "delete", "acme"]).await;
    assert_eq!(deleted.stdout, "deleted acme\n");
    let missing = herald(&t, &["app", "get", "acme"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

#[tokio::test]
async fn inbox_export_writes_csv_and_json_files() {
    let t = TestApp::spawn().await;
    let (status, created) = t.post("/api/v1/inbox", json!({"name": "factory"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap();
    for i in 0..3 {
        let response = t
            .client
            .post(t.url("/in/factory/testresult.json"))
            .bearer_auth(token)
            .json(&json!({"device_id": format!("d{i}"), "msg": "Message from an imp"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let dir = tempfile::tempdir().unwrap();
    let csv_file = dir.path().join("factory.csv");
    let out = herald(
        &t,
        &[
            "inbox",
            "export",
            "factory",
            "--format",
            "csv",
            "--out",
            csv_file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("exported 3 entries"), "{}", out.stderr);
    let mut reader = csv::Reader::from_path(&csv_file).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["key", "path", "receivedAt", "device_id", "msg"]
    );
    let ids: Vec<String> = reader.records().map(|r| r.unwrap()[3].to_owned()).collect();
    assert_eq!(ids, ["d0", "d1", "d2"]);

    let out = herald(&t, &["inbox", "export", "factory", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let entries: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 3);
    let list = herald(&t, &["inbox", "list"]).await;
    assert!(
        list.stdout.contains(&t.url("/in/factory")),
        "{}",
        list.stdout
    );
    // The data tree alone, as Firebase's console exports it.
    let tree_file = dir.path().join("factory-export.json");
    let out = herald(
        &t,
        &[
            "inbox",
            "export",
            "factory",
            "--format",
            "tree",
            "--out",
            tree_file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("exported the tree"), "{}", out.stderr);
    let tree: Value = serde_json::from_str(&std::fs::read_to_string(&tree_file).unwrap()).unwrap();
    let results = tree["testresult"].as_object().unwrap();
    assert_eq!(results.len(), 3, "{tree}");
    assert!(
        results.keys().all(|k| k.starts_with('-') && k.len() == 20),
        "{tree}"
    );
    let missing = herald(&t, &["inbox", "export", "nope", "--format", "csv"]).await;
    assert_eq!(missing.code, 1);
    let (status, _) = t.call(Method::DELETE, "/api/v1/inbox/factory", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// `herald listen --poll`: consumes a polling endpoint and passes each message on, signed, to
/// the local URL; a message the local application refuses is tried again (never skipped), and
/// a batch is acknowledged only once passed on, so a `listen` stopped before that gives it again
/// to the next one.
#[tokio::test]
async fn listen_poll_forwards_a_polling_endpoint_and_acknowledges_only_what_was_passed_on() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Behind NAT").await;
    let ep = t
        .create_endpoint(&app, json!({"type": "polling", "secret": SECRET}))
        .await;
    let poller = t.url(&format!("/api/v1/app/{app}/poller/{ep}"));
    // The local application fails twice at first.
    r.script("/local", vec![Step::Status(500), Step::Status(503)]);
    let start = |consumer: &str| {
        let dir = tempfile::tempdir().unwrap();
        let child = herald_command(dir.path())
            .args([
                "listen",
                "--poll",
                &poller,
                "--forward-to",
                &r.url("/local"),
            ])
            .args(["--secret", SECRET, "--consumer", consumer])
            .env("HERALD_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        (child, dir)
    };
    let (mut listen, _dir) = start("laptop");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            t.publish(
                &app,
                json!({"eventType": "order.created", "payload": {"n": n}}),
            )
            .await,
        );
    }
    let got = r.wait_for("/local", 5, Duration::from_secs(15)).await;
    // Two refusals of the first message, then each message once, in order.
    let order: Vec<&str> = got
        .iter()
        .map(|g| g.header("webhook-id").unwrap())
        .collect();
    assert_eq!(order, [&*ids[0], &*ids[0], &*ids[0], &*ids[1], &*ids[2]]);
    for received in &got {
        assert!(crate::delivery::verify(
            SECRET,
            received.header("webhook-id").unwrap(),
            received.header("webhook-timestamp").unwrap(),
            &received.body,
            received.header("webhook-signature").unwrap(),
        ));
    }
    assert_eq!(
        serde_json::from_slice::<Value>(&got[4].body).unwrap(),
        json!({"n": 2})
    );

    // A local application that hangs: `listen` stops before the message is passed on, and the
    // next `listen` of the same consumer gets it again.
    r.script(
        "/local",
        vec![Step::Delay(
            Duration::from_secs(60),
            Box::new(Step::Status(200)),
        )],
    );
    let late = t
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": 3}}),
        )
        .await;
    r.wait_for("/local", 6, Duration::from_secs(10)).await;
    listen.kill().await.unwrap();
    let (mut listen, _dir) = start("laptop");
    let got = r.wait_for("/local", 7, Duration::from_secs(15)).await;
    assert_eq!(
        got[6].header("webhook-id"),
        Some(&*late),
        "resumed, nothing lost"
    );
    listen.kill().await.unwrap();

    // Usage errors: not a poller URL; no token.
    let out = herald(&t, &["listen", "--poll", "http://127.0.0.1:1/nothing"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let dir = tempfile::tempdir().unwrap();
    let out = herald_command(dir.path())
        .args(["listen", "--poll", &poller])
        .env_remove("HERALD_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
