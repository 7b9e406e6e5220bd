//! Upgrades under load: a database written by the previous release's migrations, with messages
//! pending, is opened by this binary, migrated and drained with nothing lost, while new messages
//! are published.
//!
//! The fixtures in `tests/fixtures/upgrade/` were made by the previous release's own binary with
//! `tests/upgrade/make-fixture.sh` (its README names the commit): one application, three
//! endpoints (`signed`: a secret and a custom header, both sealed with the fixture's key;
//! `fifo`: FIFO ordering and event types `order.*`; `filtered`: a channel and a payload
//! filter), messages delivered before their receiver went away, and messages published after:
//! failed and due for a retry, or waiting behind the FIFO head. The manifest beside each
//! fixture lists the messages' ids in publish order (message `i` has payload `{"i": i, …}`).
//! The endpoints' URLs point at a port nothing listens on; the test rewrites them to its
//! receiver in the old database, before the new binary opens it (and restarts the payloads'
//! retention clock, so that the fixture does not age), and runs that binary with the fixture's
//! encryption key. Whatever migrations the binary has are applied (the test counts
//! them in `herald-store/migrations`), so it holds as migrations are added.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::child::{ChildServer, free_port, herald_command};
use crate::receiver::{Receiver, Step};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");
const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../herald-store/migrations");
/// Messages published through the new binary while the old backlog drains: `i` from
/// `FIRST_NEW`.
const NEW: usize = 150;
const FIRST_NEW: usize = 1000;
const PATHS: [&str; 3] = ["/signed", "/fifo", "/filtered"];
const APP: &str = "upgrade";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    made_by: String,
    encryption_key: String,
    /// An `app` key of the application, created by the old release.
    api_key: String,
    /// The secret the fixture gave endpoint `signed`.
    secret: String,
    /// The URL prefix of every endpoint in the fixture (nothing listens there).
    receiver: String,
    /// Messages `0..delivered` were delivered before the fixture was saved.
    delivered: usize,
    /// Every message's id, `i` in publish order.
    messages: Vec<String>,
}

impl Manifest {
    fn read(engine: &str) -> Self {
        let path = format!("{FIXTURES}/{engine}.manifest.json");
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }
}

/// The endpoints message `i` goes to (the fixture's routing: make-fixture.sh).
fn routes(i: usize) -> Vec<&'static str> {
    let mut paths = vec!["/signed"];
    if i % 3 != 2 {
        paths.push("/fifo");
    }
    if i.is_multiple_of(2) && i % 100 >= 50 {
        paths.push("/filtered");
    }
    paths
}

/// Message `i` as the fixture publishes them.
fn message(i: usize) -> Value {
    let event_type = ["order.created", "order.updated", "invoice.paid"][i % 3];
    json!({
        "eventType": event_type,
        "eventId": format!("upgrade-{i}"),
        "channels": [if i.is_multiple_of(2) { "eu" } else { "us" }],
        "payload": {"i": i, "amount": i % 100},
    })
}

/// How many migrations this binary has for `engine`, and the highest version.
fn migrations_of_this_binary(engine: &str) -> (i64, i64) {
    let versions: Vec<i64> = std::fs::read_dir(format!("{MIGRATIONS}/{engine}"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let version = name.strip_suffix(".sql")?.split('_').next()?.parse().ok()?;
            Some(version)
        })
        .collect();
    (versions.len() as i64, versions.into_iter().max().unwrap())
}

/// When the fixture's payloads expire, in Unix milliseconds: 90 days from now. A message keeps
/// its payload 90 days at most, and then retention deletes it and a pending delivery fails for
/// good; the fixture's clock is restarted so that it works however long ago it was made.
fn payloads_expire_at() -> i64 {
    (chrono::Utc::now() + chrono::Duration::days(90)).timestamp_millis()
}

/// The fixture, copied for one run: where the new binary finds it.
struct Fixture {
    engine: &'static str,
    /// The working directory of the `herald` processes (the SQLite database is its
    /// `herald-data/herald.db`, the default).
    dir: tempfile::TempDir,
    /// The Postgres database the dump was loaded into (dropped with it).
    postgres: Option<herald_store::testing::TestDatabase>,
}

