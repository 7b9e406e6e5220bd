//! Typed, prefixed, time-ordered identifiers.
//!
//! Every resource id is `<prefix>_<22 base62 characters>`, e.g. `msg_0KwzQ1x…`. The body encodes
//! a 128-bit number whose top 48 bits are the creation time in milliseconds and whose low 80 bits
//! are random. Two properties follow, and the rest of Herald relies on both:
//!
//! - Ids sort (as plain strings) in creation order, because the base62 alphabet below is in ASCII
//!   order and the width is fixed. List pagination uses the id itself as the keyset cursor, so a
//!   page boundary never skips or repeats an item while new items are inserted.
//! - Within one process ids are strictly increasing even inside one millisecond: the generator
//!   increments the previous value instead of drawing new randomness when the clock has not moved
//!   (or went backwards).
//!
//! The prefix makes a leaked id self-describing and lets an API path segment be told apart from a
//! user-chosen `uid` (`app_…` vs `my-app`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Width of the encoded body: 62^22 > 2^128, so every u128 fits.
pub const BODY_LEN: usize = 22;
const RANDOM_BITS: u32 = 80;

fn encode(mut n: u128) -> String {
    let mut out = [b'0'; BODY_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    // The alphabet is ASCII, so this cannot fail.
    String::from_utf8(out.to_vec()).expect("base62 is ascii")
}

fn decode(body: &str) -> Option<u128> {
    if body.len() != BODY_LEN {
        return None;
    }
    let mut n: u128 = 0;
    for b in body.bytes() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        n = n.checked_mul(62)?.checked_add(u128::from(digit))?;
    }
    Some(n)
}

/// The latest millisecond an id can carry (48 bits: in the year 10889). Later times are
/// clamped to it rather than shifted out of the top of the number.
const MAX_MILLIS: u64 = (1 << (128 - RANDOM_BITS)) - 1;

fn millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis())
        .unwrap_or(0)
        .min(MAX_MILLIS)
}

static LAST: Mutex<u128> = Mutex::new(0);

/// The next raw id value: time-ordered and strictly increasing within this process.
fn next_raw(now_ms: u64) -> u128 {
    let random: u128 = rand::random::<u128>() >> (128 - RANDOM_BITS);
    let candidate = (u128::from(now_ms) << RANDOM_BITS) | random;
    let mut last = LAST.lock().unwrap_or_else(|poison| poison.into_inner());
    let value = if candidate > *last {
        candidate
    } else {
        *last + 1
    };
    *last = value;
    value
}

/// A kind of resource: fixes the id prefix at the type level so that an endpoint id can never be
/// passed where a message id is expected.
pub trait IdKind {
    /// The id's prefix without the underscore (`app`, `ep`, `msg`, …).
    const PREFIX: &'static str;
}

/// An identifier of resource kind `K`.
pub struct Id<K> {
    text: String,
    kind: PhantomData<fn() -> K>,
}

impl<K: IdKind> Id<K> {
    /// A fresh id stamped with the current time.
    pub fn generate() -> Self {
        Self::generate_at(Utc::now())
    }

    /// A fresh id stamped with `at`. Ids stay strictly increasing within the process, so when an
    /// id later than `at` was already handed out, the new id is stamped just after that one.
    pub fn generate_at(at: DateTime<Utc>) -> Self {
        Self::from_raw(next_raw(millis(at)))
    }

    /// The smallest id that could have been generated at `at`: ids compare against it the way
    /// their creation times compare against `at`. Used to turn time filters into key ranges.
    pub fn lower_bound_at(at: DateTime<Utc>) -> Self {
        Self::from_raw(u128::from(millis(at)) << RANDOM_BITS)
    }

    fn from_raw(raw: u128) -> Self {
        Self {
            text: format!("{}_{}", K::PREFIX, encode(raw)),
            kind: PhantomData,
        }
    }

    /// Parses `text` as an id of this kind; `None` when the prefix or body is wrong.
    pub fn parse(text: &str) -> Option<Self> {
        let body = text.strip_prefix(K::PREFIX)?.strip_prefix('_')?;
        decode(body)?;
        Some(Self {
            text: text.to_owned(),
            kind: PhantomData,
        })
    }

    /// Wraps a value read back from storage, which was validated when it was written.
    pub fn from_trusted(text: String) -> Self {
        Self {
            text,
            kind: PhantomData,
        }
    }

