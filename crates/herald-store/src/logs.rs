//! Types of the delivery-log, statistics, retention and metrics queries.
//!
//! The delivery log reads the queue's own rows (`deliveries`, `attempts`): what the engine
//! works with is what users see, so the log cannot disagree with what happened.

use chrono::{DateTime, Utc};
use herald_core::id::{AppId, EndpointId, MessageId};
use herald_core::model::{DeliveryStatus, Endpoint, Message};

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
