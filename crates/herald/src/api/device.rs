//! Devices (Herald extension): a platform reports raw device facts and Herald publishes the
//! events they imply, by the rules in `herald_core::device`: Kobiton's status webhooks and
//! Electric Imp's blessing and BlinkUp. Events carry the channels `group:<g>`, `team:<t>` and
//! `bundle:<b>`, so an endpoint can scope itself to a team or a bundle.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::device::{Device, DeviceGroup, DeviceKind, DeviceStatus, DeviceTransition};
use herald_core::model::Metadata;
use herald_core::validate::{self, Violations};
use herald_store::{DeviceFilter, Lifecycle, StatusReport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::ScopedApp;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, OptionalJson, Query};
use super::message::DEFAULT_RETENTION_DAYS;
use super::pagination::{ListResponse, OrderedPageQuery};
use super::params::AppPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(get_device, put_device, delete_device))
        .routes(routes!(report_status))
        .routes(routes!(device_history))
        .routes(routes!(bless))
        .routes(routes!(activate))
        .routes(routes!(list_groups))
        .routes(routes!(get_group, put_group, delete_group))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DevicePath {
    /// The application's id or uid.
    pub app_id: String,
    /// The platform's id of the device (a UDID, Electric Imp's device id, …).
    pub device_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The device group's name.
    pub group: String,
}

/// `private`, `local` or `public`; public devices never publish status events.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKindName {
    Private,
    Local,
    Public,
}

