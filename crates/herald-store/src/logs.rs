//! Types of the delivery-log, statistics, retention and metrics queries.
//!
//! The delivery log reads the queue's own rows (`deliveries`, `attempts`): what the engine
//! works with is what users see, so the log cannot disagree with what happened.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{AppId, AttemptId, EndpointId, MessageId};
use herald_core::model::{DeliveryStatus, Endpoint, Message};
use herald_core::page::{ListParams, Page};

use crate::Result;
use crate::queue::{Attempt, Delivery};

/// Filters of the attempt lists (`…/attempt/endpoint/{id}`, `…/attempt/msg/{id}`).
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    /// Only attempts of this message.
    pub msg: Option<MessageId>,
    /// Only attempts to this endpoint.
    pub endpoint: Option<EndpointId>,
    /// Attempts are either `Success` or `Fail`; the other statuses match nothing.
    pub status: Option<DeliveryStatus>,
    /// `0` (no response), `100`, `200`, `300`, `400` or `500`.
    pub status_code_class: Option<u16>,
    /// Event types of the attempts' messages.
    pub event_types: Vec<String>,
    /// A channel of the attempts' messages.
    pub channel: Option<String>,
    /// A tag of the attempts' messages.
    pub tag: Option<String>,
    /// Only attempts made strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only attempts made strictly after this time.
    pub after: Option<DateTime<Utc>>,
}

/// Filters of the messages sent to one endpoint (`…/endpoint/{id}/msg`).
#[derive(Debug, Clone, Default)]
pub struct EndpointMessageFilter {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only messages of these event types; empty: any.
    pub event_types: Vec<String>,
    /// Only messages with this channel.
    pub channel: Option<String>,
    /// Only messages with this tag.
    pub tag: Option<String>,
    /// Only deliveries whose last response's status is in this class: `100` … `500`, or `0`
    /// for none yet (no attempt, or no response).
    pub status_code_class: Option<u16>,
    /// Only messages created strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only messages created strictly after this time.
    pub after: Option<DateTime<Utc>>,
}

/// An endpoint a message was sent to, with that delivery's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The endpoint, as it is now.
    pub endpoint: Endpoint,
    /// The delivery's state.
    pub status: DeliveryStatus,
    /// When the next attempt is due; see [`Delivery::next_attempt_at`].
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A message sent to an endpoint, with that delivery's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The message; its `payload` is `None` once deleted.
    pub message: Message,
    /// The delivery's state.
    pub status: DeliveryStatus,
    /// When the next attempt is due; see [`Delivery::next_attempt_at`].
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Deliveries of an endpoint by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Deliveries that succeeded.
    pub success: u64,
    /// Deliveries waiting for their next attempt.
    pub pending: u64,
    /// Deliveries given up on.
    pub fail: u64,
    /// Deliveries with an attempt in flight.
    pub sending: u64,
    /// Deliveries canceled (their endpoint was disabled, or their content expunged).
    pub canceled: u64,
}

/// One UTC day of an endpoint's attempts (`LogStore::attempt_days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptDay {
    /// Midnight UTC that starts the day.
    pub day: DateTime<Utc>,
    /// Attempts answered with a success.
    pub success: u64,
    /// Attempts that failed.
    pub fail: u64,
}

/// Filters of the delivery log. Times are inclusive bounds.
#[derive(Debug, Clone, Default)]
pub struct DeliveryLogFilter {
    /// Only this application's deliveries. Not checked when `endpoint` is set: an endpoint
    /// belongs to one application, and callers find it within the application.
    pub app: Option<AppId>,
    /// Only messages created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Only messages created at or before this time.
    pub created_to: Option<DateTime<Utc>>,
    /// Only deliveries last attempted at or after this time (never attempted: excluded).
    pub last_attempt_from: Option<DateTime<Utc>>,
    /// Only deliveries last attempted at or before this time (never attempted: excluded).
    pub last_attempt_to: Option<DateTime<Utc>>,
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only messages of this event type.
    pub event_type: Option<String>,
    /// Only deliveries to this endpoint.
    pub endpoint: Option<EndpointId>,
    /// Only deliveries attempted at least this many times (Impilo's log filters on the time of
    /// the last retry, so a first attempt alone does not count).
    pub min_attempts: Option<u32>,
}

/// One row of the delivery log: one message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLogEntry {
    /// The message's application.
    pub app_id: AppId,
    /// The message delivered; the log is ordered by it, newest first.
    pub msg_id: MessageId,
    /// The endpoint delivered to; orders a message's rows.
    pub endpoint_id: EndpointId,
    /// The endpoint's serial (Impilo's `webhookId`).
    pub endpoint_serial: i64,
    /// The message's event type.
    pub event_type: String,
    /// The endpoint's current URL (not necessarily the one attempted).
    pub url: String,
    /// `None` once deleted (retention or expunge).
    pub payload: Option<String>,
    /// When the delivery (and its message) was created.
    pub created_at: DateTime<Utc>,
    /// See [`Delivery::last_status_code`].
    pub last_status_code: Option<u16>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the latest attempt was made; `None` before the first.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The delivery's state.
    pub status: DeliveryStatus,
    /// See [`Delivery::next_attempt_at`].
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One page of the delivery log and how many rows match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLogPage {
    /// The page's rows, newest message first; empty past the end.
    pub entries: Vec<DeliveryLogEntry>,
    /// Rows matching the filter, on every page.
    pub total: u64,
}

/// The queue's state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueMetrics {
    /// Pending tasks whose time has come.
    pub due: u64,
    /// Pending tasks waiting for a later time (retries).
    pub scheduled: u64,
    /// Tasks with an attempt in flight.
    pub sending: u64,
    /// Endpoints disabled (by a user or for failing), whatever their queue.
    pub disabled_endpoints: u64,
}

