//! Admission of `/in/{inbox}/{path…}` requests, reads and writes alike: the query parameters
//! (Firebase's and `token`; any other is a 422, never ignored), the inbox the path names and the
//! credential that opens it (the ingest token, or none for a write to a `publicWrite` inbox;
//! 401 for a wrong or missing one and for an unknown inbox alike, so names cannot be probed),
//! and the rate limits (429: the inbox's token bucket, or a tokenless write's source address's).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use axum::extract::RawPathParams;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::inbox::Inbox;
use herald_core::inbox::tree::Location;
use serde::Deserialize;

use super::super::AppState;
use super::super::error::{ApiError, HttpErrorOut};
use super::firebase;

/// Query parameters of the ingest routes: Firebase's, and `token`. Any other is refused (422),
/// never ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct IngestQuery {
    pub(super) token: Option<String>,
    /// Firebase's name for the token.
    pub(super) auth: Option<String>,
    pub(super) order_by: Option<String>,
    pub(super) limit_to_first: Option<usize>,
    pub(super) limit_to_last: Option<usize>,
    pub(super) start_at: Option<String>,
    pub(super) end_at: Option<String>,
    /// `shallow=true`: reads only.
    pub(super) shallow: Option<bool>,
    /// `pretty` or `silent`.
    pub(super) print: Option<String>,
}

/// The query parameters the ingest routes take.
const QUERY_PARAMETERS: [&str; 9] = [
    "token",
    "auth",
    "orderBy",
    "limitToFirst",
    "limitToLast",
    "startAt",
    "endAt",
    "shallow",
    "print",
];

fn parse_query(query: Option<&str>) -> Result<IngestQuery, Box<Response>> {
    let query = query.unwrap_or_default();
    if let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| !QUERY_PARAMETERS.contains(&name.as_ref()))
    {
        return Err(Box::new(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            format!(
                "the query parameter `{name}` is not supported (supported: {})",
                QUERY_PARAMETERS.join(", ")
            ),
        )));
    }
    serde_html_form::from_str(query).map_err(|e| Box::new(bad_request(format!("query: {e}"))))
}

pub(super) fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
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

pub(super) fn bad_request(detail: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", detail)
}

/// What every ingest request checks before its body: the location, the inbox, its token and
/// its rate.
pub(super) struct Admitted {
    pub(super) inbox: Inbox,
    pub(super) location: Location,
    pub(super) query: IngestQuery,
}

/// What kind of request is being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// A read: the token is needed.
    Read,
    /// A write from this address: a `publicWrite` inbox takes it without the token.
    Write(Option<IpAddr>),
}

pub(super) async fn admit(
    state: &AppState,
    params: &HashMap<String, String>,
    query: Option<&str>,
    headers: &HeaderMap,
    access: Access,
) -> Result<Admitted, Response> {
    let query = parse_query(query).map_err(|refusal| *refusal)?;
    let first = params.get("inbox").map(String::as_str).unwrap_or_default();
    let path = params.get("path").map(String::as_str).unwrap_or_default();
    let presented = query
        .token
        .as_deref()
        .or(query.auth.as_deref())
        .or_else(|| bearer(headers));
    let found = match (presented, access) {
        (Some(token), _) => {
            let holds = |inbox: &Inbox| {
                herald_core::token::hash_matches(token.as_bytes(), &inbox.token_hash)
            };
            find_inbox(state, first, path, holds).await
        }
        // A wrong token is refused even where none is needed: it is never read as anonymous.
        (None, Access::Write(_)) => find_inbox(state, first, path, |i| i.public_write).await,
        (None, Access::Read) => Ok(None),
    }
    .map_err(|e| ApiError::from(e).into_response())?;
    // An unknown inbox gets the answer of a wrong token: names cannot be probed without one.
    let Some((inbox, path)) = found else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "missing or wrong inbox token: send `?token=…` or `Authorization: Bearer …`",
        ));
    };
    let location = Location::parse(path).map_err(bad_request)?;
    let limited = match (presented, access) {
        (None, Access::Write(source)) => {
            let rate = inbox
                .rate_limit
                .unwrap_or(herald_core::inbox::DEFAULT_PUBLIC_WRITE_RATE);
            firebase::take_public_write(&state.public_write_limiter, &inbox.id, source, rate)
                .map_err(|wait| {
                    (
                        wait,
                        format!(
                            "this inbox accepts {rate} writes per second from one address \
                             without its token"
                        ),
                    )
                })
        }
        _ => match inbox.rate_limit {
            Some(rate) => state
                .ingest_limiter
                .take(&inbox.id, rate, Instant::now())
                .map_err(|wait| {
                    (
                        wait,
                        format!("this inbox accepts {rate} requests per second"),
                    )
                }),
            None => Ok(()),
        },
    };
    if let Err((wait, detail)) = limited {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
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
pub(super) fn path_params(params: &RawPathParams) -> HashMap<String, String> {
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

/// The inbox a request names that `accepts` it (holds the token it presents, or takes writes
/// without one), and the path below the inbox. `/in/{name}/{path…}` names an inbox by its id or
/// its name, in whichever application holds the one inbox of that name that accepts the
/// request (names are only unique per application); `/in/{app}/{name}/{path…}` names an
/// application's inbox by the name the application gave it.
async fn find_inbox<'p>(
    state: &AppState,
    first: &str,
    path: &'p str,
    accepts: impl Fn(&Inbox) -> bool,
) -> herald_store::Result<Option<(Inbox, &'p str)>> {
    let mut named = state
        .store
        .find_inboxes_named(first)
        .await?
        .into_iter()
        .filter(|i| accepts(i));
    match (named.next(), named.next()) {
        (Some(inbox), None) => return Ok(Some((inbox, path))),
        // Several public inboxes of that name (in different applications): the request must
        // say which, with `/in/{app}/{name}/…`.
        (Some(_), Some(_)) => return Ok(None),
        (None, _) => {}
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
        .filter(|i| accepts(i))
        .map(|inbox| (inbox, rest)))
}
