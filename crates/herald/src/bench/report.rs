//! What a run measured, as one JSON object (`--json`) or as markdown tables, and the small
//! statistics the scenarios share.
//!
//! The headline figures are flat fields of the JSON object (the names CI and BENCHMARKS.md
//! rely on); each scenario's details sit under its own key.

use std::fmt::Write as _;

use serde::Serialize;

pub use super::pg::DatabaseCost;

/// The value below which `p` percent of `samples` lie (nearest rank); NaN when there are none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds of a duration, as a float.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rounds for the JSON output: enough digits to compare runs, not float noise.
pub(super) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gb: f64,
    pub kernel: String,
    pub herald_version: String,
    /// `release` or `debug`: a debug build is several times slower.
    pub build: String,
    pub sqlite_synchronous: String,
    /// `/proc/loadavg` (1, 5 and 15 minutes) when the run started and when it ended.
    pub loadavg_start: String,
    pub loadavg_end: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub concurrency: usize,
    pub rps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub database: String,
    pub nodes: usize,
    pub endpoints: usize,
    pub publishers: usize,
    pub published_rps: f64,
    pub delivered_rps: f64,
    pub peak_rss_mb: Option<f64>,
    /// What the run cost the database (Postgres only; see `pg.rs`).
    #[serde(flatten)]
    pub database_cost: DatabaseCost,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishLatency {
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub endpoints: usize,
    /// Medians over the runs.
    pub ack_ms: f64,
    pub all_delivered_ms: f64,
    pub runs_ack_ms: Vec<f64>,
    pub runs_all_delivered_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Isolation {
    pub healthy_endpoints: usize,
    pub hang_timeout_s: u64,
    pub without_hanging_rps: f64,
    pub with_hanging_rps: f64,
    /// The median of the rounds' losses (each round: a phase without, a phase with).
    pub loss_pct: f64,
    pub round_losses_pct: Vec<f64>,
}

/// Deliveries/s through endpoints with a trivial transformation (`return webhook`) against the
/// same endpoints without one, in alternating phases.
#[derive(Debug, Clone, Serialize)]
pub struct Transform {
    pub endpoints: usize,
    pub without_rps: f64,
    pub with_rps: f64,
    /// `with_rps / without_rps`.
    pub ratio: f64,
}

/// Deliveries/s to each broker kind running on the machine, and to HTTP, in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Brokers {
    pub endpoints: usize,
    pub messages: usize,
    /// The HTTP phase's deliveries/s (the reference).
    pub http_rps: f64,
    pub runs: Vec<BrokerKindRun>,
    /// Kinds with no broker listening on this machine.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerKindRun {
    /// `http`, `mqtt`, `nats`, `amqp` or `redis`.
    pub kind: String,
    pub deliveries: usize,
    pub seconds: f64,
    pub rps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub endpoints: usize,
    pub messages: usize,
    pub pending: usize,
    pub create_s: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    /// How long the drain was watched: until everything arrived, or the drain window ended.
    pub drain_s: f64,
    /// Deliveries that arrived in that time (all of `pending` if it drained completely).
    pub drained: usize,
    pub drain_rps: f64,
    pub peak_rss_during_drain_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ceiling_rps: f64,
    pub throughput_rps: f64,
    pub ratio: f64,
    pub publish_p50_ms: f64,
    pub publish_p99_ms: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub fanout_ack_ms: f64,
    pub fanout_all_ms: f64,
    pub isolation_loss_pct: f64,
    /// Deliveries/s with a trivial transformation ÷ without.
    pub transform_ratio: f64,
    /// Deliveries/s in `broker`, by destination kind (null where that broker is not running).
    pub broker_http_rps: f64,
    pub broker_mqtt_rps: f64,
    pub broker_nats_rps: f64,
    pub broker_amqp_rps: f64,
    pub broker_redis_rps: f64,
    pub backlog_rss_mb: f64,
    pub backlog_drain_rps: f64,
    pub postgres_one_node_rps: Option<f64>,
    pub postgres_three_nodes_rps: Option<f64>,
    /// Deliveries/s on one Postgres node (the same figure as `postgres_one_node_rps`).
    pub pg_throughput_rps: Option<f64>,
    /// Deliveries/s on three Postgres nodes sharing the database.
    pub pg3_throughput_rps: Option<f64>,
    /// The Postgres server's CPU per delivery on one node, in milliseconds.
    pub pg_cpu_ms_per_delivery: Option<f64>,
    /// Dead row versions left in `deliveries` for vacuum per delivery on one node: its updates
    /// that were not HOT (a HOT update's old version is pruned on its page).
    pub pg_dead_tuples_per_delivery: Option<f64>,
    pub quick: bool,
    pub duration_s: f64,
    pub wall_s: f64,
    pub machine: Machine,
    #[serde(flatten)]
    pub results: Results,
}

