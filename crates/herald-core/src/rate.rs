//! Token buckets: the rate limits of API tokens and of inboxes.
//!
//! Each key (a token, an inbox) has a bucket holding at most one second's worth of requests, so
//! bursts up to the rate pass and a steady stream above it is refused with the time to wait.
//! The clock is passed in, which keeps the arithmetic testable without sleeping. Buckets live in
//! one process's memory: with several nodes, each enforces the rate on the requests it receives.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets, one per key, created full on first use.
pub struct TokenBuckets<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K> Default for TokenBuckets<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> TokenBuckets<K> {
    /// Takes one request's token from `key`'s bucket: `Err(wait)` when the key is over
    /// `per_second`, with the time until a token is available.
    pub fn take(&self, key: &K, per_second: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_second.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = match buckets.get_mut(key) {
            Some(bucket) => bucket,
            None => buckets.entry(key.clone()).or_insert(Bucket {
                tokens: rate,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// [`TokenBuckets::take`] with at most `max_keys` buckets: a key without one, when that
    /// many exist, first makes the buckets idle for a second forgotten (they are full again, so
    /// nothing is lost), and is refused for a second if that frees no room. Memory stays
    /// bounded however many keys (source addresses) come and go.
    pub fn take_bounded(
        &self,
        key: &K,
        per_second: u32,
        now: Instant,
        max_keys: usize,
    ) -> Result<(), Duration> {
        {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if !buckets.contains_key(key) && buckets.len() >= max_keys {
                buckets.retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(1));
                if buckets.len() >= max_keys {
                    return Err(Duration::from_secs(1));
                }
            }
        }
        self.take(key, per_second, now)
    }

    /// Forgets buckets untouched for `idle` (they would be full again by now), so that the map
    /// does not keep every key ever seen.
    pub fn forget_idle(&self, idle: Duration, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.retain(|_, b| now.saturating_duration_since(b.at) < idle);
    }

    /// How many keys currently have a bucket.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_rate_then_waits() {
        let limiter = TokenBuckets::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&"a", 3, start).is_ok());
        }
        let wait = limiter.take(&"a", 3, start).unwrap_err();
        assert!(wait <= Duration::from_millis(334), "{wait:?}");
        assert!(
            limiter
                .take(&"a", 3, start + Duration::from_millis(340))
                .is_ok()
        );
        // Another key has its own bucket.
        assert!(limiter.take(&"b", 3, start).is_ok());
    }

    #[test]
    fn idle_buckets_are_forgotten() {
        let limiter = TokenBuckets::default();
        let start = Instant::now();
        limiter.take(&1, 5, start).unwrap();
        limiter.take(&2, 5, start + Duration::from_secs(5)).unwrap();
        limiter.forget_idle(Duration::from_secs(2), start + Duration::from_secs(6));
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn bounded_buckets_forget_full_ones_or_refuse() {
        let limiter = TokenBuckets::default();
        let start = Instant::now();
        assert!(limiter.take_bounded(&1, 1, start, 2).is_ok());
        assert!(limiter.take_bounded(&2, 1, start, 2).is_ok());
        // No room, and no bucket idle for a second: refused, and nothing grows.
        assert_eq!(
            limiter.take_bounded(&3, 1, start + Duration::from_millis(500), 2),
            Err(Duration::from_secs(1))
        );
        assert_eq!(limiter.len(), 2);
        // A known key still has its bucket.
        assert!(
            limiter
                .take_bounded(&1, 1, start + Duration::from_millis(999), 2)
                .is_err()
        );
        // Once the others are full again, they make room.
        assert!(
            limiter
                .take_bounded(&3, 1, start + Duration::from_secs(2), 2)
                .is_ok()
        );
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
