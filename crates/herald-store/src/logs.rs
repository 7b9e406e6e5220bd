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
    pub msg: Option<MessageId>,
    pub endpoint: Option<EndpointId>,
    /// Attempts are either `Success` or `Fail`; the other statuses match nothing.
    pub status: Option<DeliveryStatus>,
    /// `0` (no response), `100`, `200`, `300`, `400` or `500`.
    pub status_code_class: Option<u16>,
    /// Event types of the attempts' messages.
    pub event_types: Vec<String>,
    /// A channel of the attempts' messages.
    pub channel: Option<String>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// Filters of the messages sent to one endpoint (`…/endpoint/{id}/msg`).
#[derive(Debug, Clone, Default)]
pub struct EndpointMessageFilter {
    pub status: Option<DeliveryStatus>,
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// An endpoint a message was sent to, with that delivery's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub endpoint: Endpoint,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A message sent to an endpoint, with that delivery's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub message: Message,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Deliveries of an endpoint by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub fail: u64,
    pub sending: u64,
}

/// Filters of the delivery log. Times are inclusive bounds.
#[derive(Debug, Clone, Default)]
pub struct DeliveryLogFilter {
    /// Only this application's deliveries. Not checked when `endpoint` is set: an endpoint
    /// belongs to one application, and callers find it within the application.
    pub app: Option<AppId>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub last_attempt_from: Option<DateTime<Utc>>,
    pub last_attempt_to: Option<DateTime<Utc>>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    pub endpoint: Option<EndpointId>,
}

/// One row of the delivery log: one message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLogEntry {
    pub app_id: AppId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub event_type: String,
    pub url: String,
    /// `None` once deleted (retention or expunge).
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_status_code: Option<u16>,
    pub attempts: u32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One page of the delivery log and how many rows match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLogPage {
    pub entries: Vec<DeliveryLogEntry>,
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
    pub disabled_endpoints: u64,
}

/// Use of one connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub name: &'static str,
    /// Connections open.
    pub size: u32,
    /// Of those, not checked out.
    pub idle: u32,
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
    /// Counts what the queue holds at `now`.
    async fn queue_metrics(&self, now: DateTime<Utc>) -> Result<QueueMetrics>;
}