/// What one batch of the log retention deleted ([`LogStore::purge_messages`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedMessages {
    /// Messages deleted.
    pub messages: u64,
    /// Their delivery tasks.
    pub deliveries: u64,
    /// Their attempts.
    pub attempts: u64,
    /// Their polling endpoints' entries.
    pub poll_entries: u64,
}

/// One table in [`StorageStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// The table's name.
    pub name: &'static str,
    /// Its rows.
    pub rows: u64,
    /// Bytes it takes with its indexes, where the engine can tell (SQLite needs its `dbstat`
    /// table compiled in).
    pub bytes: Option<u64>,
}

/// What the database holds, for `herald stats storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageStats {
    /// `"sqlite"` or `"postgres"`.
    pub engine: &'static str,
    /// The whole database's size in bytes (SQLite: pages times page size, free pages included).
    pub database_bytes: u64,
    /// Bytes of free pages the database file holds and could give back (SQLite); `None` where
    /// the engine reuses the space itself (Postgres).
    pub free_bytes: Option<u64>,
    /// The main tables, in a fixed order.
    pub tables: Vec<TableStats>,
    /// When the oldest message still stored was created.
    pub oldest_message: Option<DateTime<Utc>>,
    /// When the oldest attempt still stored was made.
    pub oldest_attempt: Option<DateTime<Utc>>,
}

/// Use of one connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool: `"writer"` or `"reader"`.
    pub name: &'static str,
    /// Connections open.
    pub size: u32,
    /// Of those, not checked out.
    pub idle: u32,
    /// The pool's connection limit.
    pub max: u32,
}

/// The delivery log: what was sent, to whom, and how it went, with statistics, retention
/// and queue metrics. Reads for the API and the console, and the retention sweeps' deletes.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// A message's deliveries, one per endpoint, in endpoint id order.
    async fn deliveries_for_message(&self, msg: &MessageId) -> Result<Vec<Delivery>>;
    /// A message's attempts, oldest first.
    async fn attempts_for_message(&self, msg: &MessageId) -> Result<Vec<Attempt>>;

    /// Lists the attempts of `app` matching `filter`, keyed by attempt id.
    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        params: &ListParams,
    ) -> Result<Page<Attempt>>;
    /// One attempt of a message of `app`; `None` when the attempt, its message or its
    /// application do not match.
    async fn get_attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>>;
    /// Deletes an attempt's response body; `false` when there is no such attempt.
    async fn expunge_attempt_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<bool>;
    /// Deletes a message's payload; `false` when there is no such message.
    async fn expunge_message_content(&self, app: &AppId, msg: &MessageId) -> Result<bool>;
    /// The endpoints a message was sent to with each delivery's state, keyed by endpoint id.
    async fn list_destinations(
        &self,
        app: &AppId,
        msg: &MessageId,
        params: &ListParams,
    ) -> Result<Page<Destination>>;
    /// The messages sent to an endpoint with each delivery's state, keyed by message id.
    async fn list_sent_messages(
        &self,
        endpoint: &EndpointId,
        filter: &EndpointMessageFilter,
        params: &ListParams,
    ) -> Result<Page<SentMessage>>;
    /// Counts an endpoint's deliveries by status, for messages created in `[since, until)`.
    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<EndpointStats>;
    /// An endpoint's attempts made in `[since, until)`, by UTC day: each day's start and its
    /// successful and failed attempts, oldest first; days without attempts are left out.
    async fn attempt_days(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<AttemptDay>>;
    /// One page of the delivery log, newest first, skipping `offset` rows, with the number of
    /// rows matching `filter`.
    async fn delivery_log(
        &self,
        filter: &DeliveryLogFilter,
        offset: u64,
        limit: u64,
    ) -> Result<DeliveryLogPage>;

    // Retention and metrics.

    /// Deletes up to `limit` message payloads whose retention ended at or before `now`;
    /// returns how many. The messages themselves stay.
    async fn purge_payloads(&self, now: DateTime<Utc>, limit: u64) -> Result<u64>;
    /// Deletes up to `limit` response bodies of attempts made before `before`; returns how
    /// many. The attempts themselves stay.
    async fn purge_attempt_responses(&self, before: DateTime<Utc>, limit: u64) -> Result<u64>;
    /// Deletes, in one transaction, up to `limit` messages created before `before` whose
    /// delivery tasks have all ended (none pending, none in flight), oldest first, with
    /// everything that belongs to them: tasks, attempts and polling endpoints' entries. A
    /// message with a task still to deliver (retrying, scheduled ahead) stays, however old.
    async fn purge_messages(&self, before: DateTime<Utc>, limit: u64) -> Result<PurgedMessages>;
    /// Gives up to `pages` of the database's free pages back to the file system and returns
    /// how many it gave back: SQLite's `PRAGMA incremental_vacuum`, one short write
    /// transaction. Always 0 on Postgres, whose autovacuum makes deleted rows' space reusable
    /// by the table itself; where autovacuum is off, it vacuums the purged tables that have
    /// enough dead rows (see `PostgresStore`).
    async fn reclaim_space(&self, pages: u64) -> Result<u64>;
    /// Row counts and sizes of the main tables, the database's size, and the oldest message
    /// and attempt. Counts rows: reads whole tables (`herald stats storage`, not for hot paths).
    async fn storage_stats(&self) -> Result<StorageStats>;
    /// Counts what the queue holds at `now`.
    async fn queue_metrics(&self, now: DateTime<Utc>) -> Result<QueueMetrics>;
}
