//! An endpoint's signing secret: shown on request, copied, rotated with a grace period.
//!
//! The secret is put into the page only when asked for (`?reveal=1`), so it is not in every
//! rendering of the endpoint; read-only sessions get the API's refusal.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PortalState;
use super::client::seg;
use super::error::PageResult;
use super::scope::Scope;
use super::session::Form;
use super::view;
use crate::api::endpoint::EndpointSecretOut;

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/{ep}/secret", get(show))
        .route("/{ep}/secret/rotate", post(rotate))
}

#[derive(Deserialize)]
struct ShowQuery {
    #[serde(default)]
    reveal: Option<String>,
}

async fn show(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let ep = p.get("ep").map_or("", String::as_str);
    let here = scope.page(&format!("/{}", seg(ep)));
    let ctx = &scope.ctx;
    let reveal = q.reveal.is_some();
    // Read even when not revealing: a session that may not read it learns so at once.
    let secret: EndpointSecretOut = ctx
        .api
        .get_as(&scope.api(&format!("/{}/secret", seg(ep))))
        .await
        .map_err(|r| ctx.fail(r))?;
    let key = secret.key.as_str();
    let public_key = secret.public_key.as_deref().unwrap_or("");
    let body = html! {
        (scope.app_nav())
        p { "Receivers use this secret to check that a delivery comes from us. Scheme: "
            code { (view::wire(&secret.scheme)) } "." }
        @if reveal {
            div.secret {
                label for="secret-value" { "Secret" }
                output #secret-value.mono { (key) }
                button type="button" data-copy="secret-value" { "Copy" }
                span.copied role="status" aria-live="polite" {}
            }
            @if !public_key.is_empty() {
                div.secret {
                    label for="public-key" { "Public key (for receivers)" }
                    output #public-key.mono { (public_key) }
                    button type="button" data-copy="public-key" { "Copy" }
                }
            }
            p { a href=(format!("{here}/secret")) { "Hide" } }
        } @else {
            p.secret { span.mono aria-label="hidden" { "••••••••••••••••" } " "
                a.button href=(format!("{here}/secret?reveal=1")) { "Reveal" } }
        }
        section aria-labelledby="rotate" {
            h2 #rotate { "Rotate" }
            p { "A new secret becomes current. During the grace period deliveries carry both "
                "signatures (Standard Webhooks), or keep the old one (single-value schemes), so "
                "receivers can switch over without losing deliveries." }
            form method="post" action=(format!("{here}/secret/rotate")) {
                (view::csrf(ctx))
                div.field {
                    label for="grace" { "Grace period (seconds)" }
                    input #grace type="number" name="gracePeriodSeconds" min="0" max="604800" value="86400"
                        aria-describedby="grace-d";
                    div.hint #grace-d { "0 to 604800 (7 days); 86400 is one day." }
                }
                div.field {
                    label for="new-key" { "New secret" }
                    input #new-key type="text" name="key" autocomplete="off" aria-describedby="new-key-d";
                    div.hint #new-key-d { "Empty: one is generated." }
                }
                button.primary type="submit" { "Rotate secret" }
            }
        }
        p { a href=(here) { "Back to the endpoint" } }
    };
    Ok(ctx.page("Signing secret", body))
}

#[derive(Deserialize)]
struct RotateForm {
    #[serde(default)]
    key: String,
    #[serde(default, rename = "gracePeriodSeconds")]
    grace: String,
}

async fn rotate(
    scope: Scope,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<RotateForm>,
) -> PageResult {
    let ep = p.get("ep").map_or("", String::as_str);
    let mut body = Map::new();
    if !form.key.trim().is_empty() {
        body.insert("key".into(), json!(form.key.trim()));
    }
    let grace = form.grace.trim();
    if !grace.is_empty() {
        body.insert(
            "gracePeriodSeconds".into(),
            grace
                .parse::<i64>()
                .map_or_else(|_| json!(grace), |n| json!(n)),
        );
    }
    scope
        .ctx
        .api
        .send(
            axum::http::Method::POST,
            &scope.api(&format!("/{}/secret/rotate", seg(ep))),
            Some(&Value::Object(body)),
        )
        .await
        .map_err(|r| scope.ctx.fail(r))?;
    let to = scope.page(&format!("/{}/secret?reveal=1", seg(ep)));
    Ok(scope.ctx.redirect(
        &to,
        "Secret rotated. The previous one stays valid for the grace period.",
    ))
}