/// Each scenario's results; `None` for a scenario left out (`--only`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    pub ceiling: Option<Ceiling>,
    pub throughput: Option<Throughput>,
    pub publish_latency: Option<PublishLatency>,
    pub lag: Option<Lag>,
    pub fanout: Option<Fanout>,
    pub isolation: Option<Isolation>,
    pub transform: Option<Transform>,
    pub broker: Option<Brokers>,
    pub backlog: Option<Backlog>,
    pub postgres: Vec<Throughput>,
}

/// `f` of a scenario's result, rounded; NaN (`null` in JSON) when it did not run.
fn figure<T>(result: &Option<T>, digits: i32, f: impl Fn(&T) -> f64) -> f64 {
    result.as_ref().map_or(f64::NAN, |r| round(f(r), digits))
}

impl Report {
    pub fn new(r: Results, machine: Machine, quick: bool, duration_s: f64, wall_s: f64) -> Self {
        let pg = |nodes: usize| {
            r.postgres
                .iter()
                .find(|t| t.nodes == nodes)
                .map(|t| round(t.delivered_rps, 1))
        };
        let one_node = r.postgres.iter().find(|t| t.nodes == 1);
        let ceiling = figure(&r.ceiling, 1, |c| c.rps);
        let broker = |kind: &str| {
            r.broker
                .as_ref()
                .and_then(|b| b.runs.iter().find(|run| run.kind == kind))
                .map_or(f64::NAN, |run| round(run.rps, 1))
        };
        let throughput = figure(&r.throughput, 1, |t| t.delivered_rps);
        Self {
            ceiling_rps: ceiling,
            throughput_rps: throughput,
            ratio: round(throughput / ceiling, 4),
            publish_p50_ms: figure(&r.publish_latency, 3, |p| p.p50_ms),
            publish_p99_ms: figure(&r.publish_latency, 3, |p| p.p99_ms),
            lag_p50_ms: figure(&r.lag, 3, |l| l.p50_ms),
            lag_p99_ms: figure(&r.lag, 3, |l| l.p99_ms),
            fanout_ack_ms: figure(&r.fanout, 2, |f| f.ack_ms),
            fanout_all_ms: figure(&r.fanout, 2, |f| f.all_delivered_ms),
            isolation_loss_pct: figure(&r.isolation, 2, |i| i.loss_pct),
            transform_ratio: figure(&r.transform, 3, |t| t.ratio),
            broker_http_rps: broker("http"),
            broker_mqtt_rps: broker("mqtt"),
            broker_nats_rps: broker("nats"),
            broker_amqp_rps: broker("amqp"),
            broker_redis_rps: broker("redis"),
            backlog_rss_mb: figure(&r.backlog, 1, |b| b.peak_rss_mb),
            backlog_drain_rps: figure(&r.backlog, 1, |b| b.drain_rps),
            postgres_one_node_rps: pg(1),
            postgres_three_nodes_rps: pg(3),
            pg_throughput_rps: pg(1),
            pg3_throughput_rps: pg(3),
            pg_cpu_ms_per_delivery: one_node
                .and_then(|t| t.database_cost.postgres_cpu_ms_per_delivery)
                .map(|x| round(x, 3)),
            pg_dead_tuples_per_delivery: one_node
                .and_then(|t| t.database_cost.vacuum_updates_per_delivery)
                .map(|x| round(x, 2)),
            quick,
            duration_s,
            wall_s: round(wall_s, 1),
            machine,
            results: r,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the report serializes")
    }

    /// The headline table with the targets, then each scenario's details.
    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let r = &self.results;
        let mut out = String::new();
        let scale = if self.quick {
            " (--quick: scaled down, not comparable with the targets)"
        } else {
            ""
        };
        let _ = writeln!(out, "## Herald benchmark{scale}\n");
        let _ = writeln!(
            out,
            "{} × {} cores, {:.1} GB, Linux {}; herald {} ({} build); SQLite synchronous = {}; \
             {:.0} s per timed phase; load average {} at the start, {} at the end; {:.0} s in all.\n",
            m.cpu,
            m.cores,
            m.memory_gb,
            m.kernel,
            m.herald_version,
            m.build,
            m.sqlite_synchronous,
            self.duration_s,
            m.loadavg_start,
            m.loadavg_end,
            self.wall_s
        );
        let _ = writeln!(
            out,
            "| figure | measured | target | met |\n|---|---|---|---|"
        );
        let mut row = |figure: &str, measured: String, target: &str, met: Option<bool>| {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let _ = writeln!(out, "| {figure} | {measured} | {target} | {met} |");
        };
        if let Some(c) = &r.ceiling {
            row(
                &format!(
                    "ceiling: signed 1 KB POSTs straight to the sink, {} concurrent (req/s)",
                    c.concurrency
                ),
                count(self.ceiling_rps),
                "",
                None,
            );
        }
        if r.throughput.is_some() {
            row(
                "throughput, SQLite, durable (deliveries/s)",
                count(self.throughput_rps),
                "",
                None,
            );
        }
        if r.throughput.is_some() && r.ceiling.is_some() {
            row(
                "throughput ÷ ceiling (SQLite)",
                format!("{:.3}", self.ratio),
                "≥ 0.33 (then 0.5)",
                Some(self.ratio >= 0.33),
            );
        }
        if let Some(p) = &r.publish_latency {
            row(
                &format!("publish latency p50 / p99 at {:.0} msg/s", p.target_rps),
                format!("{:.2} / {:.2} ms", self.publish_p50_ms, self.publish_p99_ms),
                "p99 < 10 ms",
                Some(self.publish_p99_ms < 10.0),
            );
        }
        if r.lag.is_some() {
            row(
                "idle lag, publish to delivery, p50 / p99",
                format!("{:.2} / {:.2} ms", self.lag_p50_ms, self.lag_p99_ms),
                "p50 < 3 ms",
                Some(self.lag_p50_ms < 3.0),
            );
        }
        if let Some(f) = &r.fanout {
            row(
                &format!("fan-out 1 → {}: acknowledged / all delivered", f.endpoints),
                format!("{:.1} / {:.1} ms", self.fanout_ack_ms, self.fanout_all_ms),
                "both < 200 ms",
                Some(self.fanout_ack_ms < 200.0 && self.fanout_all_ms < 200.0),
            );
        }
        if let Some(i) = &r.isolation {
            row(
                &format!(
                    "isolation: healthy deliveries/s lost to one hanging endpoint ({} healthy)",
                    i.healthy_endpoints
                ),
                format!(
                    "{:.1} % ({} → {})",
                    self.isolation_loss_pct,
                    count(i.without_hanging_rps),
                    count(i.with_hanging_rps)
                ),
                "< 5 %",
                Some(self.isolation_loss_pct < 5.0),
            );
        }
        if let Some(t) = &r.transform {
            row(
                &format!(
                    "transformations: deliveries/s with a trivial one ÷ without ({} endpoints)",
                    t.endpoints
                ),
                format!(
                    "{:.2} ({} → {})",
                    self.transform_ratio,
                    count(t.without_rps),
                    count(t.with_rps)
                ),
                "≥ 0.7",
                Some(self.transform_ratio >= 0.7),
            );
        }
        if let Some(b) = &r.broker {
            for run in b.runs.iter().filter(|run| run.kind != "http") {
                row(
                    &format!(
                        "broker {}: deliveries/s ({} endpoints; HTTP in the same run)",
                        run.kind, b.endpoints
                    ),
                    format!("{} (HTTP {})", count(run.rps), count(b.http_rps)),
                    "",
                    None,
                );
            }
        }
        if let Some(b) = &r.backlog {
            row(
                &format!("backlog: peak RSS with {} pending", count(b.pending as f64)),
                format!("{:.1} MB", self.backlog_rss_mb),
                "< 150 MB",
                Some(self.backlog_rss_mb < 150.0),
            );
            row(
                "backlog: drain once the endpoints are back (deliveries/s)",
                count(self.backlog_drain_rps),
                "",
                None,
            );
        }
        for pg in &r.postgres {
            let one = pg.nodes == 1;
            row(
                &format!(
                    "throughput, Postgres, {} node{} (deliveries/s)",
                    pg.nodes,
                    if one { "" } else { "s" }
                ),
                count(pg.delivered_rps),
                if one { "≥ 3,000" } else { "" },
                one.then_some(pg.delivered_rps >= 3000.0),
            );
        }
        if let Some(ms) = self.pg_cpu_ms_per_delivery {
            row(
                "Postgres CPU per delivery, 1 node (ms)",
                format!("{ms:.3}"),
                "",
                None,
            );
        }
        if let Some(updates) = self.pg_dead_tuples_per_delivery {
            row(
                "dead row versions for vacuum per delivery, 1 node",
                format!("{updates:.2}"),
                "",
                None,
            );
        }
        self.details(&mut out);
        out
    }

