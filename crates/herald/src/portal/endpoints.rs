//! Endpoint pages: list, create, detail, edit, enable and disable, delete with confirmation;
//! and for applications' endpoints, sending an example and recovering failed messages.
//!
//! The same handlers serve an application's endpoints (`…/app/{app_id}/endpoint`) and the
//! operator's operational webhook endpoints (`/admin/operational`): `scope::Scope` says which
//! API routes to call, and the API decides whether the session may.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Router, http::Method};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::PortalState;
use super::client::{query, seg};
use super::endpoint_form::{self, EndpointForm};
use super::error::PageResult;
use super::scope::{Scope, ep_of};
use super::session::Form;
use super::view::{self, Errors, action_button, facts};
use crate::api::endpoint::EndpointOut;
use crate::api::pagination::ListResponse;

/// Routes every kind of endpoint has.
pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/", get(list))
        .route("/new", get(new_form).post(create))
        .route("/{ep}", get(detail))
        .route("/{ep}/edit", get(edit_form).post(update))
        .route("/{ep}/enable", post(enable))
        .route("/{ep}/disable", post(disable))
        .route("/{ep}/delete", get(confirm_delete).post(delete))
        .merge(super::secret::router())
}

fn event_types_text(e: &EndpointOut) -> Markup {
    match &e.event_types {
        Some(types) if !types.is_empty() => html! {
            @for (i, t) in types.iter().enumerate() {
                @if i > 0 { ", " }
                code { (t) }
            }
        },
        _ => html! { "all" },
    }
}

fn enabled_badge(e: &EndpointOut) -> Markup {
    if e.disabled {
        html! { span.badge.bad { "disabled" } }
    } else {
        html! { span.badge.ok { "enabled" } }
    }
}

async fn list(scope: Scope, Query(q): Query<HashMap<String, String>>) -> PageResult {
    let iterator = q.get("iterator").map_or("", String::as_str);
    let path = scope.api(&query(&[("limit", "50"), ("iterator", iterator)]));
    let list: ListResponse<EndpointOut> = scope
        .ctx
        .api
        .get_as(&path)
        .await
        .map_err(|r| scope.ctx.fail(r))?;
    let rows = &list.data;
    let title = if scope.app.is_some() {
        "Endpoints"
    } else {
        "Operational webhooks"
    };
    let body = html! {
        (scope.app_nav())
        @if scope.app.is_none() {
            p { "Endpoints of yours that Herald tells about what happens to your customers' endpoints." }
        }
        @if !scope.ctx.read_only() {
            p { a.button.primary href=(scope.page("/new")) { "Add " (scope.noun()) } }
        }
        @if rows.is_empty() {
            p.empty { "No endpoints yet." }
        } @else {
            table {
                caption.visually-hidden { (title) }
                thead { tr { th scope="col" { "URL" } th scope="col" { "Event types" } th scope="col" { "Status" } th scope="col" { "Created" } } }
                tbody {
                    @for e in rows {
                        tr {
                            td {
                                a href=(scope.page(&format!("/{}", seg(&e.id)))) { (e.url) }
                                @if !e.description.is_empty() { div.hint { (e.description) } }
                            }
                            td { (event_types_text(e)) }
                            td { (enabled_badge(e)) }
                            td { (view::time(&e.created_at)) }
                        }
                    }
                }
            }
            (view::pager(&scope.page(""), &list, &[]))
        }
    };
    Ok(scope.ctx.page(title, body))
}

async fn new_form(scope: Scope) -> PageResult {
    let catalogue = scope.catalogue().await?;
    let form = EndpointForm::default();
    let body = html! {
        (scope.app_nav())
        (endpoint_form::render(&scope.ctx, &form, &Errors::default(), &catalogue, &scope.page("/new"), true))
    };
    Ok(scope.ctx.page(&format!("New {}", scope.noun()), body))
}

/// Shows the form again with the refusal's messages.
async fn refused_form(
    scope: &Scope,
    form: &EndpointForm,
    errors: &Errors,
    action: &str,
    creating: bool,
) -> PageResult {
    let catalogue = scope.catalogue().await?;
    let title = if creating {
        format!("New {}", scope.noun())
    } else {
        format!("Edit {}", scope.noun())
    };
    let body = html! {
        (scope.app_nav())
        (endpoint_form::render(&scope.ctx, form, errors, &catalogue, action, creating))
    };
    Ok(scope
        .ctx
        .page_with(StatusCode::UNPROCESSABLE_ENTITY, &title, body))
}

