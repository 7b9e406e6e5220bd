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
//! operational endpoint cannot cause events about itself. Events are published right after the
//! change they report is committed; a crash in between loses them.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_core::id::{AppId, AttemptId, MessageId};
use herald_core::model::{Application, Endpoint, Message, operational_app_id};
use herald_core::page::{ListParams, Order};
use herald_store::{AttemptRecord, CompletionEffects, SerialKind, Store};
use serde::Serialize;
use serde_json::json;

use crate::wakeup::Wakeup;

/// The event types, as Svix names them.
pub const ENDPOINT_CREATED: &str = "endpoint.created";
pub const ENDPOINT_UPDATED: &str = "endpoint.updated";
pub const ENDPOINT_DELETED: &str = "endpoint.deleted";
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
pub const ATTEMPT_FAILING: &str = "message.attempt.failing";
pub const ATTEMPT_EXHAUSTED: &str = "message.attempt.exhausted";
pub const ATTEMPT_RECOVERED: &str = "message.attempt.recovered";

/// Publishes operational events. Cheap to clone.
#[derive(Clone)]
pub struct Operational {
    store: Arc<dyn Store>,
    wakeup: Wakeup,
    /// How long event payloads are kept.
    payload_retention: chrono::Duration,
}

/// `endpoint.disabled` says whether a person or Herald disabled the endpoint.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DisabledTrigger {
    Manual,
    Automatic,
}

impl Operational {
    pub fn new(store: Arc<dyn Store>, wakeup: Wakeup, payload_retention: chrono::Duration) -> Self {
        Self {
            store,
            wakeup,
            payload_retention,
        }
    }

    /// `endpoint.created`, `endpoint.updated` or `endpoint.deleted` for an application's
    /// endpoint.
    pub async fn endpoint_event(&self, event_type: &str, app: &Application, endpoint: &Endpoint) {
        self.publish(
            event_type,
            json!({
                "appId": app.id,
                "appUid": app.uid,
                "endpointId": endpoint.id,
                "endpointUid": endpoint.uid,
            }),
        )
        .await;
    }

    pub async fn endpoint_disabled(
        &self,
        app: &Application,
        endpoint: &Endpoint,
        trigger: DisabledTrigger,
        fail_since: Option<DateTime<Utc>>,
    ) {
        self.publish(
            ENDPOINT_DISABLED,
            json!({
                "appId": app.id,
                "appUid": app.uid,
                "endpointId": endpoint.id,
                "endpointUid": endpoint.uid,
                "failSince": fail_since.map(herald_core::time::format),
                "trigger": trigger,
            }),
        )
        .await;
    }

    /// The events of a committed batch of attempt results.
    pub async fn attempt_effects(&self, records: &[AttemptRecord], effects: &CompletionEffects) {
        let mut apps: HashMap<AppId, Option<Application>> = HashMap::new();
        for disabled in &effects.disabled {
            let endpoint = match self.store.get_endpoint_by_id(&disabled.endpoint).await {
                Ok(Some(endpoint)) => endpoint,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot report a disabled endpoint");
                    continue;
                }
            };
            if let Some(app) = self.app(&mut apps, &endpoint.app_id).await {
                self.endpoint_disabled(
                    &app,
                    &endpoint,
                    DisabledTrigger::Automatic,
                    disabled.failing_since,
                )
                .await;
            }
        }
        let by_id: HashMap<&AttemptId, &AttemptRecord> =
            records.iter().map(|r| (&r.id, r)).collect();
        for (event_type, ids) in [
            (ATTEMPT_FAILING, &effects.failing),
            (ATTEMPT_EXHAUSTED, &effects.exhausted),
            (ATTEMPT_RECOVERED, &effects.recovered),
        ] {
            for id in ids {
                let Some(record) = by_id.get(id) else {
                    continue;
                };
                let Some(app) = self.app(&mut apps, &record.app_id).await else {
                    continue;
                };
                let event_id = self.event_id(&app.id, &record.msg_id).await;
                self.publish(
                    event_type,
                    json!({
                        "appId": app.id,
                        "appUid": app.uid,
                        "msgId": record.msg_id,
                        "msgEventId": event_id,
                        "endpointId": record.endpoint_id,
                        "lastAttempt": {
                            "id": record.id,
                            "timestamp": herald_core::time::format(record.started_at),
                            "responseStatusCode": record.status_code,
                        },
                    }),
                )
                .await;
            }
        }
    }

    /// The application, looked up once per batch; `None` for the reserved application (the
    /// store hides it) and for deleted ones.
    async fn app(
        &self,
        cache: &mut HashMap<AppId, Option<Application>>,
        id: &AppId,
    ) -> Option<Application> {
        if let Some(found) = cache.get(id) {
            return found.clone();
        }
        let found = match self.store.get_app(id.as_str()).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load an application for an operational event");
                None
            }
        };
        cache.insert(id.clone(), found.clone());
        found
    }

    async fn event_id(&self, app: &AppId, msg: &MessageId) -> Option<String> {
        match self.store.get_message(app, msg).await {
            Ok(found) => found.and_then(|m| m.event_id),
            Err(_) => None,
        }
    }

    /// Publishes `{"type": …, "data": …}` to the operational endpoints, if any is enabled.
    /// Failures are logged: the change being reported has happened either way.
    async fn publish(&self, event_type: &str, data: serde_json::Value) {
        if data["appId"].as_str() == Some(herald_core::model::OPERATIONAL_APP_ID) {
            return;
        }
        let app = operational_app_id();
        match self
            .store
            .list_endpoints(&app, &ListParams::first(100, Order::Ascending))
            .await
        {
            Ok(page) if page.items.iter().any(|e| !e.disabled) => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, event_type, "cannot publish an operational event");
                return;
            }
        }
        let id = MessageId::generate();
        let created_at = id.timestamp().unwrap_or_else(herald_core::time::now);
        let payload = json!({"type": event_type, "data": data}).to_string();
        let serial = match self.store.next_serial(SerialKind::Message).await {
            Ok(serial) => serial,
            Err(e) => {
                tracing::warn!(error = %e, event_type, "cannot publish an operational event");
                return;
            }
        };
        let message = Message {
            id,
            app_id: app,
            serial,
            event_type: event_type.to_owned(),
            event_id: None,
            channels: None,
            payload: Some(payload),
            created_at,
            payload_expires_at: created_at + self.payload_retention,
            deliver_at: None,
            tags: None,
        };
        match self.store.create_message(&message).await {
            Ok(matched) => {
                tracing::debug!(event_type, msg_id = %message.id, "operational event published");
                self.wakeup.endpoints(matched);
            }
            Err(e) => tracing::warn!(error = %e, event_type, "cannot publish an operational event"),
        }
    }
}
