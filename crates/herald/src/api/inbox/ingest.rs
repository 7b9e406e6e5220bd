//! `/in/{inbox}/{path…}`: where senders write and read, Firebase-style.
//!
//! These routes are outside `/api/v1` and authenticated by the inbox's ingest token (`?token=`,
//! Firebase's `?auth=`, or `Authorization: Bearer`), never by API tokens. Each request goes
//! through, in order: the inbox and its token (401 for either, so that names cannot be probed),
//! the inbox's rate limit (429, a token bucket in this node's memory), the body size (413), the signature when the inbox verifies (401, counted on
//! the inbox, nothing stored), the body's parsing (400), the forwarded event type (422), and
//! only then the store, which writes the entry and the forwarded message in one transaction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Duration as TimeDelta;
use herald_core::id::{InboxEntryId, InboxId, MessageId};
use herald_core::inbox::tree::{ChildQuery, Limit, Location, Write, check_segment};
use herald_core::inbox::{Inbox, body, forward_payload};
use herald_core::model::Message;
use herald_core::signing::{self, Verification};
use herald_store::{NewEntry, ReplayGuard, SerialKind, StoreError, TreeRead};
use serde::Deserialize;

use super::super::AppState;
use super::super::error::{ApiError, HttpErrorOut};
use super::super::extract::read_body;

/// Most rows one tree read may assemble; larger reads must page with `limitToFirst` or
/// `limitToLast`, or use the export.
pub const MAX_TREE_ROWS: usize = 50_000;

pub fn router() -> Router<AppState> {
    let routes = || {
        get(read_tree)
            .post(write_entry)
            .put(write_entry)
            .patch(write_entry)
    };
    Router::new()
        .route("/in/{inbox}", routes())
        .route("/in/{inbox}/", routes())
        .route("/in/{inbox}/{*path}", routes())
}

/// The OpenAPI description of the ingest routes (they are routed by hand: their path is a
/// catch-all).
#[derive(utoipa::OpenApi)]
#[openapi(paths(write_entry, read_tree))]
pub struct IngestDoc;

/// Per-inbox token buckets, in this node's memory.
pub type RateLimiter = herald_core::rate::TokenBuckets<InboxId>;

/// Query parameters of the ingest routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngestQuery {
    token: Option<String>,
    /// Firebase's name for the token.
    auth: Option<String>,
    order_by: Option<String>,
    limit_to_first: Option<usize>,
    limit_to_last: Option<usize>,
    start_at: Option<String>,
    end_at: Option<String>,
}

fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let mut response = (
        status,
        axum::Json(HttpErrorOut {
            code: code.to_owned(),
            detail: detail.into(),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bad_request(detail: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", detail)
}

/// What every ingest request checks before its body: the location, the inbox, its token and
/// its rate.
struct Admitted {
    inbox: Inbox,
    location: Location,
    query: IngestQuery,
}

async fn admit(
    state: &AppState,
    params: &HashMap<String, String>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Admitted, Response> {
    let query: IngestQuery = serde_html_form::from_str(query.unwrap_or_default())
        .map_err(|e| bad_request(format!("query: {e}")))?;
    let first = params.get("inbox").map(String::as_str).unwrap_or_default();
    let path = params.get("path").map(String::as_str).unwrap_or_default();
    let presented = query
        .token
        .as_deref()
        .or(query.auth.as_deref())
        .or_else(|| bearer(headers));
    let found = match presented {
        Some(token) => find_inbox(state, first, path, token)
            .await
            .map_err(|e| ApiError::from(e).into_response())?,
        None => None,
    };
    // An unknown inbox gets the answer of a wrong token: names cannot be probed without one.
    let Some((inbox, path)) = found else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "missing or wrong inbox token: send `?token=…` or `Authorization: Bearer …`",
        ));
    };
    let location = Location::parse(path).map_err(bad_request)?;
    if let Some(rate) = inbox.rate_limit
        && let Err(wait) = state.ingest_limiter.take(&inbox.id, rate, Instant::now())
    {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("this inbox accepts {rate} requests per second"),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(herald_core::rate::retry_after_secs(wait)),
        );
        return Err(response);
    }
    Ok(Admitted {
        inbox,
        location,
        query,
    })
}

