//! Reads kept while nothing they come from has changed.
//!
//! Every publish looks its application up (by id or uid, once to scope the request and once to
//! find it), and on SQLite each read is a round trip to a reader connection's thread. Where the
//! store knows every write to the database as it commits (SQLite: one process), it keeps what
//! it read under its resource version (bumped after every such write) and answers from that
//! while the version stays the same. Where other processes write too (Postgres), it does not
//! keep anything: a change made on another node would go unseen.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most; past that the cache starts again empty (a plain bound: the working set
/// of a busy installation is its active applications).
const MAX_ENTRIES: usize = 10_000;

/// Values by key, each with the version it was read under.
pub(crate) struct VersionedCache<V> {
    entries: Mutex<HashMap<String, (u64, V)>>,
}

impl<V> Default for VersionedCache<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> VersionedCache<V> {
    /// The value kept for `key`, if it was read under `version`.
    pub(crate) fn get(&self, key: &str, version: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| *at == version)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value`, read under `version` (which the caller took before reading).
    pub(crate) fn put(&self, key: &str, version: u64, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_owned(), (version, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_serves_only_under_the_version_it_was_read_at() {
        let cache = VersionedCache::default();
        cache.put("app", 7, "read at 7");
        assert_eq!(cache.get("app", 7), Some("read at 7"));
        assert_eq!(cache.get("app", 8), None);
        assert_eq!(cache.get("other", 7), None);
        for i in 0..MAX_ENTRIES {
            cache.put(&format!("k{i}"), 7, "filler");
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
