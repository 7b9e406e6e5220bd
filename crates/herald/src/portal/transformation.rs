//! An application endpoint's transformation: edit the code, turn it on or off, set its
//! variables, and simulate it over a payload. Everything goes through the API's routes, so
//! the page has the API's checks (a syntax error names its line and column) and nothing else.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PortalState;
use super::client::seg;
use super::error::PageResult;
use super::scope::{Scope, ep_of};
use super::session::Form;
use super::view::{self, Errors};
use crate::api::endpoint::{EndpointTransformationOut, EndpointTransformationSimulateOut};

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/{ep}/transformation", get(show).post(save))
        .route("/{ep}/transformation/simulate", post(simulate))
}

/// The form's fields as the browser sends them.
#[derive(Debug, Default, Deserialize)]
struct TransformationForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    enabled: Option<String>,
    /// `NAME=value` lines; empty keeps the saved variables unless `clear_variables` is set.
    #[serde(default)]
    variables: String,
    #[serde(default)]
    clear_variables: Option<String>,
    #[serde(default, rename = "eventType")]
    event_type: String,
    #[serde(default)]
    payload: String,
}

const FIELDS: &[&str] = &["code", "enabled", "variables", "eventType", "payload"];

const EXAMPLE: &str = "function handler(webhook) {\n  // webhook: method, url, eventType, payload, headers, variables, cancel\n  return webhook;\n}\n";

async fn show(scope: Scope, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let ep = ep_of(&p).to_owned();
    let saved = saved(&scope, &ep).await?;
    let form = TransformationForm {
        code: saved.code.clone().unwrap_or_else(|| EXAMPLE.to_owned()),
        enabled: saved.enabled.then(|| "on".to_owned()),
        event_type: "user.created".to_owned(),
        payload: "{\"id\": 1}".to_owned(),
        ..TransformationForm::default()
    };
    Ok(page(&scope, &ep, &saved, &form, &Errors::default(), None))
}

async fn save(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<TransformationForm>,
) -> PageResult {
    let ep = ep_of(&p).to_owned();
    let mut errors = Errors::default();
    let mut body = Map::new();
    body.insert("code".into(), json!(form.code));
    body.insert("enabled".into(), json!(form.enabled.is_some()));
    if form.clear_variables.is_some() {
        body.insert("variables".into(), Value::Null);
    } else if !form.variables.trim().is_empty() {
        match parse_variables(&form.variables) {
            Ok(variables) => {
                body.insert("variables".into(), json!(variables));
            }
            Err(e) => errors.add("variables", e),
        }
    }
    if errors.is_empty() {
        let path = scope.api(&format!("/{}/transformation", seg(&ep)));
        match scope
            .ctx
            .api
            .send(Method::PATCH, &path, Some(&Value::Object(body)))
            .await
        {
            Ok(_) => {
                let to = scope.page(&format!("/{}/transformation", seg(&ep)));
                return Ok(scope.ctx.redirect(&to, "Transformation saved."));
            }
            Err(r) if r.status == StatusCode::UNPROCESSABLE_ENTITY => {
                errors = Errors::from_refusal(&r, FIELDS);
            }
            Err(r) => return Err(scope.ctx.fail(r)),
        }
    }
    let saved = saved(&scope, &ep).await?;
    Ok(page(&scope, &ep, &saved, &form, &errors, None))
}

async fn simulate(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<TransformationForm>,
) -> PageResult {
    let ep = ep_of(&p).to_owned();
    let saved = saved(&scope, &ep).await?;
    let mut errors = Errors::default();
    let payload: Value = match serde_json::from_str(&form.payload) {
        Ok(payload) => payload,
        Err(e) => {
            errors.add("payload", format!("not JSON: {e}"));
            Value::Null
        }
    };
    let mut result = None;
    if errors.is_empty() {
        let path = scope.api(&format!("/{}/transformation/simulate", seg(&ep)));
        let body = json!({"code": form.code, "eventType": form.event_type, "payload": payload});
        match scope
            .ctx
            .api
            .post_as::<EndpointTransformationSimulateOut>(&path, &body)
            .await
        {
            Ok(out) => result = Some(out),
            Err(r) if r.status == StatusCode::UNPROCESSABLE_ENTITY => {
                errors = Errors::from_refusal(&r, FIELDS);
            }
            Err(r) => return Err(scope.ctx.fail(r)),
        }
    }
    Ok(page(&scope, &ep, &saved, &form, &errors, result.as_ref()))
}

