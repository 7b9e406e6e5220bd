//! Storage of devices: the registry, status reports applied with their events in one
//! transaction, lifecycle events, device groups and status history.

use async_trait::async_trait;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::device::{
    Device, DeviceGroup, DeviceKind, DeviceStatus, DeviceTransition, StatusOutcome,
};
use herald_core::id::{AppId, EndpointId};
use herald_core::model::Message;
use herald_core::page::{ListParams, Page};

use crate::Result;

/// Filters of the device list; every one given must hold.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Names starting with this.
    pub name: Option<String>,
    /// Only devices of this kind.
    pub kind: Option<DeviceKind>,
    /// Only devices in this device group.
    pub group: Option<String>,
    /// Only devices whose current status is this one.
    pub status: Option<DeviceStatus>,
    /// Devices in every one of these teams.
    pub teams: Vec<String>,
    /// Devices in every one of these bundles.
    pub bundles: Vec<String>,
    /// Devices with every one of these metadata pairs.
    pub metadata: Vec<(String, String)>,
}

/// A status reported for a device.
#[derive(Debug, Clone)]
pub struct StatusReport<'a> {
    /// The device's application.
    pub app: &'a AppId,
    /// The device, by its id within the application.
    pub device_id: &'a str,
    /// The status reported.
    pub status: DeviceStatus,
    /// When the device took that status: the device's `status_at` and the event's time.
    pub at: DateTime<Utc>,
    /// Kobiton's `orgId` in the event: the application's `orgId` (`null` without one).
    pub org_id: Option<i64>,
    /// How long the event's payload is kept.
    pub retention: Duration,
}

/// What a status report did.
#[derive(Debug, Clone)]
pub struct StatusRecorded {
    /// What the rules made of the report; only `Published` publishes.
    pub outcome: StatusOutcome,
    /// The device after the report.
    pub device: Device,
    /// The event published, and the endpoints it went to.
    pub published: Option<(Message, Vec<EndpointId>)>,
}

/// Electric Imp's lifecycle facts.
#[derive(Debug, Clone)]
pub enum Lifecycle<'a> {
    /// The device under test became a production device.
    Bless {
        /// Electric Imp's id of the device (its `imp_id`), sent in the `blessing` event.
        imp_id: &'a str,
    },
    /// An end user activated it with BlinkUp.
    Activate {
        /// The BlinkUp plan the device was activated with, sent in the `blinkup` event.
        plan_id: &'a str,
        /// The BlinkUp token, sent in the `blinkup` event.
        token: &'a str,
    },
}

/// Devices and device groups of an application (see the module documentation).
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Creates or replaces a device group's settings.
    async fn put_device_group(&self, group: &DeviceGroup) -> Result<()>;
    /// The group `name` of `app`; `None` when there is none.
    async fn get_device_group(&self, app: &AppId, name: &str) -> Result<Option<DeviceGroup>>;
    /// Every group of `app`, by name.
    async fn list_device_groups(&self, app: &AppId) -> Result<Vec<DeviceGroup>>;
    /// Deletes a group; `false` when `app` has no such group. Its devices keep naming it.
    async fn delete_device_group(&self, app: &AppId, name: &str) -> Result<bool>;

    /// Creates a device, or replaces its descriptive fields (name, kind, group, teams, bundles,
    /// metadata) keeping its status, history and lifecycle. `true` when it was created.
    async fn put_device(&self, device: &Device) -> Result<bool>;
    /// The device `id` of `app`; `None` when there is none.
    async fn get_device(&self, app: &AppId, id: &str) -> Result<Option<Device>>;
    /// Deletes a device with its tags and status history; `false` when `app` has no such
    /// device.
    async fn delete_device(&self, app: &AppId, id: &str) -> Result<bool>;
    /// Lists the devices of `app` matching `filter`, keyed by device id.
    async fn list_devices(
        &self,
        app: &AppId,
        filter: &DeviceFilter,
        params: &ListParams,
    ) -> Result<Page<Device>>;
    /// The device's status changes, oldest first in ascending order.
    async fn device_history(
        &self,
        app: &AppId,
        id: &str,
        params: &ListParams,
    ) -> Result<Page<DeviceTransition>>;

    /// Applies the status rules to a report and, in one transaction, updates the device,
    /// appends to its history and publishes the event. Reports for one device serialize.
    /// `NotFound` when the device does not exist.
    async fn report_device_status(&self, report: &StatusReport<'_>) -> Result<StatusRecorded>;

    /// Records a lifecycle fact and publishes its event (`blessing` or `blinkup`) in one
    /// transaction. `Conflict` when the device is already blessed (bless) or not blessed and
    /// its group does not allow that (activate); `NotFound` when it does not exist.
    async fn record_lifecycle(
        &self,
        app: &AppId,
        device_id: &str,
        fact: &Lifecycle<'_>,
        at: DateTime<Utc>,
        retention: Duration,
    ) -> Result<(Device, Message, Vec<EndpointId>)>;
}
