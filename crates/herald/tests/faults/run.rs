//! One run: the nodes, the receivers and the workload, three phases (calm; receivers
//! misbehaving; node and database faults on top), a drain, then the checker over the history.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Options;
use crate::checker::{self, Acked, EndpointHistory, FaultWindow};
use crate::cluster::{self, ATTEMPT_TIMEOUT, LEASE, Node, TOKEN, Tmpfs};
use crate::receiver::{Behaviour, Receiver};
use crate::schedule::{self, Kind};
use crate::tcp_proxy::TcpProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct Outcome {
    pub passed: bool,
    pub markdown: String,
}

/// The healthy endpoints: name and whether FIFO.
const HEALTHY: [(&str, bool); 4] = [
    ("fifo-1", true),
    ("fifo-2", true),
    ("plain-1", false),
    ("plain-2", false),
];

/// What the publisher and the injector share: which nodes may take publishes now.
struct Cluster {
    nodes: Vec<tokio::sync::Mutex<Node>>,
    up: Vec<AtomicBool>,
    bases: Vec<String>,
}

pub async fn run(engine: Engine, options: &Options) -> Result<Outcome, String> {
    let epoch = Instant::now();
    let mut skipped: Vec<String> = Vec::new();
    let mut kinds = vec![Kind::Kill, Kind::Stop];
    if cluster::faketime_available() {
        kinds.push(Kind::ClockSkew);
    } else {
        skipped.push(format!("clock skew: no {}", cluster::FAKETIME_LIB));
    }
    // Keeps the data directory (and the database) for the run.
    let mut tmpfs = None;
    let mut _data_dirs = Vec::new();
    let mut database = None;
    let nodes: Vec<Node> = match engine {
        Engine::Sqlite => {
            // Room for the run's history: the disk fills only when the suite fills it.
            let megabytes = 256 + 200 * u32::try_from(options.duration.as_secs() / 60).unwrap_or(0);
            let dir = match Tmpfs::mount(megabytes) {
                Ok(fs) => {
                    kinds.push(Kind::DiskFull);
                    let path = fs.path().to_owned();
                    tmpfs = Some(fs);
                    path
                }
                Err(e) => {
                    skipped.push(format!("disk full: no tmpfs ({e})"));
                    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let path = dir.path().to_owned();
                    _data_dirs.push(dir);
                    path
                }
            };
            let url = format!("sqlite://{}", dir.join("herald.db").display());
            vec![Node::new("sqlite-1", url, &dir, None)]
        }
        Engine::Postgres => {
            let base = std::env::var("HERALD_TEST_DATABASE_URL")
                .map_err(|_| "HERALD_TEST_DATABASE_URL is not set".to_owned())?;
            let db = Database::create(&base).await?;
            kinds.extend([Kind::Cut, Kind::Partition]);
            if crate::support::is_root() {
                kinds.push(Kind::PostgresRestart);
            } else {
                skipped.push("Postgres restart: not root".into());
            }
            let mut nodes = Vec::new();
            for i in 1..=3 {
                let proxy = TcpProxy::start(db.upstream).await;
                let url = db.url_through(proxy.port());
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                nodes.push(Node::new(&format!("pg-{i}"), url, dir.path(), Some(proxy)));
                _data_dirs.push(dir);
            }
            database = Some(db);
            nodes
        }
    };
    let mut started = Vec::new();
    for mut node in nodes {
        node.start().await;
        started.push(node);
    }
    let cluster = Arc::new(Cluster {
        bases: started.iter().map(Node::base).collect(),
        up: started.iter().map(|_| AtomicBool::new(true)).collect(),
        nodes: started.into_iter().map(tokio::sync::Mutex::new).collect(),
    });

    // The application, its healthy endpoints and one misbehaving receiver of each kind.
    let client = reqwest::Client::new();
    let base = cluster.bases[0].clone();
    let app = post(&client, &base, "/api/v1/app", json!({"name": "faults"})).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut healthy = Vec::new();
    for (name, fifo) in HEALTHY {
        let receiver = Receiver::start(Behaviour::Healthy, epoch, Duration::ZERO).await;
        let mut body = json!({"url": receiver.url("/hook"), "uid": name});
        if fifo {
            body["ordering"] = json!("fifo");
        }
        post(&client, &base, &format!("/api/v1/app/{app}/endpoint"), body).await?;
        healthy.push((name, fifo, receiver));
    }
    let mut misbehaving = Vec::new();
    for behaviour in Behaviour::MISBEHAVING {
        let receiver = Receiver::start(behaviour, epoch, ATTEMPT_TIMEOUT * 2).await;
        let body = json!({"url": receiver.url("/hook"), "uid": behaviour.name()});
        post(&client, &base, &format!("/api/v1/app/{app}/endpoint"), body).await?;
        misbehaving.push(receiver);
    }

    // The workload, through the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let publisher = tokio::spawn(publish(
        cluster.clone(),
        app.clone(),
        options.rate,
        epoch,
        stop.clone(),
        acked.clone(),
    ));

    // Calm, then the receivers misbehave, then node and database faults on top.
    let total = options.duration;
    let misbehave_at = total * 15 / 100;
    let faults_at = total * 30 / 100;
    let faults_until = total * 90 / 100;
    tokio::time::sleep_until((epoch + misbehave_at).into()).await;
    for receiver in &misbehaving {
        receiver.behaving.store(false, Ordering::Relaxed);
    }
    tokio::time::sleep_until((epoch + faults_at).into()).await;
    let plan = schedule::plan(
        options.seed ^ engine as u64,
        &kinds,
        cluster.nodes.len(),
        faults_until - faults_at,
    );
    println!("faults: {engine:?} schedule: {}", schedule::describe(&plan));
    let mut windows = Vec::new();
    for planned in &plan {
        tokio::time::sleep(planned.gap).await;
        windows.push(inject(&cluster, planned, tmpfs.as_ref(), epoch).await);
    }
    tokio::time::sleep_until((epoch + total).into()).await;
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.await;
    let publish_end = epoch.elapsed();

    // Drain: every acknowledged message at every healthy endpoint, or give up after 3 min.
    let acked: Vec<Acked> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let all = healthy.iter().all(|(_, _, r)| {
            let got: std::collections::HashSet<String> =
                r.requests().into_iter().map(|q| q.webhook_id).collect();
            acked.iter().all(|m| got.contains(&m.msg_id))
        });
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_after = epoch.elapsed() - publish_end;

    // Herald's side: what it recorded as delivered, and (SQLite) whether the file is sound.
    for node in &cluster.nodes {
        node.lock().await.terminate().await;
    }
    let url = cluster.nodes[0]
        .lock()
        .await
        .database_url_direct(database.as_ref());
    let (successes, integrity) = read_database(&url).await?;
    if let Some(db) = database {
        db.drop().await;
    }
    drop(tmpfs);

    let histories: Vec<EndpointHistory> = healthy
        .iter()
        .map(|(name, fifo, r)| EndpointHistory {
            name: (*name).to_owned(),
            fifo: *fifo,
            requests: r.requests(),
            recorded_successes: successes.get(*name).cloned().unwrap_or_default(),
        })
        .collect();
    let settle = LEASE + ATTEMPT_TIMEOUT;
    let report = checker::check(&acked, &histories, &windows, ATTEMPT_TIMEOUT, settle);
    let self_test =
        checker::seeded_bugs_are_caught(&acked, &histories, &windows, ATTEMPT_TIMEOUT, settle);
    let isolation = crate::report::isolation(&acked, &histories, &windows, misbehave_at, settle);
    let passed = report.passed() && integrity.as_deref().is_none_or(|i| i == "ok");
    let markdown = crate::report::render(&crate::report::Rendered {
        engine,
        options,
        report: &report,
        skipped: &skipped,
        integrity,
        drained_after,
        self_test,
        isolation,
        windows: &windows,
    });
    Ok(Outcome { passed, markdown })
}