impl Fixture {
    /// The SQLite fixture, its endpoints pointed at `receiver`.
    async fn sqlite(m: &Manifest, receiver: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("herald-data")).unwrap();
        std::fs::copy(
            format!("{FIXTURES}/sqlite.db"),
            dir.path().join("herald-data/herald.db"),
        )
        .unwrap();
        let fixture = Self {
            engine: "sqlite",
            dir,
            postgres: None,
        };
        let mut conn = sqlx::SqliteConnection::connect(&fixture.sqlite_url())
            .await
            .unwrap();
        for table in ["endpoints", "endpoint_urls"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET url = replace(url, ?1, ?2)"
            )))
            .bind(&m.receiver)
            .bind(receiver)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE messages SET payload_expires_at = ?1")
            .bind(payloads_expire_at())
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        fixture
    }

    /// The Postgres fixture loaded into a database of its own, its endpoints pointed at
    /// `receiver`.
    async fn postgres(base_url: &str, m: &Manifest, receiver: &str) -> Self {
        let db = herald_store::testing::TestDatabase::create(base_url).await;
        let dump = std::fs::read_to_string(format!("{FIXTURES}/postgres.sql")).unwrap();
        // Plain SQL; psql's own commands (`\restrict` and the like) are not statements.
        let dump: String = dump
            .lines()
            .filter(|l| !l.starts_with('\\'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
            .execute(&mut conn)
            .await
            .unwrap();
        for table in ["endpoints", "endpoint_urls"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE public.{table} SET url = replace(url, $1, $2)"
            )))
            .bind(&m.receiver)
            .bind(receiver)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE public.messages SET payload_expires_at = $1")
            .bind(payloads_expire_at())
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self {
            engine: "postgres",
            dir: tempfile::tempdir().unwrap(),
            postgres: Some(db),
        }
    }

    fn sqlite_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.path().join("herald-data/herald.db").display()
        )
    }

    /// The environment of the `herald` processes.
    fn env(&self, m: &Manifest) -> Vec<(&'static str, String)> {
        let mut env = vec![("HERALD_ENCRYPTION_KEY", m.encryption_key.clone())];
        if let Some(db) = &self.postgres {
            env.push(("HERALD_DATABASE_URL", db.url.clone()));
        }
        env
    }

    /// How many migrations the database has applied, and the highest version.
    async fn applied(&self) -> (i64, i64) {
        const QUERY: &str = "SELECT COUNT(*), MAX(version) FROM _sqlx_migrations WHERE success";
        match &self.postgres {
            Some(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let row = sqlx::query_as(QUERY).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                row
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(&self.sqlite_url())
                    .await
                    .unwrap();
                let row = sqlx::query_as(QUERY).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                row
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_of_the_previous_release_is_migrated_and_drained_under_load() {
    let m = Manifest::read("sqlite");
    let r = Receiver::start().await;
    let fixture = Fixture::sqlite(&m, &r.url("")).await;
    upgrade(&m, &r, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_of_the_previous_release_is_migrated_and_drained_under_load() {
    let Some(base) = herald_store::testing::postgres_url_or_skip(
        "a_postgres_database_of_the_previous_release_is_migrated_and_drained_under_load",
    ) else {
        return;
    };
    let m = Manifest::read("postgres");
    let r = Receiver::start().await;
    let fixture = Fixture::postgres(&base, &m, &r.url("")).await;
    upgrade(&m, &r, &fixture).await;
}

async fn upgrade(m: &Manifest, r: &Receiver, fixture: &Fixture) {
    let engine = fixture.engine;
    let env = fixture.env(m);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // `herald migrate` brings the old schema to this binary's.
    let before = fixture.applied().await;
    let (count, latest) = migrations_of_this_binary(engine);
    assert!(before.1 <= latest, "the fixture is newer than this binary");
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        herald_command(fixture.dir.path())
            .arg("migrate")
            .envs(env_refs.iter().copied())
            .output(),
    )
    .await
    .expect("herald migrate finishes within 2 minutes")
    .unwrap();
    let migrate_time = started.elapsed();
    assert!(
        out.status.success(),
        "herald migrate on the {engine} fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fixture.applied().await,
        (count, latest),
        "every migration of this binary is applied"
    );

    // The receiver takes 10 ms an answer, so that the backlog lasts a while (the FIFO
    // endpoint's, one request at a time, three seconds or more). An empty body: the answer
    // goes out in one write, and a FIFO endpoint does not wait for delayed ACKs (`Status`
    // writes the head and the body apart, about 40 ms more per request on a kept-alive
    // connection).
    for path in PATHS {
        r.always(
            path,
            Step::Delay(
                Duration::from_millis(10),
                Box::new(Step::Respond(200, Vec::new(), String::new())),
            ),
        );
    }
    let server = ChildServer::start(fixture.dir.path(), free_port(), &env_refs).await;
    let serving = Instant::now();

    // Under load: new messages, published one after the other (their publish order is their
    // FIFO order) with the old release's API key, while the backlog drains.
    let mut ids: HashMap<usize, String> = m.messages.iter().cloned().enumerate().collect();
    let mut first_new_acknowledged = None;
    for i in FIRST_NEW..FIRST_NEW + NEW {
        let response = server
            .client
            .post(server.url(&format!("/api/v1/app/{APP}/msg")))
            .bearer_auth(&m.api_key)
            .json(&message(i))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "publish {i}");
        let body: Value = response.json().await.unwrap();
        ids.insert(i, body["id"].as_str().unwrap().to_owned());
        first_new_acknowledged.get_or_insert_with(Instant::now);
    }
    let first_new_acknowledged = first_new_acknowledged.unwrap();
    let by_id: HashMap<&str, usize> = ids.iter().map(|(i, id)| (id.as_str(), *i)).collect();

    // What each endpoint must get: the old messages not delivered yet, and the new ones.
    let pending = m.delivered..m.messages.len();
    let new = FIRST_NEW..FIRST_NEW + NEW;
    let mut expected: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in pending.clone().chain(new.clone()) {
        for path in routes(i) {
            expected.entry(path).or_default().push(i);
        }
    }
    let old_deliveries: usize = pending.clone().map(|i| routes(i).len()).sum();
    let new_deliveries: usize = new.clone().map(|i| routes(i).len()).sum();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing: Vec<(&str, usize)> = PATHS
            .iter()
            .flat_map(|path| {
                let got: BTreeSet<String> = r
                    .received(path)
                    .iter()
                    .filter_map(|q| q.header("webhook-id").map(str::to_owned))
                    .collect();
                expected[path]
                    .iter()
                    .filter(|i| !got.contains(&ids[*i]))
                    .map(|i| (*path, *i))
                    .collect::<Vec<_>>()
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{engine}: {} of {} deliveries missing after 2 minutes (endpoint, i): {:?}",
            missing.len(),
            old_deliveries + new_deliveries,
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = serving.elapsed();
    // Anything sent twice, or that should not have been sent, would arrive by now.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut last_old_arrival = None;
    let mut spans = Vec::new();
    for path in PATHS {
        // The endpoint's secret, opened with the fixture's key.
        let ep = server
            .get(&format!("/api/v1/app/{APP}/endpoint/{}/secret", &path[1..]))
            .await;
        let secret = ep["key"].as_str().unwrap().to_owned();
        if path == "/signed" {
            assert_eq!(secret, m.secret, "the secret the fixture set");
        }
        let got = r.received(path);
        let mut arrived = Vec::new();
        for q in &got {
            let id = q.header("webhook-id").unwrap();
            let i = *by_id
                .get(id)
                .unwrap_or_else(|| panic!("{engine} {path}: {id} is no message of the test"));
            let payload: Value = serde_json::from_slice(&q.body).unwrap();
            assert_eq!(payload, message(i)["payload"], "{engine} {path}: {id}");
            assert!(
                crate::delivery::verify(
                    &secret,
                    id,
                    q.header("webhook-timestamp").unwrap(),
                    &q.body,
                    q.header("webhook-signature").unwrap(),
                ),
                "{engine} {path}: the signature of {id} verifies"
            );
            if path == "/signed" {
                assert_eq!(q.header("x-fixture"), Some("sealed-header"));
            }
            if i < FIRST_NEW {
                last_old_arrival = last_old_arrival.max(Some(q.at));
            }
            arrived.push(i);
        }
        // Exactly once each, nothing delivered before the upgrade sent again.
        let mut sorted = arrived.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted, expected[path],
            "{engine} {path}: every pending and new message once, no other"
        );
        if path == "/fifo" {
            assert_eq!(arrived, expected[path], "{engine}: FIFO kept publish order");
        }
        let last = got.iter().map(|q| q.at).max().unwrap();
        spans.push(format!(
            "{path} {} in {:.2?}",
            got.len(),
            last.saturating_duration_since(serving)
        ));
    }
    assert!(
        first_new_acknowledged < last_old_arrival.unwrap(),
        "{engine}: new messages were published while the old backlog drained"
    );

    // The API shows the old application, endpoints, messages and attempts.
    let app = server.get(&format!("/api/v1/app/{APP}")).await;
    assert_eq!(app["name"], "Upgrade fixture");
    let endpoints = server.get(&format!("/api/v1/app/{APP}/endpoint")).await;
    let mut uids: Vec<&str> = endpoints["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["disabled"], false, "{e}");
            if e["uid"] == "fifo" {
                assert_eq!(e["ordering"], "fifo", "{e}");
            }
            if e["uid"] == "filtered" {
                assert_eq!(e["channels"], json!(["eu"]), "{e}");
                assert_eq!(e["filter"], json!({"amount": {"$gte": 50}}), "{e}");
            }
            e["uid"].as_str().unwrap()
        })
        .collect();
    uids.sort_unstable();
    assert_eq!(uids, ["fifo", "filtered", "signed"]);
    let mut listed = BTreeSet::new();
    let mut iterator: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/app/{APP}/msg?limit=250");
        if let Some(it) = &iterator {
            path.push_str(&format!("&iterator={it}"));
        }
        let page = server.get(&path).await;
        for msg in page["data"].as_array().unwrap() {
            listed.insert(msg["id"].as_str().unwrap().to_owned());
        }
        if page["done"] == true {
            break;
        }
        iterator = Some(page["iterator"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        listed,
        ids.values().cloned().collect::<BTreeSet<_>>(),
        "{engine}: the API lists every old and new message"
    );
    let seventh = server
        .get(&format!("/api/v1/app/{APP}/msg/fixture-7"))
        .await;
    assert_eq!(seventh["id"], m.messages[7].as_str());
    assert_eq!(seventh["tags"], json!(["fixture"]));
    // A message delivered before the upgrade: its old successful attempts.
    let attempts = server
        .get(&format!("/api/v1/app/{APP}/attempt/msg/{}", m.messages[0]))
        .await;
    let attempts = attempts["data"].as_array().unwrap();
    assert_eq!(attempts.len(), routes(0).len(), "{attempts:?}");
    assert!(attempts.iter().all(|a| a["statusText"] == "success"));
    // One pending at the upgrade: the old release's failures, then one success.
    let first_pending = &m.messages[m.delivered];
    let attempts = server
        .get(&format!("/api/v1/app/{APP}/attempt/msg/{first_pending}"))
        .await;
    let outcomes: Vec<&str> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusText"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|s| **s == "success").count(),
        routes(m.delivered).len(),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"fail"), "{outcomes:?}");

    let status = server.terminate().await;
    assert!(status.success(), "{engine}: SIGTERM exits 0, got {status}");
    eprintln!(
        "{engine}: fixture of {} at migration {} ({} applied) migrated to {latest} ({count}) in \
         {migrate_time:.2?}; {old_deliveries} old and {new_deliveries} new deliveries \
         ({} + {NEW} messages) arrived in {drained:.2?} after start ({})",
        m.made_by,
        before.1,
        before.0,
        m.messages.len() - m.delivered,
        spans.join(", "),
    );
}
