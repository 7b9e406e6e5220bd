//! `/api/v1/environment/export` and `/import`: moving a catalogue (and, with an option, the
//! applications and their endpoints) from one Herald server to another. Admin tokens only.
//!
//! Nothing secret leaves: endpoints are exported without their signing secrets and custom
//! header values, applications without their GraphQL API (its headers are credentials); an
//! imported endpoint gets a new secret. An import adds and updates, it never deletes. Everything
//! in the file is checked before anything is written, against the database too (uids held by
//! other applications, the endpoint limit per application).

use axum::extract::State;
use chrono::{DateTime, Utc};
use herald_core::id::{AppId, EndpointId};
use herald_core::model::{Application, EventType, Metadata};
use herald_core::page::{Cursor, ListParams, MAX_LIMIT, Order};
use herald_core::secrets::EndpointSecrets;
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Admin;
use super::endpoint::{EndpointIn, EndpointOut};
use super::error::{ApiError, ApiResult};
use super::event_type::EventTypeOut;
use super::extract::{Json, Query, query_bool};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_environment))
        .routes(routes!(import_environment))
}

/// The format version this server writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Herald: also export the applications and their endpoints (without secrets).
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub include_applications: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentOut {
    pub version: u32,
    pub created_at: DateTime<Utc>,
    /// Every event type, archived ones included, with its schemas.
    pub event_types: Vec<EventTypeOut>,
    /// Herald has no environment settings (its settings are the server's options).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Herald has no connectors.
    #[schema(value_type = Vec<Object>)]
    pub connectors: Vec<serde_json::Value>,
    /// Herald, with `include_applications=true`: the applications and their endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applications: Option<Vec<EnvironmentApp>>,
}

/// An application as exported: what makes it, without its GraphQL API.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentApp {
    pub id: Option<String>,
    pub uid: Option<String>,
    pub name: String,
    pub throttle_rate: Option<u16>,
    pub metadata: Option<Metadata>,
    /// Kobiton's numeric organisation id, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<i64>,
    /// Endpoints as `GET …/endpoint` shows them without `createdAt`, `updatedAt` and `serial`
    /// (so, like `EndpointIn` with an `id`): no secrets, no header values. The importing
    /// server numbers the endpoints it creates.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub endpoints: Vec<serde_json::Value>,
}

/// An event type as exported (`EventTypeOut`) or as `EventTypeIn`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentEventType {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Map<String, serde_json::Value>>,
    pub feature_flag: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    /// Kept for an event type this import creates.
    pub created_at: Option<DateTime<Utc>>,
    /// Informational (the import stamps its own).
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentIn {
    /// A file's format version (1); absent means 1.
    pub version: Option<u32>,
    /// Informational: when the file was exported.
    pub created_at: Option<DateTime<Utc>>,
    pub event_types: Option<Vec<EnvironmentEventType>>,
    /// Only `null` or `{}`: Herald has no environment settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Only empty: Herald has no connectors.
    #[schema(value_type = Option<Vec<Object>>)]
    pub connectors: Option<Vec<serde_json::Value>>,
    /// Herald: applications and endpoints (see the export).
    pub applications: Option<Vec<EnvironmentApp>>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// What an import did (Herald; Svix answers without a body, and its SDKs read none).
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentImportOut {
    pub event_types: ImportCounts,
    pub applications: ImportCounts,
    /// Endpoints that exist already (same id or uid in the application) are left unchanged.
    pub endpoints: ImportCounts,
}

/// Download the event types (and, with `include_applications=true`, the applications and their
/// endpoints, without secrets) as one JSON document.
#[utoipa::path(post, path = "/api/v1/environment/export", tag = "Environment",
    operation_id = "v1.environment.export",
    params(ExportQuery),
    responses((status = 200, body = EnvironmentOut)))]
async fn export_environment(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<ExportQuery>,
) -> ApiResult<axum::Json<EnvironmentOut>> {
    let mut event_types = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .store
            .list_event_types(&page_after(cursor.as_deref()), true)
            .await?;
        let done = page.done();
        cursor = page.items.last().map(|et| et.name.clone());
        event_types.extend(page.items.into_iter().map(|et| EventTypeOut::new(et, true)));
        if done || cursor.is_none() {
            break;
        }
    }
    let applications = if query.include_applications.unwrap_or(false) {
        Some(export_applications(&state).await?)
    } else {
        None
    };
    Ok(axum::Json(EnvironmentOut {
        version: VERSION,
        created_at: herald_core::time::now(),
        event_types,
        settings: None,
        connectors: Vec::new(),
        applications,
    }))
}

