//! `GET /in/{inbox}/{path…}`: reading an inbox's tree as Firebase's REST API does.
//!
//! Reads always need the inbox's token, `publicWrite` or not: the tutorial's Firebase rules
//! let anyone write, not read. A read answers the JSON at the path with its objects' keys in
//! byte order, or with Firebase's query parameters: `orderBy="$key"` with `startAt`, `endAt`
//! and `limitToFirst`/`limitToLast` select children; `shallow=true` gives only the children's
//! keys (read without their values, so it works on an inbox too large for a full read);
//! `print` lays the answer out (see [`super::firebase`]). Every read is bounded by
//! [`MAX_TREE_ROWS`] stored values (or, shallow, children): beyond it, a 400 says to page or
//! export.

use std::collections::HashMap;

use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::inbox::tree::{self, ChildQuery, Limit};
use herald_store::TreeRead;

use super::super::AppState;
use super::super::error::{ApiError, HttpErrorOut};
use super::admission::{Access, Admitted, IngestQuery, admit, bad_request, path_params};
use super::firebase::{self, FirebasePrint, Print};

/// Most stored values one tree read assembles (and most children a shallow read lists);
/// larger reads must page with `limitToFirst` or `limitToLast`, or use the export.
pub const MAX_TREE_ROWS: usize = 50_000;

/// Read the JSON tree at a path, Firebase-style (`null` when there is nothing). With
/// `orderBy="$key"`, `startAt`, `endAt` (inclusive) and `limitToFirst` or `limitToLast`,
/// only the matching children of the path are returned; with `shallow=true`, only their keys.
#[utoipa::path(get, path = "/in/{inbox}/{path}", tag = "Inbox", operation_id = "herald.inbox.read",
    security(()),
    params(
        ("inbox" = String, Path, description = "The inbox's name or id; or the id or uid of its application, the inbox's name then starting `path` (`/in/{app}/{name}/…`)"),
        ("path" = String, Path, description = "What to read, slash-separated; `.json` optional (`.json` alone: the whole inbox)"),
        ("token" = Option<String>, Query, description = "The ingest token (or `auth`, or `Authorization: Bearer`): needed, `publicWrite` or not"),
        ("orderBy" = Option<String>, Query, description = "`\"$key\"`: children in key order (the only order)"),
        ("limitToFirst" = Option<usize>, Query, description = "Only the first N children"),
        ("limitToLast" = Option<usize>, Query, description = "Only the last N children"),
        ("startAt" = Option<String>, Query, description = "Only children whose key is at least this"),
        ("endAt" = Option<String>, Query, description = "Only children whose key is at most this"),
        ("shallow" = Option<bool>, Query, description = "`true`: a primitive as it is, otherwise each child's key mapped to `true`; not with orderBy, limits, startAt or endAt"),
        ("print" = Option<FirebasePrint>, Query, description = "`pretty`: indented; `silent`: 204 with no body"),
    ),
    responses(
        (status = 200, description = "The JSON at the path"),
        (status = 204, description = "With `print=silent`"),
        (status = 400, body = firebase::TreeReadErrorOut, description = "A bad query (`shallow` mixed with a query, a bad `print`: Firebase's `{\"error\": …}`), or too much data for one read"),
        (status = 401, body = HttpErrorOut, description = "No such inbox, or a missing or wrong token"),
        (status = 422, body = HttpErrorOut, description = "An unsupported query parameter"),
    ))]
pub async fn read_tree(
    State(state): State<AppState>,
    params: RawPathParams,
    req: Request,
) -> Response {
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

/// Whether the query asks for a shallow read: `shallow=true`, alone (Firebase refuses it mixed
/// with a query, and so does Herald).
fn shallow(q: &IngestQuery) -> Result<bool, Box<Response>> {
    if q.shallow != Some(true) {
        return Ok(false);
    }
    let mixed = [
        ("orderBy", q.order_by.is_some()),
        ("limitToFirst", q.limit_to_first.is_some()),
        ("limitToLast", q.limit_to_last.is_some()),
        ("startAt", q.start_at.is_some()),
        ("endAt", q.end_at.is_some()),
    ];
    match mixed.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Box::new(firebase::error(
            StatusCode::BAD_REQUEST,
            format!(
                "shallow cannot be mixed with {name} (nor with orderBy, limitToFirst, \
                 limitToLast, startAt or endAt)"
            ),
        ))),
        None => Ok(true),
    }
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
    } = admit(state, params, query, headers, Access::Read).await?;
    let print = Print::parse(query.print.as_deref()).map_err(|refusal| *refusal)?;
    let read = if shallow(&query).map_err(|refusal| *refusal)? {
        state
            .store
            .read_inbox_shallow(&inbox.id, &location, MAX_TREE_ROWS)
            .await
    } else {
        let children = child_query(&query).map_err(bad_request)?;
        state
            .store
            .read_inbox_tree(&inbox.id, &location, &children, MAX_TREE_ROWS)
            .await
    };
    match read {
        Ok(TreeRead::Value(mut value)) => {
            tree::sort_keys(&mut value);
            Ok(print.respond(&value))
        }
        Ok(TreeRead::TooLarge) => Err(bad_request(format!(
            "the data at {location} is larger than one read returns ({MAX_TREE_ROWS} stored \
             values or children): page with orderBy=\"$key\" and limitToFirst/startAt, or use \
             the export"
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

    #[test]
    fn shallow_stands_alone() {
        let alone = IngestQuery {
            shallow: Some(true),
            ..Default::default()
        };
        assert!(shallow(&alone).unwrap());
        let off = IngestQuery {
            shallow: Some(false),
            limit_to_first: Some(3),
            ..Default::default()
        };
        assert!(!shallow(&off).unwrap());
        let mixed = IngestQuery {
            shallow: Some(true),
            start_at: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(
            shallow(&mixed).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