/// `{inbox}` and `{path}` (percent-decoded).
fn path_params(params: &RawPathParams) -> HashMap<String, String> {
    params
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The inbox a request names whose token it presents, and the path below the inbox.
/// `/in/{name}/{path…}` names an inbox by its id or its name, in whichever application holds
/// an inbox of that name with that token (names are only unique per application);
/// `/in/{app}/{name}/{path…}` names an application's inbox by the name the application gave it.
async fn find_inbox<'p>(
    state: &AppState,
    first: &str,
    path: &'p str,
    token: &str,
) -> herald_store::Result<Option<(Inbox, &'p str)>> {
    let holds =
        |inbox: &Inbox| herald_core::token::hash_matches(token.as_bytes(), &inbox.token_hash);
    if let Some(inbox) = state
        .store
        .find_inboxes_named(first)
        .await?
        .into_iter()
        .find(holds)
    {
        return Ok(Some((inbox, path)));
    }
    let (name, rest) = path.split_once('/').unwrap_or((path, ""));
    // `/in/{app}/{name}.json` reads the inbox's root.
    let (name, rest) = match name.strip_suffix(".json") {
        Some(name) if rest.is_empty() => (name, ".json"),
        _ => (name, rest),
    };
    if name.is_empty() {
        return Ok(None);
    }
    let Some(app) = state.store.get_app(first).await? else {
        return Ok(None);
    };
    Ok(state
        .store
        .get_inbox_of(&app.id, name)
        .await?
        .filter(holds)
        .map(|inbox| (inbox, rest)))
}

/// The request headers: names lowercased, repeated ones joined. What an entry keeps of them is
/// filtered after verification (`herald_core::inbox::keeps_header`).
fn request_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match kept.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => kept.push((name.as_str().to_owned(), value)),
        }
    }
    kept
}

/// Write to an inbox: `POST` appends under the path with a generated, time-ordered key and
/// answers `{"name": key}`; `PUT` replaces the value at the path; `PATCH` merges the body's
/// children into it. A trailing `.json` is optional.
#[utoipa::path(method(post, put, patch), path = "/in/{inbox}/{path}", tag = "Inbox", operation_id = "herald.inbox.write",
    security(()),
    params(
        ("inbox" = String, Path, description = "The inbox's name or id; or the id or uid of its application, the inbox's name then starting `path` (`/in/{app}/{name}/…`)"),
        ("path" = String, Path, description = "Where to write, slash-separated, e.g. `blessing.json` or `devices/abc`"),
        ("token" = Option<String>, Query, description = "The ingest token (or `auth`, or `Authorization: Bearer`)"),
    ),
    request_body(content = Object, description = "JSON, form-urlencoded, text or bytes"),
    responses(
        (status = 200, description = "Stored: `{\"name\": key}` for POST, the value written for PUT and PATCH"),
        (status = 401, body = HttpErrorOut, description = "No such inbox, a wrong token, or the signature does not verify"),
        (status = 413, body = HttpErrorOut, description = "Body larger than the inbox accepts"),
        (status = 422, body = HttpErrorOut, description = "Cannot forward: no event type"),
        (status = 429, body = HttpErrorOut, description = "Over the inbox's rate; see Retry-After"),
    ))]
async fn write_entry(
    State(state): State<AppState>,
    params: RawPathParams,
    req: Request,
) -> Response {
    match write(&state, &path_params(&params), req).await {
        Ok(response) | Err(response) => response,
    }
}

