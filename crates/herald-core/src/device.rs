//! Devices and the events their facts produce: the status rules of Kobiton's device webhooks
//! and the lifecycle events of Electric Imp's Connected Factory (blessing, BlinkUp).
//!
//! A platform reports raw facts ("this device is now offline"); these rules decide whether a
//! webhook goes out and what it says, so every platform does not re-implement them:
//!
//! - `online` from any status except `utilizing`; `offline`, `utilizing` and `unplugged` from
//!   any status. A device with no status yet may become anything.
//! - Reporting the status a device already has changes nothing.
//! - Public devices are tracked but never publish (Kobiton's rule); private and local ones do.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::Metadata;

/// Who a device belongs to, which decides whether its status is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The organisation's own device in the vendor's cloud (Kobiton's Private); its status
    /// changes are published.
    Private,
    /// Connected to the organisation's own host (Kobiton's Local); its status changes are
    /// published.
    Local,
    /// A shared cloud device: its status is tracked but never published.
    Public,
}

impl DeviceKind {
    /// The lowercase name the API and the store use (`private`, `local`, `public`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Private => "private",
            DeviceKind::Local => "local",
            DeviceKind::Public => "public",
        }
    }

    /// Parses the name [`DeviceKind::as_str`] gives; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(DeviceKind::Private),
            "local" => Some(DeviceKind::Local),
            "public" => Some(DeviceKind::Public),
            _ => None,
        }
    }
}

/// A device's availability, as Kobiton's device status webhooks report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Available for use (`device.status.online`).
    Online,
    /// Not reachable (`device.status.offline`).
    Offline,
    /// In use by a session (`device.state.utilizing`); it cannot go straight back to online.
    Utilizing,
    /// Disconnected from its host (`device.state.unplugged`).
    Unplugged,
}

impl DeviceStatus {
    /// Every status, in declaration order.
    pub const ALL: [DeviceStatus; 4] = [
        DeviceStatus::Online,
        DeviceStatus::Offline,
        DeviceStatus::Utilizing,
        DeviceStatus::Unplugged,
    ];

    /// The lowercase name the API and the store use (`online`, `offline`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Online => "online",
            DeviceStatus::Offline => "offline",
            DeviceStatus::Utilizing => "utilizing",
            DeviceStatus::Unplugged => "unplugged",
        }
    }

    /// Parses the name [`DeviceStatus::as_str`] gives; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The event type (Kobiton's `eventActivity`) announcing this status.
    pub fn event_type(self) -> &'static str {
        match self {
            DeviceStatus::Online => "device.status.online",
            DeviceStatus::Offline => "device.status.offline",
            DeviceStatus::Utilizing => "device.state.utilizing",
            DeviceStatus::Unplugged => "device.state.unplugged",
        }
    }

    /// Kobiton's `eventDescription`.
    pub fn description(self) -> &'static str {
        match self {
            DeviceStatus::Online => "Online",
            DeviceStatus::Offline => "Offline",
            DeviceStatus::Utilizing => "Utilizing",
            DeviceStatus::Unplugged => "Unplugged",
        }
    }
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The platform's id for it (Kobiton's UDID, Electric Imp's device id).
    pub id: String,
    /// The application whose endpoints receive the device's events.
    pub app_id: crate::id::AppId,
    /// Human-readable name, sent as Kobiton's `deviceName`.
    pub name: String,
    /// Who the device belongs to, which decides whether its status is published.
    pub kind: DeviceKind,
    /// The device group (Electric Imp's Production or Test Production Device Group).
    pub group: Option<String>,
    /// Teams the device is shared with; each becomes a `team:<t>` channel.
    pub teams: Vec<String>,
    /// Bundles the device is part of; each becomes a `bundle:<b>` channel.
    pub bundles: Vec<String>,
    /// The last status reported that the rules accepted; `None` until the first report.
    pub status: Option<DeviceStatus>,
    /// When the current status was reported; `None` until the first report.
    pub status_at: Option<DateTime<Utc>>,
    /// Labels the caller attached (`metadata`).
    pub metadata: Metadata,
    /// Set when blessed: the imp id it was blessed with.
    pub imp_id: Option<String>,
    /// When the device was blessed (Electric Imp's Blessing); `None` until then.
    pub blessed_at: Option<DateTime<Utc>>,
    /// When the device was activated by an end user (Electric Imp's BlinkUp); `None` until then.
    pub activated_at: Option<DateTime<Utc>>,
    /// When the device was registered.
    pub created_at: DateTime<Utc>,
    /// When the device record last changed (including its status).
    pub updated_at: DateTime<Utc>,
}

