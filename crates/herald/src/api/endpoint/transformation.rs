//! An endpoint's transformation: JavaScript whose `handler(webhook)` may rewrite each delivery
//! (Svix's model; the sandbox is `herald_transform`). Saved code is compiled and run to its
//! `handler` first, under the same limits as a delivery, so code that cannot run is a 422 with
//! its line and column, never a failure found at the first delivery. `simulate` runs code over
//! a payload and answers with what would be sent, sending nothing.
//!
//! The variables are secrets (tokens of the APIs a handler's output goes to): sealed at rest
//! like the endpoint's headers, re-sealed by `rotate-key`, and shown only to full-access tokens.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_core::id::MessageId;
use herald_core::model::{Endpoint, Transformation};
use herald_core::secrets::{open_map, seal_map};
use herald_core::shape::{self, MessageFacts};
use herald_core::validate::{self, Violations};
use herald_store::StoredTransformation;
use herald_transform::{Failure, MAX_CODE_BYTES, Method, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::load;
use crate::api::AppState;
use crate::api::auth::ScopedApp;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{Json, Patch};
use crate::api::params::EndpointPath;
use crate::worker::shaping::check_outcome;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_transformation, patch_transformation))
        .routes(routes!(simulate_transformation))
}

/// Most variables a transformation may have, and their sizes.
const MAX_VARIABLES: usize = 50;
const MAX_VARIABLE_NAME: usize = 64;
const MAX_VARIABLE_VALUE: usize = 4096;

/// What a variable's value reads as for tokens without full access.
const MASK: &str = "****";

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTransformationOut {
    /// The code (`function handler(webhook) { … return webhook; }`); `null` when none is saved.
    pub code: Option<String>,
    /// Whether deliveries run it.
    pub enabled: bool,
    /// Values the code reads as `webhook.variables`. Only full-access tokens see the values;
    /// others see `****`.
    pub variables: BTreeMap<String, String>,
    /// When it last changed; `null` when it never did.
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointTransformationPatch {
    /// New code (at most 64 KiB); `null` removes it (and turns the transformation off).
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub code: Patch<String>,
    /// Run it for deliveries (needs code).
    pub enabled: Option<bool>,
    /// Replaces every variable (string values; at most 50, names up to 64 characters, values
    /// up to 4096 bytes); `null` removes them all.
    #[serde(default)]
    #[schema(value_type = Option<Object>, nullable)]
    pub variables: Patch<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointTransformationSimulateIn {
    /// The code to run (not necessarily the saved code).
    pub code: String,
    /// The event type the message would have.
    #[schema(example = "user.signup", max_length = 256)]
    pub event_type: String,
    /// The message payload.
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTransformationSimulateOut {
    /// `POST` or `PUT`.
    pub method: String,
    /// Where the request would go.
    pub url: String,
    /// The body as it would be sent (and signed), after encoding.
    pub payload: String,
    /// Herald: the body's `Content-Type`.
    pub content_type: String,
    /// Herald: headers the handler added.
    pub headers: BTreeMap<String, String>,
    /// Herald: the handler canceled the delivery (nothing would be sent).
    pub cancel: bool,
}

/// Get the endpoint's transformation.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation", tag = "Endpoint",
    operation_id = "v1.endpoint.transformation-get",
    params(EndpointPath),
    responses((status = 200, body = EndpointTransformationOut)))]
async fn get_transformation(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointTransformationOut>> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let stored = stored(&state, &endpoint).await?;
    let mut variables = open_variables(&state, &endpoint, &stored)?;
    if !scoped.principal.has_full_access() {
        variables
            .values_mut()
            .for_each(|value| *value = MASK.to_owned());
    }
    let transformation = stored.transformation;
    Ok(axum::Json(EndpointTransformationOut {
        code: transformation
            .as_ref()
            .map(|t| t.code.clone())
            .filter(|code| !code.is_empty()),
        enabled: transformation.as_ref().is_some_and(|t| t.enabled),
        variables,
        updated_at: transformation.map(|t| t.updated_at),
    }))
}

/// Set the endpoint's transformation: its code, whether it runs, its variables. Fields left
/// out keep their values. Code is compiled and evaluated before it is saved: a syntax error,
/// a missing `handler` function, or top-level code that throws or passes the time or memory
/// limit is a 422 (with `ctx.line` and `ctx.column` where the engine gives them).
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation", tag = "Endpoint",
    operation_id = "v1.endpoint.transformation-partial-update",
    params(EndpointPath),
    request_body = EndpointTransformationPatch,
    responses((status = 204, description = "Saved")))]