async fn write(
    state: &AppState,
    params: &HashMap<String, String>,
    req: Request,
) -> Result<Response, Response> {
    let (parts, body) = req.into_parts();
    let Admitted {
        inbox, location, ..
    } = admit(state, params, parts.uri.query(), &parts.headers).await?;
    let method = parts.method.clone();
    if method != Method::POST && location.is_root() {
        return Err(bad_request(
            "PUT and PATCH need a path below the inbox (e.g. /in/{inbox}/devices/abc)",
        ));
    }
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    // Verification sees every header; the entry keeps what the inbox keeps (no credentials).
    let mut headers = request_headers(&parts.headers);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = read_body(Request::from_parts(parts, body), state)
        .await
        .map_err(IntoResponse::into_response)?;
    let max = inbox
        .max_body_bytes
        .map_or(state.max_body_bytes, |m| m as usize);
    if bytes.len() > max {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("this inbox accepts bodies of at most {max} bytes"),
        ));
    }
    let mut replay = None;
    if let Some(verification) = &inbox.verification {
        let secret = state
            .keyring
            .open_string(&verification.secret)
            .map_err(|e| ApiError::Internal(format!("inbox secret: {e}")).into_response())?;
        let tolerance = i64::from(verification.config.tolerance_seconds);
        let check = Verification {
            config: &verification.config.signature,
            secret: &secret,
            now_and_tolerance: (tolerance > 0).then(|| (chrono::Utc::now().timestamp(), tolerance)),
        };
        if let Err(reason) = signing::verify(&check, &headers, &bytes) {
            if let Err(e) = state.store.count_inbox_rejection(&inbox.id).await {
                tracing::warn!(inbox = %inbox.id, error = %e, "counting a rejected request failed");
            }
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "verification_failed",
                format!("the request's signature does not verify: {reason}"),
            ));
        }
        // A request accepted once is refused again for as long as its signature could be
        // presented: twice the timestamp tolerance either way, or the tolerance itself for
        // the hex schemes, which sign no timestamp.
        replay = signing::replay_key(&verification.config.signature, &headers, &bytes).map(|key| {
            let window = match verification.config.signature.scheme {
                signing::Scheme::StandardV1 | signing::Scheme::StandardV1a => 2 * tolerance,
                _ => tolerance,
            }
            .max(i64::from(herald_core::inbox::DEFAULT_TOLERANCE_SECONDS));
            ReplayGuard {
                key,
                forget_before: chrono::Utc::now() - TimeDelta::seconds(window),
            }
        });
        // A static-header "signature" is the secret itself: it is not kept with the entry.
        if verification.config.signature.scheme == signing::Scheme::StaticHeader
            && let Some(name) = verification.config.signature.header_name()
        {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
    }
    let (value, encoding) = body::parse(content_type.as_deref(), &bytes).map_err(bad_request)?;
    let id = InboxEntryId::generate();
    let received_at = id.timestamp().unwrap_or_else(herald_core::time::now);
    let (at, write) = if method == Method::POST {
        (location.child(id.body()), Write::Put(value.clone()))
    } else if method == Method::PUT {
        (location.clone(), Write::Put(value.clone()))
    } else {
        let serde_json::Value::Object(children) = &value else {
            return Err(bad_request("a PATCH body must be a JSON object"));
        };
        for key in children.keys() {
            check_segment(key).map_err(bad_request)?;
        }
        (location.clone(), Write::Patch(children.clone()))
    };
    let forward = match (&inbox.forward, &inbox.app_id) {
        (Some(forward), Some(app_id)) => {
            let event_type = forward
                .event_type(location.segments(), &headers)
                .map_err(|e| {
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation",
                        format!("cannot forward this write: {e}"),
                    )
                })?;
            let raw = (encoding == body::Encoding::Json)
                .then(|| std::str::from_utf8(&bytes).ok())
                .flatten();
            let message_id = MessageId::generate();
            let created_at = message_id.timestamp().unwrap_or(received_at);
            let serial = state
                .store
                .next_serial(SerialKind::Message)
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            Some(Message {
                id: message_id,
                app_id: app_id.clone(),
                serial,
                event_type,
                event_id: Some(id.as_str().to_owned()),
                channels: None,
                payload: Some(forward_payload(raw, &value)),
                created_at,
                payload_expires_at: created_at
                    + TimeDelta::days(super::super::message::DEFAULT_RETENTION_DAYS),
                deliver_at: None,
                tags: None,
            })
        }
        _ => None,
    };
    let entry = NewEntry {
        id,
        inbox_id: inbox.id.clone(),
        location: at,
        method: method.as_str().to_owned(),
        write,
        encoding,
        headers: headers
            .into_iter()
            .filter(|(name, _)| herald_core::inbox::keeps_header(&inbox.drop_headers, name))
            .collect(),
        source,
        received_at,
        replay,
    };
    let (stored, matched) = match state.store.write_inbox(&entry, forward.as_ref()).await {
        Ok(done) => done,
        Err(StoreError::NotFound) => {
            return Err(ApiError::NotFound("inbox not found").into_response());
        }
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    state.wakeup.endpoints(matched);
    let answer = if method == Method::POST {
        serde_json::json!({ "name": stored.key })
    } else {
        value
    };
    Ok((StatusCode::OK, axum::Json(answer)).into_response())
}

