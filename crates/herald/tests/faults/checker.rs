//! The checker: reads the whole history of a run (what publishes were acknowledged, every
//! request each healthy receiver got, Herald's recorded successes, when each fault hit) and
//! says what went wrong. Pure: no IO, so that it can be tested on histories with bugs planted
//! in them (`seeded_bugs_are_caught`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::receiver::Request;

/// A publish Herald answered with success.
#[derive(Debug, Clone)]
pub struct Acked {
    pub msg_id: String,
    /// When the answer came, since the run started.
    pub at: Duration,
}

/// One healthy endpoint's side of the history.
#[derive(Debug, Clone)]
pub struct EndpointHistory {
    pub name: String,
    pub fifo: bool,
    pub requests: Vec<Request>,
    /// Successful attempts Herald recorded, per message id (from its database).
    pub recorded_successes: HashMap<String, u32>,
}

/// A fault, as injected.
#[derive(Debug, Clone)]
pub struct FaultWindow {
    pub name: String,
    pub start: Duration,
    pub end: Duration,
    /// Whether attempts in flight may be lost to it (a crash, a stop, a cut database): then
    /// the requests they made may come again.
    pub may_duplicate: bool,
}

/// What the checker found for one fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRow {
    pub name: String,
    pub start: Duration,
    pub length: Duration,
    /// Requests to healthy endpoints that started within an attempt's time before the fault
    /// and during it: the attempts that may have been in flight when it hit.
    pub in_flight: usize,
    /// Duplicates whose first request was in that window.
    pub duplicates: usize,
    /// From the fault's end until every message acknowledged before it had reached every
    /// healthy endpoint (zero if nothing was behind).
    pub recovery: Duration,
}

/// The checker's verdict on a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub acked: usize,
    pub requests: usize,
    /// Acknowledged messages some healthy endpoint never got. Must be 0.
    pub lost: Vec<(String, String)>,
    /// Requests beyond the first, per message and endpoint.
    pub duplicates: usize,
    /// Duplicates not explained by a fault (their first request in no fault's window). Must
    /// be 0.
    pub unexplained_duplicates: usize,
    /// Messages Herald recorded as delivered to an endpoint more than once. That happens when
    /// an attempt's result is not committed before its task lease lapses (a node stopped or
    /// cut off, or commits slower than the lease) and another node sends it again: both
    /// record their success, and only the lease holder's moves the task.
    pub double_successes: usize,
    /// Of those, the ones whose first request was in no fault's window. Must be 0.
    pub unexplained_double_successes: usize,
    /// Messages that reached an endpoint more often than once plus once per fault around
    /// their requests: more than one duplicate per attempt in flight. Must be 0.
    pub over_duplicated: usize,
    /// On FIFO endpoints, first deliveries out of publish order. Must be 0.
    pub order_violations: usize,
    pub faults: Vec<FaultRow>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.unexplained_duplicates == 0
            && self.unexplained_double_successes == 0
            && self.over_duplicated == 0
            && self.order_violations == 0
            && self.faults.iter().all(|f| f.duplicates <= f.in_flight)
    }
}

