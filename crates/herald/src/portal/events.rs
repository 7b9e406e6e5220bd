//! The event catalogue: every event type with its description, schema and example, and a form
//! that sends the example to one of the application's endpoints.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::PortalState;
use super::endpoint_app::send_example_to;
use super::error::PageResult;
use super::scope::{Scope, app_nav};
use super::session::Form;
use super::view::{self, code_block};
use crate::api::endpoint::EndpointOut;
use crate::api::event_type::EventTypeOut;
use crate::api::pagination::ListResponse;

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/event-type", get(catalogue))
        .route("/event-type/send-example", post(send_example))
}

/// The newest schema version and its first example, as `send-example` chooses it. The schemas
/// are JSON Schema documents the operator wrote (a `Value` in the API's own type too), so
/// they are read as JSON here.
fn newest(schemas: Option<&Value>) -> Option<(&String, &Value)> {
    schemas?
        .as_object()?
        .iter()
        .max_by_key(|(version, _)| version.parse::<u64>().unwrap_or(0))
}

/// The first of a schema's `examples` (a JSON Schema keyword).
fn first_example(schema: &Value) -> Option<&Value> {
    schema.get("examples")?.as_array()?.first()
}

async fn catalogue(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let ctx = &scope.ctx;
    let app = p.get("app_id").map_or("", String::as_str);
    let types: ListResponse<EventTypeOut> = ctx
        .api
        .get_as("/api/v1/event-type?limit=250&with_content=true")
        .await
        .map_err(|r| ctx.fail(r))?;
    let types = types.data;
    let endpoints: ListResponse<EndpointOut> = ctx
        .api
        .get_as(&scope.api("?limit=250"))
        .await
        .map_err(|r| ctx.fail(r))?;
    let endpoints: Vec<(String, String)> = endpoints
        .data
        .into_iter()
        .filter(|e| !e.disabled)
        .map(|e| (e.id, e.url))
        .collect();
    let action = format!("{}/event-type/send-example", ctx.app_base(app));
    let body = html! {
        (app_nav(ctx, app))
        p { "The events this service sends. An endpoint receives the ones it subscribes to." }
        @if types.is_empty() { p.empty { "No event types are defined yet." } }
        @for t in &types {
            @let name = t.name.as_str();
            @let anchor = format!("type-{}", name.replace('.', "-"));
            @let schema = newest(t.schemas.as_ref());
            @let example = schema.and_then(|(_, sc)| first_example(sc));
            article.event-type aria-labelledby=(anchor) {
                h2 id=(anchor) { code { (name) }
                    @if t.deprecated { " " span.badge.wait { "deprecated" } } }
                @if !t.description.is_empty() { p { (t.description) } }
                @if let Some((version, sc)) = schema {
                    details {
                        summary { "Schema (version " (version) ")" }
                        (code_block("JSON Schema", &view::pretty(sc)))
                    }
                }
                @if let Some(example) = example {
                    (code_block("Example payload", &view::pretty(example)))
                    @if !ctx.read_only() && !endpoints.is_empty() {
                        form.inline-form method="post" action=(action) {
                            (view::csrf(ctx))
                            input type="hidden" name="eventType" value=(name);
                            label for={ "ep-" (anchor) } { "Send this example to" }
                            select id={ "ep-" (anchor) } name="endpoint" {
                                @for (id, url) in &endpoints { option value=(id) { (url) } }
                            }
                            button type="submit" { "Send example" }
                        }
                    }
                } @else {
                    p.hint { "No example." }
                }
            }
        }
    };
    Ok(ctx.page("Event types", body))
}

#[derive(Deserialize)]
struct SendForm {
    #[serde(default, rename = "eventType")]
    event_type: String,
    #[serde(default)]
    endpoint: String,
}

async fn send_example(scope: Scope, Form(form): Form<SendForm>) -> PageResult {
    send_example_to(&scope, &form.endpoint, &form.event_type).await
}