impl From<DeviceKindName> for DeviceKind {
    fn from(k: DeviceKindName) -> Self {
        match k {
            DeviceKindName::Private => DeviceKind::Private,
            DeviceKindName::Local => DeviceKind::Local,
            DeviceKindName::Public => DeviceKind::Public,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatusName {
    Online,
    Offline,
    Utilizing,
    Unplugged,
}

impl From<DeviceStatusName> for DeviceStatus {
    fn from(s: DeviceStatusName) -> Self {
        match s {
            DeviceStatusName::Online => DeviceStatus::Online,
            DeviceStatusName::Offline => DeviceStatus::Offline,
            DeviceStatusName::Utilizing => DeviceStatus::Utilizing,
            DeviceStatusName::Unplugged => DeviceStatus::Unplugged,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceIn {
    #[schema(example = "Galaxy Note 8")]
    pub name: String,
    pub kind: DeviceKindName,
    /// The device group (its events get the channel `group:<group>`).
    pub group: Option<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub bundles: Vec<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceOut {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub group: Option<String>,
    pub teams: Vec<String>,
    pub bundles: Vec<String>,
    /// `online`, `offline`, `utilizing`, `unplugged`, or none yet.
    pub status: Option<String>,
    pub status_at: Option<DateTime<Utc>>,
    pub metadata: Metadata,
    pub imp_id: Option<String>,
    pub blessed_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Device> for DeviceOut {
    fn from(d: Device) -> Self {
        Self {
            id: d.id,
            name: d.name,
            kind: d.kind.as_str().to_owned(),
            group: d.group,
            teams: d.teams,
            bundles: d.bundles,
            status: d.status.map(|s| s.as_str().to_owned()),
            status_at: d.status_at,
            metadata: d.metadata,
            imp_id: d.imp_id,
            blessed_at: d.blessed_at,
            activated_at: d.activated_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusIn {
    pub status: DeviceStatusName,
    /// When the status was observed (default: now).
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusOut {
    /// `published` (the status changed and an event went out), `changed` (a public device:
    /// tracked, not published), `unchanged` or `disallowed` (e.g. `online` from `utilizing`).
    pub outcome: String,
    /// Why nothing was published, when nothing was.
    pub reason: Option<String>,
    /// The event published, if any.
    pub message_id: Option<String>,
    pub device: DeviceOut,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionOut {
    /// Position in the device's history, from 1.
    pub seq: i64,
    pub from: Option<String>,
    pub to: String,
    /// `published` or `changed` (public devices).
    pub outcome: String,
    pub at: DateTime<Utc>,
    pub message_id: Option<String>,
}

impl From<DeviceTransition> for TransitionOut {
    fn from(t: DeviceTransition) -> Self {
        Self {
            seq: t.seq,
            from: t.from.map(|s| s.as_str().to_owned()),
            to: t.to.as_str().to_owned(),
            outcome: t.outcome.as_str().to_owned(),
            at: t.at,
            message_id: t.msg_id.map(|m| m.into_string()),
        }
    }
}

/// Electric Imp's Blessing facts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlessIn {
    #[schema(example = "0c2a690a1e0b3a4c")]
    pub imp_id: String,
}

/// Electric Imp's BlinkUp facts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateIn {
    pub plan_id: String,
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleOut {
    /// The event published (`blessing` or `blinkup`).
    pub message_id: String,
    pub device: DeviceOut,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceGroupIn {
    /// A Test Production Device Group rather than a production one.
    #[serde(default)]
    pub test: bool,
    /// Devices may be activated (BlinkUp) without being blessed first.
    #[serde(default)]
    pub allow_unblessed_activation: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceGroupOut {
    pub name: String,
    pub test: bool,
    pub allow_unblessed_activation: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeviceGroup> for DeviceGroupOut {
    fn from(g: DeviceGroup) -> Self {
        Self {
            name: g.name,
            test: g.test,
            allow_unblessed_activation: g.allow_unblessed_activation,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    pub limit: Option<u64>,
    pub iterator: Option<String>,
    /// Names starting with this.
    pub name: Option<String>,
    pub kind: Option<DeviceKindName>,
    pub group: Option<String>,
    pub status: Option<DeviceStatusName>,
    /// In this team (repeat for several: all must hold).
    #[serde(default)]
    pub teams: Vec<String>,
    /// In this bundle (repeat for several).
    #[serde(default)]
    pub bundles: Vec<String>,
    /// `key=value` metadata pairs (repeat for several).
    #[serde(default)]
    pub metadata: Vec<String>,
}

fn check_names(v: &mut Violations, loc: &str, names: &[String]) {
    if names.len() > 20 {
        v.value(&["body", loc], "at most 20 items");
    }
    for (i, name) in names.iter().enumerate() {
        validate::identifier(v, &["body", loc, &i.to_string()], name, 64);
    }
}

fn device_path(v: &mut Violations, id: &str) {
    validate::uid(v, &["path", "device_id"], id);
}

fn retention() -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(DEFAULT_RETENTION_DAYS).unwrap_or(90) * 86_400)
}

async fn load(state: &AppState, scoped: &ScopedApp, id: &str) -> ApiResult<Device> {
    state
        .store
        .get_device(&scoped.app.id, id)
        .await?
        .ok_or(ApiError::NotFound("device not found"))
}

/// List an application's devices.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/device", tag = "Device", operation_id = "v1.device.list",
    params(AppPath, DeviceListQuery),
    responses((status = 200, body = ListResponse<DeviceOut>)))]
async fn list_devices(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Query(query): Query<DeviceListQuery>,
) -> ApiResult<axum::Json<ListResponse<DeviceOut>>> {
    let params = OrderedPageQuery {
        limit: query.limit,
        iterator: query.iterator,
        order: None,
    }
    .params()?;
    let mut v = Violations::new();
    let mut metadata = Vec::new();
    for (i, pair) in query.metadata.iter().enumerate() {
        match pair.split_once('=') {
            Some((k, val)) if !k.is_empty() => metadata.push((k.to_owned(), val.to_owned())),
            _ => v.value(&["query", "metadata", &i.to_string()], "expected key=value"),
        }
    }
    v.finish()?;
    let filter = DeviceFilter {
        name: query.name,
        kind: query.kind.map(Into::into),
        group: query.group,
        status: query.status.map(Into::into),
        teams: query.teams,
        bundles: query.bundles,
        metadata,
    };
    let page = state
        .store
        .list_devices(&scoped.app.id, &filter, &params)
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |d| d.id.clone(),
        DeviceOut::from,
    )))
}

/// Get a device.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/device/{device_id}", tag = "Device", operation_id = "v1.device.get",
    params(DevicePath),
    responses((status = 200, body = DeviceOut)))]
async fn get_device(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
) -> ApiResult<axum::Json<DeviceOut>> {
    Ok(axum::Json(
        load(&state, &scoped, &path.device_id).await?.into(),
    ))
}

/// Register a device, or replace its description (name, kind, group, teams, bundles,
/// metadata). Its status, history, blessing and activation are kept.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/device/{device_id}", tag = "Device", operation_id = "v1.device.put",
    params(DevicePath),
    request_body = DeviceIn,
    responses(
        (status = 200, body = DeviceOut, description = "Updated"),
        (status = 201, body = DeviceOut, description = "Created"),
    ))]
async fn put_device(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
    Json(body): Json<DeviceIn>,
) -> ApiResult<(StatusCode, axum::Json<DeviceOut>)> {
    let mut v = Violations::new();
    device_path(&mut v, &path.device_id);
    validate::non_empty(&mut v, &["body", "name"], &body.name);
    if body.name.len() > 256 {
        v.value(&["body", "name"], "at most 256 characters");
    }
    if let Some(group) = &body.group {
        validate::identifier(&mut v, &["body", "group"], group, 64);
    }
    check_names(&mut v, "teams", &body.teams);
    check_names(&mut v, "bundles", &body.bundles);
    validate::metadata(&mut v, &["body", "metadata"], &body.metadata);
    v.finish()?;
    let now = herald_core::time::now();
    let existing = state
        .store
        .get_device(&scoped.app.id, &path.device_id)
        .await?;
    let mut device = existing.unwrap_or_else(|| Device {
        id: path.device_id.clone(),
        app_id: scoped.app.id.clone(),
        name: String::new(),
        kind: DeviceKind::Private,
        group: None,
        teams: Vec::new(),
        bundles: Vec::new(),
        status: None,
        status_at: None,
        metadata: Metadata::new(),
        imp_id: None,
        blessed_at: None,
        activated_at: None,
        created_at: now,
        updated_at: now,
    });
    device.name = body.name;
    device.kind = body.kind.into();
    device.group = body.group;
    device.teams = body.teams;
    device.bundles = body.bundles;
    device.metadata = body.metadata;
    device.updated_at = now;
    let created = state.store.put_device(&device).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(device.into())))
}

/// Delete a device and its history.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/device/{device_id}", tag = "Device", operation_id = "v1.device.delete",
    params(DevicePath),
    responses((status = 204, description = "Deleted")))]
async fn delete_device(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_device(&scoped.app.id, &path.device_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("device not found"))
    }
}

/// Report a device's status. The rules decide what happens: `online` from any status except
/// `utilizing`; `offline`, `utilizing` and `unplugged` from any status; the same status again
/// changes nothing; public devices are tracked but never publish. The device, its history and
/// the event (`device.status.online`, `device.status.offline`, `device.state.utilizing`,
/// `device.state.unplugged`) are written in one transaction.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/device/{device_id}/status", tag = "Device", operation_id = "v1.device.report-status",
    params(DevicePath),
    request_body = StatusIn,
    responses((status = 200, body = StatusOut)))]
