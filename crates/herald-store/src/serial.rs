//! Integer serials for messages and endpoints (Impilo's typed envelope `id`, Impilo's and
//! Kobiton's integer webhook ids).
//!
//! Herald's ids are strings (`msg_…`); some seed systems' receivers expect integers. A serial
//! is drawn before the row is written, because a publish's answer (`MessageOut.serial`) is
//! built, and stored with its `Idempotency-Key`, before the message is.
//!
//! A counter row per kind (`serials`) hands out blocks: a node takes [`SerialKind::block`]
//! numbers in one short transaction and gives them out from memory. A per-application counter
//! written in the publish transaction would have made every publish to one application wait
//! for the previous one's commit on Postgres (the row lock), which is what the group commit of
//! `postgres/publishes.rs` exists to avoid. The cost is stated in the API documentation:
//! serials are unique across the server and increase on each node, but several nodes
//! interleave their blocks, and a restart leaves the rest of a block unused (gaps).

use std::collections::HashMap;
use std::sync::Mutex;

/// What a serial numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerialKind {
    /// A message's number (`MessageOut.serial`, the typed envelope's `id`).
    Message,
    /// An endpoint's number (`EndpointOut.serial`, Impilo's and Kobiton's `webhookId`).
    Endpoint,
}

impl SerialKind {
    /// The kind's row in `serials`.
    pub fn key(self) -> &'static str {
        match self {
            SerialKind::Message => "message",
            SerialKind::Endpoint => "endpoint",
        }
    }

    /// Numbers taken from the counter at once. Endpoints are created rarely, and their numbers
    /// are shown to people (`webhookId`), so they are taken one at a time, without gaps.
    pub fn block(self) -> i64 {
        match self {
            SerialKind::Message => 100,
            SerialKind::Endpoint => 1,
        }
    }
}

/// The numbers a node holds and has not given out yet: `next..end` per kind.
#[derive(Debug, Default)]
pub(crate) struct SerialBlocks {
    held: Mutex<HashMap<SerialKind, (i64, i64)>>,
}

impl SerialBlocks {
    /// The next number held for `kind`, if any is left.
    pub(crate) fn take(&self, kind: SerialKind) -> Option<i64> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (next, end) = held.get_mut(&kind)?;
        if *next >= *end {
            return None;
        }
        let n = *next;
        *next += 1;
        Some(n)
    }

    /// Keeps a block just taken from the counter (`first..first + len`), minus the number
    /// given out at once (`first`).
    pub(crate) fn keep(&self, kind: SerialKind, first: i64, len: i64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(kind, (first + 1, first + len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_given_out_in_order_and_then_runs_dry() {
        let blocks = SerialBlocks::default();
        assert_eq!(blocks.take(SerialKind::Message), None);
        blocks.keep(SerialKind::Message, 10, 3);
        assert_eq!(blocks.take(SerialKind::Message), Some(11));
        assert_eq!(blocks.take(SerialKind::Message), Some(12));
        assert_eq!(blocks.take(SerialKind::Message), None);
        assert_eq!(blocks.take(SerialKind::Endpoint), None);
    }
}
