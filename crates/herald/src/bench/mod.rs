//! `herald bench`: the benchmark harness behind BENCHMARKS.md.
//!
//! Performance claims are only worth something as ratios against what the machine can do at
//! all, measured in the same run. So the harness first measures the **ceiling** (Herald's own
//! HTTP client POSTing signed payloads straight to the sink), then runs Herald (this binary,
//! `herald serve`, as a child process with its own data directory) against the same sink and
//! reports each figure next to its target. Everything stays on loopback; every timed phase
//! lasts `--duration`; `--quick` scales every scenario down to finish within a minute for CI.
//!
//! The benchmark code lives here, apart from the product: `sink` (the receiver), `node` (the
//! child process and its API), `load` (the load generators), `scenarios` and `report`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::BenchArgs;

mod brokers;
mod load;
mod node;
mod pg;
pub mod report;
mod scenarios;
mod sink;
mod spread;

use report::{Machine, Report, Results};
use scenarios::Database;

/// Closed-loop publishers in the throughput scenarios.
pub const PUBLISHERS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Node(#[from] node::NodeError),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Scenario(String),
    #[error("{0}")]
    Usage(String),
}

/// The size of every scenario: full, or `--quick`.
#[derive(Debug, Clone)]
pub struct Scale {
    pub duration: Duration,
    /// Concurrent senders of the ceiling: the most attempts Herald has in flight in the
    /// throughput scenario (its endpoints × their default `maxConcurrency`).
    pub ceiling_concurrency: usize,
    pub throughput_endpoints: usize,
    pub publishers: usize,
    pub publish_rate: f64,
    pub lag_samples: usize,
    pub fanout_endpoints: usize,
    pub fanout_runs: usize,
    pub isolation_healthy: usize,
    pub isolation_rounds: usize,
    pub hang_timeout_s: u64,
    pub backlog_endpoints: usize,
    pub backlog_messages: usize,
    /// Messages per destination kind in `broker` (each to `brokers::ENDPOINTS` endpoints).
    pub broker_messages: usize,
}

impl Scale {
    pub fn new(quick: bool, duration: Option<Duration>) -> Self {
        let throughput_endpoints = 10;
        let full = Self {
            duration: Duration::from_secs(10),
            ceiling_concurrency: throughput_endpoints
                * usize::from(herald_core::model::DEFAULT_MAX_CONCURRENCY),
            throughput_endpoints,
            publishers: PUBLISHERS,
            publish_rate: 1000.0,
            lag_samples: 200,
            fanout_endpoints: 1000,
            fanout_runs: 5,
            isolation_healthy: 50,
            isolation_rounds: 5,
            hang_timeout_s: 5,
            backlog_endpoints: 1000,
            backlog_messages: 1000,
            broker_messages: 2500,
        };
        let scale = if quick {
            Self {
                duration: Duration::from_secs(2),
                lag_samples: 30,
                fanout_endpoints: 200,
                fanout_runs: 2,
                isolation_rounds: 1,
                hang_timeout_s: 2,
                // 2,000 pending: enough to see the backlog drain, small enough to drain within
                // the minute in a debug build.
                backlog_endpoints: 40,
                backlog_messages: 50,
                broker_messages: 100,
                ..full
            }
        } else {
            full
        };
        Self {
            duration: duration.unwrap_or(scale.duration),
            ..scale
        }
    }
}

/// Parses `--duration`: seconds, optionally with an `s`.
fn parse_duration(text: &str) -> Result<Duration, BenchError> {
    let secs: f64 = text
        .trim()
        .trim_end_matches('s')
        .parse()
        .ok()
        .filter(|secs| (1.0..=3600.0).contains(secs))
        .ok_or_else(|| {
            BenchError::Usage(format!(
                "--duration must be a number of seconds from 1 to 3600, not {text:?}"
            ))
        })?;
    Ok(Duration::from_secs_f64(secs))
}

/// Progress goes to stderr, so that stdout holds only the report.
pub fn progress(line: &str) {
    eprintln!("{line}");
}

/// The scenarios, in the order they run.
const SCENARIOS: [&str; 10] = [
    "ceiling",
    "throughput",
    "publish-latency",
    "lag",
    "fanout",
    "isolation",
    "transform",
    "broker",
    "backlog",
    "postgres",
];

/// Runs the scenarios and prints the report.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    if let Some(unknown) = args.only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        return Err(BenchError::Usage(format!(
            "--only: unknown scenario {unknown:?} (one of {})",
            SCENARIOS.join(", ")
        )));
    }
    if !(1..=20).contains(&args.repeat) {
        return Err(BenchError::Usage(format!(
            "--repeat must be from 1 to 20, not {}",
            args.repeat
        )));
    }
    let scale = Scale::new(args.quick, duration);
    let sink = Arc::new(sink::Sink::start().await.map_err(BenchError::Io)?);
    let mut reports = Vec::with_capacity(args.repeat);
    for run in 1..=args.repeat {
        if args.repeat > 1 {
            progress(&format!("run {run} of {}", args.repeat));
        }
        reports.push(run_once(&args, &scale, &sink).await?);
    }
    match (reports.pop(), reports.is_empty()) {
        (Some(report), true) if args.json => println!("{}", report.to_json()),
        (Some(report), true) => println!("{}", report.to_markdown()),
        (Some(last), false) => {
            reports.push(last);
            let spread = spread::Spread::of(&reports);
            if args.json {
                println!("{}", spread.to_json(&reports));
            } else {
                println!("{}", spread.to_markdown(&reports));
            }
        }
        (None, _) => {}
    }
    Ok(())
}

