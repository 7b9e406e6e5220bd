//! Operational webhooks: events about the installation itself (endpoints created, changed,
//! disabled; messages failing, exhausted, recovered), sent to endpoints the operator registers.
//!
//! The operator's endpoints are endpoints of a reserved application
//! (`herald_core::model::OPERATIONAL_APP_ID`) that the application API cannot see, and an event
//! is a message published to that application. So the delivery engine signs, delivers, retries,
//! logs and disables them exactly as it does every other webhook; nothing here sends anything.
//!
//! Nothing about the reserved application's own endpoints or messages is reported (the store
//! never returns the reserved application, and events name an application): a failing
//! operational endpoint cannot cause events about itself.
//!
//! The store writes each event into an outbox in the same transaction as the change it reports
//! (see `herald_store::outbox`), so a crash cannot separate the two. [`Operational::run`] is the
//! relay: it publishes each waiting event as a message, under the message id the outbox chose,
//! then deletes the row. A crash between those two steps publishes the row again on the next
//! pass, which the store refuses as a conflict (the id exists): exactly once. It runs on every
//! node (several relays on one Postgres database race harmlessly the same way), is poked by
//! the changes this process makes and looks again every second for those of other nodes.
//! Guarded by `operational::an_event_survives_a_crash_between_the_change_and_its_publish`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::id::{AppId, EndpointId, MessageId};
use herald_core::model::{Application, Message, operational_app_id};
use herald_store::{OutboxEvent, SerialKind, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::wakeup::Wakeup;

pub use herald_store::outbox::{
    ATTEMPT_EXHAUSTED, ATTEMPT_FAILING, ATTEMPT_RECOVERED, ENDPOINT_CREATED, ENDPOINT_DELETED,
    ENDPOINT_DISABLED, ENDPOINT_UPDATED,
};

/// Events published per pass.
const BATCH: u32 = 100;
/// How often the relay looks for events written by other nodes.
const INTERVAL: Duration = Duration::from_secs(1);

/// The relay of operational events. Cheap to clone.
#[derive(Clone)]
pub struct Operational {
    store: Arc<dyn Store>,
    wakeup: Wakeup,
    /// How long event payloads are kept.
    payload_retention: chrono::Duration,
    /// Rung after this process wrote events.
    poke: Arc<Notify>,
}

impl Operational {
    pub fn new(store: Arc<dyn Store>, wakeup: Wakeup, payload_retention: chrono::Duration) -> Self {
        Self {
            store,
            wakeup,
            payload_retention,
            poke: Arc::default(),
        }
    }

    /// Says that a change may have written events: the relay publishes them now rather than
    /// at its next look.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Publishes the outbox's events until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = INTERVAL;
        loop {
            match self.relay().await {
                Ok(_) => backoff = INTERVAL,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot publish operational events yet; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.poke.notified() => {}
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }

    /// One pass: publishes what waits, batch by batch; how many events it published.
    pub async fn relay(&self) -> Result<u64, StoreError> {
        let mut published = 0;
        loop {
            let events = self.store.pending_operational_events(BATCH).await?;
            if events.is_empty() {
                return Ok(published);
            }
            let mut apps = HashMap::new();
            let mut done = Vec::with_capacity(events.len());
            for event in &events {
                crate::crash::point("operational-relay");
                self.publish(event, &mut apps).await?;
                done.push(event.id);
            }
            crate::crash::point("operational-relayed");
            self.store.remove_operational_events(&done).await?;
            published += done.len() as u64;
        }
    }

    /// Publishes one event as a message of the reserved application; an event whose message
    /// exists already (published before a crash) is done.
    async fn publish(
        &self,
        event: &OutboxEvent,
        apps: &mut HashMap<AppId, Option<Application>>,
    ) -> Result<(), StoreError> {
        let Some(data) = self.complete(&event.data, apps).await? else {
            tracing::debug!(event_type = %event.event_type, "operational event about a deleted application dropped");
            return Ok(());
        };
        let created_at = event.created_at;
        let message = Message {
            id: event.msg_id.clone(),
            app_id: operational_app_id(),
            serial: self.store.next_serial(SerialKind::Message).await?,
            event_type: event.event_type.clone(),
            event_id: None,
            channels: None,
            payload: Some(json!({"type": event.event_type, "data": data}).to_string()),
            created_at,
            payload_expires_at: created_at + self.payload_retention,
            deliver_at: None,
            tags: None,
        };
        match self.store.create_message(&message).await {
            Ok(matched) => {
                tracing::debug!(event_type = %event.event_type, msg_id = %message.id, "operational event published");
                self.wakeup.endpoints(matched);
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The event's data with what its writer did not know: the application's `appUid`, an
    /// endpoint's `endpointUid` when missing, a message's `msgEventId`. `None` when the
    /// application is gone.
    async fn complete(
        &self,
        data: &Value,
        apps: &mut HashMap<AppId, Option<Application>>,
    ) -> Result<Option<Value>, StoreError> {
        let Some(app_id) = data["appId"].as_str().and_then(AppId::parse) else {
            return Ok(None);
        };
        if !apps.contains_key(&app_id) {
            let found = self.store.get_app(app_id.as_str()).await?;
            apps.insert(app_id.clone(), found);
        }
        let Some(Some(app)) = apps.get(&app_id) else {
            return Ok(None);
        };
        let mut data = data.clone();
        data["appUid"] = json!(app.uid);
        if let Some(endpoint) = data["endpointId"].as_str().and_then(EndpointId::parse)
            && data.get("endpointUid").is_none()
            && data.get("msgId").is_none()
        {
            let uid = self
                .store
                .get_endpoint_by_id(&endpoint)
                .await?
                .and_then(|e| e.uid);
            data["endpointUid"] = json!(uid);
        }
        if let Some(msg) = data["msgId"].as_str().and_then(MessageId::parse) {
            let event_id = self
                .store
                .get_message(&app.id, &msg)
                .await?
                .and_then(|m| m.event_id);
            data["msgEventId"] = json!(event_id);
        }
        Ok(Some(data))
    }
}