async fn patch_transformation(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointTransformationPatch>,
) -> ApiResult<StatusCode> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    refuse_polling(&endpoint)?;
    let mut v = Violations::new();
    if let Some(variables) = body.variables.as_value() {
        check_variables(&mut v, variables);
    }
    if let Some(code) = body.code.as_value() {
        check_code(&state, &mut v, &["body", "code"], code).await;
    }
    v.finish()?;
    let stored = stored(&state, &endpoint).await?;
    let before = stored.transformation.clone();
    let code = body
        .code
        .apply(before.as_ref().map(|t| t.code.clone()))
        .unwrap_or_default();
    let enabled = match body.enabled {
        Some(enabled) => enabled,
        // Removing the code turns it off; new code alone does not turn it on.
        None => !code.is_empty() && before.as_ref().is_some_and(|t| t.enabled),
    };
    if enabled && code.is_empty() {
        return Err(ApiError::invalid(
            &["body", "enabled"],
            "a transformation without code cannot be enabled: send `code` too",
        ));
    }
    let variables = match body.variables {
        Patch::Absent => stored.variables,
        Patch::Null => None,
        Patch::Value(map) => seal_map(&state.keyring, &map),
    };
    state
        .store
        .set_transformation(
            &endpoint.id,
            &StoredTransformation {
                transformation: Some(Transformation {
                    code,
                    enabled,
                    updated_at: herald_core::time::now(),
                }),
                variables,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run code over a payload as a delivery to this endpoint would (its envelope, the saved
/// variables, its encoding) and answer with what would be sent, without sending it. A GraphQL
/// selection runs locally over the given payload. Code that fails, or output a delivery would
/// refuse (a URL the server does not deliver to, a reserved header), is a 422 naming why.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation/simulate", tag = "Endpoint",
    operation_id = "v1.endpoint.transformation-simulate",
    params(EndpointPath),
    request_body = EndpointTransformationSimulateIn,
    responses((status = 200, body = EndpointTransformationSimulateOut)))]
async fn simulate_transformation(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointTransformationSimulateIn>,
) -> ApiResult<axum::Json<EndpointTransformationSimulateOut>> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "eventType"], &body.event_type, 256);
    v.finish()?;
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    refuse_polling(&endpoint)?;
    let stored = stored(&state, &endpoint).await?;
    let variables = open_variables(&state, &endpoint, &stored)?;
    let options = &endpoint.options;
    let payload = body.payload.to_string();
    let msg_id = MessageId::generate();
    let msg = MessageFacts {
        id: msg_id.as_str(),
        serial: 0,
        event_type: &body.event_type,
        created_at: herald_core::time::now(),
        payload: &payload,
    };
    let selected = match options.selection_for(&body.event_type) {
        Some(selection) => Some(
            shape::select_locally(selection, &body.payload)
                .map_err(|e| ApiError::invalid(&["body", "payload"], e.to_string()))?,
        ),
        None => None,
    };
    let document = shape::document(options.effective_envelope(), &msg, selected.as_ref())
        .map_err(|e| ApiError::invalid(&["body", "payload"], e.to_string()))?;
    let webhook = Webhook {
        method: Method::Post,
        url: endpoint.url.clone(),
        event_type: body.event_type.clone(),
        payload: document,
        variables,
    };
    let loc = ["body", "code"];
    let outcome = state
        .sandbox
        .run(std::sync::Arc::from(body.code.as_str()), webhook)
        .await
        .map_err(|failure| failure_violation(&loc, &failure))?;
    if !outcome.cancel {
        let mut v = Violations::new();
        if let Err(e) = check_outcome(&outcome, &endpoint.url, state.require_https) {
            v.value(&loc, e);
        }
        crate::api::check_destination(&state, &mut v, &loc, &outcome.url);
        v.finish()?;
    }
    let shaped = shape::encode(options.encoding, &outcome.payload);
    Ok(axum::Json(EndpointTransformationSimulateOut {
        method: outcome.method.as_str().to_owned(),
        url: outcome.url,
        payload: String::from_utf8_lossy(&shaped.body).into_owned(),
        content_type: shaped.content_type.to_owned(),
        headers: outcome.headers,
        cancel: outcome.cancel,
    }))
}

