//! Devices of an application (operator console): the registry with its filters, and one
//! device with its status history and the messages its changes published.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::routing::get;
use maud::html;

use super::PortalState;
use super::client::{query, seg};
use super::error::PageResult;
use super::scope::app_nav;
use super::session::Ctx;
use super::view::{self, facts};
use crate::api::device::{DeviceOut, TransitionOut};
use crate::api::pagination::ListResponse;

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
    let list: ListResponse<DeviceOut> = ctx.api.get_as(&path).await.map_err(|r| ctx.fail(r))?;
    let rows = &list.data;
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
                tbody { @for d in rows { tr {
                    td { a href={ (base) "/" (seg(&d.id)) } { (d.name) } div.hint { code { (d.id) } } }
                    td { (d.kind) }
                    td { (d.group.as_deref().unwrap_or("")) }
                    td { (status_badge(d.status.as_deref().unwrap_or(""))) }
                    td { (view::time(d.status_at.as_ref())) }
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
    let d: DeviceOut = ctx.api.get_as(&api).await.map_err(|r| ctx.fail(r))?;
    let history: ListResponse<TransitionOut> = ctx
        .api
        .get_as(&format!("{api}/history?limit=250"))
        .await
        .map_err(|r| ctx.fail(r))?;
    let rows = &history.data;
    let messages = format!("{}/message", ctx.app_base(app));
    let body = html! {
        (app_nav(&ctx, app))
        (facts(&[
            ("ID", html! { code { (d.id) } }),
            ("Name", html! { (d.name) }),
            ("Kind", html! { (d.kind) }),
            ("Status", status_badge(d.status.as_deref().unwrap_or(""))),
            ("Status since", html! { (view::time(d.status_at.as_ref())) }),
            ("Group", html! { (d.group.as_deref().unwrap_or("")) }),
            ("Teams", html! { (d.teams.join(", ")) }),
            ("Bundles", html! { (d.bundles.join(", ")) }),
            ("imp id", html! { (d.imp_id.as_deref().unwrap_or("")) }),
            ("Blessed", html! { (view::time(d.blessed_at.as_ref())) }),
            ("Activated", html! { (view::time(d.activated_at.as_ref())) }),
        ]))
        section aria-labelledby="history" {
            h2 #history { "History" }
            @if rows.is_empty() { p.empty { "No status reported yet." } } @else {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Outcome" } th scope="col" { "Message" } } }
                    tbody { @for t in rows { tr {
                        td { (t.seq) }
                        td { (view::time(&t.at)) }
                        td { (status_badge(t.from.as_deref().unwrap_or(""))) }
                        td { (status_badge(&t.to)) }
                        td { (t.outcome) }
                        td { @if let Some(msg) = &t.message_id { a href={ (messages) "/" (seg(msg)) } { code { (msg) } } } }
                    } } }
                }
            }
        }
    };
    Ok(ctx.page(&format!("Device {}", d.name), body))
}