/// Publishes one message at a time (so publish order is commit order), round the nodes that
/// are up, at `rate` per second; records what was acknowledged.
async fn publish(
    cluster: Arc<Cluster>,
    app: String,
    rate: u32,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("a client");
    let interval = Duration::from_secs(1) / rate.max(1);
    let mut next = Instant::now();
    let mut seq = 0u64;
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        next += interval;
        tokio::time::sleep_until(next.into()).await;
        let Some(node) = (0..cluster.bases.len())
            .map(|i| (turn + i) % cluster.bases.len())
            .find(|i| cluster.up[*i].load(Ordering::Relaxed))
        else {
            continue;
        };
        turn = node + 1;
        seq += 1;
        let url = format!("{}/api/v1/app/{app}/msg", cluster.bases[node]);
        let body = json!({"eventType": "fault.test", "payload": {"seq": seq}});
        if let Some(msg_id) = publish_one(&client, &url, &body).await
            && let Ok(mut acked) = acked.lock()
        {
            acked.push(Acked {
                msg_id,
                at: epoch.elapsed(),
            });
        }
    }
}

/// Publishes one message; its id when Herald acknowledged it.
pub async fn publish_one(client: &reqwest::Client, url: &str, body: &Value) -> Option<String> {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["id"].as_str().map(str::to_owned)
}

