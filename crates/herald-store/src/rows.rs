//! Database rows and their conversion to and from domain records, shared by both backends.
//!
//! Columns use only types both engines decode the same way: `TEXT` (ids, JSON), 64-bit
//! integers (millisecond timestamps), 32-bit integers, booleans and blobs.

use chrono::{DateTime, TimeZone, Utc};
use herald_core::id::Id;
use herald_core::model::{
    ApiKey, Application, DeliveryStatus, Endpoint, EndpointOptions, EventType, KeyKind, Message,
    Metadata, Role, SealedEndpointSecrets, SealedGraphqlApi, Trigger,
};

use crate::logs::{DeliveryLogEntry, Destination, SentMessage};
use crate::queue::{Attempt, Delivery};
use crate::{Result, StoreError};

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp out of range: {ms}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serializing plain data to JSON cannot fail")
}

fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn opt_json<T: serde::de::DeserializeOwned>(
    column: &str,
    text: Option<String>,
) -> Result<Option<T>> {
    text.map(|t| from_json(column, &t)).transpose()
}

fn rate(value: Option<i32>) -> Option<u16> {
    value.and_then(|v| u16::try_from(v).ok())
}

/// When a message's tasks are first due: its `deliverAt`, or at once (its creation time). A
/// scheduled message waits in the queue's own index, not in a poll of messages.
pub(crate) fn first_due(msg: &herald_core::model::Message) -> i64 {
    millis(msg.deliver_at.unwrap_or(msg.created_at))
}

/// Channels as stored on messages: `,a,b,` so that `LIKE '%,a,%'` finds one on any engine.
pub(crate) fn channels_column(channels: &Option<Vec<String>>) -> Option<String> {
    channels
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|c| format!(",{},", c.join(",")))
}

