//! Applications: one per customer of the producing platform. Every other per-customer resource
//! (endpoints, messages) lives under one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_core::id::AppId;
use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use herald_core::model::{Application, Metadata, SealedGraphqlApi};
use herald_core::secrets::GraphqlApi;
use herald_core::validate::{self, Violations};
use herald_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::{Admin, PathInScope, Principal, ScopedApp};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Patch, Query, query_bool};
use super::pagination::{ListResponse, OrderedPageQuery};
use super::params::AppPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app, update_app, patch_app, delete_app))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationIn {
    #[schema(example = "My first application", min_length = 1)]
    pub name: String,
    /// Optional unique identifier for the application.
    #[schema(
        example = "unique-app-identifier",
        max_length = 256,
        pattern = r"^[a-zA-Z0-9\-_.]+$"
    )]
    pub uid: Option<String>,
    /// Maximum messages per second to send to this application's endpoints.
    #[serde(alias = "rateLimit")]
    #[schema(minimum = 1)]
    pub throttle_rate: Option<u16>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Herald (admin only): the GraphQL API that runs endpoints' GraphQL selections at delivery
    /// time. Omitted on a PUT, the current setting stays; PATCH with `null` removes it.
    pub graphql_api: Option<GraphqlApiIn>,
    /// Herald: Kobiton's numeric organisation id, sent as `orgId` in device status events (0
    /// to 2^53 - 1). Omitted on a PUT, the current value stays; PATCH with `null` removes it.
    #[schema(minimum = 0, maximum = 9007199254740991_i64)]
    pub org_id: Option<i64>,
}

/// Herald: an application's GraphQL API. No `Debug`: header values are credentials.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphqlApiIn {
    #[schema(example = "https://api.example.com/graphql")]
    pub url: String,
    /// Headers sent with each query (e.g. `Authorization`); stored encrypted, never shown.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for GraphqlApiIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphqlApiIn({}, headers redacted)", self.url)
    }
}

/// Herald: an application's GraphQL API as shown: the URL and the names of its headers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlApiOut {
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    #[schema(example = "app_0Kx7cVlFQHZ6jyEhyGgyqr")]
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub throttle_rate: Option<u16>,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Herald: the GraphQL API for remote selections, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graphql_api: Option<GraphqlApiOut>,
    /// Herald: Kobiton's numeric organisation id, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationPatch {
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub uid: Patch<String>,
    #[serde(default, alias = "rateLimit")]
    #[schema(value_type = Option<u16>)]
    pub throttle_rate: Patch<u16>,
    pub metadata: Option<Metadata>,
    /// Herald (admin only): replaces the GraphQL API; `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<GraphqlApiIn>)]
    pub graphql_api: Patch<GraphqlApiIn>,
    /// Herald: Kobiton's numeric organisation id; `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub org_id: Patch<i64>,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        Self {
            id: a.id.into_string(),
            uid: a.uid,
            name: a.name,
            throttle_rate: a.rate_limit,
            metadata: a.metadata,
            created_at: a.created_at,
            updated_at: a.updated_at,
            graphql_api: a.graphql_api.map(|g| GraphqlApiOut { url: g.url }),
            org_id: a.org_id,
        }
    }
}

/// Checks and seals a GraphQL API setting. Only an unscoped admin may set one: Herald calls
/// this URL with these credentials on the application's behalf.
fn seal_graphql_api(
    state: &AppState,
    principal: &Principal,
    api: &GraphqlApiIn,
) -> ApiResult<SealedGraphqlApi> {
    principal.require_admin()?;
    let mut v = Violations::new();
    validate::endpoint_url(
        &mut v,
        &["body", "graphqlApi", "url"],
        &api.url,
        &state.limits,
    );
    super::check_destination(state, &mut v, &["body", "graphqlApi", "url"], &api.url);
    for (name, value) in &api.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err()
            || HeaderValue::from_str(value).is_err()
            || value.len() > 4096
        {
            v.value(
                &["body", "graphqlApi", "headers", name.as_str()],
                "not a valid HTTP header (name, and visible ASCII value of at most 4096 bytes)",
            );
        }
    }
    if api.headers.len() > 20 {
        v.value(&["body", "graphqlApi", "headers"], "at most 20 headers");
    }
    v.finish()?;
    Ok(GraphqlApi {
        url: api.url.clone(),
        headers: api.headers.clone(),
    }
    .seal(&state.keyring))
}

fn check(
    v: &mut Violations,
    name: &str,
    uid: Option<&str>,
    rate: Option<u16>,
    metadata: Option<&Metadata>,
) {
    validate::non_empty(v, &["body", "name"], name);
    if let Some(uid) = uid {
        validate::uid(v, &["body", "uid"], uid);
    }
    validate::rate(v, &["body", "throttleRate"], rate);
    if let Some(metadata) = metadata {
        validate::metadata(v, &["body", "metadata"], metadata);
    }
}

