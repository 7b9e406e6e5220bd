//! Types of the delivery queue's store operations.

use chrono::{DateTime, Utc};
use herald_core::id::{AppId, AttemptId, EndpointId, MessageId};
use herald_core::model::{DeliveryStatus, Trigger};

/// A task claimed for an attempt, with what the attempt needs of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub delivery_id: i64,
    pub msg_id: MessageId,
    /// Attempts already made.
    pub attempts: u32,
    /// The attempt was asked for by a person (resend), not by the schedule.
    pub manual: bool,
    pub event_type: String,
    /// `None` when the payload was deleted (retention or expunge): the attempt cannot be made.
    pub payload: Option<String>,
    pub message_created_at: DateTime<Utc>,
}

/// One endpoint's claim in [`crate::Store::claim_tasks_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskClaim {
    pub endpoint: EndpointId,
    /// The claimed tasks are in flight until then.
    pub lease_until: DateTime<Utc>,
    pub limit: usize,
    /// Only the oldest unfinished task is considered.
    pub fifo: bool,
}

/// What happens to a task after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered.
    Done,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No attempts left: the task has failed.
    Exhausted,
    /// The receiver asked never to be called again (410 Gone): fail the task and disable the
    /// endpoint.
    DisableEndpoint,
}

/// The record of one finished attempt and its consequence.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub delivery_id: i64,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub app_id: AppId,
    pub url: String,
    /// The endpoint's `url_version` for `url`, when the attempt used the endpoint's own URL:
    /// the attempt then names it instead of keeping a copy.
    pub url_version: Option<i64>,
    /// 0 when no response was received.
    pub status_code: u16,
    /// The response body (truncated), or empty.
    pub response: String,
    pub duration_ms: i64,
    pub trigger: Trigger,
    /// Why the request failed before a response (timeout, refused, TLS, policy, …).
    pub error: Option<String>,
    /// The request's headers as a JSON object, secret values replaced; `None` when no request
    /// was made.
    pub request_headers: Option<String>,
    /// The body sent, when it differs from the message's payload (shaping).
    pub request_body: Option<String>,
    pub started_at: DateTime<Utc>,
    pub next: NextStep,
}

/// What committing a batch of attempts changed beyond the tasks themselves: what operational
/// webhooks report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletionEffects {
    /// Endpoints disabled by this batch (410 Gone, or failing for longer than allowed).
    pub disabled: Vec<DisabledEndpoint>,
    /// Failed attempts that will be retried and are the first failure of their endpoint in an
    /// hour (`message.attempt.failing`).
    pub failing: Vec<AttemptId>,
    /// Attempts after which their task has no attempts left (`message.attempt.exhausted`).
    pub exhausted: Vec<AttemptId>,
    /// Successful attempts that ended their endpoint's failure streak
    /// (`message.attempt.recovered`).
    pub recovered: Vec<AttemptId>,
}

/// An endpoint disabled by a batch of attempt results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledEndpoint {
    pub endpoint: EndpointId,
    /// Since when all its attempts had been failing.
    pub failing_since: Option<DateTime<Utc>>,
}

/// One message's state for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<u16>,
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub status_code: u16,
    pub response: Option<String>,
    pub duration_ms: i64,
    pub trigger: Trigger,
    pub success: bool,
    pub error: Option<String>,
    /// See [`AttemptRecord::request_headers`].
    pub request_headers: Option<String>,
    /// See [`AttemptRecord::request_body`].
    pub request_body: Option<String>,
    pub created_at: DateTime<Utc>,
}