fn channels_from_column(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct AppRow {
    id: String,
    uid: Option<String>,
    name: String,
    rate_limit: Option<i32>,
    metadata: String,
    graphql_api_url: Option<String>,
    graphql_api_headers: Option<Vec<u8>>,
    org_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AppRow> for Application {
    type Error = StoreError;
    fn try_from(r: AppRow) -> Result<Self> {
        Ok(Application {
            id: Id::from_trusted(r.id),
            uid: r.uid,
            name: r.name,
            rate_limit: rate(r.rate_limit),
            metadata: from_json::<Metadata>("metadata", &r.metadata)?,
            graphql_api: r.graphql_api_url.map(|url| SealedGraphqlApi {
                url,
                headers: r.graphql_api_headers,
            }),
            org_id: r.org_id,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventTypeRow {
    name: String,
    description: String,
    archived: bool,
    deprecated: bool,
    feature_flags: Option<String>,
    group_name: Option<String>,
    schemas: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<EventTypeRow> for EventType {
    type Error = StoreError;
    fn try_from(r: EventTypeRow) -> Result<Self> {
        Ok(EventType {
            name: r.name,
            description: r.description,
            archived: r.archived,
            deprecated: r.deprecated,
            feature_flags: channels_from_column(r.feature_flags),
            group_name: r.group_name,
            schemas: opt_json("schemas", r.schemas)?,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EndpointRow {
    id: String,
    app_id: String,
    uid: Option<String>,
    url: String,
    url_seq: i64,
    description: String,
    event_types: Option<String>,
    channels: Option<String>,
    disabled: bool,
    rate_limit: Option<i32>,
    metadata: String,
    options: String,
    created_at: i64,
    updated_at: i64,
    serial: i64,
    name: Option<String>,
}

impl EndpointRow {
    /// The row as the SQLite writer thread reads it (rusqlite), columns in
    /// `ENDPOINT_COLUMNS` order.
    pub(crate) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            app_id: row.get(1)?,
            uid: row.get(2)?,
            url: row.get(3)?,
            url_seq: row.get(4)?,
            description: row.get(5)?,
            event_types: row.get(6)?,
            channels: row.get(7)?,
            disabled: row.get(8)?,
            rate_limit: row.get(9)?,
            metadata: row.get(10)?,
            options: row.get(11)?,
            created_at: row.get(12)?,
            updated_at: row.get(13)?,
            serial: row.get(14)?,
            name: row.get(15)?,
        })
    }
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = StoreError;
    fn try_from(r: EndpointRow) -> Result<Self> {
        Ok(Endpoint {
            id: Id::from_trusted(r.id),
            app_id: Id::from_trusted(r.app_id),
            uid: r.uid,
            serial: r.serial,
            name: r.name,
            url: r.url,
            url_version: r.url_seq,
            description: r.description,
            event_types: opt_json("event_types", r.event_types)?,
            channels: opt_json("channels", r.channels)?,
            disabled: r.disabled,
            rate_limit: rate(r.rate_limit),
            metadata: from_json::<Metadata>("metadata", &r.metadata)?,
            options: from_json::<EndpointOptions>("options", &r.options)?,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SecretsRow {
    secret: Vec<u8>,
    previous_secrets: Option<Vec<u8>>,
    headers: Option<Vec<u8>>,
    url_credentials: Option<Vec<u8>>,
    secrets_version: i64,
}

impl From<SecretsRow> for SealedEndpointSecrets {
    fn from(r: SecretsRow) -> Self {
        SealedEndpointSecrets {
            secret: r.secret,
            previous: r.previous_secrets,
            headers: r.headers,
            credentials: r.url_credentials,
            version: r.secrets_version,
        }
    }
}

/// An endpoint with its secrets and its application's delivery settings, read in one query
/// (`QueueStore::dispatch_target`).
#[derive(sqlx::FromRow)]
pub(crate) struct DispatchRow {
    #[sqlx(flatten)]
    endpoint: EndpointRow,
    #[sqlx(flatten)]
    secrets: SecretsRow,
    app_rate_limit: Option<i32>,
    graphql_api_url: Option<String>,
    graphql_api_headers: Option<Vec<u8>>,
    webhook_secret: Option<Vec<u8>>,
    transformation: Option<String>,
    transformation_variables: Option<Vec<u8>>,
}

/// The stored transformation JSON and variables as the store hands them out.
pub(crate) fn stored_transformation(
    json: Option<String>,
    variables: Option<Vec<u8>>,
) -> Result<crate::StoredTransformation> {
    let transformation = json
        .map(|json| {
            serde_json::from_str(&json).map_err(|e| {
                StoreError::Corrupt(format!("an endpoint's transformation is not valid: {e}"))
            })
        })
        .transpose()?;
    Ok(crate::StoredTransformation {
        transformation,
        variables,
    })
}

impl TryFrom<DispatchRow> for crate::DispatchTarget {
    type Error = StoreError;
    fn try_from(r: DispatchRow) -> Result<Self> {
        Ok(crate::DispatchTarget {
            endpoint: Endpoint::try_from(r.endpoint)?,
            secrets: SealedEndpointSecrets::from(r.secrets),
            app_rate_limit: rate(r.app_rate_limit),
            graphql_api: r.graphql_api_url.map(|url| SealedGraphqlApi {
                url,
                headers: r.graphql_api_headers,
            }),
            webhook_secret: r.webhook_secret,
            transformation: stored_transformation(r.transformation, r.transformation_variables)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: String,
    app_id: String,
    serial: i64,
    event_type: String,
    event_id: Option<String>,
    channels: Option<String>,
    payload: Option<String>,
    created_at: i64,
    payload_expires_at: i64,
    deliver_at: Option<i64>,
    tags: Option<String>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self> {
        Ok(Message {
            id: Id::from_trusted(r.id),
            app_id: Id::from_trusted(r.app_id),
            serial: r.serial,
            event_type: r.event_type,
            event_id: r.event_id,
            channels: channels_from_column(r.channels),
            payload: r.payload,
            created_at: time(r.created_at)?,
            payload_expires_at: time(r.payload_expires_at)?,
            deliver_at: r.deliver_at.map(time).transpose()?,
            // Stored as channels are (`,a,b,`).
            tags: channels_from_column(r.tags),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BackgroundTaskRow {
    id: String,
    task: String,
    status: String,
    app_id: Option<String>,
    endpoint_id: Option<String>,
    params: String,
    data: String,
    cursor: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<BackgroundTaskRow> for crate::tasks::BackgroundTask {
    type Error = StoreError;
    fn try_from(r: BackgroundTaskRow) -> Result<Self> {
        use herald_core::background::{BackgroundTaskStatus, BackgroundTaskType};
        Ok(crate::tasks::BackgroundTask {
            id: Id::from_trusted(r.id),
            task: BackgroundTaskType::parse(&r.task)
                .ok_or_else(|| StoreError::Corrupt(format!("task: {}", r.task)))?,
            status: BackgroundTaskStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("status: {}", r.status)))?,
            app_id: r.app_id.map(Id::from_trusted),
            endpoint_id: r.endpoint_id.map(Id::from_trusted),
            params: from_json("params", &r.params)?,
            data: from_json("data", &r.data)?,
            cursor: r.cursor,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IntegrationRow {
    id: String,
    app_id: String,
    name: String,
    feature_flags: Option<String>,
    key_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<IntegrationRow> for herald_core::model::Integration {
    type Error = StoreError;
    fn try_from(r: IntegrationRow) -> Result<Self> {
        Ok(herald_core::model::Integration {
            id: Id::from_trusted(r.id),
            app_id: Id::from_trusted(r.app_id),
            name: r.name,
            // Stored as channels are.
            feature_flags: channels_from_column(r.feature_flags),
            key_id: r.key_id.map(Id::from_trusted),
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    name: String,
    role: String,
    kind: String,
    app_id: Option<String>,
    secret_hash: Vec<u8>,
    created_at: i64,
    expires_at: Option<i64>,
    parent_id: Option<String>,
    feature_flags: Option<String>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(ApiKey {
            id: Id::from_trusted(r.id),
            name: r.name,
            role: Role::parse(&r.role)
                .ok_or_else(|| StoreError::Corrupt(format!("role: {}", r.role)))?,
            kind: KeyKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("kind: {}", r.kind)))?,
            app_id: r.app_id.map(Id::from_trusted),
            secret_hash: r.secret_hash,
            created_at: time(r.created_at)?,
            expires_at: r.expires_at.map(time).transpose()?,
            parent_id: r.parent_id.map(Id::from_trusted),
            feature_flags: channels_from_column(r.feature_flags).unwrap_or_default(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    pub id: i64,
    pub msg_id: String,
    pub msg_serial: i64,
    pub attempts: i32,
    pub manual: bool,
    pub event_type: String,
    pub payload: Option<String>,
    pub created_at: i64,
}

fn status_code(code: Option<i32>) -> Option<u16> {
    code.and_then(|c| u16::try_from(c).ok())
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    msg_id: String,
    endpoint_id: String,
    status: i32,
    attempts: i32,
    next_attempt_at: Option<i64>,
    last_attempt_at: Option<i64>,
    last_status_code: Option<i32>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self> {
        Ok(Delivery {
            msg_id: Id::from_trusted(r.msg_id),
            endpoint_id: Id::from_trusted(r.endpoint_id),
            status: DeliveryStatus::from_code(i64::from(r.status))
                .ok_or_else(|| StoreError::Corrupt(format!("delivery status {}", r.status)))?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            next_attempt_at: r.next_attempt_at.map(time).transpose()?,
            last_attempt_at: r.last_attempt_at.map(time).transpose()?,
            last_status_code: status_code(r.last_status_code),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    id: String,
    msg_id: String,
    endpoint_id: String,
    url: String,
    status_code: i32,
    response: Option<String>,
    response_duration_ms: i64,
    trigger_type: i32,
    success: bool,
    error: Option<String>,
    created_at: i64,
    request_headers: Option<String>,
    request_body: Option<String>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> Result<Self> {
        Ok(Attempt {
            id: Id::from_trusted(r.id),
            msg_id: Id::from_trusted(r.msg_id),
            endpoint_id: Id::from_trusted(r.endpoint_id),
            url: r.url,
            status_code: status_code(Some(r.status_code)).unwrap_or(0),
            response: r.response,
            duration_ms: r.response_duration_ms,
            trigger: if r.trigger_type == 1 {
                Trigger::Manual
            } else {
                Trigger::Scheduled
            },
            success: r.success,
            error: r.error,
            request_headers: r.request_headers,
            request_body: r.request_body,
            created_at: time(r.created_at)?,
        })
    }
}

fn delivery_status(code: i32) -> Result<DeliveryStatus> {
    DeliveryStatus::from_code(i64::from(code))
        .ok_or_else(|| StoreError::Corrupt(format!("delivery status {code}")))
}

/// An endpoint with the state of one message's delivery to it.
#[derive(sqlx::FromRow)]
pub(crate) struct DestinationRow {
    #[sqlx(flatten)]
    endpoint: EndpointRow,
    delivery_status: i32,
    delivery_next_attempt_at: Option<i64>,
}

impl TryFrom<DestinationRow> for Destination {
    type Error = StoreError;
    fn try_from(r: DestinationRow) -> Result<Self> {
        Ok(Destination {
            endpoint: Endpoint::try_from(r.endpoint)?,
            status: delivery_status(r.delivery_status)?,
            next_attempt_at: r.delivery_next_attempt_at.map(time).transpose()?,
        })
    }
}

/// A message with the state of its delivery to one endpoint.
#[derive(sqlx::FromRow)]
pub(crate) struct SentMessageRow {
    #[sqlx(flatten)]
    message: MessageRow,
    delivery_status: i32,
    delivery_next_attempt_at: Option<i64>,
}

impl TryFrom<SentMessageRow> for SentMessage {
    type Error = StoreError;
    fn try_from(r: SentMessageRow) -> Result<Self> {
        Ok(SentMessage {
            message: Message::try_from(r.message)?,
            status: delivery_status(r.delivery_status)?,
            next_attempt_at: r.delivery_next_attempt_at.map(time).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryLogRow {
    app_id: String,
    msg_id: String,
    endpoint_id: String,
    endpoint_serial: i64,
    event_type: String,
    url: String,
    payload: Option<String>,
    created_at: i64,
    last_status_code: Option<i32>,
    attempts: i32,
    last_attempt_at: Option<i64>,
    status: i32,
    next_attempt_at: Option<i64>,
}

impl TryFrom<DeliveryLogRow> for DeliveryLogEntry {
    type Error = StoreError;
    fn try_from(r: DeliveryLogRow) -> Result<Self> {
        Ok(DeliveryLogEntry {
            app_id: Id::from_trusted(r.app_id),
            msg_id: Id::from_trusted(r.msg_id),
            endpoint_id: Id::from_trusted(r.endpoint_id),
            endpoint_serial: r.endpoint_serial,
            event_type: r.event_type,
            url: r.url,
            payload: r.payload,
            created_at: time(r.created_at)?,
            last_status_code: status_code(r.last_status_code),
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            last_attempt_at: r.last_attempt_at.map(time).transpose()?,
            status: delivery_status(r.status)?,
            next_attempt_at: r.next_attempt_at.map(time).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    msg_id: String,
    event_type: String,
    data: String,
    created_at: i64,
}

impl TryFrom<OutboxRow> for crate::OutboxEvent {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self> {
        Ok(crate::OutboxEvent {
            id: r.id,
            msg_id: Id::from_trusted(r.msg_id),
            event_type: r.event_type,
            data: from_json("operational_outbox.data", &r.data)?,
            created_at: time(r.created_at)?,
        })
    }
}
