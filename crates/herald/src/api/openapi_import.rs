//! `POST /api/v1/event-type/import/openapi`: event types from an OpenAPI document's webhooks
//! (see `herald_core::openapi_import` for what is read and how the walk is bounded). Admin
//! tokens only, as every change to the catalogue.

use axum::extract::State;
use herald_core::model::EventType;
use herald_core::openapi_import::{self, WebhookEventType};
use herald_core::page::{Cursor, ListParams, Order};
use herald_core::validate::{self, MAX_JSON_DEPTH, Violations, json_too_deep};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::Json;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_openapi))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeImportOpenApiIn {
    /// Answer what would change without changing anything.
    pub dry_run: Option<bool>,
    /// Archive every event type the document does not name.
    pub replace_all: Option<bool>,
    /// The document, as JSON.
    #[schema(value_type = Option<Object>)]
    pub spec: Option<serde_json::Value>,
    /// The document as text, JSON or YAML. Give `spec` or `specRaw`, not both.
    pub spec_raw: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeImportOpenApiOut {
    pub data: EventTypeImportOpenApiOutData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeImportOpenApiOutData {
    /// Event types created, changed, revived or (with `replaceAll`) archived; empty on a dry
    /// run.
    pub modified: Vec<String>,
    /// On a dry run, the event types the import would create or change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_modify: Option<Vec<EventTypeFromOpenApi>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeFromOpenApi {
    pub name: String,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    pub deprecated: bool,
    pub group_name: Option<String>,
    pub feature_flags: Option<Vec<String>>,
}

/// A YAML document, parsed within serde-saphyr's budget: the nesting JSON bodies may have, and
/// its default caps on nodes, anchors and alias replays (no alias bomb expands).
fn parse_yaml(text: &str) -> Result<serde_json::Value, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_JSON_DEPTH,
        },
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())
}

fn document(body: &EventTypeImportOpenApiIn) -> ApiResult<serde_json::Value> {
    match (&body.spec, &body.spec_raw) {
        (Some(spec), None) => Ok(spec.clone()),
        // Flow-style nesting (`[`, `{`) is counted before either parser runs.
        (None, Some(raw)) if json_too_deep(raw.as_bytes(), MAX_JSON_DEPTH) => {
            Err(ApiError::invalid(
                &["body", "specRaw"],
                format!("arrays and objects nest deeper than {MAX_JSON_DEPTH} levels"),
            ))
        }
        (None, Some(raw)) => match serde_json::from_str(raw) {
            Ok(spec) => Ok(spec),
            Err(_) => parse_yaml(raw).map_err(|e| {
                ApiError::invalid(&["body", "specRaw"], format!("neither JSON nor YAML: {e}"))
            }),
        },
        _ => Err(ApiError::BadRequest(
            "give the document as `spec` (JSON) or `specRaw` (text), one of them".into(),
        )),
    }
}

/// Given an OpenAPI document, create new or update existing event types from its webhooks
/// (`webhooks`, or `x-webhooks`). An archived event type that is updated is revived.
#[utoipa::path(post, path = "/api/v1/event-type/import/openapi", tag = "Event Type",
    operation_id = "v1.event-type.import-openapi",
    request_body = EventTypeImportOpenApiIn,
    responses((status = 200, body = EventTypeImportOpenApiOut)))]
async fn import_openapi(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<EventTypeImportOpenApiIn>,
) -> ApiResult<axum::Json<EventTypeImportOpenApiOut>> {
    let spec = document(&body)?;
    let found = openapi_import::webhooks(&spec).map_err(|e| {
        let origin = if body.spec.is_some() {
            "spec"
        } else {
            "specRaw"
        };
        let loc: Vec<&str> = ["body", origin]
            .into_iter()
            .chain(e.loc.iter().map(String::as_str))
            .collect();
        ApiError::invalid(&loc, e.message)
    })?;
    let now = herald_core::time::now();
    let mut v = Violations::new();
    let mut changes = Vec::new();
    for hook in &found {
        let existing = state.store.get_event_type(&hook.name).await?;
        let et = event_type(hook, existing.as_ref(), now);
        validate::identifier(
            &mut v,
            &["body", "spec", "webhooks", &hook.name],
            &hook.name,
            256,
        );
        super::event_type::check(&mut v, &et);
        let unchanged = existing.as_ref().is_some_and(|old| same(old, &et));
        if !unchanged {
            changes.push((et, existing.is_none()));
        }
    }
    v.finish()?;
    let dry_run = body.dry_run.unwrap_or(false);
    let archive = if body.replace_all.unwrap_or(false) {
        not_named(&state, &found).await?
    } else {
        Vec::new()
    };
    if dry_run {
        return Ok(axum::Json(EventTypeImportOpenApiOut {
            data: EventTypeImportOpenApiOutData {
                modified: Vec::new(),
                to_modify: Some(
                    changes
                        .into_iter()
                        .map(|(et, _)| EventTypeFromOpenApi {
                            name: et.name,
                            description: et.description,
                            schemas: et.schemas,
                            deprecated: et.deprecated,
                            group_name: et.group_name,
                            feature_flags: et.feature_flags,
                        })
                        .collect(),
                ),
            },
        }));
    }
    let mut modified = Vec::new();
    for (et, new) in changes {
        if new {
            state.store.create_event_type(&et).await?;
            state.event_type_labels.insert(&et.name);
        } else {
            state.store.update_event_type(&et).await?;
        }
        modified.push(et.name);
    }
    for mut et in archive {
        et.archived = true;
        et.updated_at = now;
        state.store.update_event_type(&et).await?;
        modified.push(et.name);
    }
    Ok(axum::Json(EventTypeImportOpenApiOut {
        data: EventTypeImportOpenApiOutData {
            modified,
            to_modify: None,
        },
    }))
}

/// The event type a webhook describes, keeping what the import does not set of an existing one.
fn event_type(
    hook: &WebhookEventType,
    existing: Option<&EventType>,
    now: chrono::DateTime<chrono::Utc>,
) -> EventType {
    EventType {
        name: hook.name.clone(),
        description: hook.description.clone(),
        archived: false,
        deprecated: hook.deprecated,
        feature_flags: hook.feature_flags.clone(),
        group_name: hook.group_name.clone(),
        schemas: hook
            .schema
            .as_ref()
            .map(|schema| serde_json::json!({ "1": schema })),
        created_at: existing.map_or(now, |old| old.created_at),
        updated_at: now,
    }
}

fn same(old: &EventType, new: &EventType) -> bool {
    old.description == new.description
        && old.archived == new.archived
        && old.deprecated == new.deprecated
        && old.feature_flags == new.feature_flags
        && old.group_name == new.group_name
        && old.schemas == new.schemas
}

/// The live event types the document does not name (`replaceAll` archives them).
async fn not_named(state: &AppState, found: &[WebhookEventType]) -> ApiResult<Vec<EventType>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = ListParams {
            limit: herald_core::page::MAX_LIMIT,
            cursor: cursor.as_deref().map(Cursor::after),
            order: Order::Ascending,
        };
        let page = state.store.list_event_types(&params, false).await?;
        let done = page.done();
        cursor = page.items.last().map(|et| et.name.clone());
        out.extend(
            page.items
                .into_iter()
                .filter(|et| !et.archived && !found.iter().any(|hook| hook.name == et.name)),
        );
        if done || cursor.is_none() {
            return Ok(out);
        }
    }
}
