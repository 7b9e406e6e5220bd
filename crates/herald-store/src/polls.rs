//! The polling role: what polling endpoints collect and where each of their consumers is.
//!
//! A polling endpoint gets no delivery task: the publish transaction that stores a message
//! stores one *poll entry* per matching polling endpoint instead (so a publish is acknowledged
//! only once its entries are committed, as with tasks). Consumers read the entries of their
//! endpoint in order, after a [`PollPosition`]; a consumer that Herald tracks has its
//! acknowledged position stored here (`poll_consumers`).
//!
//! **Commit order.** A reader that has read up to a position must never later find an entry
//! before it: it would skip it. On SQLite the single writer makes `seq` order commit order. On
//! Postgres `seq` is drawn before the commit, so each entry also carries its transaction's id
//! (`xid`) and [`PollStore::read_polled`] returns only entries of transactions older than the
//! oldest one still running (`pg_snapshot_xmin`), in (xid, seq) order: every transaction that
//! ends later has an xid at least that high, so it lands after everything read. Guarded by the
//! conformance check `polls_wait_for_publishes_still_open` and, deterministically with a
//! transaction held open, `postgres_a_poll_never_passes_an_open_publish`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::EndpointId;
use herald_core::model::Message;

use crate::Result;

/// A place in an endpoint's entries: readers read what comes after it. `(0, 0)` is the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PollPosition {
    /// The writing transaction's id on Postgres; 0 on SQLite.
    pub xid: i64,
    /// The entry's number, in the order entries were written.
    pub seq: i64,
}

/// One entry read: its position and its message (whose `payload` is `None` once retention
/// removed it).
#[derive(Debug, Clone)]
pub struct PolledMessage {
    /// Where the entry is: a reader that has read it goes on after this.
    pub position: PollPosition,
    /// The message, as stored.
    pub message: Message,
}

/// Polling endpoints' entries and consumers (see the module documentation).
#[async_trait]
pub trait PollStore: Send + Sync {
    /// Up to `limit` entries of `endpoint` after `after`, in commit order, never one that an
    /// entry still to commit could precede.
    async fn read_polled(
        &self,
        endpoint: &EndpointId,
        after: PollPosition,
        limit: u32,
    ) -> Result<Vec<PolledMessage>>;

    /// The position just before the first entry of `endpoint` whose message was created after
    /// `time` (the end, when there is none yet): reading from it starts with that message.
    async fn poll_position_after(
        &self,
        endpoint: &EndpointId,
        time: DateTime<Utc>,
    ) -> Result<PollPosition>;

    /// A consumer's acknowledged position; `None` for a consumer never seen.
    async fn poll_cursor(
        &self,
        endpoint: &EndpointId,
        consumer: &str,
    ) -> Result<Option<PollPosition>>;

    /// Stores a consumer's acknowledged position (creating the consumer).
    async fn set_poll_cursor(
        &self,
        endpoint: &EndpointId,
        consumer: &str,
        position: PollPosition,
    ) -> Result<()>;
}
