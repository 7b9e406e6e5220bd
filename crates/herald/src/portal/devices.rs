//! Devices of an application (operator console): the registry with its filters, and one
//! device with its status history and the messages its changes published.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::routing::get;
use maud::html;

use super::PortalState;
use super::client::{PageResult, query, seg};
use super::endpoints::app_nav;
use super::session::Ctx;
use super::view::{self, facts, s};

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/device", get(list))
        .route("/device/{device}", get(device))
}

fn status_badge(status: &str) -> maud::Markup {
    let class = match status {
        "online" => "ok",
        "utilizing" => "wait",
        "offline" | "unplugged" => "bad",
        _ => "neutral",
    };
    html! { span class={ "badge " (class) } { (if status.is_empty() { "unknown" } else { status }) } }
}

async fn list(
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let app = p.get("app_id").map_or("", String::as_str);
    let get = |k: &str| q.get(k).map_or("", String::as_str);
    let filters = [
        ("name", get("name")),
        ("kind", get("kind")),
        ("group", get("group")),
        ("status", get("status")),
    ];
    let mut pairs = filters.to_vec();
    pairs.push(("limit", "50"));
    pairs.push(("iterator", get("iterator")));
    let path = format!("/api/v1/app/{}/device{}", seg(app), query(&pairs));
    let list = ctx.api.get(&path).await.map_err(|r| ctx.fail(r))?;
    let rows = list["data"].as_array().cloned().unwrap_or_default();
    let base = format!("{}/device", ctx.app_base(app));
    let body = html! {
        (app_nav(&ctx, app))
        form.filters method="get" action=(base) role="search" aria-label="Filter devices" {
            div.field { label for="d-name" { "Name starts with" } input #d-name name="name" value=(get("name")); }
            div.field { label for="d-kind" { "Kind" }
                select #d-kind name="kind" { @for k in ["", "private", "local", "public"] {
                    option value=(k) selected[k == get("kind")] { (if k.is_empty() { "Any" } else { k }) } } } }
            div.field { label for="d-group" { "Group" } input #d-group name="group" value=(get("group")); }
            div.field { label for="d-status" { "Status" }
                select #d-status name="status" { @for k in ["", "online", "offline", "utilizing", "unplugged"] {
                    option value=(k) selected[k == get("status")] { (if k.is_empty() { "Any" } else { k }) } } } }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() { p.empty { "No devices match." } } @else {
            table {
                thead { tr { th scope="col" { "Device" } th scope="col" { "Kind" } th scope="col" { "Group" } th scope="col" { "Status" } th scope="col" { "Since" } } }
                tbody { @for d in &rows { tr {
                    td { a href={ (base) "/" (seg(s(d, "id"))) } { (s(d, "name")) } div.hint { code { (s(d, "id")) } } }
                    td { (s(d, "kind")) }
                    td { (s(d, "group")) }
                    td { (status_badge(s(d, "status"))) }
                    td { (view::time(&d["statusAt"])) }
                } } }
            }
            (view::pager(&base, &list, &filters))
        }
    };
    Ok(ctx.page("Devices", body))
}

async fn device(ctx: Ctx, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let app = p.get("app_id").map_or("", String::as_str);
    let id = p.get("device").map_or("", String::as_str);
    let api = format!("/api/v1/app/{}/device/{}", seg(app), seg(id));
    let d = ctx.api.get(&api).await.map_err(|r| ctx.fail(r))?;
    let history = ctx
        .api
        .get(&format!("{api}/history?limit=250"))
        .await
        .map_err(|r| ctx.fail(r))?;
    let rows = history["data"].as_array().cloned().unwrap_or_default();
    let join = |k: &str| {
        d[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let messages = format!("{}/message", ctx.app_base(app));
    let body = html! {
        (app_nav(&ctx, app))
        (facts(&[
            ("ID", html! { code { (s(&d, "id")) } }),
            ("Name", html! { (s(&d, "name")) }),
            ("Kind", html! { (s(&d, "kind")) }),
            ("Status", status_badge(s(&d, "status"))),
            ("Status since", html! { (view::time(&d["statusAt"])) }),
            ("Group", html! { (s(&d, "group")) }),
            ("Teams", html! { (join("teams")) }),
            ("Bundles", html! { (join("bundles")) }),
            ("imp id", html! { (s(&d, "impId")) }),
            ("Blessed", html! { (view::time(&d["blessedAt"])) }),
            ("Activated", html! { (view::time(&d["activatedAt"])) }),
        ]))
        section aria-labelledby="history" {
            h2 #history { "History" }
            @if rows.is_empty() { p.empty { "No status reported yet." } } @else {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Outcome" } th scope="col" { "Message" } } }
                    tbody { @for t in &rows { tr {
                        td { (t["seq"]) }
                        td { (view::time(&t["at"])) }
                        td { (status_badge(s(t, "from"))) }
                        td { (status_badge(s(t, "to"))) }
                        td { (s(t, "outcome")) }
                        td { @if !s(t, "messageId").is_empty() { a href={ (messages) "/" (seg(s(t, "messageId"))) } { code { (s(t, "messageId")) } } } }
                    } } }
                }
            }
        }
    };
    Ok(ctx.page(&format!("Device {}", s(&d, "name")), body))
}
