//! Time at the precision Herald stores: whole milliseconds, UTC.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current time, truncated to the millisecond so that a value survives a round trip through
/// storage unchanged.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// `at` without its sub-millisecond part.
pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

/// RFC 3339 with milliseconds and a `Z`, the form every API response uses.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