fn page_after(cursor: Option<&str>) -> ListParams {
    ListParams {
        limit: MAX_LIMIT,
        cursor: cursor.map(Cursor::after),
        order: Order::Ascending,
    }
}

async fn export_applications(state: &AppState) -> ApiResult<Vec<EnvironmentApp>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .store
            .list_apps(&page_after(cursor.as_deref()), None)
            .await?;
        let done = page.done();
        cursor = page.items.last().map(|a| a.id.as_str().to_owned());
        for app in page.items {
            let mut endpoints = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let eps = state
                    .store
                    .list_endpoints(&app.id, &page_after(after.as_deref()))
                    .await?;
                let eps_done = eps.done();
                after = eps.items.last().map(|e| e.id.as_str().to_owned());
                for endpoint in eps.items {
                    let mut value = serde_json::to_value(EndpointOut::from(endpoint))
                        .map_err(|e| ApiError::Internal(format!("an endpoint: {e}")))?;
                    if let Some(map) = value.as_object_mut() {
                        map.remove("createdAt");
                        map.remove("updatedAt");
                        map.remove("serial");
                        map.retain(|_, v| !v.is_null());
                    }
                    endpoints.push(value);
                }
                if eps_done || after.is_none() {
                    break;
                }
            }
            out.push(EnvironmentApp {
                id: Some(app.id.into_string()),
                uid: app.uid,
                name: app.name,
                throttle_rate: app.rate_limit,
                metadata: Some(app.metadata),
                org_id: app.org_id,
                endpoints,
            });
        }
        if done || cursor.is_none() {
            return Ok(out);
        }
    }
}

/// An endpoint of the file, parsed and checked: the record (its application set when it is
/// stored) and its new secrets.
struct NewEndpoint {
    record: herald_core::model::Endpoint,
    secrets: EndpointSecrets,
}

/// Import a document like the export's: event types are created or updated; applications are
/// found by id, then uid, and updated, or created (keeping their id); endpoints not found in
/// their application (by id, then uid) are created with a new secret, the others left as they
/// are. Nothing is deleted.
#[utoipa::path(post, path = "/api/v1/environment/import", tag = "Environment",
    operation_id = "v1.environment.import",
    request_body = EnvironmentIn,
    responses((status = 200, body = EnvironmentImportOut)))]
