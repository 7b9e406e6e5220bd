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
use super::client::{query, seg};
use super::endpoint_app::utc_input;
use super::error::PageResult;
use super::scope::{Scope, app_nav};
use super::view::{self, action_button, code_block, facts, status_badge};
use crate::api::attempt::MessageAttemptOut;
use crate::api::delivery::MessageEndpointOut;
use crate::api::delivery_log::DeliveryLogOut;
use crate::api::event_type::EventTypeOut;
use crate::api::message::MessageOut;
use crate::api::pagination::ListResponse;
use crate::api::status::MessageAttemptTriggerType;

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
    let (log, refused) = match ctx.api.get_as::<DeliveryLogOut>(&path).await {
        Ok(log) => (Some(log), None),
        // A bad filter is shown above the form, which is kept.
        Err(r)
            if r.status.is_client_error()
                && r.status.as_u16() != 404
                && r.status.as_u16() != 401 =>
        {
            (None, Some(r.messages()))
        }
        Err(r) => return Err(ctx.fail(r)),
    };
    let types: ListResponse<EventTypeOut> = ctx
        .api
        .get_as("/api/v1/event-type?limit=250")
        .await
        .map_err(|r| ctx.fail(r))?;
    let type_names: Vec<&str> = types.data.iter().map(|t| t.name.as_str()).collect();
    let rows = log.as_ref().map_or(&[][..], |l| &l.content[..]);
    let total = log.as_ref().map_or(0, |l| l.total);
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
                (total) (if total == 1 { " delivery" } else { " deliveries" })
                "; each row is one message to one endpoint, newest first."
            }
            table.log {
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Message" } th scope="col" { "Event type" }
                    th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Last response" } th scope="col" { "Attempts" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (view::time(&r.create_timestamp)) }
                            td { a href={ (base) "/" (seg(&r.msg_id)) } { code { (r.msg_id) } } }
                            td { code { (r.event_type) } }
                            td { (r.url) }
                            td { (status_badge(&view::wire(&r.status))) }
                            td { @if let Some(code) = r.last_response_status { (code) } @else { "—" } }
                            td { (r.retry_attempts) }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if log.as_ref().is_some_and(|l| !l.first) { a href=(link_to(page - 1)) { "← Newer" } }
                @if log.as_ref().is_some_and(|l| !l.last) { a href=(link_to(page + 1)) { "Older →" } }
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
    let m: MessageOut = ctx
        .api
        .get_as(&format!("{api}/msg/{}", seg(msg)))
        .await
        .map_err(|r| ctx.fail(r))?;
    let id = m.id.clone();
    let destinations: ListResponse<MessageEndpointOut> = ctx
        .api
        .get_as(&format!("{api}/msg/{}/endpoint?limit=250", seg(&id)))
        .await
        .map_err(|r| ctx.fail(r))?;
    let attempts: ListResponse<MessageAttemptOut> = ctx
        .api
        .get_as(&format!(
            "{api}/attempt/msg/{}?limit=250&with_content=false",
            seg(&id)
        ))
        .await
        .map_err(|r| ctx.fail(r))?;
    let base = ctx.app_base(app);
    let here = format!("{base}/message/{}", seg(&id));
    let payload = payload_text(&m);
    let body = html! {
        (app_nav(ctx, app))
        (facts(&[
            ("ID", html! { code { (id) } }),
            ("Event type", html! { code { (m.event_type) } }),
            ("Event id", html! { (m.event_id.as_deref().unwrap_or("")) }),
            ("Channels", html! { (m.channels.as_deref().unwrap_or_default().join(", ")) }),
            ("Created", html! { (view::time(&m.timestamp)) }),
        ]))
        (code_block("Payload", &payload))
        section aria-labelledby="destinations" {
            h2 #destinations { "Endpoints" }
            @let rows = &destinations.data;
            @if rows.is_empty() { p.empty { "No endpoint was to receive this message." } } @else {
                table {
                    thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Next attempt" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for d in rows {
                            tr {
                                td { a href={ (base) "/endpoint/" (seg(&d.id)) } { (d.url) } }
                                td { (status_badge(view::status_text(d.status))) }
                                td { (view::time(d.next_attempt.as_ref())) }
                                td { @if !ctx.read_only() {
                                    (action_button(ctx, &format!("{here}/endpoint/{}/resend", seg(&d.id)), "Resend", ""))
                                } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="attempts" {
            h2 #attempts { "Attempts" }
            @let rows = &attempts.data;
            @if rows.is_empty() { p.empty { "No attempt yet." } } @else {
                table {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Endpoint" } th scope="col" { "Result" } th scope="col" { "Response" } th scope="col" { "Duration" } th scope="col" { "Trigger" } } }
                    tbody {
                        @for a in rows {
                            tr {
                                td { a href={ (here) "/attempt/" (seg(&a.id)) } { (view::time(&a.timestamp)) } }
                                td { (a.url) }
                                td { (status_badge(view::status_text(a.status))) }
                                td { (response_code(a)) }
                                td { (a.response_duration_ms) " ms" }
                                td { (trigger(a)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page("Message", body))
}

fn response_code(a: &MessageAttemptOut) -> maud::Markup {
    html! {
        @if a.response_status_code == 0 { "no response" } @else { (a.response_status_code) }
    }
}

fn trigger(a: &MessageAttemptOut) -> &'static str {
    match a.trigger_type {
        MessageAttemptTriggerType::Manual => "manual",
        MessageAttemptTriggerType::Scheduled => "scheduled",
    }
}

/// The payload indented. It is the producer's own document, so it stays JSON as sent; a
/// `null` one (none is sent today) reads "(deleted)" as it always has.
fn payload_text(m: &MessageOut) -> String {
    let payload = view::document(&m.payload);
    if payload.is_null() {
        "(deleted)".to_owned()
    } else {
        view::pretty(&payload)
    }
}

async fn attempt(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let ctx = &scope.ctx;
    let app = param(&p, "app_id");
    let api = format!("/api/v1/app/{}/msg/{}", seg(app), seg(param(&p, "msg")));
    let a: MessageAttemptOut = ctx
        .api
        .get_as(&format!("{api}/attempt/{}", seg(param(&p, "attempt"))))
        .await
        .map_err(|r| ctx.fail(r))?;
    let base = ctx.app_base(app);
    let message = format!("{base}/message/{}", seg(&a.msg_id));
    // The body as sent is recorded only when shaping changed it; otherwise it is the payload.
    let sent_body = match &a.request_body {
        Some(body) => body.clone(),
        None => {
            let m: MessageOut = ctx.api.get_as(&api).await.map_err(|r| ctx.fail(r))?;
            payload_text(&m)
        }
    };
    // The API sends the headers as a JSON object (`Value` in its own type): header names are
    // the receiver's, not fields of ours. Only string values are headers.
    let headers: Vec<(&String, &str)> = a
        .request_headers
        .as_ref()
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    let response = a.response.as_str();
    let error = a.error.as_deref().unwrap_or("");
    let body = html! {
        (app_nav(ctx, app))
        (facts(&[
            ("ID", html! { code { (a.id) } }),
            ("Message", html! { a href=(message) { code { (a.msg_id) } } }),
            ("Endpoint", html! { a href={ (base) "/endpoint/" (seg(&a.endpoint_id)) } { code { (a.endpoint_id) } } }),
            ("URL", html! { (a.url) }),
            ("Result", status_badge(view::status_text(a.status))),
            ("Response status", response_code(&a)),
            ("Duration", html! { (a.response_duration_ms) " ms" }),
            ("Time", html! { (view::time(&a.timestamp)) }),
            ("Trigger", html! { (trigger(&a)) }),
        ]))
        @if !error.is_empty() {
            div.notice.error { p { "No response: " (error) } }
        }
        section aria-labelledby="request" {
            h2 #request { "Request as sent" }
            @if headers.is_empty() {
                p.hint { "The request headers were not recorded for this attempt." }
            } @else {
                table.headers {
                    caption.visually-hidden { "Request headers" }
                    thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                    tbody { @for (k, v) in &headers { tr { th scope="row" { code { (k) } } td.mono { (v) } } } }
                }
            }
            (code_block(if a.request_body.is_some() { "Request body" } else { "Request body: the message's payload, byte for byte (shown indented)" }, &sent_body))
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
