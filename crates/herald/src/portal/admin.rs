//! The operator console's own pages: sign-in and the dashboard (health and queue figures),
//! applications, portal links for customers, and API keys.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PortalState;
use super::client::{query, seg};
use super::error::{PageResult, PortalError};
use super::scope::app_nav;
use super::session::{Ctx, Form, pre_session};
use super::view::{self, Errors, field};
use crate::api::api_key::{ApiKeyKind, ApiKeyOut, AppPortalAccessOut};
use crate::api::application::ApplicationOut;
use crate::api::pagination::ListResponse;
use crate::api::queue::QueueOut;

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/admin/app", get(apps).post(create_app))
        .route("/admin/api-key", get(api_keys))
        .route(
            "/admin/api-key/{id}/delete",
            get(confirm_revoke).post(revoke),
        )
}

/// Operator-only pages of one application.
pub fn app_router() -> Router<PortalState> {
    Router::new().route("/portal-link", get(portal_link_form).post(portal_link))
}

/// `GET /admin`: the dashboard, or the sign-in form without a session.
pub async fn home(
    State(state): State<PortalState>,
    headers: HeaderMap,
    ctx: Result<Ctx, PortalError>,
) -> PageResult {
    let Ok(ctx) = ctx else {
        let (csrf, set) = pre_session(&state, &headers);
        let mut response = view::admin_sign_in(&csrf, None).into_response();
        if let Some(set) = set {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, set);
        }
        return Ok(response);
    };
    let healthy = ctx.api.status("/api/v1/health").await == StatusCode::NO_CONTENT;
    let queue: QueueOut = ctx
        .api
        .get_as("/api/v1/queue")
        .await
        .map_err(|r| ctx.fail(r))?;
    let figure = |label: &str, value: u64| -> Markup {
        html! { div.figure { span.value { (value) } span.label { (label) } } }
    };
    let body = html! {
        section aria-labelledby="health" {
            h2 #health { "Health" }
            p { "Database: " @if healthy { span.badge.ok { "answering" } } @else { span.badge.bad { "not answering" } } }
        }
        section aria-labelledby="queue" {
            h2 #queue { "Delivery queue" }
            div.figures {
                (figure("due now", queue.due))
                (figure("waiting for a retry", queue.scheduled))
                (figure("in flight", queue.sending))
                (figure("disabled endpoints", queue.disabled_endpoints))
            }
            table {
                caption { "Database connections on this node" }
                thead { tr { th scope="col" { "Pool" } th scope="col" { "Open" } th scope="col" { "Idle" } th scope="col" { "Maximum" } } }
                tbody { @for p in &queue.pools {
                    tr { td { (p.name) } td { (p.size) } td { (p.idle) } td { (p.max) } }
                } }
            }
        }
        p { "Prometheus metrics are served at " code { "/metrics" } "." }
    };
    Ok(ctx.page("Dashboard", body))
}

#[derive(Debug, Default, Deserialize)]
struct AppForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
}

async fn apps_page(ctx: &Ctx, iterator: &str, form: &AppForm, errors: &Errors) -> PageResult {
    let list: ListResponse<ApplicationOut> = ctx
        .api
        .get_as(&format!(
            "/api/v1/app{}",
            query(&[("limit", "50"), ("iterator", iterator)])
        ))
        .await
        .map_err(|r| ctx.fail(r))?;
    let rows = &list.data;
    let body = html! {
        @if rows.is_empty() { p.empty { "No applications yet." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "UID" } th scope="col" { "ID" } th scope="col" { "Created" } } }
                tbody { @for a in rows { tr {
                    td { a href={ "/admin/app/" (seg(&a.id)) "/endpoint" } { (a.name) } }
                    td { (a.uid.as_deref().unwrap_or("")) }
                    td { code { (a.id) } }
                    td { (view::time(&a.created_at)) }
                } } }
            }
            (view::pager("/admin/app", &list, &[]))
        }
        @if !ctx.read_only() {
            section aria-labelledby="new-app" {
                h2 #new-app { "New application" }
                (errors.summary())
                form method="post" action="/admin/app" {
                    (view::csrf(ctx))
                    (field(errors, "name", "Name", "For people.", |id, d| html! {
                        input id=(id) name="name" required value=(form.name) aria-describedby=(d);
                    }))
                    (field(errors, "uid", "UID", "Optional: your own id for it (letters, digits, - _ .).", |id, d| html! {
                        input id=(id) name="uid" pattern="[a-zA-Z0-9\\-_.]+" value=(form.uid) aria-describedby=(d);
                    }))
                    button.primary type="submit" { "Create application" }
                }
            }
        }
    };
    Ok(ctx.form_page(errors, "Applications", body))
}

