//! The message log (the API's delivery log: one row per message and endpoint, filtered by
//! event type, status and time), a message with its payload, destinations and attempts, one
//! attempt as sent and as answered, and resending.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::PortalState;
use super::client::{PageResult, query, seg};
use super::endpoint_app::utc_input;
use super::endpoints::{Scope, app_nav};
use super::view::{self, action_button, code_block, facts, s, status_badge};

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/message", get(log))
        .route("/message/{msg}", get(message))
        .route("/message/{msg}/attempt/{attempt}", get(attempt))
        .route("/message/{msg}/endpoint/{ep}/resend", post(resend))
}

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> &'a str {
    p.get(name).map_or("", String::as_str)
}

#[derive(Debug, Default, Deserialize)]
struct LogQuery {
    #[serde(default, rename = "eventType")]
    event_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    page: String,
}

async fn log(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<LogQuery>,
) -> PageResult {
    let ctx = &scope.ctx;
    let app = param(&p, "app_id");
    let base = format!("{}/message", ctx.app_base(app));
    let since = utc_input(&q.since);
    let until = utc_input(&q.until);
    let page: u64 = q.page.parse().unwrap_or(1).max(1);
    let page_text = page.to_string();
    let path = format!(
        "/api/v1/app/{}/delivery-log{}",
        seg(app),
        query(&[
            ("eventType", &q.event_type),
            ("status", &q.status),
            ("startTimestamp", &since),
            ("endTimestamp", &until),
            ("page", &page_text),
            ("size", "50"),
        ])
    );
    let (log, refused) = match ctx.api.get(&path).await {
        Ok(v) => (v, None),
        // A bad filter is shown above the form, which is kept.
        Err(r)
            if r.status.is_client_error()
                && r.status.as_u16() != 404
                && r.status.as_u16() != 401 =>
        {
            (Value::Null, Some(r.messages()))
        }
        Err(r) => return Err(ctx.fail(r)),
    };
    let types = ctx
        .api
        .get("/api/v1/event-type?limit=250")
        .await
        .map_err(|r| ctx.fail(r))?;
    let type_names: Vec<&str> = types["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| s(t, "name"))
        .collect();
    let rows = log["content"].as_array().cloned().unwrap_or_default();
    let filters = [
        ("eventType", q.event_type.as_str()),
        ("status", q.status.as_str()),
        ("since", q.since.as_str()),
        ("until", q.until.as_str()),
    ];
    let link_to = |n: u64| {
        let n = n.to_string();
        let mut pairs = filters.to_vec();
        pairs.push(("page", &n));
        format!("{base}{}", query(&pairs))
    };
    let body = html! {
        (app_nav(ctx, app))
        form.filters method="get" action=(base) role="search" aria-label="Filter messages" {
            div.field {
                label for="f-type" { "Event type" }
                select #f-type name="eventType" {
                    option value="" { "Any" }
                    @for t in &type_names { option value=(t) selected[*t == q.event_type] { (t) } }
                }
            }
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    @for (v, text) in [("", "Any"), ("success", "Succeeded"), ("fail", "Failed"), ("pending", "Pending"), ("sending", "Sending")] {
                        option value=(v) selected[v == q.status] { (text) }
                    }
                }
            }
            div.field {
                label for="f-since" { "From (UTC)" }
                input #f-since type="datetime-local" name="since" value=(q.since);
            }
            div.field {
                label for="f-until" { "To (UTC)" }
                input #f-until type="datetime-local" name="until" value=(q.until);
            }
            button type="submit" { "Filter" }
        }
        @if let Some(messages) = &refused {
            div.notice.error role="alert" { @for m in messages { p { (m) } } }
        }
        @if rows.is_empty() && refused.is_none() {
            p.empty { "No messages match." }
        } @else if !rows.is_empty() {
            p.hint {
                (log["total"]) (if log["total"] == 1 { " delivery" } else { " deliveries" })
                "; each row is one message to one endpoint, newest first."
            }
            table.log {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Message" } th scope="col" { "Event type" }
                    th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Last response" } th scope="col" { "Attempts" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (view::time(&r["createTimestamp"])) }
                            td { a href={ (base) "/" (seg(s(r, "msgId"))) } { code { (s(r, "msgId")) } } }
                            td { code { (s(r, "eventType")) } }
                            td { (s(r, "url")) }
                            td { (status_badge(s(r, "status"))) }
                            td { @if r["lastResponseStatus"].is_null() { "—" } @else { (r["lastResponseStatus"]) } }
                            td { (r["retryAttempts"]) }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if log["first"] == false { a href=(link_to(page - 1)) { "← Newer" } }
                @if log["last"] == false { a href=(link_to(page + 1)) { "Older →" } }
            }
        }
    };
    Ok(ctx.page("Messages", body))
}

