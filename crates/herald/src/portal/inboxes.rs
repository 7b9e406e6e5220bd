//! Inboxes (operator console): the list, browsing an inbox's data as a tree (as the Firebase
//! console shows it, [`super::inbox_tree`]) next to its entries by path and time, and exports
//! passed through from the API as a download (streamed, never held in memory).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::get;
use maud::html;
use serde_json::Value;

use super::PortalState;
use super::client::{Refusal, query, seg};
use super::endpoint_app::utc_input;
use super::error::PageResult;
use super::inbox_tree;
use super::session::Ctx;
use super::view;
use crate::api::inbox::InboxOut;
use crate::api::inbox::entries::InboxEntryOut;
use crate::api::pagination::ListResponse;

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/admin/inbox", get(list))
        .route("/admin/inbox/{inbox}", get(entries))
        .route("/admin/inbox/{inbox}/export", get(export))
}

async fn list(ctx: Ctx, Query(q): Query<HashMap<String, String>>) -> PageResult {
    let iterator = q.get("iterator").map_or("", String::as_str);
    let list: ListResponse<InboxOut> = ctx
        .api
        .get_as(&format!(
            "/api/v1/inbox{}",
            query(&[("limit", "50"), ("iterator", iterator)])
        ))
        .await
        .map_err(|r| ctx.fail(r))?;
    let rows = &list.data;
    let body = html! {
        p { "Inboxes keep what senders write to " code { "/in/{inbox}/…" } "." }
        @if rows.is_empty() { p.empty { "No inboxes yet (create them with the API or the command line)." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Ingest URL" } th scope="col" { "Application" } th scope="col" { "Rejected" } th scope="col" { "Created" } } }
                tbody { @for i in rows { tr {
                    td { a href={ "/admin/inbox/" (seg(&i.name)) } { (i.name) }
                        @if !i.description.is_empty() { div.hint { (i.description) } } }
                    td.mono { (i.ingest_url) }
                    td { @if let Some(app) = &i.app_id { code { (app) } } }
                    td { (i.rejected_count) }
                    td { (view::time(&i.created_at)) }
                } } }
            }
            (view::pager("/admin/inbox", &list, &[]))
        }
    };
    Ok(ctx.page("Inboxes", body))
}

async fn entries(
    ctx: Ctx,
    Path(inbox): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let get = |k: &str| q.get(k).map_or("", String::as_str);
    let (after, before) = (utc_input(get("after")), utc_input(get("before")));
    let api = format!("/api/v1/inbox/{}", seg(&inbox));
    let i: InboxOut = ctx.api.get_as(&api).await.map_err(|r| ctx.fail(r))?;
    let path = format!(
        "{api}/entries{}",
        query(&[
            ("path", get("path")),
            ("after", &after),
            ("before", &before),
            ("order", "descending"),
            ("limit", "50"),
            ("iterator", get("iterator")),
        ])
    );
    let list: ListResponse<InboxEntryOut> = ctx.api.get_as(&path).await.map_err(|r| ctx.fail(r))?;
    // The tree at the filtered path; one too large to draw says so instead.
    let tree: Result<Value, Refusal> = ctx
        .api
        .get_as(&format!(
            "{api}/export{}",
            query(&[("format", "tree"), ("path", get("path"))])
        ))
        .await;
    let root = match get("path") {
        "" => i.name.clone(),
        path => path.to_owned(),
    };
    let rows = &list.data;
    let base = format!("/admin/inbox/{}", seg(&i.name));
    let filters = [
        ("path", get("path")),
        ("after", get("after")),
        ("before", get("before")),
    ];
    let export = |format: &str| {
        let mut pairs = filters.to_vec();
        pairs.push(("format", format));
        format!("{base}/export{}", query(&pairs))
    };
    let body = html! {
        p { "Ingest URL: " code { (i.ingest_url) } }
        form.filters method="get" action=(base) role="search" aria-label="Filter entries" {
            div.field { label for="i-path" { "Path (and below)" } input #i-path name="path" value=(get("path")) placeholder="blessing"; }
            div.field { label for="i-after" { "After (UTC)" } input #i-after type="datetime-local" name="after" value=(get("after")); }
            div.field { label for="i-before" { "Before (UTC)" } input #i-before type="datetime-local" name="before" value=(get("before")); }
            button type="submit" { "Filter" }
        }
        div.actions {
            a.button href=(export("csv")) download { "Export CSV" }
            a.button href=(export("json")) download { "Export JSON" }
            a.button href=(export("tree")) download { "Export tree" }
        }
        div.inbox-view {
        section.inbox-tree aria-label="Data" {
            h2 { "Data" }
            @match &tree {
                Ok(value) => (inbox_tree::render(&root, value)),
                Err(refusal) => p.hint { (refusal.detail) },
            }
        }
        section aria-label="Entries" {
        h2 { "Entries" }
        @if rows.is_empty() { p.empty { "No entries match." } } @else {
            table {
                caption.visually-hidden { "Entries, newest first" }
                thead { tr { th scope="col" { "Received" } th scope="col" { "Method" } th scope="col" { "Path" } th scope="col" { "Key" } th scope="col" { "Value" } } }
                tbody { @for e in rows {
                    // The value is the sender's own document, passed through as JSON.
                    @let value = view::document(&e.value);
                    tr {
                    td { (view::time(&e.received_at)) }
                    td { (e.method) }
                    td { code { (e.path) } }
                    td { code { (e.key) } }
                    td { details { summary { (truncate(&value.to_string(), 60)) } pre tabindex="0" { code { (view::pretty(&value)) } } } }
                } } }
            }
            (view::pager(&base, &list, &filters))
        }
        }
        }
    };
    Ok(ctx.page(&format!("Inbox {}", i.name), body))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// The API's export, streamed through as an attachment.
async fn export(
    ctx: Ctx,
    Path(inbox): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let get = |k: &str| q.get(k).map_or("", String::as_str);
    let (after, before) = (utc_input(get("after")), utc_input(get("before")));
    let format = match get("format") {
        "json" => "json",
        "tree" => "tree",
        _ => "csv",
    };
    let path = format!(
        "/api/v1/inbox/{}/export{}",
        seg(&inbox),
        // The tree is the data as it is now: the time filters apply to entries only.
        query(&if format == "tree" {
            vec![("format", format), ("path", get("path"))]
        } else {
            vec![
                ("format", format),
                ("path", get("path")),
                ("after", after.as_str()),
                ("before", before.as_str()),
            ]
        })
    );
    let response = ctx.api.raw(Method::GET, &path, None).await;
    if !response.status().is_success() {
        // Read the refusal the usual way, for its message.
        return Err(ctx.fail(Refusal::of(response).await));
    }
    let name: String = inbox
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let mut response = response.into_response();
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&match format {
            "tree" => format!("attachment; filename=\"{name}-export.json\""),
            _ => format!("attachment; filename=\"{name}.{format}\""),
        })
        .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    Ok(response)
}
