//! Firebase-style push ids: the keys a POST to an inbox adds its value under.
//!
//! The Electric Imp tutorial's data lands in Firebase under keys like `-NQ2vb7S0pKE3Fz4Tq9x`,
//! and customers moving to Herald compare, sort and paste those keys. Herald makes them the same
//! way Firebase's client does: 20 characters, the first 8 the millisecond time in the alphabet
//! [`PUSH_CHARS`] (most significant first), then 12 random characters. The alphabet is in ASCII
//! order, so keys compare as byte strings in the order of their times. A key made today starts
//! with `-`, the time's top digit being 0 until 2^42 ms (in 2109).
//!
//! Within one millisecond, Firebase's generator does not draw new random characters: it adds
//! one to the previous key's random part, so the keys of one generator sort in the order they
//! were made. Herald does the same, and goes one step further where Firebase does not: a clock
//! that moved backwards counts as the same millisecond as the last key, so one node's keys
//! never go out of arrival order. Keys made on different nodes in the same millisecond sort by
//! their random parts.
//!
//! [`PushIds`] is the pure generator (time and randomness passed in); [`generate_at`] is the
//! process's own instance.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Firebase's push-id alphabet, in ASCII order.
pub const PUSH_CHARS: &[u8; 64] =
    b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
/// Length of a push id.
pub const PUSH_ID_LEN: usize = 20;
/// Characters of the time part.
const TIME_CHARS: usize = 8;
/// Characters of the random part.
const RANDOM_CHARS: usize = 12;
/// The latest millisecond 8 characters of 6 bits can carry; later times are clamped to it.
pub const MAX_MILLIS: u64 = (1 << 48) - 1;

/// A push-id generator: the last key's time and random part.
#[derive(Debug, Clone, Default)]
pub struct PushIds {
    last: Option<(u64, [u8; RANDOM_CHARS])>,
}

impl PushIds {
    /// The next key at `now_ms`. `random` gives 12 fresh random values (only their low 6 bits
    /// are used); it is called when the time moved on since the last key, not otherwise.
    pub fn next(&mut self, now_ms: u64, random: impl FnOnce() -> [u8; RANDOM_CHARS]) -> String {
        let now_ms = now_ms.min(MAX_MILLIS);
        let (ms, digits) = match self.last {
            Some((last_ms, mut digits)) if now_ms <= last_ms => {
                if increment(&mut digits) {
                    (last_ms, digits)
                } else {
                    // 64^12 keys in one millisecond: move to the next one.
                    (last_ms.saturating_add(1).min(MAX_MILLIS), [0; RANDOM_CHARS])
                }
            }
            _ => (now_ms, random().map(|r| r & 63)),
        };
        self.last = Some((ms, digits));
        encode(ms, &digits)
    }
}

/// Adds one to a base-64 number, most significant digit first; `false` when it overflows.
fn increment(digits: &mut [u8; RANDOM_CHARS]) -> bool {
    for d in digits.iter_mut().rev() {
        if *d == 63 {
            *d = 0;
        } else {
            *d += 1;
            return true;
        }
    }
    false
}

fn encode(mut ms: u64, digits: &[u8; RANDOM_CHARS]) -> String {
    let mut out = [0u8; PUSH_ID_LEN];
    for slot in out[..TIME_CHARS].iter_mut().rev() {
        *slot = PUSH_CHARS[(ms % 64) as usize];
        ms /= 64;
    }
    for (slot, d) in out[TIME_CHARS..].iter_mut().zip(digits) {
        *slot = PUSH_CHARS[usize::from(*d & 63)];
    }
    out.iter().map(|&b| char::from(b)).collect()
}

fn digit(c: u8) -> Option<u64> {
    PUSH_CHARS.iter().position(|&p| p == c).map(|i| i as u64)
}

/// The millisecond time a push id carries; `None` for anything that is not a push id.
pub fn timestamp_millis(key: &str) -> Option<u64> {
    let bytes = key.as_bytes();
    if bytes.len() != PUSH_ID_LEN || !bytes.iter().all(|&b| digit(b).is_some()) {
        return None;
    }
    bytes[..TIME_CHARS]
        .iter()
        .try_fold(0u64, |acc, &b| Some(acc * 64 + digit(b)?))
}

