//! Path parameters shared by many routes, declared once for both extraction and the OpenAPI
//! document. Every `{app_id}`, `{endpoint_id}` and `{msg_id}` accepts an id or a uid (an
//! `eventId` for messages).

use serde::Deserialize;
use utoipa::IntoParams;

/// `/api/v1/app/{app_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// The application's id or uid.
    pub app_id: String,
}

/// `/api/v1/app/{app_id}/endpoint/{endpoint_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The endpoint's id or uid.
    pub endpoint_id: String,
}

/// `/api/v1/app/{app_id}/msg/{msg_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    /// The application's id or uid.
    pub app_id: String,
    /// The message's id or eventId.
    pub msg_id: String,
}

/// `/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessageEndpointPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The message's id or eventId.
    pub msg_id: String,
    /// The endpoint's id or uid.
    pub endpoint_id: String,
}

/// `/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AttemptPath {
    /// The application's id or uid.
    pub app_id: String,
    /// The message's id or eventId.
    pub msg_id: String,
    /// The attempt's id.
    pub attempt_id: String,
}
