//! The operational outbox: events about the installation (`endpoint.created`,
//! `message.attempt.exhausted`, …) written in the same transaction as the change they report.
//!
//! Before, the server published an event as a message right after the change committed, and a
//! crash in between lost it. Now the store writes an outbox row with the change (endpoint
//! writes in `sql/resources.rs`, attempt results in each engine's `complete_attempts`), and a
//! relay in the server (`herald::operational`) publishes each row as a message of the reserved
//! application under the message id chosen here, then deletes the row. A crash after the
//! publish and before the delete publishes the row again under the same id: a `Conflict`,
//! which the relay takes as done. So every committed change gets its event, exactly once.
//!
//! A row is written only while the reserved application has an enabled endpoint (the insert
//! checks it in the same statement), and never about the reserved application itself, so an
//! installation without operational webhooks writes nothing more than before.

use chrono::{DateTime, Utc};
use herald_core::id::{AppId, AttemptId, EndpointId, MessageId};
use herald_core::model::OPERATIONAL_APP_ID;
use serde_json::{Value, json};

use crate::queue::{AttemptRecord, CompletionEffects};

/// The event types, as Svix names them.
pub const ENDPOINT_CREATED: &str = "endpoint.created";
/// An endpoint's settings changed.
pub const ENDPOINT_UPDATED: &str = "endpoint.updated";
/// An endpoint was deleted.
pub const ENDPOINT_DELETED: &str = "endpoint.deleted";
/// An endpoint was disabled, by a person (`manual`) or by Herald (`automatic`).
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
/// The first failure of an endpoint in an hour, to be retried.
pub const ATTEMPT_FAILING: &str = "message.attempt.failing";
/// A task has no attempts left.
pub const ATTEMPT_EXHAUSTED: &str = "message.attempt.exhausted";
/// A success ended an endpoint's failure streak.
pub const ATTEMPT_RECOVERED: &str = "message.attempt.recovered";

/// The statement that writes one outbox row, in `$N` placeholders both engines accept: the
/// message id, event type, data and time, written only while the reserved application has an
/// enabled endpoint.
pub(crate) const INSERT_EVENT: &str = concat!(
    "INSERT INTO operational_outbox (msg_id, event_type, data, created_at)
     SELECT $1, $2, $3, $4 WHERE EXISTS (
         SELECT 1 FROM endpoints WHERE app_id = '",
    "app_0000000000000000000000",
    "' AND disabled = FALSE)"
);

/// An event to write with the change it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The id its message will have: chosen now, so that publishing it twice is a conflict.
    pub msg_id: MessageId,
    /// One of the event type constants above.
    pub event_type: &'static str,
    /// The event's `data`. The relay adds what the writer did not know (the application's
    /// `appUid`; an endpoint's `endpointUid`; a message's `msgEventId`).
    pub data: Value,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
}

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// The row, to delete once published.
    pub id: i64,
    /// The id its message gets.
    pub msg_id: MessageId,
    /// The event type.
    pub event_type: String,
    /// The event's `data`, as written.
    pub data: Value,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
}

impl NewEvent {
    fn new(event_type: &'static str, data: Value, created_at: DateTime<Utc>) -> Self {
        Self {
            msg_id: MessageId::generate(),
            event_type,
            data,
            created_at,
        }
    }

    /// The data as the `data` column stores it.
    pub(crate) fn data_text(&self) -> String {
        self.data.to_string()
    }
}

/// Whether changes of `app` are reported (never those of the reserved application itself).
fn reported(app: &AppId) -> bool {
    app.as_str() != OPERATIONAL_APP_ID
}

/// `endpoint.created`, `endpoint.updated` or `endpoint.deleted` for an endpoint of `app`.
pub(crate) fn endpoint_event(
    event_type: &'static str,
    app: &AppId,
    endpoint: &EndpointId,
    endpoint_uid: Option<&str>,
    now: DateTime<Utc>,
) -> Option<NewEvent> {
    reported(app).then(|| {
        NewEvent::new(
            event_type,
            json!({"appId": app, "endpointId": endpoint, "endpointUid": endpoint_uid}),
            now,
        )
    })
}

/// `endpoint.disabled` by a person: no failure streak to report.
pub(crate) fn endpoint_disabled_manually(
    app: &AppId,
    endpoint: &EndpointId,
    endpoint_uid: Option<&str>,
    now: DateTime<Utc>,
) -> Option<NewEvent> {
    let mut event = endpoint_event(ENDPOINT_DISABLED, app, endpoint, endpoint_uid, now)?;
    event.data["failSince"] = Value::Null;
    event.data["trigger"] = json!("manual");
    Some(event)
}

/// The events of a batch of attempt results and what committing it changed.
pub(crate) fn completion_events(
    records: &[AttemptRecord],
    effects: &CompletionEffects,
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let mut events = Vec::new();
    for disabled in &effects.disabled {
        // The batch holds an attempt of the endpoint: that gives its application.
        let Some(app) = records
            .iter()
            .find(|r| r.endpoint_id == disabled.endpoint)
            .map(|r| &r.app_id)
            .filter(|app| reported(app))
        else {
            continue;
        };
        events.push(NewEvent::new(
            ENDPOINT_DISABLED,
            json!({
                "appId": app,
                "endpointId": disabled.endpoint,
                "failSince": disabled.failing_since.map(herald_core::time::format),
                "trigger": "automatic",
            }),
            now,
        ));
    }
    let attempt_events: [(&'static str, &Vec<AttemptId>); 3] = [
        (ATTEMPT_FAILING, &effects.failing),
        (ATTEMPT_EXHAUSTED, &effects.exhausted),
        (ATTEMPT_RECOVERED, &effects.recovered),
    ];
    for (event_type, ids) in attempt_events {
        for id in ids {
            let Some(record) = records.iter().find(|r| &r.id == id) else {
                continue;
            };
            if !reported(&record.app_id) {
                continue;
            }
            events.push(NewEvent::new(
                event_type,
                json!({
                    "appId": record.app_id,
                    "msgId": record.msg_id,
                    "endpointId": record.endpoint_id,
                    "lastAttempt": {
                        "id": record.id,
                        "timestamp": herald_core::time::format(record.started_at),
                        "responseStatusCode": record.status_code,
                    },
                }),
                now,
            ));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_names_the_reserved_application() {
        assert!(INSERT_EVENT.contains(OPERATIONAL_APP_ID));
    }

    #[test]
    fn the_reserved_application_reports_nothing_about_itself() {
        let app = herald_core::model::operational_app_id();
        let endpoint = EndpointId::generate();
        let now = herald_core::time::now();
        assert!(endpoint_event(ENDPOINT_CREATED, &app, &endpoint, None, now).is_none());
        assert!(endpoint_disabled_manually(&app, &endpoint, None, now).is_none());
        let other = AppId::generate();
        assert!(endpoint_event(ENDPOINT_CREATED, &other, &endpoint, None, now).is_some());
    }
}