    /// The id's full text, prefix included (`msg_…`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The id's full text, prefix included, without copying it.
    pub fn into_string(self) -> String {
        self.text
    }

    /// The id without its prefix: 22 base62 characters that still sort in creation order
    /// (inbox keys generated by POST are these).
    pub fn body(&self) -> &str {
        self.text.get(K::PREFIX.len() + 1..).unwrap_or_default()
    }

    /// The creation time encoded in the id.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        let raw = decode(self.text.get(K::PREFIX.len() + 1..)?)?;
        let ms = i64::try_from(raw >> RANDOM_BITS).ok()?;
        Utc.timestamp_millis_opt(ms).single()
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl<K> Eq for Id<K> {}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl<K> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K> serde::Serialize for Id<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de, K: IdKind> serde::Deserialize<'de> for Id<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("not a valid `{}_` id: {text}", K::PREFIX))
        })
    }
}

macro_rules! id_kinds {
    ($($(#[$doc:meta])* $kind:ident, $alias:ident, $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $kind {}
        impl IdKind for $kind {
            const PREFIX: &'static str = $prefix;
        }
        $(#[$doc])*
        pub type $alias = Id<$kind>;
    )*};
}

id_kinds! {
    /// An application: one per customer of the producing platform.
    AppKind, AppId, "app";
    /// A destination URL with its delivery settings.
    EndpointKind, EndpointId, "ep";
    /// A published message (event).
    MessageKind, MessageId, "msg";
    /// One HTTP delivery attempt of a message to an endpoint.
    AttemptKind, AttemptId, "atmpt";
    /// An API key (admin, application-scoped, read-only or portal session).
    ApiKeyKind, ApiKeyId, "key";
    /// An inbox: a Firebase-style store that receives webhooks by path.
    InboxKind, InboxId, "inbox";
    /// One accepted write to an inbox (a received request).
    InboxEntryKind, InboxEntryId, "entry";
    /// A background task (a replay, a recovery, a purge, a statistics run): Svix's
    /// `QueueBackgroundTask`, hence the prefix.
    BackgroundTaskKind, BackgroundTaskId, "qtask";
    /// A third party's integration with an application.
    IntegrationKind, IntegrationId, "integ";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_prefix() {
        let id = AppId::generate();
        assert!(id.as_str().starts_with("app_"));
        assert_eq!(id.as_str().len(), 4 + BODY_LEN);
        assert_eq!(AppId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(EndpointId::parse(id.as_str()), None);
        assert_eq!(AppId::parse("app_short"), None);
        assert_eq!(AppId::parse("app_!!!!!!!!!!!!!!!!!!!!!!"), None);
    }

    #[test]
    fn ids_sort_in_creation_order_even_within_one_millisecond() {
        let at = Utc::now();
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::generate_at(at)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
    }

    #[test]
    fn lower_bound_orders_against_times() {
        let early = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let late = Utc.timestamp_millis_opt(1_700_000_000_001).unwrap();
        let id = MessageId::from_raw((1_700_000_000_000u128 << RANDOM_BITS) | 12345);
        assert!(MessageId::lower_bound_at(early) <= id);
        assert!(id < MessageId::lower_bound_at(late));
        assert_eq!(id.timestamp(), Some(early));
    }

    #[test]
    fn times_beyond_the_last_representable_one_are_clamped() {
        // Found by the `ids` fuzz target: a time past the year 10889 was shifted out of the
        // top of the number, so `before=+12428-…` became a bound in the year 3509.
        let last = Utc.timestamp_millis_opt(MAX_MILLIS as i64).unwrap();
        let far = Utc.with_ymd_and_hms(12428, 10, 6, 12, 0, 0).unwrap();
        assert_eq!(
            MessageId::lower_bound_at(far),
            MessageId::lower_bound_at(last)
        );
        assert_eq!(MessageId::lower_bound_at(far).timestamp(), Some(last));
        assert!(MessageId::generate() < MessageId::lower_bound_at(far));
    }

    #[test]
    fn max_value_fits() {
        assert_eq!(decode(&encode(u128::MAX)), Some(u128::MAX));
        assert_eq!(decode("zzzzzzzzzzzzzzzzzzzzzz"), None);
    }
}
