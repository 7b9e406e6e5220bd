//! Inboxes (a Herald addition): Herald receiving webhooks and agent posts by path, Firebase
//! style, instead of sending them. This module manages inboxes under `/api/v1/inbox`;
//! [`ingest`] serves writes to `/in/{inbox}/{path…}` (authenticated by the inbox's token, not
//! by API tokens, or by nothing for a `publicWrite` inbox) and [`read`] its reads, with the
//! Firebase query parameters of [`firebase`]; [`entries`] lists and exports what was received.
//!
//! An inbox may belong to an application: that application's scoped tokens manage it (others
//! see 404, as for any resource outside their scope), and forwarded writes become its messages.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use herald_core::id::{AppId, InboxId};
use herald_core::inbox::{Forward, Inbox, SealedVerification, VerificationConfig};
use herald_core::signing::{self, SignatureConfig};
use herald_core::validate::{self, Violations};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use zeroize::Zeroizing;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Patch, Query};
use super::pagination::{ListResponse, OrderedPageQuery};

mod admission;
pub mod entries;
pub mod firebase;
pub mod ingest;
pub mod read;
mod schema;

pub use schema::{
    EventTypeFrom, ForwardSettings, InboxCreatedOut, InboxIn, InboxOut, InboxPatch, InboxTokenOut,
    VerificationIn, VerificationOut,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_inboxes, create_inbox))
        .routes(routes!(get_inbox, patch_inbox, delete_inbox))
        .routes(routes!(rotate_token))
        .merge(entries::router())
}

/// `/api/v1/inbox/{inbox_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InboxPath {
    /// The inbox's id or name.
    pub inbox_id: String,
}

/// A new ingest token and its hash.
fn issue_token() -> (Zeroizing<String>, Vec<u8>) {
    let token = Zeroizing::new(format!("hin_{}", herald_core::token::random_base62(40)));
    let hash = herald_core::token::sha256(token.as_bytes());
    (token, hash)
}

/// Checks a verification setting and seals its secret.
fn seal_verification(
    state: &AppState,
    v: &mut Violations,
    given: &VerificationIn,
) -> Option<SealedVerification> {
    let loc = |field: &'static str| ["body", "verification", field];
    let signature = SignatureConfig {
        scheme: given.scheme.into(),
        header: given.header.clone(),
        prefix: given.prefix.clone(),
    };
    let single = signature.scheme.default_header().is_some();
    let hex = matches!(
        signature.scheme,
        signing::Scheme::HmacSha1Hex | signing::Scheme::HmacSha256Hex
    );
    if let Some(header) = &given.header
        && (!single
            || axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
            || header.len() > 128)
    {
        v.value(
            &loc("header"),
            "a valid header name, for hmac-sha1-hex, hmac-sha256-hex and static-header only",
        );
    }
    if let Some(prefix) = &given.prefix
        && (!hex || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()))
    {
        v.value(
            &loc("prefix"),
            "at most 64 visible ASCII characters, for the hex schemes only",
        );
    }
    let secret = match (signature.scheme, given.secret.as_deref()) {
        (signing::Scheme::None, _) => String::new(),
        (_, None) => {
            v.value(&loc("secret"), "this scheme needs the sender's secret");
            return None;
        }
        (scheme, Some(secret)) => match signing::normalize_verification_secret(scheme, secret) {
            Ok(s) => s,
            Err(msg) => {
                v.value(&loc("secret"), msg);
                return None;
            }
        },
    };
    Some(SealedVerification {
        config: VerificationConfig {
            signature,
            tolerance_seconds: given
                .tolerance_seconds
                .unwrap_or(herald_core::inbox::DEFAULT_TOLERANCE_SECONDS),
        },
        secret: state.keyring.seal(secret.as_bytes()),
    })
}

fn check_forward(v: &mut Violations, given: &ForwardSettings) -> Option<Forward> {
    let loc = |field: &'static str| ["body", "forward", field];
    match given.event_type_from {
        EventTypeFrom::Path => Some(Forward::Path),
        EventTypeFrom::Header => match &given.header {
            Some(h) if axum::http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                Some(Forward::Header { header: h.clone() })
            }
            _ => {
                v.value(
                    &loc("header"),
                    "the header carrying the event type is needed",
                );
                None
            }
        },
        EventTypeFrom::Fixed => match &given.event_type {
            Some(et) => {
                validate::identifier(v, &loc("eventType"), et, 256);
                Some(Forward::Fixed {
                    event_type: et.clone(),
                })
            }
            None => {
                v.value(&loc("eventType"), "the event type is needed");
                None
            }
        },
    }
}