/// Kobiton's `orgId` is a JSON number its receivers read as an integer: kept within what
/// every JSON reader holds exactly.
fn check_org_id(v: &mut Violations, org_id: Option<i64>) {
    const MAX_SAFE: i64 = (1 << 53) - 1;
    if org_id.is_some_and(|id| !(0..=MAX_SAFE).contains(&id)) {
        v.value(
            &["body", "orgId"],
            format!("must be between 0 and {MAX_SAFE}"),
        );
    }
}

impl ApplicationIn {
    pub fn validate(&self) -> ApiResult<()> {
        let mut v = Violations::new();
        check(
            &mut v,
            &self.name,
            self.uid.as_deref(),
            self.throttle_rate,
            self.metadata.as_ref(),
        );
        check_org_id(&mut v, self.org_id);
        Ok(v.finish()?)
    }

    /// A new application record (validate first).
    pub fn into_new(self, uid_fallback: Option<String>) -> Application {
        let now = herald_core::time::now();
        Application {
            id: AppId::generate(),
            uid: self.uid.or(uid_fallback),
            name: self.name,
            rate_limit: self.throttle_rate,
            metadata: self.metadata.unwrap_or_default(),
            graphql_api: None,
            org_id: self.org_id,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateAppQuery {
    /// Return the existing application when one with this `uid` exists, instead of 409.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub get_if_exists: Option<bool>,
    /// Alias of `get_if_exists`.
    #[serde(default, deserialize_with = "query_bool")]
    #[param(value_type = Option<bool>)]
    pub get_or_create: Option<bool>,
}

/// List applications.
#[utoipa::path(get, path = "/api/v1/app", tag = "Application", operation_id = "v1.application.list",
    params(OrderedPageQuery),
    responses((status = 200, body = ListResponse<ApplicationOut>)))]
async fn list_apps(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<OrderedPageQuery>,
) -> ApiResult<axum::Json<ListResponse<ApplicationOut>>> {
    let params = query.params()?;
    let page = state
        .store
        .list_apps(&params, principal.app_id.as_ref())
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |a| a.id.as_str().to_owned(),
        ApplicationOut::from,
    )))
}

/// Create an application.
#[utoipa::path(post, path = "/api/v1/app", tag = "Application", operation_id = "v1.application.create",
    params(CreateAppQuery),
    request_body = ApplicationIn,
    responses(
        (status = 201, body = ApplicationOut, description = "Created"),
        (status = 200, body = ApplicationOut, description = "Already existed (`get_if_exists=true`)"),
    ))]
async fn create_app(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Query(query): Query<CreateAppQuery>,
    Json(body): Json<ApplicationIn>,
) -> ApiResult<Response> {
    body.validate()?;
    let get_if_exists = query.get_if_exists.or(query.get_or_create).unwrap_or(false);
    if get_if_exists
        && let Some(uid) = &body.uid
        && let Some(existing) = state.store.get_app(uid).await?
        && existing.uid.as_deref() == Some(uid)
    {
        return Ok((StatusCode::OK, axum::Json(ApplicationOut::from(existing))).into_response());
    }
    let graphql_api = body
        .graphql_api
        .as_ref()
        .map(|api| seal_graphql_api(&state, &principal, api))
        .transpose()?;
    let mut app = body.into_new(None);
    app.graphql_api = graphql_api;
    match state.store.create_app(&app).await {
        Ok(()) => Ok((StatusCode::CREATED, axum::Json(ApplicationOut::from(app))).into_response()),
        // Lost a race with another get-or-create of the same uid: answer with the winner.
        Err(StoreError::Conflict(_)) if get_if_exists => {
            let uid = app.uid.unwrap_or_default();
            let existing = state
                .store
                .get_app(&uid)
                .await?
                .ok_or(ApiError::NotFound("application not found"))?;
            Ok((StatusCode::OK, axum::Json(ApplicationOut::from(existing))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Get an application by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}", tag = "Application", operation_id = "v1.application.get",
    params(AppPath),
    responses((status = 200, body = ApplicationOut)))]
async fn get_app(scoped: ScopedApp) -> axum::Json<ApplicationOut> {
    axum::Json(scoped.app.into())
}

/// Update an application, or create it with this uid when it does not exist.
#[utoipa::path(put, path = "/api/v1/app/{app_id}", tag = "Application", operation_id = "v1.application.update",
    params(AppPath),
    request_body = ApplicationIn,
    responses(
        (status = 200, body = ApplicationOut, description = "Updated"),
        (status = 201, body = ApplicationOut, description = "Created"),
    ))]