async fn message(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let ctx = &scope.ctx;
    let app = param(&p, "app_id");
    let msg = param(&p, "msg");
    let api = format!("/api/v1/app/{}", seg(app));
    let m = ctx
        .api
        .get(&format!("{api}/msg/{}", seg(msg)))
        .await
        .map_err(|r| ctx.fail(r))?;
    let id = s(&m, "id").to_owned();
    let destinations = ctx
        .api
        .get(&format!("{api}/msg/{}/endpoint?limit=250", seg(&id)))
        .await
        .map_err(|r| ctx.fail(r))?;
    let attempts = ctx
        .api
        .get(&format!(
            "{api}/attempt/msg/{}?limit=250&with_content=false",
            seg(&id)
        ))
        .await
        .map_err(|r| ctx.fail(r))?;
    let base = ctx.app_base(app);
    let here = format!("{base}/message/{}", seg(&id));
    let payload = if m["payload"].is_null() {
        "(deleted)".to_owned()
    } else {
        view::pretty(&m["payload"])
    };
    let body = html! {
        (app_nav(ctx, app))
        (facts(&[
            ("ID", html! { code { (id) } }),
            ("Event type", html! { code { (s(&m, "eventType")) } }),
            ("Event id", html! { (s(&m, "eventId")) }),
            ("Channels", html! { (m["channels"].as_array().map(|c| c.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }),
            ("Created", html! { (view::time(&m["timestamp"])) }),
        ]))
        (code_block("Payload", &payload))
        section aria-labelledby="destinations" {
            h2 #destinations { "Endpoints" }
            @let rows = destinations["data"].as_array().cloned().unwrap_or_default();
            @if rows.is_empty() { p.empty { "No endpoint was to receive this message." } } @else {
                table {
                    thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Next attempt" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for d in &rows {
                            tr {
                                td { a href={ (base) "/endpoint/" (seg(s(d, "id"))) } { (s(d, "url")) } }
                                td { (status_badge(view::status_text(&d["status"]))) }
                                td { (view::time(&d["nextAttempt"])) }
                                td { @if !ctx.read_only() {
                                    (action_button(ctx, &format!("{here}/endpoint/{}/resend", seg(s(d, "id"))), "Resend", ""))
                                } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="attempts" {
            h2 #attempts { "Attempts" }
            @let rows = attempts["data"].as_array().cloned().unwrap_or_default();
            @if rows.is_empty() { p.empty { "No attempt yet." } } @else {
                table {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Endpoint" } th scope="col" { "Result" } th scope="col" { "Response" } th scope="col" { "Duration" } th scope="col" { "Trigger" } } }
                    tbody {
                        @for a in &rows {
                            tr {
                                td { a href={ (here) "/attempt/" (seg(s(a, "id"))) } { (view::time(&a["timestamp"])) } }
                                td { (s(a, "url")) }
                                td { (status_badge(view::status_text(&a["status"]))) }
                                td { (response_code(a)) }
                                td { (a["responseDurationMs"]) " ms" }
                                td { (if a["triggerType"] == 1 { "manual" } else { "scheduled" }) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page("Message", body))
}

fn response_code(a: &Value) -> maud::Markup {
    html! {
        @if a["responseStatusCode"] == 0 { "no response" } @else { (a["responseStatusCode"]) }
    }
}

async fn attempt(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let ctx = &scope.ctx;
    let app = param(&p, "app_id");
    let api = format!("/api/v1/app/{}/msg/{}", seg(app), seg(param(&p, "msg")));
    let a = ctx
        .api
        .get(&format!("{api}/attempt/{}", seg(param(&p, "attempt"))))
        .await
        .map_err(|r| ctx.fail(r))?;
    let base = ctx.app_base(app);
    let message = format!("{base}/message/{}", seg(s(&a, "msgId")));
    // The body as sent is recorded only when shaping changed it; otherwise it is the payload.
    let sent_body = match a["requestBody"].as_str() {
        Some(body) => body.to_owned(),
        None => {
            let m = ctx.api.get(&api).await.map_err(|r| ctx.fail(r))?;
            if m["payload"].is_null() {
                "(deleted)".to_owned()
            } else {
                view::pretty(&m["payload"])
            }
        }
    };
    let headers = a["requestHeaders"].as_object().cloned().unwrap_or_default();
    let response = s(&a, "response");
    let body = html! {
        (app_nav(ctx, app))
        (facts(&[
            ("ID", html! { code { (s(&a, "id")) } }),
            ("Message", html! { a href=(message) { code { (s(&a, "msgId")) } } }),
            ("Endpoint", html! { a href={ (base) "/endpoint/" (seg(s(&a, "endpointId"))) } { code { (s(&a, "endpointId")) } } }),
            ("URL", html! { (s(&a, "url")) }),
            ("Result", status_badge(view::status_text(&a["status"]))),
            ("Response status", response_code(&a)),
            ("Duration", html! { (a["responseDurationMs"]) " ms" }),
            ("Time", html! { (view::time(&a["timestamp"])) }),
            ("Trigger", html! { (if a["triggerType"] == 1 { "manual" } else { "scheduled" }) }),
        ]))
        @if !s(&a, "error").is_empty() {
            div.notice.error { p { "No response: " (s(&a, "error")) } }
        }
        section aria-labelledby="request" {
            h2 #request { "Request as sent" }
            @if headers.is_empty() {
                p.hint { "The request headers were not recorded for this attempt." }
            } @else {
                table.headers {
                    caption.visually-hidden { "Request headers" }
                    thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                    tbody { @for (k, v) in &headers { tr { th scope="row" { code { (k) } } td.mono { (v.as_str().unwrap_or("")) } } } }
                }
            }
            (code_block(if a["requestBody"].is_string() { "Request body" } else { "Request body: the message's payload, byte for byte (shown indented)" }, &sent_body))
        }
        section aria-labelledby="response" {
            h2 #response { "Response" }
            (code_block("Response body", if response.is_empty() { "(empty)" } else { response }))
        }
    };
    Ok(ctx.page("Attempt", body))
}

async fn resend(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let ctx = &scope.ctx;
    let app = param(&p, "app_id");
    let msg = param(&p, "msg");
    let path = format!(
        "/api/v1/app/{}/msg/{}/endpoint/{}/resend",
        seg(app),
        seg(msg),
        seg(param(&p, "ep"))
    );
    ctx.api
        .send(axum::http::Method::POST, &path, None)
        .await
        .map_err(|r| ctx.fail(r))?;
    let to = format!("{}/message/{}", ctx.app_base(app), seg(msg));
    Ok(ctx.redirect(&to, "Resent: a new attempt is on its way."))
}
