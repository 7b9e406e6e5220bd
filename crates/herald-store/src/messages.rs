//! The messages role: publishing and reading messages.
//!
//! A role of its own rather than part of [`crate::ResourceStore`]: a publish is not a change to
//! a configured resource but the hot path of the system, and its one transaction spans what
//! no other role writes together (the message, routing over the application's endpoints, one
//! delivery task per match, the queues made due and the `Idempotency-Key` answer). Callers
//! that only publish and read messages (the API's message routes, inbox forwarding,
//! operational webhooks) need nothing else.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{AppId, EndpointId, MessageId};
use herald_core::model::Message;
use herald_core::page::{ListParams, Page};

use crate::{IdempotencyCompletion, OutboxEvent, Result};

/// Filters of the message list route.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only messages of these event types; empty: any.
    pub event_types: Vec<String>,
    /// Only messages with this channel (exact, case-sensitive).
    pub channel: Option<String>,
    /// Only messages with this tag (exact, case-sensitive).
    pub tag: Option<String>,
    /// Only messages created strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only messages created strictly after this time.
    pub after: Option<DateTime<Utc>>,
}

/// Publishing and reading messages (see the module documentation).
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message and one pending task per matching endpoint (see
    /// `herald_core::routing`), in one transaction, and returns the endpoints that got a task.
    /// Fails with `Conflict` when its `eventId` was already used in the application; nothing is
    /// written then.
    async fn create_message(&self, message: &Message) -> Result<Vec<EndpointId>>;
    /// `create_message`, also completing the `Idempotency-Key` claim of `completion` with its
    /// answer in the same transaction (see [`IdempotencyCompletion`]).
    async fn create_message_idempotent(
        &self,
        message: &Message,
        completion: &IdempotencyCompletion,
    ) -> Result<Vec<EndpointId>>;
    /// Stores a message with one pending task for one enabled endpoint only, whatever its
    /// routing (an example sent to it). `NotFound` when the endpoint is missing or disabled.
    async fn create_message_for_endpoint(
        &self,
        message: &Message,
        endpoint: &EndpointId,
    ) -> Result<()>;
    /// Operational events waiting in the outbox, oldest first (see [`crate::outbox`]).
    async fn pending_operational_events(&self, limit: u32) -> Result<Vec<OutboxEvent>>;
    /// Deletes published events from the outbox.
    async fn remove_operational_events(&self, ids: &[i64]) -> Result<()>;
    /// The message `id` of `app`; `None` when there is none in that application.
    async fn get_message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>>;
    /// Finds a message of `app` by its `eventId`.
    async fn get_message_by_event_id(&self, app: &AppId, event_id: &str)
    -> Result<Option<Message>>;
    /// Lists the messages of `app` matching `filter`, keyed by message id (so by creation time).
    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        params: &ListParams,
    ) -> Result<Page<Message>>;
}