async fn create(scope: Scope, Form(form): Form<EndpointForm>) -> PageResult {
    let action = scope.page("/new");
    let body = match form.create_body() {
        Ok(body) => body,
        Err(errors) => return refused_form(&scope, &form, &errors, &action, true).await,
    };
    match scope
        .ctx
        .api
        .post_as::<EndpointOut>(&scope.api(""), &body)
        .await
    {
        Ok(created) => {
            let to = scope.page(&format!("/{}", seg(&created.id)));
            Ok(scope.ctx.redirect(&to, "Endpoint created."))
        }
        Err(r) if r.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let errors = Errors::from_refusal(&r, endpoint_form::FIELDS);
            refused_form(&scope, &form, &errors, &action, true).await
        }
        Err(r) => Err(scope.ctx.fail(r)),
    }
}

async fn edit_form(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let e = scope.endpoint(ep_of(&p)).await?;
    let catalogue = scope.catalogue().await?;
    let form = EndpointForm::from_endpoint(&e);
    let action = scope.page(&format!("/{}/edit", seg(&e.id)));
    let body = html! {
        (scope.app_nav())
        p { "Endpoint " code { (e.id) } }
        (endpoint_form::render(&scope.ctx, &form, &Errors::default(), &catalogue, &action, false))
    };
    Ok(scope.ctx.page(&format!("Edit {}", scope.noun()), body))
}

async fn update(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<EndpointForm>,
) -> PageResult {
    let ep = ep_of(&p);
    let action = scope.page(&format!("/{}/edit", seg(ep)));
    let body = match form.patch_body() {
        Ok(body) => body,
        Err(errors) => return refused_form(&scope, &form, &errors, &action, false).await,
    };
    let path = scope.api(&format!("/{}", seg(ep)));
    match scope.ctx.api.send(Method::PATCH, &path, Some(&body)).await {
        Ok(_) => Ok(scope
            .ctx
            .redirect(&scope.page(&format!("/{}", seg(ep))), "Changes saved.")),
        Err(r) if r.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let errors = Errors::from_refusal(&r, endpoint_form::FIELDS);
            refused_form(&scope, &form, &errors, &action, false).await
        }
        Err(r) => Err(scope.ctx.fail(r)),
    }
}

async fn set_disabled(scope: Scope, ep: &str, disabled: bool) -> PageResult {
    let path = scope.api(&format!("/{}", seg(ep)));
    scope
        .ctx
        .api
        .send(Method::PATCH, &path, Some(&json!({"disabled": disabled})))
        .await
        .map_err(|r| scope.ctx.fail(r))?;
    let msg = if disabled {
        "Endpoint disabled: it receives nothing until enabled."
    } else {
        "Endpoint enabled."
    };
    Ok(scope
        .ctx
        .redirect(&scope.page(&format!("/{}", seg(ep))), msg))
}

async fn enable(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    set_disabled(scope, ep_of(&p), false).await
}

async fn disable(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    set_disabled(scope, ep_of(&p), true).await
}

async fn confirm_delete(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let e = scope.endpoint(ep_of(&p)).await?;
    let action = scope.page(&format!("/{}/delete", seg(&e.id)));
    let body = html! {
        (scope.app_nav())
        div.notice.warn {
            p { "Delete the endpoint " strong { (e.url) } "? It stops receiving messages at once, "
                "and its settings and secret are gone. This cannot be undone." }
        }
        form.inline method="post" action=(action) {
            (view::csrf(&scope.ctx))
            button.danger type="submit" { "Delete endpoint" }
        }
        " "
        a.button href=(scope.page(&format!("/{}", seg(&e.id)))) { "Cancel" }
    };
    Ok(scope.ctx.page("Delete endpoint?", body))
}

async fn delete(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let path = scope.api(&format!("/{}", seg(ep_of(&p))));
    scope
        .ctx
        .api
        .send(Method::DELETE, &path, None)
        .await
        .map_err(|r| scope.ctx.fail(r))?;
    Ok(scope.ctx.redirect(&scope.page(""), "Endpoint deleted."))
}

#[derive(Deserialize)]
struct DetailQuery {
    #[serde(default)]
    range: Option<String>,
}