/// One run of the chosen scenarios.
async fn run_once(
    args: &BenchArgs,
    scale: &Scale,
    sink: &Arc<sink::Sink>,
) -> Result<Report, BenchError> {
    let runs = |scenario: &str| args.only.is_empty() || args.only.iter().any(|s| s == scenario);
    let scale = scale.clone();
    let sink = sink.clone();
    let started = Instant::now();
    let loadavg_start = loadavg();
    progress(&format!(
        "herald bench{}: {:?} per timed phase, load average {loadavg_start}",
        if args.quick { " --quick" } else { "" },
        scale.duration
    ));
    let mut r = Results::default();

    if runs("ceiling") {
        progress("ceiling: signed POSTs straight to the sink");
        let rps = load::ceiling(&sink, scale.ceiling_concurrency, scale.duration).await;
        progress(&format!("  {rps:.0} requests/s"));
        r.ceiling = Some(report::Ceiling {
            concurrency: scale.ceiling_concurrency,
            rps,
        });
    }
    if runs("throughput") {
        progress("throughput: publish through the API, deliver to the sink (SQLite)");
        let t = scenarios::throughput(&sink, &scale, Database::Sqlite, 1).await?;
        progress(&format!(
            "  published {:.0}/s, delivered {:.0}/s",
            t.published_rps, t.delivered_rps
        ));
        r.throughput = Some(t);
    }
    if runs("publish-latency") {
        progress(&format!(
            "publish latency at {:.0} messages/s",
            scale.publish_rate
        ));
        let p = scenarios::publish_latency(&sink, &scale).await?;
        progress(&format!("  p50 {:.2} ms, p99 {:.2} ms", p.p50_ms, p.p99_ms));
        r.publish_latency = Some(p);
    }
    if runs("lag") {
        progress("lag: publish to delivery, one message at a time");
        let l = scenarios::lag(&sink, &scale).await?;
        progress(&format!("  p50 {:.2} ms, p99 {:.2} ms", l.p50_ms, l.p99_ms));
        r.lag = Some(l);
    }
    if runs("fanout") {
        progress(&format!(
            "fan-out: one message to {} endpoints",
            scale.fanout_endpoints
        ));
        let f = scenarios::fanout(&sink, &scale).await?;
        progress(&format!(
            "  acknowledged in {:.1} ms, all delivered in {:.1} ms",
            f.ack_ms, f.all_delivered_ms
        ));
        r.fanout = Some(f);
    }
    if runs("isolation") {
        progress(&format!(
            "isolation: {} healthy endpoints, with and without one that hangs",
            scale.isolation_healthy
        ));
        let i = scenarios::isolation(&sink, &scale).await?;
        progress(&format!(
            "  {:.0}/s without, {:.0}/s with: {:.1} % lost",
            i.without_hanging_rps, i.with_hanging_rps, i.loss_pct
        ));
        r.isolation = Some(i);
    }
    if runs("transform") {
        progress(&format!(
            "transform: {} endpoints with a trivial transformation, and without",
            scale.throughput_endpoints
        ));
        let t = scenarios::transform(&sink, &scale).await?;
        progress(&format!(
            "  {:.0}/s without, {:.0}/s with: ratio {:.2}",
            t.without_rps, t.with_rps, t.ratio
        ));
        r.transform = Some(t);
    }
    if runs("broker") {
        progress(&format!(
            "broker: {} messages to each destination kind running here, and to HTTP",
            scale.broker_messages
        ));
        r.broker = Some(brokers::brokers(&sink, &scale).await?);
    }
    if runs("backlog") {
        progress(&format!(
            "backlog: {} messages × {} endpoints that are down",
            scale.backlog_messages, scale.backlog_endpoints
        ));
        let b = scenarios::backlog(&sink, &scale).await?;
        progress(&format!(
            "  peak RSS {:.1} MB; drained at {:.0}/s",
            b.peak_rss_mb, b.drain_rps
        ));
        r.backlog = Some(b);
    }
    if let Some(url) = args.database_url.as_deref().filter(|_| runs("postgres")) {
        for nodes in [1, 3] {
            progress(&format!("throughput on Postgres, {nodes} node(s)"));
            let t = scenarios::throughput(&sink, &scale, Database::Postgres { url }, nodes).await?;
            progress(&format!(
                "  published {:.0}/s, delivered {:.0}/s",
                t.published_rps, t.delivered_rps
            ));
            r.postgres.push(t);
        }
    }

    Ok(Report::new(
        r,
        machine(loadavg_start),
        args.quick,
        scale.duration.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    ))
}

/// `/proc/loadavg`'s three averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn machine(loadavg_start: String) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(f64::NAN);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gb: (memory_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
        herald_version: env!("CARGO_PKG_VERSION").to_owned(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
        sqlite_synchronous: herald_store::SQLITE_SYNCHRONOUS.to_owned(),
        loadavg_start,
        loadavg_end: loadavg(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn quick_scales_everything_down_but_keeps_a_given_duration() {
        let full = Scale::new(false, None);
        let quick = Scale::new(true, None);
        assert_eq!(full.backlog_endpoints * full.backlog_messages, 1_000_000);
        assert_eq!(full.fanout_endpoints, 1000);
        assert_eq!(full.ceiling_concurrency, 100);
        assert!(quick.duration < full.duration);
        assert!(quick.backlog_endpoints * quick.backlog_messages <= 2_000);
        let given = Scale::new(true, Some(Duration::from_secs(3)));
        assert_eq!(given.duration, Duration::from_secs(3));
    }
}