async fn report_status(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
    Json(body): Json<StatusIn>,
) -> ApiResult<axum::Json<StatusOut>> {
    let report = StatusReport {
        app: &scoped.app.id,
        device_id: &path.device_id,
        status: body.status.into(),
        at: body.at.unwrap_or_else(herald_core::time::now),
        // Kobiton's `orgId` is a number: the application's `orgId`, `null` without one.
        org_id: scoped.app.org_id,
        retention: retention(),
    };
    let recorded = match state.store.report_device_status(&report).await {
        Err(herald_store::StoreError::NotFound) => {
            return Err(ApiError::NotFound("device not found"));
        }
        other => other?,
    };
    use herald_core::device::StatusOutcome;
    let reason = match recorded.outcome {
        StatusOutcome::Published => None,
        StatusOutcome::ChangedSilently => Some("public devices do not publish status events"),
        StatusOutcome::Unchanged => Some("the device already has this status"),
        StatusOutcome::Disallowed => Some("a device that is utilizing cannot go online directly"),
    };
    let message_id = recorded.published.map(|(message, matched)| {
        state.wakeup.endpoints(matched);
        message.id.into_string()
    });
    Ok(axum::Json(StatusOut {
        outcome: recorded.outcome.as_str().to_owned(),
        reason: reason.map(str::to_owned),
        message_id,
        device: recorded.device.into(),
    }))
}

/// A device's status changes, oldest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/device/{device_id}/history", tag = "Device", operation_id = "v1.device.history",
    params(DevicePath, OrderedPageQuery),
    responses((status = 200, body = ListResponse<TransitionOut>)))]
async fn device_history(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
    Query(query): Query<OrderedPageQuery>,
) -> ApiResult<axum::Json<ListResponse<TransitionOut>>> {
    load(&state, &scoped, &path.device_id).await?;
    let params = query.params()?;
    let page = state
        .store
        .device_history(&scoped.app.id, &path.device_id, &params)
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |t| format!("{:012}", t.seq),
        TransitionOut::from,
    )))
}

