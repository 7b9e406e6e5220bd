//! The event type catalogue: the kinds of messages producers publish, with descriptions and
//! JSON schemas, shared by all applications.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_core::model::{EventType, KeyKind};
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::{Admin, Principal};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Patch, Query, query_bool};
use super::pagination::{ListResponse, OrderedPageQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_event_types, create_event_type))
        .routes(routes!(import_catalog))
        .routes(routes!(
            get_event_type,
            update_event_type,
            patch_event_type,
            delete_event_type
        ))
}

type Schemas = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeIn {
    #[schema(
        example = "user.signup",
        max_length = 256,
        pattern = r"^[a-zA-Z0-9\-_.]+$"
    )]
    pub name: String,
    #[schema(example = "A user has signed up")]
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    /// JSON schemas of the payload by version, e.g. `{"1": {"type": "object", …}}`.
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Schemas>,
    /// Deprecated in Svix for `featureFlags`: one flag (the same as `featureFlags: [flag]`).
    pub feature_flag: Option<String>,
    /// The event type is visible to a portal token only when the token carries one of these
    /// flags (at most 5); admin and API keys see every event type.
    pub feature_flags: Option<Vec<String>>,
    /// A label to group event types by in a catalogue; stored and returned as given.
    pub group_name: Option<String>,
}

/// The body of `PUT`: like `EventTypeIn` without the name, which is in the path.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeUpdate {
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Schemas>,
    /// Deprecated in Svix for `featureFlags`: one flag (the same as `featureFlags: [flag]`).
    pub feature_flag: Option<String>,
    /// The event type is visible to a portal token only when the token carries one of these
    /// flags (at most 5); admin and API keys see every event type.
    pub feature_flags: Option<Vec<String>>,
    /// A label to group event types by in a catalogue; stored and returned as given.
    pub group_name: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypePatch {
    pub description: Option<String>,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schemas: Patch<Schemas>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub feature_flag: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub feature_flags: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub group_name: Patch<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    /// The first of `featureFlags` (Svix's older, single flag).
    pub feature_flag: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EventTypeOut {
    pub(super) fn new(et: EventType, with_schemas: bool) -> Self {
        Self {
            name: et.name,
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            schemas: if with_schemas { et.schemas } else { None },
            feature_flag: et.feature_flags.as_ref().and_then(|f| f.first().cloned()),
            feature_flags: et.feature_flags,
            group_name: et.group_name,
            created_at: et.created_at,
            updated_at: et.updated_at,
        }
    }
}

/// The flags of a body that may give Svix's older single `featureFlag` or the list.
pub(super) fn flags(
    v: &mut Violations,
    one: Option<String>,
    list: Option<Vec<String>>,
) -> Option<Vec<String>> {
    match (one, list) {
        (Some(_), Some(_)) => {
            v.value(&["body", "featureFlag"], "give `featureFlags` alone");
            None
        }
        (Some(flag), None) => Some(vec![flag]),
        (None, list) => list,
    }
}

/// Whether `principal` may see `et`: a customer's portal token (limited to an application) or an
/// integration's key sees an event type with feature flags only when it carries one of them. An operator's console
/// session is a portal key too, but with no application: it sees everything.
pub fn visible_to(principal: &Principal, et: &EventType) -> bool {
    match &et.feature_flags {
        Some(flags)
            if matches!(principal.kind, Some(KeyKind::Portal | KeyKind::Integration))
                && principal.app_id.is_some() =>
        {
            flags.iter().any(|f| principal.feature_flags.contains(f))
        }
        _ => true,
    }
}

pub(super) fn check(v: &mut Violations, et: &EventType) {
    if let Some(flags) = &et.feature_flags {
        validate::identifier_list(v, &["body", "featureFlags"], flags, 256, Some(5));
    }
    if let Some(group) = &et.group_name {
        validate::identifier(v, &["body", "groupName"], group, 256);
    }
    if let Some(schemas) = et.schemas.as_ref().and_then(|s| s.as_object()) {
        for (version, schema) in schemas {
            if !schema.is_object() {
                v.value(
                    &["body", "schemas", version],
                    "each schema must be a JSON object",
                );
            }
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventTypeListQuery {
    /// Number of items per page (1 to 250, default 50).
    pub limit: Option<u64>,
    /// An `iterator` or `prevIterator` from an earlier answer.
    pub iterator: Option<String>,
    /// Sorting order (default ascending by name).
    pub order: Option<super::pagination::Ordering>,
    /// Include archived event types.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub include_archived: Option<bool>,
    /// Include the schemas.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub with_content: Option<bool>,
}

/// List event types.
#[utoipa::path(get, path = "/api/v1/event-type", tag = "Event Type", operation_id = "v1.event-type.list",
    params(EventTypeListQuery),
    responses((status = 200, body = ListResponse<EventTypeOut>)))]
async fn list_event_types(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<EventTypeListQuery>,
) -> ApiResult<axum::Json<ListResponse<EventTypeOut>>> {
    let params = OrderedPageQuery {
        limit: query.limit,
        iterator: query.iterator,
        order: query.order,
    }
    .params()?;
    let with_content = query.with_content.unwrap_or(false);
    let page = state
        .store
        .list_event_types(&params, query.include_archived.unwrap_or(false))
        .await?;
    // The iterators come from the whole page, so hiding items never ends the list early.
    let hidden: Vec<String> = page
        .items
        .iter()
        .filter(|et| !visible_to(&principal, et))
        .map(|et| et.name.clone())
        .collect();
    let mut answer = ListResponse::new(
        page,
        &params,
        |et| et.name.clone(),
        |et| EventTypeOut::new(et, with_content),
    );
    answer.data.retain(|et| !hidden.contains(&et.name));
    Ok(axum::Json(answer))
}

/// Create an event type.
#[utoipa::path(post, path = "/api/v1/event-type", tag = "Event Type", operation_id = "v1.event-type.create",
    request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut)))]