/// Checks the fields every inbox has, whatever changed them.
fn check_inbox(state: &AppState, v: &mut Violations, inbox: &Inbox) {
    validate::uid(v, &["body", "name"], &inbox.name);
    if inbox.drop_headers.len() > herald_core::inbox::MAX_DROP_HEADERS {
        v.value(
            &["body", "dropHeaders"],
            format!(
                "at most {} header names",
                herald_core::inbox::MAX_DROP_HEADERS
            ),
        );
    }
    for name in &inbox.drop_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.value(
                &["body", "dropHeaders"],
                format!("{name:?} is not a header name"),
            );
        }
    }
    if inbox.description.chars().count() > state.limits.max_description_length {
        v.value(
            &["body", "description"],
            format!(
                "must be at most {} characters",
                state.limits.max_description_length
            ),
        );
    }
    if let Some(max) = inbox.max_body_bytes
        && (max == 0 || max as usize > state.max_body_bytes)
    {
        v.value(
            &["body", "maxBodyBytes"],
            format!(
                "must be between 1 and the server's limit, {}",
                state.max_body_bytes
            ),
        );
    }
    if inbox.rate_limit == Some(0) {
        v.value(
            &["body", "rateLimit"],
            "must be at least 1 (leave it out for no limit)",
        );
    }
    if inbox.forward.is_some() && inbox.app_id.is_none() {
        v.value(
            &["body", "forward"],
            "forwarding needs the application (`appId`) the messages go to",
        );
    }
}

/// The application (id or uid) an inbox is attached to, within the caller's scope.
async fn resolve_app(state: &AppState, principal: &Principal, app: &str) -> ApiResult<AppId> {
    state
        .store
        .get_app(app)
        .await?
        .filter(|a| principal.may_see_app(&a.id))
        .map(|a| a.id)
        .ok_or_else(|| ApiError::invalid(&["body", "appId"], "no such application"))
}

/// Whether a caller may see an inbox: unscoped tokens see every inbox; app-scoped ones only
/// their application's.
fn may_see(principal: &Principal, inbox: &Inbox) -> bool {
    match (&principal.app_id, &inbox.app_id) {
        (None, _) => true,
        (Some(own), Some(app)) => own == app,
        (Some(_), None) => false,
    }
}

/// The inbox named by the `{inbox_id}` path segment (id or name), checked against the caller's
/// scope (404 outside it).
pub struct ScopedInbox {
    pub inbox: Inbox,
    pub principal: Principal,
}

impl FromRequestParts<AppState> for ScopedInbox {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Path(path) = Path::<InboxPath>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        // By id, or by name: an application's token finds its application's inbox of that
        // name; an unscoped token the one inbox of that name (names are unique per
        // application only, so it needs the id when several applications use the name).
        let key = path.inbox_id.as_str();
        let inbox = match &principal.app_id {
            Some(own) => match state
                .store
                .get_inbox(key)
                .await?
                .filter(|i| may_see(&principal, i))
            {
                Some(inbox) => Some(inbox),
                None => state.store.get_inbox_of(own, key).await?,
            },
            None => {
                let mut found = state.store.find_inboxes_named(key).await?;
                match found.iter().position(|i| i.id.as_str() == key) {
                    Some(exact) => Some(found.swap_remove(exact)),
                    None if found.len() > 1 => {
                        return Err(ApiError::Conflict(format!(
                            "{} inboxes are named {key:?} (in different applications): use the \
                             inbox's id",
                            found.len()
                        )));
                    }
                    None => found.pop(),
                }
            }
        };
        let inbox = inbox
            .filter(|i| may_see(&principal, i))
            .ok_or(ApiError::NotFound("inbox not found"))?;
        Ok(Self { inbox, principal })
    }
}

/// Create an inbox. The answer holds the ingest token; it is not shown again.
#[utoipa::path(post, path = "/api/v1/inbox", tag = "Inbox", operation_id = "herald.inbox.create",
    request_body = InboxIn,
    responses((status = 201, body = InboxCreatedOut)))]
async fn create_inbox(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<InboxIn>,
) -> ApiResult<(StatusCode, axum::Json<InboxCreatedOut>)> {
    let app_id = match (&body.app_id, &principal.app_id) {
        (Some(app), _) => Some(resolve_app(&state, &principal, app).await?),
        (None, Some(own)) => Some(own.clone()),
        (None, None) => None,
    };
    let mut v = Violations::new();
    let verification = body
        .verification
        .as_ref()
        .and_then(|given| seal_verification(&state, &mut v, given));
    let forward = body
        .forward
        .as_ref()
        .and_then(|given| check_forward(&mut v, given));
    let (token, token_hash) = issue_token();
    let now = herald_core::time::now();
    let inbox = Inbox {
        id: InboxId::generate(),
        name: body.name,
        app_id,
        description: body.description.unwrap_or_default(),
        token_hash,
        verification,
        max_body_bytes: body.max_body_bytes,
        rate_limit: body.rate_limit,
        forward,
        drop_headers: body.drop_headers,
        public_write: body.public_write,
        rejected_count: 0,
        created_at: now,
        updated_at: now,
    };
    check_inbox(&state, &mut v, &inbox);
    v.finish()?;
    state.store.create_inbox(&inbox).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(InboxCreatedOut {
            inbox: InboxOut::new(&state, inbox),
            token: token.to_string(),
        }),
    ))
}