async fn saved(
    scope: &Scope,
    ep: &str,
) -> Result<EndpointTransformationOut, super::error::PortalError> {
    scope
        .ctx
        .api
        .get_as(&scope.api(&format!("/{}/transformation", seg(ep))))
        .await
        .map_err(|r| scope.ctx.fail(r))
}

/// `NAME=value` lines into a map; blank lines are skipped.
fn parse_variables(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
            None => Err(format!("{line:?} is not NAME=value")),
        })
        .collect()
}

fn page(
    scope: &Scope,
    ep: &str,
    saved: &EndpointTransformationOut,
    form: &TransformationForm,
    errors: &Errors,
    result: Option<&EndpointTransformationSimulateOut>,
) -> axum::response::Response {
    let ctx = &scope.ctx;
    let here = scope.page(&format!("/{}", seg(ep)));
    let action = format!("{here}/transformation");
    let read_only = ctx.read_only();
    let names: Vec<&str> = saved.variables.keys().map(String::as_str).collect();
    let body = html! {
        (scope.app_nav())
        p { "A transformation is JavaScript whose " code { "handler(webhook)" } " runs before "
            "each delivery to this endpoint. It may change " code { "payload" } ", "
            code { "url" } ", " code { "method" } " (POST or PUT), add " code { "headers" }
            ", or set " code { "cancel = true" } " to skip the delivery. It runs in a sandbox "
            "without network, files or timers, and is stopped at its time and memory "
            "limits (a stopped run fails the attempt, which is retried)." }
        p { "Status: " strong { (if saved.enabled { "enabled" } else { "off" }) }
            @if let Some(at) = &saved.updated_at { " — last changed " (view::time(at)) } }
        (errors.summary())
        form method="post" action=(action) {
            (view::csrf(ctx))
            (view::field(errors, "code", "Code", "function handler(webhook) { … return webhook; }", |id, d| html! {
                textarea id=(id) name="code" rows="14" spellcheck="false" aria-describedby=(d) readonly[read_only] { (form.code) }
            }))
            div.field {
                label { input type="checkbox" name="enabled" checked[form.enabled.is_some()] disabled[read_only]; " Run it for deliveries" }
            }
            (view::field(errors, "variables", "Variables", &format!(
                "NAME=value lines, read as webhook.variables.NAME; stored encrypted. Empty keeps the saved ones ({}).",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }), |id, d| html! {
                textarea id=(id) name="variables" rows="3" spellcheck="false" autocomplete="off" aria-describedby=(d) readonly[read_only] { (form.variables) }
            }))
            div.field {
                label { input type="checkbox" name="clear_variables" disabled[read_only]; " Remove every variable" }
            }
            @if !read_only {
                button.primary type="submit" { "Save" }
            }
            h2 #simulate { "Simulate" }
            p { "Runs the code above over a payload as a delivery to this endpoint would, and "
                "shows what would be sent. Nothing is sent." }
            (view::field(errors, "eventType", "Event type", "", |id, d| html! {
                input id=(id) name="eventType" value=(form.event_type) aria-describedby=(d);
            }))
            (view::field(errors, "payload", "Payload (JSON)", "", |id, d| html! {
                textarea id=(id) name="payload" rows="5" spellcheck="false" aria-describedby=(d) { (form.payload) }
            }))
            button type="submit" formaction=(format!("{action}/simulate")) { "Simulate" }
        }
        @if let Some(out) = result {
            section aria-labelledby="result" {
                h2 #result { "Would send" }
                @if out.cancel {
                    p { "Nothing: the handler canceled this delivery." }
                } @else {
                    (view::facts(&[
                        ("Request", html! { code { (out.method) " " (out.url) } }),
                        ("Content-Type", html! { code { (out.content_type) } }),
                        ("Added headers", html! { @if out.headers.is_empty() { "none" } @else { @for (k, v) in &out.headers { code { (k) ": " (v) } " " } } }),
                    ]))
                    (view::code_block("Body", &out.payload))
                }
            }
        }
        p { a href=(here) { "Back to the endpoint" } }
    };
    ctx.page("Transformation", body)
}