async fn create_event_type(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<EventTypeIn>,
) -> ApiResult<(StatusCode, axum::Json<EventTypeOut>)> {
    let mut v = Violations::new();
    validate::identifier(&mut v, &["body", "name"], &body.name, 256);
    let now = herald_core::time::now();
    let et = EventType {
        name: body.name,
        description: body.description,
        archived: body.archived,
        deprecated: body.deprecated,
        feature_flags: flags(&mut v, body.feature_flag, body.feature_flags),
        group_name: body.group_name,
        schemas: body.schemas.map(serde_json::Value::Object),
        created_at: now,
        updated_at: now,
    };
    check(&mut v, &et);
    v.finish()?;
    match state.store.create_event_type(&et).await {
        Ok(()) => state.event_type_labels.insert(&et.name),
        // Creating an archived event type again brings it back (Svix behaviour).
        Err(herald_store::StoreError::Conflict(what)) => {
            let existing = load(&state, &et.name).await?;
            if !existing.archived {
                return Err(ApiError::Conflict(what.to_owned()));
            }
            let revived = EventType {
                created_at: existing.created_at,
                ..et
            };
            state.store.update_event_type(&revived).await?;
            return Ok((
                StatusCode::CREATED,
                axum::Json(EventTypeOut::new(revived, true)),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok((StatusCode::CREATED, axum::Json(EventTypeOut::new(et, true))))
}

async fn load(state: &AppState, name: &str) -> ApiResult<EventType> {
    state
        .store
        .get_event_type(name)
        .await?
        .ok_or(ApiError::NotFound("event type not found"))
}

/// Get an event type.
#[utoipa::path(get, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    operation_id = "v1.event-type.get",
    params(("event_type_name" = String, Path, description = "The event type's name")),
    responses((status = 200, body = EventTypeOut)))]
async fn get_event_type(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<EventTypeOut>> {
    let et = load(&state, &name).await?;
    if !visible_to(&principal, &et) {
        return Err(ApiError::NotFound("event type not found"));
    }
    Ok(axum::Json(EventTypeOut::new(et, true)))
}

/// Update an event type, or create it when it does not exist.
#[utoipa::path(put, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    operation_id = "v1.event-type.update",
    params(("event_type_name" = String, Path, description = "The event type's name")),
    request_body = EventTypeUpdate,
    responses(
        (status = 200, body = EventTypeOut, description = "Updated"),
        (status = 201, body = EventTypeOut, description = "Created"),
    ))]
async fn update_event_type(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    Json(body): Json<EventTypeUpdate>,
) -> ApiResult<Response> {
    let now = herald_core::time::now();
    let existing = state.store.get_event_type(&name).await?;
    let created = existing.is_none();
    let mut et = existing.unwrap_or_else(|| EventType {
        name: name.clone(),
        description: String::new(),
        archived: false,
        deprecated: false,
        feature_flags: None,
        group_name: None,
        schemas: None,
        created_at: now,
        updated_at: now,
    });
    let mut v = Violations::new();
    et.description = body.description;
    et.archived = body.archived;
    et.deprecated = body.deprecated;
    et.feature_flags = flags(&mut v, body.feature_flag, body.feature_flags);
    et.group_name = body.group_name;
    et.schemas = body.schemas.map(serde_json::Value::Object);
    et.updated_at = now;
    validate::identifier(&mut v, &["path", "event_type_name"], &name, 256);
    check(&mut v, &et);
    v.finish()?;
    if created {
        state.store.create_event_type(&et).await?;
        state.event_type_labels.insert(&et.name);
        Ok((StatusCode::CREATED, axum::Json(EventTypeOut::new(et, true))).into_response())
    } else {
        state.store.update_event_type(&et).await?;
        Ok(axum::Json(EventTypeOut::new(et, true)).into_response())
    }
}

/// Partially update an event type.
#[utoipa::path(patch, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    operation_id = "v1.event-type.patch",
    params(("event_type_name" = String, Path, description = "The event type's name")),
    request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut)))]