    fn details(&self, out: &mut String) {
        let r = &self.results;
        let _ = writeln!(out, "\n| scenario | details |\n|---|---|");
        let mut line = |name: &str, text: String| {
            let _ = writeln!(out, "| {name} | {text} |");
        };
        for t in r.throughput.iter().chain(&r.postgres) {
            line(
                &format!("throughput ({}, {} node(s))", t.database, t.nodes),
                format!(
                    "{} endpoints, {} publishers: published {}/s, delivered {}/s{}{}",
                    t.endpoints,
                    t.publishers,
                    count(t.published_rps),
                    count(t.delivered_rps),
                    t.peak_rss_mb
                        .map(|mb| format!(", peak RSS {mb:.1} MB"))
                        .unwrap_or_default(),
                    describe_cost(&t.database_cost)
                ),
            );
        }
        if let Some(p) = &r.publish_latency {
            line(
                "publish latency",
                format!(
                    "{} requests at {:.0}/s (achieved {:.0}/s, {} errors): p50 {:.2} ms, p99 \
                     {:.2} ms, max {:.2} ms",
                    p.requests,
                    p.target_rps,
                    p.achieved_rps,
                    p.errors,
                    p.p50_ms,
                    p.p99_ms,
                    p.max_ms
                ),
            );
        }
        if let Some(l) = &r.lag {
            line(
                "lag",
                format!(
                    "{} messages one at a time: p50 {:.2} ms, p99 {:.2} ms",
                    l.samples, l.p50_ms, l.p99_ms
                ),
            );
        }
        if let Some(f) = &r.fanout {
            line(
                "fan-out",
                format!(
                    "{} endpoints, runs (ack / all delivered, ms): {}",
                    f.endpoints,
                    f.runs_ack_ms
                        .iter()
                        .zip(&f.runs_all_delivered_ms)
                        .map(|(a, d)| format!("{a:.1} / {d:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if let Some(i) = &r.isolation {
            line(
                "isolation",
                format!(
                    "{} healthy endpoints: {} deliveries/s alone, {} with one more that hangs \
                     until its {} s timeout (means); loss per round, each a phase without and \
                     one with: {} %",
                    i.healthy_endpoints,
                    count(i.without_hanging_rps),
                    count(i.with_hanging_rps),
                    i.hang_timeout_s,
                    i.round_losses_pct
                        .iter()
                        .map(|l| format!("{l:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if let Some(t) = &r.transform {
            line(
                "transform",
                format!(
                    "{} endpoints: {} deliveries/s without a transformation, {} with \
                     `return webhook` (means of alternating phases)",
                    t.endpoints,
                    count(t.without_rps),
                    count(t.with_rps)
                ),
            );
        }
        if let Some(b) = &r.broker {
            line(
                "broker",
                format!(
                    "{} messages × {} endpoints per destination kind, published by 4 \
                     publishers, timed until the node counted every delivery acknowledged: {}{}",
                    count(b.messages as f64),
                    b.endpoints,
                    b.runs
                        .iter()
                        .map(|run| format!(
                            "{} {}/s ({:.2} s)",
                            run.kind,
                            count(run.rps),
                            run.seconds
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if b.skipped.is_empty() {
                        String::new()
                    } else {
                        format!("; not running here: {}", b.skipped.join(", "))
                    }
                ),
            );
        }
        if let Some(b) = &r.backlog {
            line(
                "backlog",
                format!(
                    "{} messages × {} endpoints created in {:.1} s ({}/s); RSS {:.1} MB then, \
                     {:.1} MB peak; {} of {} delivered in {:.1} s ({}/s), peak RSS {:.1} MB by the end",
                    count(b.messages as f64),
                    count(b.endpoints as f64),
                    b.create_s,
                    count(b.pending as f64 / b.create_s),
                    b.rss_mb,
                    b.peak_rss_mb,
                    count(b.drained as f64),
                    count(b.pending as f64),
                    b.drain_s,
                    count(b.drain_rps),
                    b.peak_rss_during_drain_mb
                ),
            );
        }
    }
}

/// A rate or count for people: no decimals, thousands separated.
fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_owned();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

/// A run's cost to the database as the end of a details line; empty when none was measured.
fn describe_cost(cost: &DatabaseCost) -> String {
    let mut text = String::new();
    if let Some(ms) = cost.postgres_cpu_ms_per_delivery {
        let _ = write!(text, "; Postgres CPU {ms:.3} ms per delivery");
    }
    if let Some(updates) = cost.row_updates_per_delivery {
        let _ = write!(text, "; {updates:.2} row updates per delivery");
    }
    if let Some(hot) = cost.hot_update_pct {
        let _ = write!(text, " ({hot:.0} % HOT)");
    }
    if let Some(dead) = cost.dead_rows_at_end {
        let _ = write!(text, ", {} dead rows at the end", count(dead as f64));
    }
    text
}

#[cfg(test)]
pub(in crate::bench) mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&samples, 100.0), 100.0);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0.4), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1000.0), "1,000");
        assert_eq!(count(1_234_567.8), "1,234,568");
        assert_eq!(count(f64::NAN), "n/a");
    }

    pub(in crate::bench) fn sample() -> Report {
        let t = |database: &str, nodes, rps| Throughput {
            database: database.into(),
            nodes,
            endpoints: 10,
            publishers: 32,
            published_rps: rps,
            delivered_rps: rps,
            peak_rss_mb: Some(40.0),
            database_cost: DatabaseCost::default(),
        };
        let results = Results {
            ceiling: Some(Ceiling {
                concurrency: 100,
                rps: 20_000.0,
            }),
            throughput: Some(t("sqlite", 1, 5_000.0)),
            publish_latency: Some(PublishLatency {
                target_rps: 1000.0,
                achieved_rps: 999.0,
                requests: 10_000,
                errors: 0,
                p50_ms: 1.5,
                p99_ms: 12.25,
                max_ms: 30.0,
            }),
            lag: Some(Lag {
                samples: 200,
                p50_ms: 3.2,
                p99_ms: 8.0,
            }),
            fanout: Some(Fanout {
                endpoints: 1000,
                ack_ms: 20.0,
                all_delivered_ms: 400.0,
                runs_ack_ms: vec![20.0],
                runs_all_delivered_ms: vec![400.0],
            }),
            isolation: Some(Isolation {
                healthy_endpoints: 50,
                hang_timeout_s: 5,
                without_hanging_rps: 1000.0,
                with_hanging_rps: 980.0,
                loss_pct: 2.0,
                round_losses_pct: vec![2.0],
            }),
            transform: Some(Transform {
                endpoints: 20,
                without_rps: 1000.0,
                with_rps: 800.0,
                ratio: 0.8,
            }),
            broker: Some(Brokers {
                endpoints: 4,
                messages: 2500,
                http_rps: 3000.0,
                runs: vec![
                    BrokerKindRun {
                        kind: "http".into(),
                        deliveries: 10_000,
                        seconds: 3.3,
                        rps: 3000.0,
                    },
                    BrokerKindRun {
                        kind: "redis".into(),
                        deliveries: 10_000,
                        seconds: 2.5,
                        rps: 4000.0,
                    },
                ],
                skipped: vec!["amqp".into()],
            }),
            backlog: Some(Backlog {
                endpoints: 1000,
                messages: 1000,
                pending: 1_000_000,
                create_s: 50.0,
                rss_mb: 90.0,
                peak_rss_mb: 120.0,
                drain_s: 100.0,
                drained: 1_000_000,
                drain_rps: 10_000.0,
                peak_rss_during_drain_mb: 130.0,
            }),
            postgres: vec![t("postgres", 1, 800.0), t("postgres", 3, 1200.0)],
        };
        let machine = Machine {
            cpu: "cpu".into(),
            cores: 2,
            memory_gb: 24.0,
            kernel: "6".into(),
            herald_version: "0.1.0".into(),
            build: "release".into(),
            sqlite_synchronous: "FULL".into(),
            loadavg_start: "0.1 0.2 0.3".into(),
            loadavg_end: "0.4 0.5 0.6".into(),
        };
        Report::new(results, machine, false, 10.0, 300.0)
    }

    #[test]
    fn the_json_object_has_the_headline_fields() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        for field in [
            "ceiling_rps",
            "throughput_rps",
            "ratio",
            "publish_p99_ms",
            "lag_p50_ms",
            "fanout_ack_ms",
            "isolation_loss_pct",
            "transform_ratio",
            "backlog_rss_mb",
        ] {
            assert!(json[field].is_number(), "{field}: {}", json[field]);
        }
        assert_eq!(json["ratio"], 0.25);
        assert_eq!(json["broker_redis_rps"], 4000.0);
        assert!(json["broker_amqp_rps"].is_null(), "not running: null");
        assert_eq!(json["postgres_three_nodes_rps"], 1200.0);
        assert_eq!(json["pg3_throughput_rps"], 1200.0);
        assert!(json["pg_throughput_rps"].is_number());
        assert_eq!(json["machine"]["sqlite_synchronous"], "FULL");
    }

    #[test]
    fn the_markdown_table_marks_targets_met_and_missed() {
        let text = sample().to_markdown();
        assert!(
            text.contains("| throughput ÷ ceiling (SQLite) | 0.250 | ≥ 0.33 (then 0.5) | **no** |"),
            "{text}"
        );
        assert!(
            text.contains("| 1.50 / 12.25 ms | p99 < 10 ms | **no** |"),
            "{text}"
        );
        assert!(
            text.contains("| 3.20 / 8.00 ms | p50 < 3 ms | **no** |"),
            "{text}"
        );
        assert!(
            text.contains("| 2.0 % (1,000 → 980) | < 5 % | yes |"),
            "{text}"
        );
        assert!(text.contains("throughput, Postgres, 3 nodes (deliveries/s) | 1,200"));
        assert!(
            text.contains("| broker redis: deliveries/s (4 endpoints; HTTP in the same run) | 4,000 (HTTP 3,000) |"),
            "{text}"
        );
        assert!(text.contains("not running here: amqp"), "{text}");
        assert!(!text.contains("--quick"));
    }

    #[test]
    fn a_scenario_left_out_is_null_and_not_in_the_table() {
        let mut report = sample();
        report.results.lag = None;
        let report = Report::new(report.results, report.machine, true, 2.0, 30.0);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert!(json["lag_p50_ms"].is_null());
        assert!(json["lag"].is_null());
        assert!(json["fanout_ack_ms"].is_number());
        let text = report.to_markdown();
        assert!(!text.contains("idle lag"));
        assert!(text.contains("--quick"));
    }
}