async fn apps(ctx: Ctx, Query(q): Query<HashMap<String, String>>) -> PageResult {
    let iterator = q.get("iterator").map_or("", String::as_str);
    apps_page(&ctx, iterator, &AppForm::default(), &Errors::default()).await
}

async fn create_app(ctx: Ctx, Form(form): Form<AppForm>) -> PageResult {
    let mut body = Map::new();
    body.insert("name".into(), json!(form.name.trim()));
    if !form.uid.trim().is_empty() {
        body.insert("uid".into(), json!(form.uid.trim()));
    }
    match ctx
        .api
        .post_as::<ApplicationOut>("/api/v1/app", &Value::Object(body))
        .await
    {
        Ok(app) => Ok(ctx.redirect(
            &format!("/admin/app/{}/endpoint", seg(&app.id)),
            "Application created.",
        )),
        Err(r)
            if r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::CONFLICT =>
        {
            let errors = Errors::from_refusal(&r, &["name", "uid"]);
            apps_page(&ctx, "", &form, &errors).await
        }
        Err(r) => Err(ctx.fail(r)),
    }
}

async fn portal_link_form(ctx: Ctx, Path(p): Path<HashMap<String, String>>) -> PageResult {
    let app = p.get("app_id").map_or("", String::as_str);
    let a: ApplicationOut = ctx
        .api
        .get_as(&format!("/api/v1/app/{}", seg(app)))
        .await
        .map_err(|r| ctx.fail(r))?;
    let body = html! {
        (app_nav(&ctx, app))
        p { "A link that lets " strong { (a.name) } " manage their own endpoints, see their "
            "messages and rotate their secrets in the portal, and nothing of any other application." }
        form method="post" action={ (ctx.app_base(app)) "/portal-link" } {
            (view::csrf(&ctx))
            div.field {
                label for="expiry" { "Valid for (seconds)" }
                input #expiry type="number" name="expiry" min="3600" max="604800" value="604800" aria-describedby="expiry-d";
                div.hint #expiry-d { "3600 (one hour) to 604800 (7 days)." }
            }
            div.field.check {
                input #read-only type="checkbox" name="readOnly";
                label for="read-only" { "Read-only (can look, not change)" }
            }
            button.primary type="submit" { "Create portal link" }
        }
    };
    Ok(ctx.page("Portal link", body))
}

#[derive(Deserialize)]
struct PortalLinkForm {
    #[serde(default)]
    expiry: String,
    #[serde(default, rename = "readOnly")]
    read_only: Option<String>,
}