impl Device {
    /// The channels a device's events carry, so endpoints can scope to groups, teams and
    /// bundles: `group:<g>`, `team:<t>`, `bundle:<b>`.
    pub fn channels(&self) -> Vec<String> {
        self.group
            .iter()
            .map(|g| format!("group:{g}"))
            .chain(self.teams.iter().map(|t| format!("team:{t}")))
            .chain(self.bundles.iter().map(|b| format!("bundle:{b}")))
            .collect()
    }

    /// The channel of lifecycle events: the device's group.
    pub fn group_channels(&self) -> Option<Vec<String>> {
        self.group.as_ref().map(|g| vec![format!("group:{g}")])
    }
}

/// Settings of a device group (Electric Imp's Production and Test Production Device Groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGroup {
    /// The application the group belongs to.
    pub app_id: crate::id::AppId,
    /// The group's name, as used in `Device::group` and the `group:<name>` channel.
    pub name: String,
    /// A test group: its events are kept apart from production ones by their own channel.
    pub test: bool,
    /// Whether a device of this group may be activated (BlinkUp) without being blessed first.
    pub allow_unblessed_activation: bool,
    /// When the group was first saved.
    pub created_at: DateTime<Utc>,
    /// When the group's settings last changed.
    pub updated_at: DateTime<Utc>,
}

/// A status change as recorded in a device's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTransition {
    /// Position in the device's history, from 1.
    pub seq: i64,
    /// The status before the report; `None` if the device had none yet.
    pub from: Option<DeviceStatus>,
    /// The status reported.
    pub to: DeviceStatus,
    /// What the rules made of the report.
    pub outcome: StatusOutcome,
    /// When the status was reported.
    pub at: DateTime<Utc>,
    /// The event published, if any.
    pub msg_id: Option<crate::id::MessageId>,
}

/// What a reported status does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The status changed and an event is published.
    Published,
    /// The status changed; public devices publish nothing.
    ChangedSilently,
    /// The device already had this status.
    Unchanged,
    /// The rules do not allow this change (`online` from `utilizing`); nothing changes.
    Disallowed,
}

impl StatusOutcome {
    /// Parses the name [`StatusOutcome::as_str`] gives; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [
            StatusOutcome::Published,
            StatusOutcome::ChangedSilently,
            StatusOutcome::Unchanged,
            StatusOutcome::Disallowed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// The name the history stores (`published`, `changed`, `unchanged`, `disallowed`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusOutcome::Published => "published",
            StatusOutcome::ChangedSilently => "changed",
            StatusOutcome::Unchanged => "unchanged",
            StatusOutcome::Disallowed => "disallowed",
        }
    }

    /// Whether the device's status changes.
    pub fn changes(self) -> bool {
        matches!(
            self,
            StatusOutcome::Published | StatusOutcome::ChangedSilently
        )
    }
}

/// Applies the status rules.
pub fn transition(kind: DeviceKind, from: Option<DeviceStatus>, to: DeviceStatus) -> StatusOutcome {
    if from == Some(to) {
        return StatusOutcome::Unchanged;
    }
    if to == DeviceStatus::Online && from == Some(DeviceStatus::Utilizing) {
        return StatusOutcome::Disallowed;
    }
    if kind == DeviceKind::Public {
        StatusOutcome::ChangedSilently
    } else {
        StatusOutcome::Published
    }
}

