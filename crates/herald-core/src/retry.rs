//! When to try a failed delivery again.
//!
//! A schedule is a list of delays: after the first attempt fails the next one waits
//! `schedule[0]`, after the second `schedule[1]`, and so on; when the list is used up the
//! delivery has failed for good ("exhausted"). The server's schedule and one filling a window
//! spread every delay by ±20 % so that a burst of failures does not come back as a burst of
//! retries; a schedule an endpoint gives is kept exact (Impilo's 15, 30 and 60 minutes) unless
//! the endpoint asks for a spread (`retryJitter`). A receiver's `Retry-After` (on 429 and
//! 503) pushes the next attempt to at least that time, capped at an hour, and an optional
//! window bounds how long after the message a retry may still happen (Ideavate's 72 hours).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The fraction by which a delay is spread either way.
pub const JITTER: f64 = 0.2;
/// The longest a `Retry-After` may push an attempt back.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Bounds of a schedule: at most this many retries, each at most this long.
pub const MAX_RETRIES: usize = 50;
/// The longest any one delay of a schedule may be: 7 days.
pub const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How one endpoint's failed deliveries are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The delay before each retry: entry `n` is waited after the `n + 1`-th failed attempt (each
    /// spread by [`JITTER`] either way), so the schedule's length is the number of retries.
    pub schedule: Vec<Duration>,
    /// No attempt later than the message's creation plus this.
    pub window: Option<Duration>,
    /// The fraction by which each delay is spread either way (0 to 0.5).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            window: None,
            jitter: JITTER,
        }
    }
}

impl RetryPolicy {
    /// When to make the next attempt after `attempts` attempts have failed, or `None` when the
    /// delivery is exhausted. `unit` is a uniform random number in `[0, 1)` for the jitter.
    pub fn next_attempt(
        &self,
        attempts: u32,
        message_created: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<DateTime<Utc>> {
        let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
        let base = *self.schedule.get(index)?;
        let jitter = self.jitter.clamp(0.0, 0.5);
        let factor = 1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0);
        let mut delay = base.mul_f64(factor);
        if let Some(after) = retry_after {
            delay = delay.max(after.min(MAX_RETRY_AFTER));
        }
        let at = now + chrono::Duration::from_std(delay).ok()?;
        if let Some(window) = self.window
            && at > message_created + chrono::Duration::from_std(window).ok()?
        {
            return None;
        }
        Some(at)
    }
}

/// The first delay of a schedule that fills a retry window.
pub const FILL_FIRST: Duration = Duration::from_secs(5);
/// The longest delay of a schedule that fills a retry window.
pub const FILL_CAP: Duration = Duration::from_secs(3600);

/// A schedule that keeps retrying for `window`: delays doubling from 5 seconds, capped at an
/// hour, until they add up to the window (72 hours: 81 retries). Used when an endpoint sets a
/// window and no schedule, so that the window, not the server's few retries, decides when a
/// delivery is given up.
pub fn filling(window: Duration) -> Vec<Duration> {
    let mut schedule = Vec::new();
    let mut total = Duration::ZERO;
    let mut next = FILL_FIRST;
    while total < window {
        schedule.push(next);
        total += next;
        next = (next * 2).min(FILL_CAP);
    }
    schedule
}