async fn patch_event_type(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    Json(patch): Json<EventTypePatch>,
) -> ApiResult<axum::Json<EventTypeOut>> {
    let mut et = load(&state, &name).await?;
    if let Some(description) = patch.description {
        et.description = description;
    }
    if let Some(archived) = patch.archived {
        et.archived = archived;
    }
    if let Some(deprecated) = patch.deprecated {
        et.deprecated = deprecated;
    }
    et.schemas = patch
        .schemas
        .apply(et.schemas.and_then(|s| s.as_object().cloned()))
        .map(serde_json::Value::Object);
    let mut v = Violations::new();
    et.feature_flags = match (patch.feature_flag, patch.feature_flags) {
        (Patch::Absent, flags) => flags.apply(et.feature_flags),
        (flag, Patch::Absent) => flag
            .apply(et.feature_flags.and_then(|f| f.into_iter().next()))
            .map(|f| vec![f]),
        _ => {
            v.value(&["body", "featureFlag"], "give `featureFlags` alone");
            None
        }
    };
    et.group_name = patch.group_name.apply(et.group_name);
    check(&mut v, &et);
    v.finish()?;
    et.updated_at = herald_core::time::now();
    state.store.update_event_type(&et).await?;
    Ok(axum::Json(EventTypeOut::new(et, true)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteEventTypeQuery {
    /// Delete for good instead of archiving.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub expunge: Option<bool>,
}

/// Archive an event type (or delete it for good with `expunge=true`).
#[utoipa::path(delete, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    operation_id = "v1.event-type.delete",
    params(("event_type_name" = String, Path, description = "The event type's name"), DeleteEventTypeQuery),
    responses((status = 204, description = "Archived or deleted")))]
async fn delete_event_type(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    Query(query): Query<DeleteEventTypeQuery>,
) -> ApiResult<StatusCode> {
    let mut et = load(&state, &name).await?;
    if query.expunge.unwrap_or(false) {
        state.store.delete_event_type(&name).await?;
        state.event_type_labels.remove(&name);
    } else if !et.archived {
        et.archived = true;
        et.updated_at = herald_core::time::now();
        state.store.update_event_type(&et).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A built-in catalogue to import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogImportIn {
    /// `kobiton`, `electric-imp`, `impilo` or `ideavate`.
    #[schema(example = "kobiton")]
    pub catalog: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogImportOut {
    pub catalog: String,
    /// Event types created by this import.
    pub created: Vec<String>,
    /// Event types that already existed and were left as they are.
    pub unchanged: Vec<String>,
}

/// Herald: create the event types of a seed system's catalogue (Kobiton, Electric Imp,
/// Impilo, Ideavate), with JSON schemas and examples. Event types that exist already are left
/// alone, so importing twice changes nothing.
#[utoipa::path(post, path = "/api/v1/event-type/import", tag = "Event Type", operation_id = "v1.event-type.import-catalog",
    request_body = CatalogImportIn,
    responses((status = 200, body = CatalogImportOut)))]
async fn import_catalog(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<CatalogImportIn>,
) -> ApiResult<axum::Json<CatalogImportOut>> {
    let Some(catalog) = herald_core::catalog::find(&body.catalog) else {
        let mut v = Violations::new();
        v.value(
            &["body", "catalog"],
            format!(
                "unknown catalogue (known: {})",
                herald_core::catalog::NAMES.join(", ")
            ),
        );
        return Err(v.into());
    };
    let mut out = CatalogImportOut {
        catalog: catalog.catalog,
        created: Vec::new(),
        unchanged: Vec::new(),
    };
    for entry in catalog.event_types {
        let now = herald_core::time::now();
        let et = EventType {
            name: entry.name.clone(),
            description: entry.description,
            archived: false,
            deprecated: false,
            feature_flags: None,
            group_name: None,
            schemas: Some(serde_json::json!({ "1": entry.schema })),
            created_at: now,
            updated_at: now,
        };
        match state.store.create_event_type(&et).await {
            Ok(()) => {
                state.event_type_labels.insert(&entry.name);
                out.created.push(entry.name);
            }
            Err(herald_store::StoreError::Conflict(_)) => out.unchanged.push(entry.name),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(axum::Json(out))
}