async fn lifecycle(
    state: &AppState,
    scoped: &ScopedApp,
    device_id: &str,
    fact: Lifecycle<'_>,
) -> ApiResult<axum::Json<LifecycleOut>> {
    let (device, message, matched) = match state
        .store
        .record_lifecycle(
            &scoped.app.id,
            device_id,
            &fact,
            herald_core::time::now(),
            retention(),
        )
        .await
    {
        Err(herald_store::StoreError::NotFound) => {
            return Err(ApiError::NotFound("device not found"));
        }
        other => other?,
    };
    state.wakeup.endpoints(matched);
    Ok(axum::Json(LifecycleOut {
        message_id: message.id.into_string(),
        device: device.into(),
    }))
}

/// Electric Imp's Blessing: the device under test became a production device. Publishes
/// `blessing` `{"device_id", "imp_id"}` on the channel `group:<group>`. Blessing twice is a 409.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/device/{device_id}/bless", tag = "Device", operation_id = "v1.device.bless",
    params(DevicePath),
    request_body = BlessIn,
    responses((status = 200, body = LifecycleOut), (status = 409, description = "Already blessed")))]
async fn bless(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
    Json(body): Json<BlessIn>,
) -> ApiResult<axum::Json<LifecycleOut>> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "imp_id"], &body.imp_id, 128);
    v.finish()?;
    lifecycle(
        &state,
        &scoped,
        &path.device_id,
        Lifecycle::Bless {
            imp_id: &body.imp_id,
        },
    )
    .await
}

/// Electric Imp's BlinkUp: an end user activated the device. Publishes `blinkup`
/// `{"device_id", "plan_id", "token"}` on the channel `group:<group>`. A device that is not
/// blessed is refused (409) unless its group allows unblessed activation.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/device/{device_id}/activate", tag = "Device", operation_id = "v1.device.activate",
    params(DevicePath),
    request_body = ActivateIn,
    responses((status = 200, body = LifecycleOut), (status = 409, description = "Not blessed")))]
async fn activate(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<DevicePath>,
    Json(body): Json<ActivateIn>,
) -> ApiResult<axum::Json<LifecycleOut>> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "plan_id"], &body.plan_id, 128);
    validate::identifier(&mut v, &["body", "token"], &body.token, 128);
    v.finish()?;
    lifecycle(
        &state,
        &scoped,
        &path.device_id,
        Lifecycle::Activate {
            plan_id: &body.plan_id,
            token: &body.token,
        },
    )
    .await
}

/// List the application's device groups.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/device-group", tag = "Device", operation_id = "v1.device-group.list",
    params(AppPath),
    responses((status = 200, body = Vec<DeviceGroupOut>)))]
async fn list_groups(
    State(state): State<AppState>,
    scoped: ScopedApp,
) -> ApiResult<axum::Json<Vec<DeviceGroupOut>>> {
    let groups = state.store.list_device_groups(&scoped.app.id).await?;
    Ok(axum::Json(groups.into_iter().map(Into::into).collect()))
}

/// Get a device group's settings.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/device-group/{group}", tag = "Device", operation_id = "v1.device-group.get",
    params(GroupPath),
    responses((status = 200, body = DeviceGroupOut)))]
async fn get_group(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<GroupPath>,
) -> ApiResult<axum::Json<DeviceGroupOut>> {
    let group = state
        .store
        .get_device_group(&scoped.app.id, &path.group)
        .await?
        .ok_or(ApiError::NotFound("device group not found"))?;
    Ok(axum::Json(group.into()))
}

/// Create or replace a device group's settings.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/device-group/{group}", tag = "Device", operation_id = "v1.device-group.put",
    params(GroupPath),
    request_body = DeviceGroupIn,
    responses((status = 200, body = DeviceGroupOut)))]
async fn put_group(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<GroupPath>,
    OptionalJson(body): OptionalJson<DeviceGroupIn>,
) -> ApiResult<axum::Json<DeviceGroupOut>> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["path", "group"], &path.group, 64);
    v.finish()?;
    let now = herald_core::time::now();
    let created_at = state
        .store
        .get_device_group(&scoped.app.id, &path.group)
        .await?
        .map_or(now, |g| g.created_at);
    let group = DeviceGroup {
        app_id: scoped.app.id.clone(),
        name: path.group,
        test: body.test,
        allow_unblessed_activation: body.allow_unblessed_activation,
        created_at,
        updated_at: now,
    };
    state.store.put_device_group(&group).await?;
    Ok(axum::Json(group.into()))
}

/// Delete a device group's settings (its devices keep their group name).
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/device-group/{group}", tag = "Device", operation_id = "v1.device-group.delete",
    params(GroupPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_group(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<GroupPath>,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_device_group(&scoped.app.id, &path.group)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("device group not found"))
    }
}