/// Read the JSON tree at a path, Firebase-style (`null` when there is nothing). With
/// `orderBy="$key"`, `startAt`, `endAt` (inclusive) and `limitToFirst` or `limitToLast`,
/// only the matching children of the path are returned.
#[utoipa::path(get, path = "/in/{inbox}/{path}", tag = "Inbox", operation_id = "herald.inbox.read",
    security(()),
    params(
        ("inbox" = String, Path, description = "The inbox's name or id; or the id or uid of its application, the inbox's name then starting `path` (`/in/{app}/{name}/…`)"),
        ("path" = String, Path, description = "What to read, slash-separated; `.json` optional"),
        ("token" = Option<String>, Query, description = "The ingest token (or `auth`, or `Authorization: Bearer`)"),
        ("orderBy" = Option<String>, Query, description = "`\"$key\"`: children in key order (the only order)"),
        ("limitToFirst" = Option<usize>, Query, description = "Only the first N children"),
        ("limitToLast" = Option<usize>, Query, description = "Only the last N children"),
        ("startAt" = Option<String>, Query, description = "Only children whose key is at least this"),
        ("endAt" = Option<String>, Query, description = "Only children whose key is at most this"),
    ),
    responses(
        (status = 200, description = "The JSON at the path"),
        (status = 400, body = HttpErrorOut, description = "A bad query, or too much data for one read"),
        (status = 401, body = HttpErrorOut, description = "Wrong token"),
        (status = 401, body = HttpErrorOut, description = "No such inbox, or a wrong token"),
    ))]
async fn read_tree(State(state): State<AppState>, params: RawPathParams, req: Request) -> Response {
    let query = req.uri().query().map(str::to_owned);
    match read(
        &state,
        &path_params(&params),
        query.as_deref(),
        req.headers(),
    )
    .await
    {
        Ok(response) | Err(response) => response,
    }
}

/// A query value as Firebase sends it: JSON-quoted (`"$key"`), or bare.
fn unquote(text: &str) -> String {
    serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned())
}

fn child_query(q: &IngestQuery) -> Result<ChildQuery, String> {
    if let Some(order) = &q.order_by
        && unquote(order) != "$key"
    {
        return Err(format!(
            "orderBy {order} is not supported: children are ordered by key (orderBy=\"$key\")"
        ));
    }
    let limit = match (q.limit_to_first, q.limit_to_last) {
        (Some(_), Some(_)) => return Err("use limitToFirst or limitToLast, not both".into()),
        (Some(n), None) => Some(Limit::First(n)),
        (None, Some(n)) => Some(Limit::Last(n)),
        (None, None) => None,
    };
    if let Some(Limit::First(n) | Limit::Last(n)) = limit
        && (n == 0 || n > MAX_TREE_ROWS)
    {
        return Err(format!("limits go from 1 to {MAX_TREE_ROWS}"));
    }
    Ok(ChildQuery {
        start_at: q.start_at.as_deref().map(unquote),
        end_at: q.end_at.as_deref().map(unquote),
        limit,
    })
}

async fn read(
    state: &AppState,
    params: &HashMap<String, String>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    let Admitted {
        inbox,
        location,
        query,
    } = admit(state, params, query, headers).await?;
    let children = child_query(&query).map_err(bad_request)?;
    match state
        .store
        .read_inbox_tree(&inbox.id, &location, &children, MAX_TREE_ROWS)
        .await
    {
        Ok(TreeRead::Value(value)) => Ok(axum::Json(value).into_response()),
        Ok(TreeRead::TooLarge) => Err(bad_request(format!(
            "the data at {location} is larger than one read returns ({MAX_TREE_ROWS} stored \
             values): page with orderBy=\"$key\" and limitToFirst/startAt, or use the export"
        ))),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firebase_queries() {
        let q = IngestQuery {
            order_by: Some("\"$key\"".into()),
            limit_to_last: Some(2),
            start_at: Some("\"a\"".into()),
            end_at: Some("m".into()),
            ..Default::default()
        };
        assert_eq!(
            child_query(&q).unwrap(),
            ChildQuery {
                start_at: Some("a".into()),
                end_at: Some("m".into()),
                limit: Some(Limit::Last(2)),
            }
        );
        let bad = IngestQuery {
            order_by: Some("\"$value\"".into()),
            ..Default::default()
        };
        assert!(child_query(&bad).is_err());
        let both = IngestQuery {
            limit_to_first: Some(1),
            limit_to_last: Some(1),
            ..Default::default()
        };
        assert!(child_query(&both).is_err());
    }
}