/// Compiles and evaluates `code` in the sandbox; what keeps it from running is a violation.
pub(crate) async fn check_code(state: &AppState, v: &mut Violations, loc: &[&str], code: &str) {
    if code.len() > MAX_CODE_BYTES {
        v.value(loc, format!("at most {MAX_CODE_BYTES} bytes of code"));
        return;
    }
    if let Err(failure) = state.sandbox.check(code).await {
        let ApiError::Validation(items) = failure_violation(loc, &failure) else {
            return;
        };
        for item in items {
            match item.ctx {
                Some(ctx) => v.value_with(loc, item.msg, ctx),
                None => v.value(loc, item.msg),
            }
        }
    }
}

/// A sandbox failure as a 422 at `loc`, with the position in the code when known. The sandbox
/// being unavailable is the server's fault, not the code's.
fn failure_violation(loc: &[&str], failure: &Failure) -> ApiError {
    let position = match failure {
        Failure::Code(e) | Failure::Threw(e) => e.line.map(|line| (line, e.column)),
        _ => None,
    };
    if let Failure::Unavailable(why) = failure {
        return ApiError::Internal(why.clone());
    }
    let mut v = Violations::new();
    match position {
        Some((line, column)) => v.value_with(
            loc,
            failure.to_string(),
            json!({"line": line, "column": column}),
        ),
        None => v.value(loc, failure.to_string()),
    }
    v.into()
}

/// A transformation shapes HTTP deliveries; a polling endpoint's consumers read each message
/// as published.
fn refuse_polling(endpoint: &Endpoint) -> ApiResult<()> {
    if endpoint.options.kind == herald_core::model::EndpointKind::Polling {
        return Err(ApiError::invalid(
            &["body", "code"],
            "a polling endpoint gets no HTTP deliveries to transform: its consumers read each \
             message as published",
        ));
    }
    Ok(())
}

fn check_variables(v: &mut Violations, variables: &BTreeMap<String, String>) {
    if variables.len() > MAX_VARIABLES {
        v.value(
            &["body", "variables"],
            format!("at most {MAX_VARIABLES} variables"),
        );
    }
    for (name, value) in variables {
        let loc = ["body", "variables", name.as_str()];
        let valid_name = !name.is_empty()
            && name.len() <= MAX_VARIABLE_NAME
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            v.value(
                &loc,
                format!("a variable's name is 1 to {MAX_VARIABLE_NAME} letters, digits or `_`"),
            );
        }
        if value.len() > MAX_VARIABLE_VALUE {
            v.value(
                &loc,
                format!("a variable's value is at most {MAX_VARIABLE_VALUE} bytes"),
            );
        }
    }
}

async fn stored(state: &AppState, endpoint: &Endpoint) -> ApiResult<StoredTransformation> {
    state
        .store
        .get_transformation(&endpoint.id)
        .await
        .map_err(|e| match e {
            herald_store::StoreError::NotFound => ApiError::NotFound("endpoint not found"),
            other => other.into(),
        })
}

fn open_variables(
    state: &AppState,
    endpoint: &Endpoint,
    stored: &StoredTransformation,
) -> ApiResult<BTreeMap<String, String>> {
    open_map(&state.keyring, stored.variables.as_deref()).map_err(|e| {
        ApiError::Internal(format!(
            "cannot open the transformation variables of {}: {e}",
            endpoint.id
        ))
    })
}