async fn detail(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<DetailQuery>,
) -> PageResult {
    let e = scope.endpoint(ep_of(&p)).await?;
    let id = e.id.clone();
    let here = scope.page(&format!("/{}", seg(&id)));
    let disabled = e.disabled;
    let d = &e.delivery;
    let sig = d.signature.as_ref();
    let or = |value: Option<String>, default: &str| value.unwrap_or_else(|| default.to_owned());
    let joined =
        |items: Option<Vec<String>>, default: &str| or(items.map(|i| i.join(", ")), default);
    let polling = e.kind == crate::api::endpoint::kind::EndpointType::Polling;
    let settings = facts(&[
        ("ID", html! { code { (id) } }),
        (
            "Type",
            html! { @if polling { "polling (its consumers read it)" } @else { "http" } },
        ),
        ("UID", html! { (e.uid.as_deref().unwrap_or("")) }),
        ("Status", enabled_badge(&e)),
        ("Event types", event_types_text(&e)),
        ("Channels", html! { (joined(e.channels.clone(), "all")) }),
        (
            "Signature",
            html! {
                code { (sig.map(|s| view::wire(&s.scheme)).unwrap_or_default()) }
                @if let Some(header) = sig.and_then(|s| s.header.as_deref()).filter(|h| !h.is_empty()) { " in " code { (header) } }
            },
        ),
        (
            "Encoding",
            html! { (or(d.encoding.map(|x| view::wire(&x)), "json")) },
        ),
        (
            "Envelope",
            html! { (or(d.envelope.map(|x| view::wire(&x)), "raw")) },
        ),
        (
            "Retry schedule (s)",
            html! { (joined(d.retry_schedule.as_ref().map(|r| r.iter().map(u32::to_string).collect()), "the server's")) },
        ),
        (
            "Timeout (s)",
            html! { (or(d.timeout_seconds.map(|n| n.to_string()), "the server's")) },
        ),
        (
            "Concurrency",
            html! { (or(d.max_concurrency.map(|n| n.to_string()), "10")) },
        ),
        (
            "Ordering",
            html! { (or(d.ordering.map(|x| view::wire(&x)), "unordered")) },
        ),
        (
            "Rate limit (per s)",
            html! { (or(e.throttle_rate.map(|n| n.to_string()), "none")) },
        ),
        (
            // The filter is the customer's own condition document: shown as the JSON it is.
            "Filter",
            html! { @match &d.filter { Some(f) if !f.is_null() => { code { (f.to_string()) } }, _ => { "none" } } },
        ),
        ("Created", html! { (view::time(&e.created_at)) }),
        ("Updated", html! { (view::time(&e.updated_at)) }),
    ]);
    let actions = html! {
        @if !scope.ctx.read_only() {
            div.actions {
                a.button href=(format!("{here}/edit")) { "Edit" }
                a.button href=(format!("{here}/secret")) { "Signing secret" }
                @if scope.app.is_some() {
                    a.button href=(format!("{here}/transformation")) { "Transformation" }
                }
                @if disabled {
                    (action_button(&scope.ctx, &format!("{here}/enable"), "Enable", ""))
                } @else {
                    (action_button(&scope.ctx, &format!("{here}/disable"), "Disable", ""))
                }
                a.button.danger href=(format!("{here}/delete")) { "Delete" }
            }
        }
    };
    let extra = match &scope.app {
        Some(_) => super::endpoint_app::sections(&scope, &e, &here, q.range.as_deref()).await?,
        None => html! {},
    };
    let body = html! {
        (scope.app_nav())
        p.lead { (e.url) @if !e.description.is_empty() { " — " (e.description) } }
        (actions)
        @if polling { (polling_help(&e)) }
        (extra)
        section aria-labelledby="settings" {
            h2 #settings { "Settings" }
            (settings)
        }
    };
    Ok(scope.ctx.page("Endpoint", body))
}

/// How to consume a polling endpoint: its poller URL, a consumer's loop, `herald listen --poll`.
fn polling_help(e: &EndpointOut) -> Markup {
    html! {
        section aria-labelledby="polling" {
            h2 #polling { "Consuming this polling endpoint" }
            p { "Herald POSTs nothing: its messages wait here for your consumers. Poll URL:" }
            pre.mono { (e.url) }
            p { "Each consumer picks a name; Herald keeps its position. Send the "
                code { "iterator" } " of each answer with the next request to acknowledge "
                "what you processed (add " code { "wait=30" } " to wait for new messages):" }
            pre.mono { "curl -H \"Authorization: Bearer $TOKEN\" \\\n  \"" (e.url)
                "/consumer/my-app?wait=30&iterator=$ITERATOR\"" }
            p { "Or pass them on to an application on your machine:" }
            pre.mono { "herald listen --poll " (e.url) " --forward-to http://127.0.0.1:3000/webhooks" }
            p.hint { "Each message carries webhook-id, webhook-timestamp and webhook-signature "
                "headers, signed with the endpoint's secret over its payload as compact JSON." }
        }
    }
}
