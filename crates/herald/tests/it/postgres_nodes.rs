//! Several Herald nodes on one Postgres database: sharing the work, losing a node to SIGKILL,
//! losing every database connection, waking each other through the database, and keeping each
//! endpoint's concurrency cap, throttle and FIFO order across nodes.
//!
//! These run when `HERALD_TEST_DATABASE_URL` is set (`.ci/run` sets it) and skip saying so
//! otherwise. Each test works in a database of its own, dropped at its end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald::config::Role;
use herald_store::testing::{TestDatabase, postgres_url_or_skip};
use reqwest::StatusCode;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::child::{ChildServer, TOKEN, free_port};
use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

/// Every node of a shared database seals and opens secrets with the same key.
const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// `herald serve` as a child process on the test database, in a data directory of its own.
async fn start_node(db: &TestDatabase, dir: &std::path::Path, role: &str) -> ChildServer {
    ChildServer::start(
        dir,
        free_port(),
        &[
            ("HERALD_DATABASE_URL", db.url.as_str()),
            ("HERALD_ENCRYPTION_KEY", KEY),
            ("HERALD_ROLE", role),
        ],
    )
    .await
}

/// An in-process node on the test database (for tests that adjust the worker).
pub(crate) async fn spawn_node(
    db: &TestDatabase,
    role: Role,
    adjust: impl FnOnce(&mut herald::config::Config),
    adjust_app: impl FnOnce(&mut herald::Application),
) -> TestApp {
    let url = db.url.clone();
    TestApp::spawn_adjusted(
        move |config| {
            config.storage.database_url = url;
            config.encryption_key = Some(Zeroizing::new(KEY.to_owned()));
            config.role = role;
            adjust(config);
        },
        adjust_app,
    )
    .await
}