/// The payload key [`personalize`] fills with the receiving endpoint's serial (an integer) at
/// delivery.
pub const WEBHOOK_ID_KEY: &str = "webhookId";
/// The payload key [`personalize`] fills with the receiving endpoint's name (else its
/// description, else its uid, else its id).
pub const WEBHOOK_NAME_KEY: &str = "webhookName";
/// The payload key [`personalize`] sets to the time of each attempt: Kobiton's `creationTime`
/// is "the date and time the callback is sent".
pub const CREATION_TIME_KEY: &str = "creationTime";

/// Kobiton's callback body. `webhookId` and `webhookName` are `null` here, and
/// `creationTime` the time of the change: the worker fills them for each endpoint and each
/// attempt when it delivers (see [`personalize`]). `orgId` is the application's numeric
/// `orgId` (`null` without one).
pub fn status_payload(
    device: &Device,
    org_id: Option<i64>,
    status: DeviceStatus,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "creationTime": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "eventType": "DEVICE",
        "eventActivity": status.event_type(),
        "eventDescription": status.description(),
        "deviceUdid": device.id,
        "deviceName": device.name,
        "orgId": org_id,
        WEBHOOK_ID_KEY: null,
        WEBHOOK_NAME_KEY: null,
    })
}

/// Whether an event type's payload names its receiving webhook (the device status events).
pub fn names_its_webhook(event_type: &str) -> bool {
    DeviceStatus::ALL
        .iter()
        .any(|s| s.event_type() == event_type)
}

/// Fills `webhookId` and `webhookName` of a device status payload for one endpoint, and sets
/// `creationTime` to `sent_at` (the attempt's time, which the signature then covers). Returns
/// `None` (nothing to change) for other payloads.
pub fn personalize(
    payload: &str,
    webhook_id: i64,
    webhook_name: &str,
    sent_at: DateTime<Utc>,
) -> Option<String> {
    let mut value: Value = serde_json::from_str(payload).ok()?;
    let object = value.as_object_mut()?;
    if !object.contains_key(WEBHOOK_ID_KEY) && !object.contains_key(WEBHOOK_NAME_KEY) {
        return None;
    }
    object.insert(WEBHOOK_ID_KEY.into(), json!(webhook_id));
    object.insert(WEBHOOK_NAME_KEY.into(), json!(webhook_name));
    object.insert(
        CREATION_TIME_KEY.into(),
        json!(sent_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    Some(value.to_string())
}

/// Electric Imp's Blessing webhook body.
pub fn blessing_payload(device_id: &str, imp_id: &str) -> Value {
    json!({"device_id": device_id, "imp_id": imp_id})
}

/// Electric Imp's BlinkUp webhook body.
pub fn blinkup_payload(device_id: &str, plan_id: &str, token: &str) -> Value {
    json!({"device_id": device_id, "plan_id": plan_id, "token": token})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition() {
        use DeviceStatus::*;
        use StatusOutcome::*;
        let from_states = [
            None,
            Some(Online),
            Some(Offline),
            Some(Utilizing),
            Some(Unplugged),
        ];
        for kind in [DeviceKind::Private, DeviceKind::Local, DeviceKind::Public] {
            for from in from_states {
                for to in DeviceStatus::ALL {
                    let expected = if from == Some(to) {
                        Unchanged
                    } else if to == Online && from == Some(Utilizing) {
                        Disallowed
                    } else if kind == DeviceKind::Public {
                        ChangedSilently
                    } else {
                        Published
                    };
                    assert_eq!(
                        transition(kind, from, to),
                        expected,
                        "{kind:?} {from:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn personalizing_fills_only_status_payloads() {
        let at: DateTime<Utc> = "2023-01-06T04:52:36.963Z".parse().unwrap();
        let filled = personalize(
            r#"{"creationTime":"2023-01-06T04:50:00.000Z","a":1,"webhookId":null,"webhookName":null}"#,
            129,
            "QA",
            at,
        )
        .unwrap();
        assert_eq!(
            filled,
            r#"{"creationTime":"2023-01-06T04:52:36.963Z","a":1,"webhookId":129,"webhookName":"QA"}"#
        );
        assert_eq!(personalize(r#"{"a":1}"#, 1, "QA", at), None);
        assert_eq!(personalize("[1]", 1, "QA", at), None);
    }
}
