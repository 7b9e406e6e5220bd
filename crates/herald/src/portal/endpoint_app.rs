//! The parts of an application endpoint's page that operational endpoints lack: delivery
//! statistics, sending an example, recovering failed messages, and the latest messages.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Path;
use axum::http::Method;
use axum::routing::post;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::PortalState;
use super::client::seg;
use super::error::{PageResult, PortalError};
use super::scope::{Scope, ep_of};
use super::session::Form;
use super::view::{self, status_badge};
use crate::api::delivery::EndpointMessageOut;
use crate::api::endpoint::EndpointOut;
use crate::api::message::MessageOut;
use crate::api::pagination::ListResponse;

/// Routes only applications' endpoints have.
pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/{ep}/send-example", post(send_example))
        .route("/{ep}/recover", post(recover))
        .route("/{ep}/replay-missing", post(replay_missing))
}

/// The parts of an application endpoint's page that operational endpoints lack: statistics,
/// sending an example, recovering, and the latest messages.
pub async fn sections(
    scope: &Scope,
    e: &EndpointOut,
    here: &str,
    range: Option<&str>,
) -> Result<Markup, PortalError> {
    let ctx = &scope.ctx;
    let id = e.id.as_str();
    let chart =
        super::stats::section(ctx, &scope.api(&format!("/{}/stats", seg(id))), here, range).await?;
    let catalogue = scope.catalogue().await?;
    let recent: ListResponse<EndpointMessageOut> = ctx
        .api
        .get_as(&scope.api(&format!("/{}/msg?limit=10&with_content=false", seg(id))))
        .await
        .map_err(|r| ctx.fail(r))?;
    let recent = recent.data;
    let messages_base = format!(
        "{}/message",
        ctx.app_base(scope.app.as_deref().unwrap_or(""))
    );
    Ok(html! {
        (chart)
        @if !ctx.read_only() {
            div.columns {
                section aria-labelledby="example" {
                    h2 #example { "Send an example" }
                    form method="post" action=(format!("{here}/send-example")) {
                        (view::csrf(ctx))
                        label for="example-type" { "Event type" }
                        select #example-type name="eventType" required {
                            @for (name, _) in &catalogue { option value=(name) { (name) } }
                        }
                        button type="submit" { "Send example" }
                    }
                }
                section aria-labelledby="recover" {
                    h2 #recover { "Recover failed messages" }
                    form method="post" action=(format!("{here}/recover")) {
                        (view::csrf(ctx))
                        label for="recover-since" { "Resend what failed since (UTC)" }
                        input #recover-since type="datetime-local" name="since" required;
                        button type="submit" { "Recover" }
                    }
                }
                section aria-labelledby="replay-missing" {
                    h2 #replay-missing { "Replay missing messages" }
                    form method="post" action=(format!("{here}/replay-missing")) {
                        (view::csrf(ctx))
                        label for="replay-since" { "Send what this endpoint never got since (UTC)" }
                        input #replay-since type="datetime-local" name="since" required;
                        button type="submit" { "Replay" }
                    }
                }
            }
        }
        section aria-labelledby="recent" {
            h2 #recent { "Latest messages" }
            @if recent.is_empty() { p.empty { "Nothing sent to this endpoint yet." } } @else {
                table {
                    thead { tr { th scope="col" { "Message" } th scope="col" { "Event type" } th scope="col" { "Status" } th scope="col" { "Time" } } }
                    tbody {
                        @for m in &recent {
                            tr {
                                td { a href=(format!("{messages_base}/{}", seg(&m.id))) { code { (m.id) } } }
                                td { code { (m.event_type) } }
                                td { (status_badge(view::status_text(m.status))) }
                                td { (view::time(&m.timestamp)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct ExampleForm {
    #[serde(rename = "eventType", default)]
    pub event_type: String,
}

/// Sends an example through the API and goes to the message it made.
pub async fn send_example_to(scope: &Scope, ep: &str, event_type: &str) -> PageResult {
    let ctx = &scope.ctx;
    let path = scope.api(&format!("/{}/send-example", seg(ep)));
    let message: MessageOut = ctx
        .api
        .post_as(&path, &json!({"eventType": event_type}))
        .await
        .map_err(|r| ctx.fail(r))?;
    let app = scope.app.as_deref().unwrap_or("");
    let to = format!("{}/message/{}", ctx.app_base(app), seg(&message.id));
    Ok(ctx.redirect(
        &to,
        &format!("Example of {event_type} sent as {}.", message.id),
    ))
}

async fn send_example(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<ExampleForm>,
) -> PageResult {
    send_example_to(&scope, ep_of(&p), &form.event_type).await
}

#[derive(Deserialize)]
struct RecoverForm {
    #[serde(default)]
    since: String,
}

/// `datetime-local` input (taken as UTC) to RFC 3339; other text is passed on for the API to
/// refuse.
pub fn utc_input(value: &str) -> String {
    let v = value.trim();
    match v.len() {
        16 => format!("{v}:00Z"),
        19 => format!("{v}Z"),
        _ => v.to_owned(),
    }
}

async fn recover(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<RecoverForm>,
) -> PageResult {
    start_window_task(
        scope,
        &p,
        &form,
        "recover",
        "Failed messages since then are being sent again.",
    )
    .await
}

async fn replay_missing(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<RecoverForm>,
) -> PageResult {
    start_window_task(
        scope,
        &p,
        &form,
        "replay-missing",
        "Messages since then that this endpoint never got are being sent.",
    )
    .await
}

/// `recover` or `replay-missing` from a time: both start a background task over the window.
async fn start_window_task(
    scope: Scope,
    p: &HashMap<String, String>,
    form: &RecoverForm,
    operation: &str,
    done: &str,
) -> PageResult {
    let ep = ep_of(p);
    let path = scope.api(&format!("/{}/{operation}", seg(ep)));
    scope
        .ctx
        .api
        .send(
            Method::POST,
            &path,
            Some(&json!({"since": utc_input(&form.since)})),
        )
        .await
        .map_err(|r| scope.ctx.fail(r))?;
    Ok(scope
        .ctx
        .redirect(&scope.page(&format!("/{}", seg(ep))), done))
}
