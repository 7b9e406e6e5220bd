//! The storage soak (`-- --soak`): one node under a steady workload with every retention cut
//! to the options' minimum (0.001 days, 86.4 s), its database's size read as it runs.
//!
//! Without the log retention's deletes the database grows with every message, for as long as
//! Herald runs. With them it must level off once the first messages age out: what is kept is
//! the last retention period's worth plus at most one purge interval. After a warm-up of that
//! long, the peak size over the second half of the measured window may exceed the first
//! half's peak by `PLATEAU_SLACK` at most (the size saws between purges; a steady climb
//! fails). Every acknowledged message must still arrive at every endpoint: retention never
//! deletes work that is not finished.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Options;
use crate::cluster::{self, Node};
use crate::receiver::{Behaviour, Receiver};
use crate::run::{Database, Engine, Outcome, post, publish_one};

/// Retention of payloads, response bodies and logs, in days: the options' minimum.
const RETENTION_DAYS: &str = "0.001";
const RETENTION: Duration = Duration::from_millis(86_400);
/// How often Herald's purge pass runs (`herald::retention`'s interval).
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the size is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(20);
/// Growth allowed from the first half's peak to the second half's.
const PLATEAU_SLACK: f64 = 0.15;
/// Bytes of padding per payload, so that the sizes are about content more than row overhead.
const PADDING: usize = 512;
/// The shortest soak that can show a plateau: a warm-up, then two halves of two minutes.
pub const SHORTEST: Duration = Duration::from_secs(7 * 60);

/// One reading of the database.
struct Sample {
    at: Duration,
    published: usize,
    messages: u64,
    deliveries: u64,
    attempts: u64,
    /// SQLite: the main file and its WAL on disk; Postgres: the three tables with their
    /// indexes and TOAST.
    bytes: u64,
    /// Age of the oldest message kept, in seconds.
    oldest_s: Option<i64>,
}

