//! What a run reports: healthy endpoints' delivery in each phase (isolation), and the tables.

use std::collections::HashMap;
use std::time::Duration;

use crate::Options;
use crate::checker::{self, Acked, EndpointHistory, FaultWindow};
use crate::run::Engine;

/// Healthy endpoints' delivery during each phase: deliveries per second and the time from a
/// publish's acknowledgement to its first arrival (median, 99th percentile).
pub struct Phase {
    name: &'static str,
    seconds: f64,
    deliveries: usize,
    p50: Duration,
    p99: Duration,
}

pub fn isolation(
    acked: &[Acked],
    histories: &[EndpointHistory],
    windows: &[FaultWindow],
    misbehave_at: Duration,
    settle: Duration,
) -> Vec<Phase> {
    let phase_of = |at: Duration| -> usize {
        if at < misbehave_at {
            0
        } else if windows
            .iter()
            .any(|w| at + settle >= w.start && at <= w.end + settle)
        {
            2
        } else {
            1
        }
    };
    let acked_at: HashMap<&str, Duration> =
        acked.iter().map(|m| (m.msg_id.as_str(), m.at)).collect();
    let mut latencies: [Vec<Duration>; 3] = Default::default();
    for history in histories {
        let mut seen = std::collections::HashSet::new();
        for request in &history.requests {
            if !seen.insert(request.webhook_id.as_str()) {
                continue;
            }
            if let Some(at) = acked_at.get(request.webhook_id.as_str()) {
                latencies[phase_of(*at)].push(request.at.saturating_sub(*at));
            }
        }
    }
    let end = acked.last().map_or(Duration::ZERO, |m| m.at);
    let mut seconds = [0f64; 3];
    let mut t = Duration::ZERO;
    while t < end {
        seconds[phase_of(t)] += 0.1;
        t += Duration::from_millis(100);
    }
    let names = [
        "calm",
        "receivers misbehaving",
        "receivers misbehaving + node/database faults",
    ];
    latencies
        .iter_mut()
        .enumerate()
        .map(|(i, l)| {
            l.sort();
            let pick = |q: f64| {
                l.get(((l.len() as f64 - 1.0) * q) as usize)
                    .copied()
                    .unwrap_or_default()
            };
            Phase {
                name: names[i],
                seconds: seconds[i],
                deliveries: l.len(),
                p50: pick(0.5),
                p99: pick(0.99),
            }
        })
        .collect()
}

pub struct Rendered<'a> {
    pub engine: Engine,
    pub options: &'a Options,
    pub report: &'a checker::Report,
    pub skipped: &'a [String],
    pub integrity: Option<String>,
    pub drained_after: Duration,
    pub self_test: String,
    pub isolation: Vec<Phase>,
    pub windows: &'a [FaultWindow],
}

pub fn render(r: &Rendered<'_>) -> String {
    use std::fmt::Write;
    let report = r.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### {:?}: {:?}, seed {}, {} publishes/s\n",
        r.engine, r.options.duration, r.options.seed, r.options.rate
    );
    let _ = writeln!(out, "| Check | Found | Must be |\n|---|---|---|");
    let _ = writeln!(out, "| Acknowledged publishes | {} | |", report.acked);
    let _ = writeln!(
        out,
        "| Requests to healthy endpoints | {} | |",
        report.requests
    );
    let _ = writeln!(
        out,
        "| Acknowledged, never delivered | {} | 0 |",
        report.lost.len()
    );
    let _ = writeln!(
        out,
        "| Duplicates (explained by a fault) | {} ({}) | ≤ in flight per fault |",
        report.duplicates,
        report.duplicates - report.unexplained_duplicates
    );
    let _ = writeln!(
        out,
        "| Duplicates outside any fault | {} | 0 |",
        report.unexplained_duplicates
    );
    let _ = writeln!(
        out,
        "| Recorded as delivered twice (outside any fault) | {} ({}) | 0 outside a fault |",
        report.double_successes, report.unexplained_double_successes
    );
    let _ = writeln!(
        out,
        "| Messages duplicated more than once per fault | {} | 0 |",
        report.over_duplicated
    );
    let _ = writeln!(
        out,
        "| FIFO order violations | {} | 0 |",
        report.order_violations
    );
    if let Some(integrity) = &r.integrity {
        let _ = writeln!(out, "| SQLite `integrity_check` | {integrity} | ok |");
    }
    let _ = writeln!(
        out,
        "| Drained after the last publish | {:.1?} | |",
        r.drained_after
    );
    let _ = writeln!(
        out,
        "\n| Fault | At | Length | Requests in its window | Duplicates | Caught up after |\n|---|---|---|---|---|---|"
    );
    for (row, window) in report.faults.iter().zip(r.windows) {
        let _ = writeln!(
            out,
            "| {} | {:.1?} | {:.1?} | {} | {}{} | {:.1?} |",
            row.name,
            row.start,
            row.length,
            row.in_flight,
            row.duplicates,
            if window.may_duplicate {
                ""
            } else {
                " (none allowed)"
            },
            row.recovery
        );
    }
    let _ = writeln!(
        out,
        "\n| Phase | Seconds | First deliveries | /s | Ack → arrival p50 | p99 |\n|---|---|---|---|---|---|"
    );
    for phase in &r.isolation {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.0} | {:.0?} | {:.0?} |",
            phase.name,
            phase.seconds,
            phase.deliveries,
            phase.deliveries as f64 / phase.seconds.max(0.1),
            phase.p50,
            phase.p99
        );
    }
    let _ = writeln!(out, "\nChecker self-test: {}.", r.self_test);
    for skip in r.skipped {
        let _ = writeln!(out, "Not injected: {skip}.");
    }
    if !report.lost.is_empty() {
        let _ = writeln!(
            out,
            "Lost (first 10): {:?}",
            &report.lost[..report.lost.len().min(10)]
        );
    }
    out
}