/// Parses a schedule such as `5s,5m,30m,2h` or `15m, 30m, 60m` (units `ms`, `s`, `m`, `h`, `d`;
/// a bare number is seconds). An empty string means "no retries".
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let schedule = text
        .split(',')
        .map(|part| parse_duration(part.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    check_schedule(&schedule)?;
    Ok(schedule)
}

/// Checks a schedule's bounds (count and delay size).
pub fn check_schedule(schedule: &[Duration]) -> Result<(), String> {
    if schedule.len() > MAX_RETRIES {
        return Err(format!("at most {MAX_RETRIES} retries"));
    }
    if schedule.iter().any(|d| *d > MAX_DELAY) {
        return Err("each delay must be at most 7 days".into());
    }
    Ok(())
}

/// `250ms`, `5s`, `5m`, `2h`, `1d`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 5m or 2h"))?;
    let seconds = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit.trim() {
        "" | "s" => seconds(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" | "min" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        other => Err(format!(
            "unknown unit {other:?} in {text:?} (use ms, s, m, h or d)"
        )),
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP date. Past dates mean "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn default_schedule_with_jitter_bounds() {
        let p = RetryPolicy::default();
        let now = t0();
        // After the first failure: 5 s ± 20 %.
        let low = p.next_attempt(1, now, now, None, 0.0).unwrap();
        let high = p.next_attempt(1, now, now, None, 1.0).unwrap();
        assert_eq!((low - now).num_milliseconds(), 4000);
        assert_eq!((high - now).num_milliseconds(), 6000);
        let mid = p.next_attempt(2, now, now, None, 0.5).unwrap();
        assert_eq!((mid - now).num_seconds(), 300);
        // Seven retries (eight attempts in all), then exhausted.
        assert_eq!(
            p.next_attempt(7, now, now, None, 0.5)
                .map(|t| (t - now).num_hours()),
            Some(10)
        );
        assert!(p.next_attempt(8, now, now, None, 0.5).is_none());
        assert!(p.next_attempt(0, now, now, None, 0.5).is_none());
    }

    #[test]
    fn retry_after_pushes_back_but_is_capped() {
        let p = RetryPolicy::default();
        let now = t0();
        let at = p
            .next_attempt(1, now, now, Some(Duration::from_secs(120)), 0.5)
            .unwrap();
        assert_eq!((at - now).num_seconds(), 120);
        let capped = p
            .next_attempt(1, now, now, Some(Duration::from_secs(99_999)), 0.5)
            .unwrap();
        assert_eq!((capped - now).num_seconds(), 3600);
        // A Retry-After shorter than the schedule does not bring the attempt forward.
        let at = p
            .next_attempt(2, now, now, Some(Duration::from_secs(1)), 0.5)
            .unwrap();
        assert_eq!((at - now).num_seconds(), 300);
    }

    #[test]
    fn an_exact_schedule_has_no_spread_unless_asked() {
        let exact = RetryPolicy {
            schedule: vec![Duration::from_secs(900), Duration::from_secs(1800)],
            window: None,
            jitter: 0.0,
        };
        let now = t0();
        for unit in [0.0, 0.3, 1.0] {
            let at = exact.next_attempt(1, now, now, None, unit).unwrap();
            assert_eq!((at - now).num_seconds(), 900);
        }
        let spread = RetryPolicy {
            jitter: 0.1,
            ..exact
        };
        let low = spread.next_attempt(2, now, now, None, 0.0).unwrap();
        assert_eq!((low - now).num_seconds(), 1620);
    }

    #[test]
    fn window_ends_retries() {
        let p = RetryPolicy {
            schedule: vec![
                Duration::from_secs(900),
                Duration::from_secs(1800),
                Duration::from_secs(3600),
            ],
            window: Some(Duration::from_secs(2000)),
            jitter: JITTER,
        };
        let created = t0();
        assert!(p.next_attempt(1, created, created, None, 0.5).is_some());
        let later = created + chrono::Duration::seconds(900);
        assert!(p.next_attempt(2, created, later, None, 0.5).is_none());
    }

    #[test]
    fn a_window_alone_is_filled_with_doubling_delays_capped_at_an_hour() {
        let schedule = filling(Duration::from_secs(72 * 3600));
        assert_eq!(schedule[0], Duration::from_secs(5));
        assert_eq!(schedule[1], Duration::from_secs(10));
        assert!(schedule.iter().all(|d| *d <= FILL_CAP));
        let total: Duration = schedule.iter().sum();
        assert!(total >= Duration::from_secs(72 * 3600));
        assert!(total - *schedule.last().unwrap() < Duration::from_secs(72 * 3600));
        assert_eq!(schedule.len(), 81);
        assert!(filling(Duration::ZERO).is_empty());
        assert_eq!(
            filling(Duration::from_secs(1)),
            vec![Duration::from_secs(5)]
        );
    }

    #[test]
    fn schedules_and_durations_parse() {
        assert_eq!(
            parse_schedule("1s,1s,2s").unwrap(),
            vec![
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_secs(2)
            ]
        );
        assert_eq!(
            parse_schedule("15m, 30m, 60m").unwrap(),
            vec![
                Duration::from_secs(900),
                Duration::from_secs(1800),
                Duration::from_secs(3600)
            ]
        );
        assert_eq!(parse_schedule("").unwrap(), Vec::<Duration>::new());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("1s,,2s").is_err());
        assert!(parse_schedule("8d").is_err());
    }

    #[test]
    fn retry_after_forms() {
        let now = t0();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