/// Whether `key` has the form of a push id (20 characters of [`PUSH_CHARS`]).
pub fn is_push_id(key: &str) -> bool {
    timestamp_millis(key).is_some()
}

static PROCESS: Mutex<PushIds> = Mutex::new(PushIds { last: None });

/// A fresh key stamped with `at`, from this process's generator: keys it makes sort in the
/// order they were made.
pub fn generate_at(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut ids = PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    ids.next(ms, rand::random::<[u8; RANDOM_CHARS]>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_look_like_firebase_keys() {
        let mut ids = PushIds::default();
        let key = ids.next(1_700_000_000_000, || [0; 12]);
        assert_eq!(key.len(), 20);
        assert!(key.starts_with('-'), "{key}");
        assert_eq!(&key[8..], "------------", "random part of zeros");
        assert_eq!(timestamp_millis(&key), Some(1_700_000_000_000));
        // The time part of 0 ms, and of the last representable one.
        assert_eq!(&PushIds::default().next(0, || [63; 12])[..8], "--------");
        assert_eq!(
            &PushIds::default().next(u64::MAX, || [0; 12])[..8],
            "zzzzzzzz"
        );
        assert!(!is_push_id("0Kx7d0J5m3sN9nVYQ1v2Zc"), "an older key");
        assert!(!is_push_id("-NQ2vb7S0pKE3Fz4Tq9$"));
        assert!(is_push_id(&key));
    }

    #[test]
    fn the_same_millisecond_increments_the_random_part() {
        let mut ids = PushIds::default();
        let a = ids.next(5, || [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 63]);
        let b = ids.next(5, || panic!("no fresh randomness within a millisecond"));
        assert_eq!(&a[8..], "0123456789Az");
        assert_eq!(
            &b[8..],
            "0123456789B-",
            "63 + 1 carries into the next digit"
        );
        assert_eq!(a[..8], b[..8]);
        assert!(a < b);
        // A clock that went back counts as the same millisecond.
        let c = ids.next(4, || panic!("no fresh randomness when the clock went back"));
        assert!(b < c);
        assert_eq!(timestamp_millis(&c), Some(5));
        // The random part overflowing moves to the next millisecond.
        let mut full = PushIds {
            last: Some((9, [63; 12])),
        };
        let next = full.next(9, || panic!("not drawn"));
        assert_eq!(timestamp_millis(&next), Some(10));
        assert_eq!(&next[8..], "------------");
    }

    proptest! {
        /// Keys of any two generators sort by their times.
        #[test]
        fn keys_sort_by_time(t1 in 0u64..MAX_MILLIS, t2 in 0u64..MAX_MILLIS,
                             r1 in any::<[u8; 12]>(), r2 in any::<[u8; 12]>()) {
            let k1 = PushIds::default().next(t1, || r1);
            let k2 = PushIds::default().next(t2, || r2);
            if t1 < t2 {
                prop_assert!(k1 < k2, "{} ({}) vs {} ({})", k1, t1, k2, t2);
            } else if t1 > t2 {
                prop_assert!(k1 > k2);
            }
            prop_assert_eq!(timestamp_millis(&k1), Some(t1));
        }

        /// One generator's keys sort in the order they were made, whatever the clock does.
        #[test]
        fn one_generators_keys_sort_in_arrival_order(
            start in 0u64..1u64 << 44,
            steps in proptest::collection::vec((-3i64..4, any::<[u8; 12]>()), 1..60),
        ) {
            let mut ids = PushIds::default();
            let mut now = start;
            let mut latest = 0;
            let mut previous = String::new();
            for (step, random) in steps {
                now = now.saturating_add_signed(step);
                let key = ids.next(now, || random);
                latest = latest.max(now);
                prop_assert!(key > previous, "{} after {}", key, previous);
                prop_assert_eq!(timestamp_millis(&key), Some(latest));
                previous = key;
            }
        }
    }
}