async fn import_environment(
    State(state): State<AppState>,
    _admin: Admin,
    Json(body): Json<EnvironmentIn>,
) -> ApiResult<axum::Json<EnvironmentImportOut>> {
    let mut v = Violations::new();
    if body.version.is_some_and(|version| version != VERSION) {
        v.value(
            &["body", "version"],
            format!("this server reads version {VERSION}"),
        );
    }
    match &body.settings {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for key in map.keys() {
                v.value(
                    &["body", "settings", key],
                    "Herald has no environment settings; its settings are the server's options",
                );
            }
        }
        Some(_) => v.value(&["body", "settings"], "must be an object"),
    }
    if body.connectors.as_ref().is_some_and(|c| !c.is_empty()) {
        v.value(&["body", "connectors"], "Herald has no connectors");
    }
    let now = herald_core::time::now();
    let mut event_types = Vec::new();
    for (i, et) in body.event_types.unwrap_or_default().into_iter().enumerate() {
        let index = i.to_string();
        let loc = ["body", "eventTypes", index.as_str()];
        validate::identifier(&mut v, &[&loc[..], &["name"]].concat(), &et.name, 256);
        let flags = match (et.feature_flag, et.feature_flags) {
            // As exported: `featureFlag` repeats the first of `featureFlags`.
            (Some(one), Some(list)) if list.first() == Some(&one) => Some(list),
            (one, list) => super::event_type::flags(&mut v, one, list),
        };
        let record = EventType {
            name: et.name,
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            feature_flags: flags,
            group_name: et.group_name,
            schemas: et.schemas.map(serde_json::Value::Object),
            created_at: et.created_at.unwrap_or(now),
            updated_at: now,
        };
        super::event_type::check(&mut v, &record);
        event_types.push(record);
    }
    let mut applications = Vec::new();
    for (i, app) in body
        .applications
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let index = i.to_string();
        let loc = ["body", "applications", index.as_str()];
        validate::non_empty(&mut v, &[&loc[..], &["name"]].concat(), &app.name);
        if let Some(uid) = &app.uid {
            validate::uid(&mut v, &[&loc[..], &["uid"]].concat(), uid);
        }
        validate::rate(
            &mut v,
            &[&loc[..], &["throttleRate"]].concat(),
            app.throttle_rate,
        );
        if let Some(metadata) = &app.metadata {
            validate::metadata(&mut v, &[&loc[..], &["metadata"]].concat(), metadata);
        }
        let mut endpoints = Vec::new();
        for (j, value) in app.endpoints.iter().enumerate() {
            let index = j.to_string();
            let loc = [&loc[..], &["endpoints", index.as_str()]].concat();
            let (id, mut body) = match parse_endpoint(value) {
                Ok(parsed) => parsed,
                Err(message) => {
                    v.value(&loc, message);
                    continue;
                }
            };
            let delivery = body.delivery();
            // Checked as `POST …/endpoint` checks it; its application is set when stored.
            match super::endpoint::prepare(&state, &AppId::generate(), id, body, delivery, None) {
                Ok((record, secrets)) => endpoints.push(NewEndpoint { record, secrets }),
                Err(ApiError::Validation(found)) => {
                    for violation in found {
                        // `body.<field>` of the endpoint, at its place in this document.
                        let at: Vec<&str> = loc
                            .iter()
                            .copied()
                            .chain(violation.loc.iter().skip(1).map(String::as_str))
                            .collect();
                        v.value(&at, violation.msg);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        applications.push((app, endpoints));
    }
    check_against_the_store(&state, &applications, &mut v).await?;
    v.finish()?;

    let mut out = EnvironmentImportOut::default();
    for et in event_types {
        match state.store.get_event_type(&et.name).await? {
            Some(old) => {
                let same = old.description == et.description
                    && old.archived == et.archived
                    && old.deprecated == et.deprecated
                    && old.feature_flags == et.feature_flags
                    && old.group_name == et.group_name
                    && old.schemas == et.schemas;
                if same {
                    out.event_types.unchanged += 1;
                } else {
                    state
                        .store
                        .update_event_type(&EventType {
                            created_at: old.created_at,
                            ..et
                        })
                        .await?;
                    out.event_types.updated += 1;
                }
            }
            None => {
                state.store.create_event_type(&et).await?;
                state.event_type_labels.insert(&et.name);
                out.event_types.created += 1;
            }
        }
    }
    for (app, endpoints) in applications {
        let record = import_application(&state, app, now, &mut out.applications).await?;
        for endpoint in endpoints {
            import_endpoint(&state, &record.id, endpoint, &mut out.endpoints).await?;
        }
    }
    Ok(axum::Json(out))
}

/// What only the database can tell, checked before anything is written: a `uid` the file
/// gives twice or that another application holds, and endpoints beyond the server's limit per
/// application (`--max-endpoints-per-app`).
async fn check_against_the_store(
    state: &AppState,
    applications: &[(EnvironmentApp, Vec<NewEndpoint>)],
    v: &mut Violations,
) -> ApiResult<()> {
    let max = state.limits.max_endpoints_per_app as u64;
    for (i, (app, endpoints)) in applications.iter().enumerate() {
        let index = i.to_string();
        if let Some(uid) = &app.uid
            && applications[..i]
                .iter()
                .any(|(other, _)| other.uid.as_ref() == Some(uid))
        {
            v.value(
                &["body", "applications", &index, "uid"],
                "given twice in this file",
            );
        }
        let by_id = match app.id.as_deref().and_then(AppId::parse) {
            Some(id) => state.store.get_app(id.as_str()).await?,
            None => None,
        };
        let by_uid = match &app.uid {
            Some(uid) => state.store.get_app(uid).await?,
            None => None,
        };
        let existing = match (&by_id, &by_uid) {
            (Some(found), Some(holder)) if found.id != holder.id => {
                v.value(
                    &["body", "applications", &index, "uid"],
                    "another application of this server has this uid",
                );
                continue;
            }
            (Some(found), _) | (None, Some(found)) => Some(found),
            (None, None) => None,
        };
        let mut new = 0u64;
        for endpoint in endpoints {
            let exists = match existing {
                Some(found) => {
                    state
                        .store
                        .get_endpoint(&found.id, endpoint.record.id.as_str())
                        .await?
                        .is_some()
                        || match &endpoint.record.uid {
                            Some(uid) => state.store.get_endpoint(&found.id, uid).await?.is_some(),
                            None => false,
                        }
                }
                None => false,
            };
            new += u64::from(!exists);
        }
        let have = match existing {
            Some(found) => state.store.count_endpoints(&found.id).await?,
            None => 0,
        };
        if have + new > max {
            v.value(
                &["body", "applications", &index, "endpoints"],
                format!(
                    "would give the application {} endpoints; this server allows {max} \
                     (--max-endpoints-per-app)",
                    have + new
                ),
            );
        }
    }
    Ok(())
}

/// An exported endpoint: its `id` (kept when it is free) and the rest read as `EndpointIn`,
/// unknown fields refused.
fn parse_endpoint(value: &serde_json::Value) -> Result<(EndpointId, EndpointIn), String> {
    let mut map = value
        .as_object()
        .cloned()
        .ok_or_else(|| "must be an endpoint object".to_owned())?;
    let id = match map.remove("id") {
        None | Some(serde_json::Value::Null) => EndpointId::generate(),
        Some(serde_json::Value::String(id)) => {
            EndpointId::parse(&id).ok_or_else(|| format!("`id` is not an endpoint id: {id}"))?
        }
        Some(_) => return Err("`id` must be a string".into()),
    };
    let body: EndpointIn = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| format!("not an endpoint: {e}"))?;
    Ok((id, body))
}

async fn import_application(
    state: &AppState,
    app: EnvironmentApp,
    now: DateTime<Utc>,
    counts: &mut ImportCounts,
) -> ApiResult<Application> {
    let by_id = match app.id.as_deref().and_then(AppId::parse) {
        Some(id) => state.store.get_app(id.as_str()).await?,
        None => None,
    };
    let found = match (by_id, &app.uid) {
        (Some(found), _) => Some(found),
        (None, Some(uid)) => state.store.get_app(uid).await?,
        (None, None) => None,
    };
    match found {
        Some(mut existing) => {
            let metadata = app.metadata.unwrap_or_default();
            if existing.name == app.name
                && existing.uid == app.uid
                && existing.rate_limit == app.throttle_rate
                && existing.metadata == metadata
            {
                counts.unchanged += 1;
                return Ok(existing);
            }
            existing.name = app.name;
            existing.uid = app.uid;
            existing.rate_limit = app.throttle_rate;
            existing.metadata = metadata;
            existing.org_id = app.org_id;
            existing.updated_at = now;
            state.store.update_app(&existing).await?;
            counts.updated += 1;
            Ok(existing)
        }
        None => {
            let record = Application {
                id: app
                    .id
                    .as_deref()
                    .and_then(AppId::parse)
                    .unwrap_or_else(AppId::generate),
                uid: app.uid,
                name: app.name,
                rate_limit: app.throttle_rate,
                metadata: app.metadata.unwrap_or_default(),
                graphql_api: None,
                org_id: app.org_id,
                created_at: now,
                updated_at: now,
            };
            state.store.create_app(&record).await?;
            counts.created += 1;
            Ok(record)
        }
    }
}

async fn import_endpoint(
    state: &AppState,
    app: &AppId,
    endpoint: NewEndpoint,
    counts: &mut ImportCounts,
) -> ApiResult<()> {
    let NewEndpoint {
        mut record,
        secrets,
    } = endpoint;
    let exists = state
        .store
        .get_endpoint(app, record.id.as_str())
        .await?
        .is_some()
        || match &record.uid {
            Some(uid) => state.store.get_endpoint(app, uid).await?.is_some(),
            None => false,
        };
    if exists {
        counts.unchanged += 1;
        return Ok(());
    }
    // An id taken in another application (the file came from this server) gets a new one.
    if state.store.get_endpoint_by_id(&record.id).await?.is_some() {
        record.id = EndpointId::generate();
    }
    record.app_id = app.clone();
    super::endpoint::store_new(state, &mut record, secrets).await?;
    counts.created += 1;
    Ok(())
}