/// Injects one fault and returns its window.
async fn inject(
    cluster: &Cluster,
    planned: &schedule::Planned,
    tmpfs: Option<&Tmpfs>,
    epoch: Instant,
) -> FaultWindow {
    let i = planned.node;
    let start = epoch.elapsed();
    let mut may_duplicate = true;
    match planned.kind {
        Kind::Kill => {
            cluster.up[i].store(false, Ordering::Relaxed);
            let mut node = cluster.nodes[i].lock().await;
            node.kill().await;
            node.start().await;
            cluster.up[i].store(true, Ordering::Relaxed);
        }
        Kind::Stop => {
            cluster.up[i].store(false, Ordering::Relaxed);
            let node = cluster.nodes[i].lock().await;
            node.pause();
            tokio::time::sleep(planned.length).await;
            node.resume();
            cluster.up[i].store(true, Ordering::Relaxed);
        }
        Kind::DiskFull => {
            if let Some(fs) = tmpfs {
                let filler = fs.fill(0);
                tokio::time::sleep(planned.length).await;
                let _ = std::fs::remove_file(filler);
            }
        }
        Kind::Cut => {
            let node = cluster.nodes[i].lock().await;
            if let Some(proxy) = &node.proxy {
                proxy.stop();
                tokio::time::sleep(planned.length).await;
                proxy.start_again().await;
            }
        }
        Kind::Partition => {
            let node = cluster.nodes[i].lock().await;
            if let Some(proxy) = &node.proxy {
                proxy.pause(true);
                tokio::time::sleep(planned.length).await;
                proxy.pause(false);
            }
        }
        Kind::PostgresRestart => {
            if let Ok(Err(e)) = tokio::task::spawn_blocking(cluster::restart_postgres).await {
                println!("faults: Postgres restart failed: {e}");
            }
        }
        Kind::ClockSkew => {
            // A clean restart each way: any duplicate here would be the skew's.
            may_duplicate = false;
            cluster.up[i].store(false, Ordering::Relaxed);
            let mut node = cluster.nodes[i].lock().await;
            node.terminate().await;
            node.skew = Some("+2s".into());
            node.start().await;
            cluster.up[i].store(true, Ordering::Relaxed);
            tokio::time::sleep(planned.length).await;
            cluster.up[i].store(false, Ordering::Relaxed);
            node.terminate().await;
            node.skew = None;
            node.start().await;
            cluster.up[i].store(true, Ordering::Relaxed);
        }
    }
    FaultWindow {
        name: format!("{} (node {})", planned.kind.name(), i + 1),
        start,
        end: epoch.elapsed(),
        may_duplicate,
    }
}

pub async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> Result<Value, String> {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{path}: {status} {body}"))
    }
}

/// A fresh Postgres database for one run.
pub struct Database {
    admin: String,
    name: String,
    upstream: std::net::SocketAddr,
    base: url::Url,
}

impl Database {
    pub async fn create(base: &str) -> Result<Self, String> {
        use sqlx::Executor;
        let url = url::Url::parse(base).map_err(|e| e.to_string())?;
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(5432);
        let upstream = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address for the database host")?;
        let name = format!("herald_faults_{}", std::process::id());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(base)
            .await
            .map_err(|e| format!("cannot reach Postgres: {e}"))?;
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            admin: base.to_owned(),
            name,
            upstream,
            base: url,
        })
    }

    fn url_through(&self, port: u16) -> String {
        let mut url = self.base.clone();
        let _ = url.set_host(Some("127.0.0.1"));
        let _ = url.set_port(Some(port));
        url.set_path(&self.name);
        url.to_string()
    }

    pub fn direct(&self) -> String {
        let mut url = self.base.clone();
        url.set_path(&self.name);
        url.to_string()
    }

    pub async fn drop(self) {
        use sqlx::Executor;
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin).await {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .await;
        }
    }
}

impl Node {
    /// The node's database, without its proxy.
    fn database_url_direct(&self, database: Option<&Database>) -> String {
        match database {
            Some(db) => db.direct(),
            None => self.database_url().to_owned(),
        }
    }
}

/// Endpoint uid, message id, successful attempts.
type SuccessRow = (Option<String>, String, i64);

/// Successful attempts Herald recorded per endpoint uid and message id; and for SQLite, what
/// `PRAGMA integrity_check` says.
async fn read_database(
    url: &str,
) -> Result<(HashMap<String, HashMap<String, u32>>, Option<String>), String> {
    const QUERY: &str = "SELECT e.uid, a.msg_id, COUNT(*) FROM attempts a
         JOIN endpoints e ON e.id = a.endpoint_id WHERE a.success GROUP BY e.uid, a.msg_id";
    let mut successes: HashMap<String, HashMap<String, u32>> = HashMap::new();
    let (rows, integrity): (Vec<SuccessRow>, Option<String>) = if url.starts_with("sqlite") {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let rows = sqlx::query_as(QUERY)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        (rows, Some(integrity))
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let rows = sqlx::query_as(QUERY)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        (rows, None)
    };
    for (uid, msg, n) in rows {
        successes
            .entry(uid.unwrap_or_default())
            .or_default()
            .insert(msg, u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok((successes, integrity))
}