/// List inboxes (an app-scoped token sees its application's).
#[utoipa::path(get, path = "/api/v1/inbox", tag = "Inbox", operation_id = "herald.inbox.list",
    params(OrderedPageQuery),
    responses((status = 200, body = ListResponse<InboxOut>)))]
async fn list_inboxes(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<OrderedPageQuery>,
) -> ApiResult<axum::Json<ListResponse<InboxOut>>> {
    let params = query.params()?;
    let page = state
        .store
        .list_inboxes(&params, principal.app_id.as_ref())
        .await?;
    Ok(axum::Json(ListResponse::new(
        page,
        &params,
        |i| i.id.as_str().to_owned(),
        |i| InboxOut::new(&state, i),
    )))
}

/// Get an inbox by id or name.
#[utoipa::path(get, path = "/api/v1/inbox/{inbox_id}", tag = "Inbox", operation_id = "herald.inbox.get",
    params(InboxPath),
    responses((status = 200, body = InboxOut)))]
async fn get_inbox(State(state): State<AppState>, scoped: ScopedInbox) -> axum::Json<InboxOut> {
    axum::Json(InboxOut::new(&state, scoped.inbox))
}

/// Change an inbox.
#[utoipa::path(patch, path = "/api/v1/inbox/{inbox_id}", tag = "Inbox", operation_id = "herald.inbox.patch",
    params(InboxPath),
    request_body = InboxPatch,
    responses((status = 200, body = InboxOut)))]
async fn patch_inbox(
    State(state): State<AppState>,
    ScopedInbox {
        mut inbox,
        principal,
    }: ScopedInbox,
    Json(patch): Json<InboxPatch>,
) -> ApiResult<axum::Json<InboxOut>> {
    let mut v = Violations::new();
    if let Some(name) = patch.name {
        inbox.name = name;
    }
    if let Some(description) = patch.description {
        inbox.description = description;
    }
    match &patch.app_id {
        Patch::Absent => {}
        Patch::Null => {
            principal.require_admin()?;
            inbox.app_id = None;
        }
        Patch::Value(app) => {
            principal.require_admin()?;
            inbox.app_id = Some(resolve_app(&state, &principal, app).await?);
        }
    }
    match &patch.verification {
        Patch::Absent => {}
        Patch::Null => inbox.verification = None,
        Patch::Value(given) => inbox.verification = seal_verification(&state, &mut v, given),
    }
    inbox.max_body_bytes = patch.max_body_bytes.apply(inbox.max_body_bytes);
    inbox.rate_limit = patch.rate_limit.apply(inbox.rate_limit);
    match patch.public_write {
        Patch::Absent => {}
        Patch::Null => v.value(&["body", "publicWrite"], "true or false"),
        Patch::Value(public_write) => inbox.public_write = public_write,
    }
    match &patch.forward {
        Patch::Absent => {}
        Patch::Null => inbox.forward = None,
        Patch::Value(given) => inbox.forward = check_forward(&mut v, given),
    }
    if let Some(drop) = patch.drop_headers {
        inbox.drop_headers = drop;
    }
    check_inbox(&state, &mut v, &inbox);
    v.finish()?;
    inbox.updated_at = herald_core::time::now();
    state.store.update_inbox(&inbox).await?;
    Ok(axum::Json(InboxOut::new(&state, inbox)))
}

/// Delete an inbox with everything it received.
#[utoipa::path(delete, path = "/api/v1/inbox/{inbox_id}", tag = "Inbox", operation_id = "herald.inbox.delete",
    params(InboxPath),
    responses((status = 204, description = "Deleted")))]
async fn delete_inbox(State(state): State<AppState>, scoped: ScopedInbox) -> ApiResult<StatusCode> {
    state.store.delete_inbox(&scoped.inbox.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the ingest token: the old one stops working at once. The answer holds the new one;
/// it is not shown again.
#[utoipa::path(post, path = "/api/v1/inbox/{inbox_id}/token/rotate", tag = "Inbox", operation_id = "herald.inbox.rotate-token",
    params(InboxPath),
    responses((status = 200, body = InboxTokenOut)))]
async fn rotate_token(
    State(state): State<AppState>,
    ScopedInbox { mut inbox, .. }: ScopedInbox,
) -> ApiResult<axum::Json<InboxTokenOut>> {
    let (token, hash) = issue_token();
    inbox.token_hash = hash;
    inbox.updated_at = herald_core::time::now();
    state.store.update_inbox(&inbox).await?;
    Ok(axum::Json(InboxTokenOut {
        token: token.to_string(),
    }))
}