/// POSTs with the admin token and returns the status (0 when no answer came).
async fn try_post(client: &reqwest::Client, url: &str, body: &Value) -> u16 {
    match client.post(url).bearer_auth(TOKEN).json(body).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// The `i` of each delivery's payload, with how many times it arrived and when first.
fn tally(r: &Receiver) -> HashMap<u64, (usize, Instant)> {
    let mut seen: HashMap<u64, (usize, Instant)> = HashMap::new();
    for req in r.all_received() {
        let payload: Value = serde_json::from_slice(&req.body).unwrap();
        let i = payload["i"].as_u64().unwrap();
        let entry = seen.entry(i).or_insert((0, req.at));
        entry.0 += 1;
        entry.1 = entry.1.min(req.at);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_everything_when_one_is_killed() {
    const ENDPOINTS: usize = 20;
    const MESSAGES: usize = 5000;
    const CAP: u16 = 5;
    let Some(base) = postgres_url_or_skip("three_nodes_deliver_everything_when_one_is_killed")
    else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    eprintln!("three nodes on database {}", db.name);
    let r = Receiver::start().await;
    for e in 0..ENDPOINTS {
        r.always(
            &format!("/n{e}"),
            Step::Delay(Duration::from_millis(10), Box::new(Step::Status(200))),
        );
    }
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Started together: they migrate the empty database one at a time.
    let (a, b, c) = tokio::join!(
        start_node(&db, dirs[0].path(), "all"),
        start_node(&db, dirs[1].path(), "all"),
        start_node(&db, dirs[2].path(), "all"),
    );
    let mut nodes = vec![a, b, c];
    let app = nodes[0].post("/api/v1/app", json!({"name": "Nodes"})).await;
    let app = app["id"].as_str().unwrap().to_owned();
    for e in 0..ENDPOINTS {
        nodes[e % 3]
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                json!({
                    "url": r.url(&format!("/n{e}")),
                    "eventTypes": [format!("t{e}")],
                    "maxConcurrency": CAP,
                    "timeoutSeconds": 5,
                }),
            )
            .await;
    }

    // Publish round-robin through the nodes alive, 24 at a time. A publish whose node does not
    // answer goes to the next node with the same eventId: 409 then means the first one did
    // commit.
    let urls: Arc<Vec<String>> = Arc::new(
        nodes
            .iter()
            .map(|n| n.url(&format!("/api/v1/app/{app}/msg")))
            .collect(),
    );
    let killed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let publisher = tokio::spawn({
        let urls = urls.clone();
        let killed = killed.clone();
        async move {
            let client = reqwest::Client::new();
            futures::stream::iter(0..MESSAGES)
                .map(|i| {
                    let (client, urls, killed) = (client.clone(), urls.clone(), killed.clone());
                    async move {
                        let body = json!({
                            "eventType": format!("t{}", i % ENDPOINTS),
                            "eventId": format!("m{i}"),
                            "payload": {"i": i},
                        });
                        for attempt in 0..30 {
                            let node = (i + attempt) % 3;
                            if node == 2 && killed.load(Ordering::SeqCst) {
                                continue;
                            }
                            match try_post(&client, &urls[node], &body).await {
                                202 | 409 => return,
                                0 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                                other => panic!("publish answered {other}"),
                            }
                        }
                        panic!("message {i} could not be published");
                    }
                })
                .buffer_unordered(24)
                .collect::<Vec<()>>()
                .await;
        }
    });

    // SIGKILL the third node mid-run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while r.total() < 1500 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killed.store(true, Ordering::SeqCst);
    let mut victim = nodes.pop().unwrap();
    victim.child.start_kill().unwrap();
    victim.child.wait().await.unwrap();
    let killed_at = Instant::now();
    let before = tally(&r);
    let delivered_before: usize = before.values().map(|(n, _)| n).sum();
    assert_eq!(
        delivered_before,
        before.len(),
        "no duplicates while every node is up"
    );
    eprintln!(
        "killed a node after {:.1?} with {} of {MESSAGES} delivered by 3 nodes",
        killed_at - started,
        before.len()
    );
    publisher.await.unwrap();
    let published_at = Instant::now();

    // Everything arrives: the killed node's endpoints and in-flight tasks are taken over when
    // their leases run out.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = tally(&r).len();
        if seen == MESSAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {MESSAGES} arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = tally(&r);
    let total = r.total();
    let duplicates = total - seen.len();
    eprintln!(
        "3 nodes, one SIGKILLed: {MESSAGES} messages over {ENDPOINTS} endpoints in {:.1?} \
         (publishing took {:.1?}; {:.1?} from the kill to the last delivery); {total} requests, \
         {duplicates} duplicates",
        done_at - started,
        published_at - started,
        done_at - killed_at,
    );
    assert_eq!(seen.len(), MESSAGES);
    // Duplicates are attempts that were in flight at the kill: they had arrived before it, and
    // the killed node had at most CAP in flight per endpoint.
    for (i, (count, first)) in &seen {
        assert!(*count <= 2, "message {i} arrived {count} times");
        if *count == 2 {
            assert!(*first < killed_at, "message {i} duplicated in steady state");
        }
    }
    assert!(duplicates <= ENDPOINTS * usize::from(CAP), "{duplicates}");
    // One node at a time dispatches an endpoint: its cap held across the three.
    for e in 0..ENDPOINTS {
        let max = r.max_in_flight(&format!("/n{e}"));
        assert!(max <= usize::from(CAP), "/n{e} had {max} in flight");
    }
    for mut node in nodes {
        node.child.start_kill().unwrap();
        node.child.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_the_database_drops_every_connection() {
    let Some(base) =
        postgres_url_or_skip("delivery_resumes_after_the_database_drops_every_connection")
    else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let r = Receiver::start().await;
    let (api_dir, worker_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Separate roles: the worker hears of publishes only through the database.
    let mut api = start_node(&db, api_dir.path(), "api").await;
    let mut worker = start_node(&db, worker_dir.path(), "worker").await;
    let app = api.post("/api/v1/app", json!({"name": "Outage"})).await;
    let app = app["id"].as_str().unwrap().to_owned();
    api.post(
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": r.url("/o")}),
    )
    .await;
    let publish_url = api.url(&format!("/api/v1/app/{app}/msg"));
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for i in 0..20 {
        let status = try_post(
            &client,
            &publish_url,
            &json!({"eventType": "a", "payload": {"i": i}}),
        )
        .await;
        assert_eq!(status, 202);
        acked.push(i);
    }
    r.wait_for("/o", 20, Duration::from_secs(20)).await;

    // Every connection to the database is ended, again and again for three seconds, as in a
    // database restart. Publishes meanwhile are either committed (202) or refused (503).
    let mut admin = db.admin_connection().await;
    let outage = Duration::from_secs(3);
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn({
        let (client, url) = (client.clone(), publish_url.clone());
        let (stop, refused) = (stop_publishing.clone(), refused.clone());
        async move {
            let mut acked = Vec::new();
            let mut i = 1000;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"eventType": "a", "payload": {"i": i}});
                match try_post(&client, &url, &body).await {
                    202 => acked.push(i),
                    503 => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    other => panic!("a publish during the outage answered {other}"),
                }
                i += 1;
            }
            acked
        }
    });
    let began = Instant::now();
    let mut ended = 0;
    let mut unhealthy = false;
    while began.elapsed() < outage {
        ended += db.terminate_connections(&mut admin).await;
        let health = client.get(api.url("/api/v1/health")).send().await.unwrap();
        unhealthy |= health.status() == StatusCode::SERVICE_UNAVAILABLE;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_publishing.store(true, Ordering::SeqCst);
    let during = publisher.await.unwrap();
    let refused = refused.load(Ordering::SeqCst);
    eprintln!(
        "outage: {ended} connections ended; {} publishes committed, {refused} refused with 503; \
         health reported 503: {unhealthy}",
        during.len()
    );
    assert!(
        refused > 0,
        "publishes must be refused while the database is gone"
    );
    acked.extend(during);

    // The database is back: both processes carry on by themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = client.get(api.url("/api/v1/health")).send().await.unwrap();
        if health.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert!(Instant::now() < deadline, "the API did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 2000..2020 {
        let status = try_post(
            &client,
            &publish_url,
            &json!({"eventType": "a", "payload": {"i": i}}),
        )
        .await;
        assert_eq!(status, 202, "publishes are accepted again");
        acked.push(i);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = tally(&r);
        let missing: Vec<_> = acked.iter().filter(|i| !seen.contains_key(i)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged messages not delivered after the outage: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(api.child.try_wait().unwrap().is_none(), "no restart");
    assert!(worker.child.try_wait().unwrap().is_none(), "no restart");
    for node in [api, worker] {
        assert!(node.terminate().await.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_node_is_woken_by_a_publish_on_an_api_node() {
    let Some(base) = postgres_url_or_skip("a_worker_node_is_woken_by_a_publish_on_an_api_node")
    else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let r = Receiver::start().await;
    let api = spawn_node(&db, Role::Api, |_| {}, |_| {}).await;
    let app = api.create_app("Wake").await;
    api.create_endpoint(&app, json!({"url": r.url("/w")})).await;
    // An API node delivers nothing.
    api.publish(&app, json!({"eventType": "a", "payload": {"i": 0}}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(r.received("/w").is_empty());

    // A worker node that sweeps once an hour: after its first look, only the database's
    // wake-ups can bring it work in time.
    let worker = spawn_node(
        &db,
        Role::Worker,
        |_| {},
        |app| app.worker_config_mut().sweep_interval = Duration::from_secs(3600),
    )
    .await;
    r.wait_for("/w", 1, Duration::from_secs(10)).await;
    for i in 1..=10 {
        api.publish(&app, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
        r.wait_for("/w", i + 1, Duration::from_secs(10)).await;
    }
    // A worker node serves health checks and nothing else.
    let (status, _) = worker.get("/api/v1/health").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = worker.get("/api/v1/app").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_throttle_and_fifo_hold_across_nodes() {
    let Some(base) = postgres_url_or_skip("caps_throttle_and_fifo_hold_across_nodes") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let r = Receiver::start().await;
    r.always(
        "/capped",
        Step::Delay(Duration::from_millis(60), Box::new(Step::Status(200))),
    );
    r.always(
        "/fifo",
        Step::Delay(Duration::from_millis(20), Box::new(Step::Status(200))),
    );
    let one = spawn_node(&db, Role::All, |_| {}, |_| {}).await;
    let two = spawn_node(&db, Role::All, |_| {}, |_| {}).await;
    let nodes = [&one, &two];
    let app = one.create_app("Caps").await;
    one.create_endpoint(
        &app,
        json!({"url": r.url("/capped"), "eventTypes": ["c"], "maxConcurrency": 3}),
    )
    .await;
    two.create_endpoint(
        &app,
        json!({"url": r.url("/throttled"), "eventTypes": ["t"], "throttleRate": 5}),
    )
    .await;
    one.create_endpoint(
        &app,
        json!({"url": r.url("/fifo"), "eventTypes": ["f"], "ordering": "fifo"}),
    )
    .await;

    // Bursts through both nodes at once, with pauses in which endpoints fall idle and are
    // released, so that either node may take them next.
    let mut fifo_order = Vec::new();
    for burst in 0..3 {
        let publishes = (0..10).map(|k| {
            let i = burst * 10 + k;
            let node = nodes[k % 2];
            let app = app.clone();
            async move {
                node.publish(&app, json!({"eventType": "c", "payload": {"i": i}}))
                    .await;
            }
        });
        futures::future::join_all(publishes).await;
        for k in 0..4 {
            let i = 100 + burst * 4 + k;
            nodes[k % 2]
                .publish(&app, json!({"eventType": "t", "payload": {"i": i}}))
                .await;
        }
        // FIFO order is publish order: one publish after the other, alternating nodes.
        for k in 0..8 {
            let i = 200 + burst * 8 + k;
            nodes[k % 2]
                .publish(&app, json!({"eventType": "f", "payload": {"i": i}}))
                .await;
            fifo_order.push(i as u64);
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    r.wait_for("/capped", 30, Duration::from_secs(30)).await;
    let fifo = r.wait_for("/fifo", 24, Duration::from_secs(30)).await;
    let throttled = r.wait_for("/throttled", 12, Duration::from_secs(30)).await;

    assert!(
        r.max_in_flight("/capped") <= 3,
        "{}",
        r.max_in_flight("/capped")
    );
    let arrived: Vec<u64> = fifo
        .iter()
        .map(|req| {
            serde_json::from_slice::<Value>(&req.body).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(arrived, fifo_order, "FIFO order across nodes");
    assert!(r.max_in_flight("/fifo") <= 1);
    for (i, req) in throttled.iter().enumerate() {
        let in_window = throttled[i..]
            .iter()
            .filter(|o| o.at - req.at < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 6,
            "{in_window} throttled deliveries within one second"
        );
    }
    two.stop().await;
    one.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_brings_postgres_up_to_date_and_a_node_without_the_key_refuses_to_start() {
    let Some(base) = postgres_url_or_skip(
        "migrate_brings_postgres_up_to_date_and_a_node_without_the_key_refuses_to_start",
    ) else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let migrate = |dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .current_dir(dir)
            .args(["migrate", "--database-url", &db.url])
            .output()
            .unwrap()
    };
    let out = migrate(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("up to date"));
    assert!(
        !dir.path().join("herald-data").exists(),
        "a Postgres database needs no data directory"
    );
    // Again: nothing to do.
    assert!(migrate(dir.path()).status.success());

    // The first node seals secrets under the shared key; a node that has neither that key nor
    // a key file refuses to start instead of making a key of its own.
    let first = spawn_node(&db, Role::All, |_| {}, |_| {}).await;
    first.stop().await;
    let other = tempfile::tempdir().unwrap();
    let mut config = herald::Config::for_data_dir(other.path());
    config.storage.database_url = db.url.clone();
    let Err(e) = herald::Application::build(config).await else {
        panic!("a node without the key started");
    };
    assert!(e.to_string().contains("HERALD_ENCRYPTION_KEY"), "{e}");
    assert!(!other.path().join("encryption.key").exists());
}

/// A publish whose `COMMIT` fails on Postgres is answered 507 (the disk is full) or 503 (a
/// serialization failure, the connection ended during the commit), never 202; nothing of it is
/// stored, and its retry with the same `Idempotency-Key` is published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_commit_fails_is_answered_503_or_507_and_its_retry_is_stored_once() {
    let Some(base) = postgres_url_or_skip(
        "a_publish_whose_commit_fails_is_answered_503_or_507_and_its_retry_is_stored_once",
    ) else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let t = spawn_node(&db, Role::All, |_| {}, |_| {}).await;
    let mut fault = herald_store::testing::CommitFault::install(&db).await;
    let app = t.create_app("Commit").await;
    let publish = |what: &str| {
        t.request(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
            .header("idempotency-key", format!("key-{what}"))
            .json(&json!({"eventType": "a", "eventId": format!("ev-{what}"),
                          "payload": {"what": what}}))
            .send()
    };
    for (what, status, code) in [
        ("53100", 507, "insufficient_storage"),
        ("40001", 503, "service_unavailable"),
        ("disconnect", 503, "service_unavailable"),
    ] {
        fault.fail_with(what).await;
        let (got, body) = crate::helpers::json(publish(what).await.unwrap()).await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert_eq!(body["code"], code, "{what}");
        fault.clear().await;
        let (got, _) = t.get(&format!("/api/v1/app/{app}/msg/ev-{what}")).await;
        assert_eq!(got, StatusCode::NOT_FOUND, "{what}: nothing is stored");

        let retry = publish(what).await.unwrap();
        assert!(retry.headers().get("idempotent-replayed").is_none());
        assert_eq!(retry.status(), StatusCode::ACCEPTED, "{what}");
        let again = publish(what).await.unwrap();
        assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    }
    let (_, list) = t.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    t.stop().await;
}
