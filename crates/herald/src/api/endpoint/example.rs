//! `send-example`: an event type's example sent to one endpoint through the whole pipeline
//! (shaping, signing, retries), so a subscriber can see a real delivery before real events.

use axum::extract::{Path, State};
use chrono::Duration;
use herald_core::id::MessageId;
use herald_core::model::Message;
use herald_core::validate::{self, Violations};
use herald_store::{SerialKind, StoreError};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::load;
use crate::api::AppState;
use crate::api::auth::ScopedApp;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Json;
use crate::api::message::{DEFAULT_RETENTION_DAYS, MessageOut};
use crate::api::params::EndpointPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_example))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventExampleIn {
    #[schema(
        example = "user.signup",
        max_length = 256,
        pattern = r"^[a-zA-Z0-9\-_.]+$"
    )]
    pub event_type: String,
}

/// The example of an event type: the first of `examples` in its newest schema version.
fn example_of(schemas: Option<&Value>) -> Option<&Value> {
    let versions = schemas?.as_object()?;
    let newest = versions
        .iter()
        .max_by_key(|(version, _)| version.parse::<u64>().unwrap_or(0))?
        .1;
    newest.get("examples")?.as_array()?.first()
}

/// Send an event type's example message to this endpoint only. The example is the first entry
/// of `examples` in the event type's newest schema.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example", tag = "Endpoint",
    operation_id = "v1.endpoint.send-example",
    params(EndpointPath),
    request_body = EventExampleIn,
    responses((status = 200, body = MessageOut, description = "The example message, queued for this endpoint")))]
async fn send_example(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EventExampleIn>,
) -> ApiResult<axum::Json<MessageOut>> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "eventType"], &body.event_type, 256);
    v.finish()?;
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    if endpoint.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it to send an example".into(),
        ));
    }
    let event_type = state
        .store
        .get_event_type(&body.event_type)
        .await?
        .ok_or(ApiError::NotFound("event type not found"))?;
    let example = example_of(event_type.schemas.as_ref());
    let mut v = Violations::new();
    if example.is_none() {
        v.value(
            &["body", "eventType"],
            "this event type has no example: add `examples` to its schema",
        );
    }
    v.finish()?;
    let example = example.expect("checked above");
    let id = MessageId::generate();
    let created_at = id.timestamp().unwrap_or_else(herald_core::time::now);
    let message = Message {
        id,
        app_id: scoped.app.id.clone(),
        serial: state.store.next_serial(SerialKind::Message).await?,
        event_type: event_type.name,
        event_id: None,
        channels: None,
        payload: Some(example.to_string()),
        created_at,
        payload_expires_at: created_at + Duration::days(DEFAULT_RETENTION_DAYS),
        deliver_at: None,
        tags: None,
    };
    match state
        .store
        .create_message_for_endpoint(&message, &endpoint.id)
        .await
    {
        Ok(()) => {}
        // Deleted or disabled since it was loaded.
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("endpoint not found")),
        Err(e) => return Err(e.into()),
    }
    state.wakeup.endpoints(vec![endpoint.id]);
    Ok(axum::Json(MessageOut::new(message, true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_schema_gives_the_example() {
        let schemas = json!({
            "1": {"examples": [{"v": 1}]},
            "10": {"examples": [{"v": 10}, {"v": 11}]},
            "2": {"examples": [{"v": 2}]}
        });
        assert_eq!(example_of(Some(&schemas)), Some(&json!({"v": 10})));
        assert_eq!(example_of(Some(&json!({"1": {"type": "object"}}))), None);
        assert_eq!(example_of(None), None);
    }
}