async fn update_app(
    State(state): State<AppState>,
    principal: Principal,
    _: PathInScope,
    axum::extract::Path(app_id): axum::extract::Path<String>,
    Json(body): Json<ApplicationIn>,
) -> ApiResult<Response> {
    body.validate()?;
    let graphql_api = body
        .graphql_api
        .as_ref()
        .map(|api| seal_graphql_api(&state, &principal, api))
        .transpose()?;
    let existing = state
        .store
        .get_app(&app_id)
        .await?
        .filter(|a| principal.may_see_app(&a.id));
    match existing {
        Some(mut app) => {
            app.name = body.name;
            // A PUT without a uid keeps the one the application has: the path may well have
            // named it by that uid, and dropping it would make the next PUT create a twin.
            if body.uid.is_some() {
                app.uid = body.uid;
            }
            app.rate_limit = body.throttle_rate;
            app.metadata = body.metadata.unwrap_or_default();
            if graphql_api.is_some() {
                app.graphql_api = graphql_api;
            }
            if body.org_id.is_some() {
                app.org_id = body.org_id;
            }
            app.updated_at = herald_core::time::now();
            state.store.update_app(&app).await?;
            Ok((StatusCode::OK, axum::Json(ApplicationOut::from(app))).into_response())
        }
        None => {
            // Creating needs the right to create applications; a scoped token sees 404 as for
            // any application outside its scope.
            if principal.app_id.is_some() {
                return Err(ApiError::NotFound("application not found"));
            }
            principal.require_admin()?;
            if AppId::parse(&app_id).is_some() {
                return Err(ApiError::NotFound("application not found"));
            }
            let mut v = Violations::new();
            validate::uid(&mut v, &["path", "app_id"], &app_id);
            if body.uid.as_deref().is_some_and(|uid| uid != app_id) {
                v.value(
                    &["body", "uid"],
                    "must match the uid in the path when creating",
                );
            }
            v.finish()?;
            let mut app = body.into_new(Some(app_id));
            app.graphql_api = graphql_api;
            state.store.create_app(&app).await?;
            Ok((StatusCode::CREATED, axum::Json(ApplicationOut::from(app))).into_response())
        }
    }
}

/// Partially update an application.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}", tag = "Application", operation_id = "v1.application.patch",
    params(AppPath),
    request_body = ApplicationPatch,
    responses((status = 200, body = ApplicationOut)))]
async fn patch_app(
    State(state): State<AppState>,
    ScopedApp { mut app, principal }: ScopedApp,
    Json(patch): Json<ApplicationPatch>,
) -> ApiResult<axum::Json<ApplicationOut>> {
    match &patch.graphql_api {
        Patch::Absent => {}
        Patch::Null => {
            principal.require_admin()?;
            app.graphql_api = None;
        }
        Patch::Value(api) => app.graphql_api = Some(seal_graphql_api(&state, &principal, api)?),
    }
    if let Some(name) = patch.name {
        app.name = name;
    }
    app.uid = patch.uid.apply(app.uid);
    app.rate_limit = patch.throttle_rate.apply(app.rate_limit);
    app.org_id = patch.org_id.apply(app.org_id);
    if let Some(metadata) = patch.metadata {
        app.metadata = metadata;
    }
    let mut v = Violations::new();
    check(
        &mut v,
        &app.name,
        app.uid.as_deref(),
        app.rate_limit,
        Some(&app.metadata),
    );
    check_org_id(&mut v, app.org_id);
    v.finish()?;
    app.updated_at = herald_core::time::now();
    state.store.update_app(&app).await?;
    Ok(axum::Json(app.into()))
}

/// Delete an application with its endpoints and messages.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}", tag = "Application", operation_id = "v1.application.delete",
    params(AppPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_app(State(state): State<AppState>, scoped: ScopedApp) -> ApiResult<StatusCode> {
    scoped.principal.require_admin()?;
    state.store.delete_app(&scoped.app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The application named by a path segment (id or uid); when there is none and the request
/// carries an inline `application` (message create, portal access), it is created with the path
/// segment as its uid. Only an unscoped admin may create.
pub async fn find_or_create(
    state: &AppState,
    principal: &Principal,
    app_id: &str,
    inline: Option<ApplicationIn>,
) -> ApiResult<Application> {
    if let Some(app) = state.store.get_app(app_id).await? {
        if principal.may_see_app(&app.id) {
            return Ok(app);
        }
        return Err(ApiError::NotFound("application not found"));
    }
    let (Some(inline), Ok(())) = (inline, principal.require_admin()) else {
        return Err(ApiError::NotFound("application not found"));
    };
    inline.validate()?;
    let mut v = Violations::new();
    if AppId::parse(app_id).is_some() {
        v.value(
            &["path", "app_id"],
            "an application id that does not exist cannot be created; use a uid",
        );
    }
    validate::uid(&mut v, &["path", "app_id"], app_id);
    if inline.uid.as_deref().is_some_and(|uid| uid != app_id) {
        v.value(
            &["body", "application", "uid"],
            "must match the uid in the path",
        );
    }
    v.finish()?;
    let graphql_api = inline
        .graphql_api
        .as_ref()
        .map(|api| seal_graphql_api(state, principal, api))
        .transpose()?;
    let mut app = inline.into_new(Some(app_id.to_owned()));
    app.graphql_api = graphql_api;
    match state.store.create_app(&app).await {
        Ok(()) => Ok(app),
        // Another request created it first.
        Err(StoreError::Conflict(_)) => state
            .store
            .get_app(app_id)
            .await?
            .ok_or(ApiError::NotFound("application not found")),
        Err(e) => Err(e.into()),
    }
}
