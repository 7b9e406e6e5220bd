//! `/in/{inbox}/{path…}`: where senders write and read, Firebase-style.
//!
//! These routes are outside `/api/v1` and authenticated by the inbox's ingest token (`?token=`,
//! Firebase's `?auth=`, or `Authorization: Bearer`), never by API tokens; a `publicWrite` inbox
//! also takes writes without it, as a Firebase database under the write rule `auth == null`
//! does. Each request goes through, in order: its query parameters (422 for one Herald does not
//! support), the inbox and its token (401 for either, so that names cannot be probed; a token
//! presented must be right even where none is needed), the rate limit (429: the inbox's token
//! bucket, or for a tokenless write its source address's, in this node's memory), the `print`
//! and `shallow` parameters (400), the body size (413), the signature when the inbox verifies
//! (401, counted on the inbox, nothing stored), the body's parsing (400), the forwarded event
//! type (422), and only then the store, which writes the entry and the forwarded message in one
//! transaction. Admission (query, inbox, credential, rate) is [`super::admission`], shared with
//! the reads of [`super::read`].

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Duration as TimeDelta;
use herald_core::id::{InboxEntryId, InboxId, MessageId};
use herald_core::inbox::tree::{Write, check_segment};
use herald_core::inbox::{body, forward_payload, push_id};
use herald_core::model::Message;
use herald_core::signing::{self, Verification};
use herald_store::{NewEntry, ReplayGuard, SerialKind, StoreError};

use super::super::AppState;
use super::super::error::{ApiError, HttpErrorOut};
use super::super::extract::read_body;
use super::admission::{Access, Admitted, admit, bad_request, error, path_params};
use super::firebase::{self, FirebasePrint, Print};
use super::read::read_tree;

pub fn router() -> Router<AppState> {
    let routes = || {
        get(read_tree)
            .post(write_entry)
            .put(write_entry)
            .patch(write_entry)
            .delete(write_entry)
    };
    Router::new()
        .route("/in/{inbox}", routes())
        .route("/in/{inbox}/", routes())
        .route("/in/{inbox}/{*path}", routes())
}

/// The OpenAPI description of the ingest routes (they are routed by hand: their path is a
/// catch-all).
#[derive(utoipa::OpenApi)]
#[openapi(paths(write_entry, super::read::read_tree))]
pub struct IngestDoc;

/// Per-inbox token buckets, in this node's memory.
pub type RateLimiter = herald_core::rate::TokenBuckets<InboxId>;

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

/// Write to an inbox: `POST` appends under the path with a generated push id (Firebase's: 20
/// characters, time-ordered) and answers `{"name": key}`; `PUT` replaces the value at the path
/// (`PUT null` deletes it, whatever the content type); `PATCH` merges the body's children into
/// it; `DELETE` removes the value at the path and everything under it (the whole inbox at its
/// root) and answers `null`. A trailing `.json` is optional. A `publicWrite` inbox takes writes
/// without the token, limited per source address.
#[utoipa::path(method(post, put, patch, delete), path = "/in/{inbox}/{path}", tag = "Inbox", operation_id = "herald.inbox.write",
    security(()),
    params(
        ("inbox" = String, Path, description = "The inbox's name or id; or the id or uid of its application, the inbox's name then starting `path` (`/in/{app}/{name}/…`)"),
        ("path" = String, Path, description = "Where to write, slash-separated, e.g. `blessing.json` or `devices/abc`"),
        ("token" = Option<String>, Query, description = "The ingest token (or `auth`, or `Authorization: Bearer`); not needed by a `publicWrite` inbox, but checked when given"),
        ("print" = Option<FirebasePrint>, Query, description = "`pretty`: the answer indented; `silent`: 204 with no body"),
    ),
    request_body(content = Object, description = "JSON, form-urlencoded, text or bytes; none for DELETE"),
    responses(
        (status = 200, description = "Stored: `{\"name\": push id}` for POST, the value written for PUT and PATCH, `null` for DELETE"),
        (status = 204, description = "Stored, with `print=silent`"),
        (status = 400, description = "A bad path or body, or a bad `print` (Firebase's `{\"error\": …}`)"),
        (status = 401, body = HttpErrorOut, description = "No such inbox, a wrong or missing token, or the signature does not verify"),
        (status = 413, body = HttpErrorOut, description = "Body larger than the inbox accepts"),
        (status = 422, body = HttpErrorOut, description = "An unsupported query parameter, or cannot forward: no event type"),
        (status = 429, body = HttpErrorOut, description = "Over the inbox's rate (a tokenless write: its address's); see Retry-After"),
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
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Admitted {
        inbox,
        location,
        query,
    } = admit(
        state,
        params,
        parts.uri.query(),
        &parts.headers,
        Access::Write(peer),
    )
    .await?;
    let print = Print::parse(query.print.as_deref()).map_err(|refusal| *refusal)?;
    if query.shallow.is_some() {
        return Err(firebase::error(
            StatusCode::BAD_REQUEST,
            "shallow applies to reads (GET) only",
        ));
    }
    let method = parts.method.clone();
    let deletes = method == Method::DELETE;
    if (method == Method::PUT || method == Method::PATCH) && location.is_root() {
        return Err(bad_request(
            "PUT and PATCH need a path below the inbox (e.g. /in/{inbox}/devices/abc)",
        ));
    }
    let source = peer.map(|ip| ip.to_string());
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
    let (value, encoding) = if deletes {
        if !bytes.is_empty() {
            return Err(bad_request("a DELETE has no body"));
        }
        (serde_json::Value::Null, body::Encoding::Empty)
    } else if method == Method::PUT && bytes.trim_ascii() == b"null" {
        // `PUT null` deletes, whatever the content type says (Firebase's clients send it as
        // text too).
        (serde_json::Value::Null, body::Encoding::Json)
    } else {
        body::parse(content_type.as_deref(), &bytes).map_err(bad_request)?
    };
    let id = InboxEntryId::generate();
    let received_at = id.timestamp().unwrap_or_else(herald_core::time::now);
    let (at, write) = if method == Method::POST {
        let key = push_id::generate_at(received_at);
        (location.child(&key), Write::Put(value.clone()))
    } else if method == Method::PUT || deletes {
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
    Ok(print.respond(&answer))
}