pub async fn run(engine: Engine, options: &Options) -> Result<Outcome, String> {
    let epoch = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut database = None;
    let url = match engine {
        Engine::Sqlite => format!("sqlite://{}", dir.path().join("herald.db").display()),
        Engine::Postgres => {
            let base = std::env::var("HERALD_TEST_DATABASE_URL")
                .map_err(|_| "HERALD_TEST_DATABASE_URL is not set".to_owned())?;
            let db = Database::create(&base).await?;
            let url = db.direct();
            database = Some(db);
            url
        }
    };
    let mut node = Node::new(&format!("soak-{engine:?}"), url.clone(), dir.path(), None);
    node.extra_args = [
        "--payload-retention-days",
        "--response-retention-days",
        "--log-retention-days",
    ]
    .into_iter()
    .flat_map(|option| [option.to_owned(), RETENTION_DAYS.to_owned()])
    .collect();
    node.start().await;

    let client = reqwest::Client::new();
    let base = node.base();
    let app = post(&client, &base, "/api/v1/app", json!({"name": "soak"})).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut receivers = Vec::new();
    for (uid, fifo) in [("plain", false), ("fifo", true)] {
        let receiver = Receiver::start(Behaviour::Healthy, epoch, Duration::ZERO).await;
        let mut body = json!({"url": receiver.url("/hook"), "uid": uid});
        if fifo {
            body["ordering"] = json!("fifo");
        }
        post(&client, &base, &format!("/api/v1/app/{app}/endpoint"), body).await?;
        receivers.push(receiver);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let publisher = tokio::spawn(publish(
        format!("{base}/api/v1/app/{app}/msg"),
        options.rate,
        stop.clone(),
        acked.clone(),
    ));
    let mut samples = Vec::new();
    let mut next = epoch;
    while epoch.elapsed() < options.duration {
        next += SAMPLE_EVERY;
        tokio::time::sleep_until(next.into()).await;
        let published = acked.lock().map(|a| a.len()).unwrap_or(0);
        match sample(engine, &url, dir.path(), epoch.elapsed(), published).await {
            Ok(s) => samples.push(s),
            Err(e) => println!("faults: soak: reading the size failed: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.await;

    // Everything acknowledged arrives, although its rows are deleted soon after.
    let acked: Vec<String> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let missing: usize = receivers
            .iter()
            .map(|r| {
                let got: std::collections::HashSet<String> =
                    r.requests().into_iter().map(|q| q.webhook_id).collect();
                acked.iter().filter(|id| !got.contains(*id)).count()
            })
            .sum();
        if missing == 0 || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    node.terminate().await;
    if let Some(db) = database {
        db.drop().await;
    }

    let plateau = plateau(&samples);
    let passed = missing == 0 && plateau.as_ref().is_some_and(|p| p.passed);
    let markdown = render(
        engine,
        options,
        &samples,
        plateau.as_ref(),
        acked.len(),
        missing,
    );
    Ok(Outcome { passed, markdown })
}

/// Publishes at `rate` per second, one at a time, and keeps the acknowledged ids.
async fn publish(url: String, rate: u32, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let interval = Duration::from_secs(1) / rate.max(1);
    let padding = "x".repeat(PADDING);
    let mut next = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        next += interval;
        tokio::time::sleep_until(next.into()).await;
        seq += 1;
        let body = json!({"eventType": "soak.test", "payload": {"seq": seq, "padding": padding}});
        if let Some(id) = publish_one(&client, &url, &body).await
            && let Ok(mut acked) = acked.lock()
        {
            acked.push(id);
        }
    }
}

/// Reads the database through `herald stats storage --json`, as an operator would.
async fn sample(
    engine: Engine,
    url: &str,
    dir: &std::path::Path,
    at: Duration,
    published: usize,
) -> Result<Sample, String> {
    let output = cluster::herald_command()
        .args(["stats", "storage", "--json", "--database-url", url])
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let stats: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let table = |name: &str, field: &str| {
        stats["tables"]
            .as_array()
            .and_then(|tables| tables.iter().find(|t| t["name"] == name))
            .and_then(|t| t[field].as_u64())
            .unwrap_or(0)
    };
    let bytes = match engine {
        Engine::Sqlite => ["herald.db", "herald.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum(),
        Engine::Postgres => ["messages", "deliveries", "attempts"]
            .iter()
            .map(|t| table(t, "bytes"))
            .sum(),
    };
    let oldest_s = stats["oldestMessage"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds());
    Ok(Sample {
        at,
        published,
        messages: table("messages", "rows"),
        deliveries: table("deliveries", "rows"),
        attempts: table("attempts", "rows"),
        bytes,
        oldest_s,
    })
}

struct Plateau {
    warm_up: Duration,
    first_peak: u64,
    second_peak: u64,
    passed: bool,
}

/// The two halves' peaks after the warm-up; `None` when the run was too short to have both.
fn plateau(samples: &[Sample]) -> Option<Plateau> {
    let warm_up = RETENTION + PURGE_INTERVAL + SAMPLE_EVERY * 2;
    let measured: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    if measured.len() < 4 {
        return None;
    }
    let (first, second) = measured.split_at(measured.len() / 2);
    let peak = |half: &[&Sample]| half.iter().map(|s| s.bytes).max().unwrap_or(0);
    let (first_peak, second_peak) = (peak(first), peak(second));
    #[allow(clippy::cast_precision_loss)]
    let passed = second_peak as f64 <= first_peak as f64 * (1.0 + PLATEAU_SLACK);
    Some(Plateau {
        warm_up,
        first_peak,
        second_peak,
        passed,
    })
}

fn render(
    engine: Engine,
    options: &Options,
    samples: &[Sample],
    plateau: Option<&Plateau>,
    acked: usize,
    missing: usize,
) -> String {
    let mut out = format!(
        "### Soak, {engine:?}: retention {RETENTION_DAYS} days ({:?}) for payloads, responses \
         and logs; {} publishes/s for {:?}, two endpoints (one FIFO)\n\n\
         | At | Published | Messages | Deliveries | Attempts | Bytes | Oldest message |\n\
         |---|---|---|---|---|---|---|\n",
        RETENTION, options.rate, options.duration
    );
    for s in samples {
        out.push_str(&format!(
            "| {} s | {} | {} | {} | {} | {} | {} |\n",
            s.at.as_secs(),
            s.published,
            s.messages,
            s.deliveries,
            s.attempts,
            s.bytes,
            s.oldest_s
                .map_or_else(|| "none".into(), |a| format!("{a} s ago")),
        ));
    }
    out.push_str(&format!(
        "\nBytes: {}.\n",
        match engine {
            Engine::Sqlite => "the database file and its WAL on disk",
            Engine::Postgres => "messages, deliveries and attempts with their indexes and TOAST",
        }
    ));
    match plateau {
        Some(p) => {
            #[allow(clippy::cast_precision_loss)]
            let growth = (p.second_peak as f64 / p.first_peak.max(1) as f64 - 1.0) * 100.0;
            out.push_str(&format!(
                "Plateau after a {:?} warm-up: peak {} bytes in the first half, {} in the \
                 second ({growth:+.1} %, at most {:+.0} % allowed): {}.\n",
                p.warm_up,
                p.first_peak,
                p.second_peak,
                PLATEAU_SLACK * 100.0,
                if p.passed { "passed" } else { "FAILED" }
            ));
        }
        None => out.push_str("Plateau: too few samples after the warm-up: FAILED.\n"),
    }
    out.push_str(&format!(
        "Delivered: {} of {acked} acknowledged messages missing at an endpoint{}.\n",
        missing,
        if missing == 0 { "" } else { ": FAILED" }
    ));
    out
}