async fn portal_link(
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    Form(form): Form<PortalLinkForm>,
) -> PageResult {
    let app = p.get("app_id").map_or("", String::as_str);
    let mut body = Map::new();
    let expiry = form.expiry.trim();
    if !expiry.is_empty() {
        body.insert(
            "expiry".into(),
            expiry
                .parse::<i64>()
                .map_or_else(|_| json!(expiry), |n| json!(n)),
        );
    }
    body.insert("readOnly".into(), json!(form.read_only.is_some()));
    let out: AppPortalAccessOut = ctx
        .api
        .post_as(
            &format!("/api/v1/auth/app-portal-access/{}", seg(app)),
            &Value::Object(body),
        )
        .await
        .map_err(|r| ctx.fail(r))?;
    let body = html! {
        (app_nav(&ctx, app))
        p { "Give this link to the customer. It is shown only now." }
        div.secret {
            label for="portal-url" { "Portal link" }
            output #portal-url.mono { (out.url) }
            button type="button" data-copy="portal-url" { "Copy" }
            span.copied role="status" aria-live="polite" {}
        }
    };
    Ok(ctx.page("Portal link", body))
}

async fn keys_page(ctx: &Ctx) -> PageResult {
    let list: ListResponse<ApiKeyOut> = ctx
        .api
        .get_as("/api/v1/api-key?limit=250")
        .await
        .map_err(|r| ctx.fail(r))?;
    let rows = &list.data;
    let kind = |k: &ApiKeyOut| match (k.kind, k.app_id.is_some()) {
        (ApiKeyKind::Portal, true) => "portal token",
        (ApiKeyKind::Portal, false) => "console session",
        (ApiKeyKind::Api, _) => "API key",
        (ApiKeyKind::Integration, _) => "integration key",
    };
    let body = html! {
        p { "Every credential that reaches the API: API keys, customers' portal tokens and console "
            "sessions. Revoking one stops it at once, and ends the console sessions signed in "
            "with it." }
        @if rows.is_empty() { p.empty { "No keys." } } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Role" } th scope="col" { "Application" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody { @for k in rows { tr {
                    td { (k.name) div.hint { code { (k.id) } } }
                    td { (kind(k)) @if let Some(parent) = &k.parent_id { div.hint { "signed in with " code { (parent) } } } }
                    td { (view::wire(&k.role)) }
                    td { @if let Some(app) = &k.app_id { a href={ "/admin/app/" (seg(app)) "/endpoint" } { code { (app) } } } }
                    td { (view::time(&k.created_at)) }
                    td { @if let Some(at) = &k.expires_at { (view::time(at)) } @else { "never" } }
                    td { @if !ctx.read_only() { a.button.danger href={ "/admin/api-key/" (seg(&k.id)) "/delete" } { "Revoke" } } }
                } } }
            }
        }
        section aria-labelledby="new-key" {
            h2 #new-key { "New API keys" }
            p { "A console session cannot create API keys: a key it made would outlive the session "
                "and the revocation of the key it was signed in with. Create them with "
                code { "POST /api/v1/api-key" } " and an admin API key or the admin token." }
        }
    };
    Ok(ctx.page("API keys", body))
}

async fn api_keys(ctx: Ctx) -> PageResult {
    keys_page(&ctx).await
}

async fn confirm_revoke(ctx: Ctx, Path(id): Path<String>) -> PageResult {
    let k: ApiKeyOut = ctx
        .api
        .get_as(&format!("/api/v1/api-key/{}", seg(&id)))
        .await
        .map_err(|r| ctx.fail(r))?;
    let body = html! {
        div.notice.warn { p { "Revoke the key " strong { (k.name) } " (" code { (k.id) } ")? "
            "Everything using it stops working at once." } }
        form.inline method="post" action={ "/admin/api-key/" (seg(&id)) "/delete" } {
            (view::csrf(&ctx))
            button.danger type="submit" { "Revoke key" }
        }
        " " a.button href="/admin/api-key" { "Cancel" }
    };
    Ok(ctx.page("Revoke API key?", body))
}

async fn revoke(ctx: Ctx, Path(id): Path<String>) -> PageResult {
    ctx.api
        .send(
            axum::http::Method::DELETE,
            &format!("/api/v1/api-key/{}", seg(&id)),
            None,
        )
        .await
        .map_err(|r| ctx.fail(r))?;
    Ok(ctx.redirect("/admin/api-key", "Key revoked."))
}