/// Checks a history. `attempt_time` is the longest an attempt may take (its timeout), and
/// `settle` how long after a fault in-flight work may still be taken over (the lease).
pub fn check(
    acked: &[Acked],
    endpoints: &[EndpointHistory],
    faults: &[FaultWindow],
    attempt_time: Duration,
    settle: Duration,
) -> Report {
    let mut report = Report {
        acked: acked.len(),
        ..Report::default()
    };
    let acked_ids: HashSet<&str> = acked.iter().map(|m| m.msg_id.as_str()).collect();
    let window = |f: &FaultWindow| (f.start.saturating_sub(attempt_time), f.end + settle);
    let mut fault_dups = vec![0usize; faults.len()];
    let mut fault_in_flight = vec![0usize; faults.len()];
    let mut first_at: Vec<HashMap<&str, Duration>> = Vec::new();
    for endpoint in endpoints {
        report.requests += endpoint.requests.len();
        let mut first: HashMap<&str, &Request> = HashMap::new();
        for request in &endpoint.requests {
            for (i, fault) in faults.iter().enumerate() {
                let (from, _) = window(fault);
                if fault.may_duplicate && request.at >= from && request.at <= fault.end {
                    fault_in_flight[i] += 1;
                }
            }
            match first.get(request.webhook_id.as_str()) {
                None => {
                    first.insert(&request.webhook_id, request);
                }
                Some(original) => {
                    report.duplicates += 1;
                    let explained = faults.iter().position(|f| {
                        let (from, to) = window(f);
                        f.may_duplicate && original.at >= from && original.at <= to
                    });
                    match explained {
                        Some(i) => fault_dups[i] += 1,
                        None => report.unexplained_duplicates += 1,
                    }
                }
            }
        }
        let mut per_message: HashMap<&str, Vec<Duration>> = HashMap::new();
        for request in &endpoint.requests {
            per_message
                .entry(request.webhook_id.as_str())
                .or_default()
                .push(request.at);
        }
        report.over_duplicated += per_message
            .values()
            .filter(|times| {
                let faults_around = faults
                    .iter()
                    .filter(|f| {
                        let (from, to) = window(f);
                        f.may_duplicate && times.iter().any(|at| *at >= from && *at <= to)
                    })
                    .count();
                times.len() > 1 + faults_around
            })
            .count();
        for message in acked {
            if !first.contains_key(message.msg_id.as_str()) {
                report
                    .lost
                    .push((endpoint.name.clone(), message.msg_id.clone()));
            }
        }
        for (msg, _) in endpoint.recorded_successes.iter().filter(|(_, n)| **n > 1) {
            report.double_successes += 1;
            let explained = first.get(msg.as_str()).is_some_and(|original| {
                faults.iter().any(|f| {
                    let (from, to) = window(f);
                    f.may_duplicate && original.at >= from && original.at <= to
                })
            });
            if !explained {
                report.unexplained_double_successes += 1;
            }
        }
        if endpoint.fifo {
            // Acknowledged messages only: a publish whose answer was lost may have committed
            // after later ones, so its place in the order is unknown.
            let mut firsts: Vec<&Request> = first
                .values()
                .copied()
                .filter(|r| acked_ids.contains(r.webhook_id.as_str()))
                .collect();
            firsts.sort_by_key(|r| r.at);
            // Sorted by arrival; publish order must agree (a pair arriving in the same
            // millisecond cannot be told apart and is not counted).
            report.order_violations += firsts
                .windows(2)
                .filter(|w| w[0].seq > w[1].seq && w[0].at != w[1].at)
                .count();
        }
        first_at.push(first.into_iter().map(|(k, r)| (k, r.at)).collect());
    }
    let delivered_everywhere = |msg: &str| -> Option<Duration> {
        first_at
            .iter()
            .map(|m| m.get(msg).copied())
            .try_fold(Duration::ZERO, |latest, at| at.map(|at| latest.max(at)))
    };
    for (i, fault) in faults.iter().enumerate() {
        let caught_up = acked
            .iter()
            .filter(|m| m.at <= fault.end)
            .filter_map(|m| delivered_everywhere(&m.msg_id))
            .max()
            .unwrap_or(fault.end);
        report.faults.push(FaultRow {
            name: fault.name.clone(),
            start: fault.start,
            length: fault.end - fault.start,
            in_flight: fault_in_flight[i],
            duplicates: fault_dups[i],
            recovery: caught_up.saturating_sub(fault.end),
        });
    }
    report
}

/// Plants a lost message in a history: every request for one acknowledged message removed
/// from the first endpoint that got it. Returns the message.
pub fn plant_lost_message(acked: &[Acked], endpoints: &mut [EndpointHistory]) -> Option<String> {
    let victim = acked.get(acked.len() / 2)?.msg_id.clone();
    let endpoint = endpoints
        .iter_mut()
        .find(|e| e.requests.iter().any(|r| r.webhook_id == victim))?;
    endpoint.requests.retain(|r| r.webhook_id != victim);
    Some(victim)
}

/// Plants a reordered pair on the first FIFO endpoint: two consecutive messages' first
/// deliveries swap their arrival times.
pub fn plant_reordered_pair(acked: &[Acked], endpoints: &mut [EndpointHistory]) -> bool {
    let Some(endpoint) = endpoints.iter_mut().find(|e| e.fifo) else {
        return false;
    };
    let acked: HashSet<&str> = acked.iter().map(|m| m.msg_id.as_str()).collect();
    let mut seen = HashSet::new();
    let mut firsts: Vec<usize> = (0..endpoint.requests.len())
        .filter(|i| seen.insert(endpoint.requests[*i].webhook_id.clone()))
        .filter(|i| acked.contains(endpoint.requests[*i].webhook_id.as_str()))
        .collect();
    firsts.sort_by_key(|i| endpoint.requests[*i].at);
    let Some(pair) = firsts
        .windows(2)
        .map(|w| (w[0], w[1]))
        .find(|(a, b)| endpoint.requests[*a].at != endpoint.requests[*b].at)
    else {
        return false;
    };
    let (a, b) = pair;
    let at_a = endpoint.requests[a].at;
    endpoint.requests[a].at = endpoint.requests[b].at;
    endpoint.requests[b].at = at_a;
    true
}

/// The checker's own test, on a real history: it must pass it, and must catch each planted
/// bug. Returns what it found, or panics.
pub fn seeded_bugs_are_caught(
    acked: &[Acked],
    endpoints: &[EndpointHistory],
    faults: &[FaultWindow],
    attempt_time: Duration,
    settle: Duration,
) -> String {
    let mut lost = endpoints.to_vec();
    let victim = plant_lost_message(acked, &mut lost).expect("a message to lose");
    let report = check(acked, &lost, faults, attempt_time, settle);
    assert!(
        report.lost.iter().any(|(_, m)| *m == victim),
        "the checker missed a lost message: {report:?}"
    );
    assert!(!report.passed());

    let mut reordered = endpoints.to_vec();
    assert!(
        plant_reordered_pair(acked, &mut reordered),
        "no FIFO pair to swap"
    );
    let report = check(acked, &reordered, faults, attempt_time, settle);
    assert!(
        report.order_violations >= 1,
        "the checker missed a reordered FIFO pair"
    );
    assert!(!report.passed());
    format!("a planted lost message ({victim}) and a planted reordered FIFO pair were both caught")
}
