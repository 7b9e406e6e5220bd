//! The layout every page shares and the small pieces pages are built from.
//!
//! Accessibility rules kept here: one `h1` per page, a skip link, a labelled navigation, every
//! input with a `label`, errors announced (`role="alert"`) and tied to their field with
//! `aria-describedby`, status shown as text (never by colour alone).

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::api::pagination::ListResponse;
use crate::api::status::MessageStatus;

use super::area::Area;
use super::client::{Refusal, seg};

/// What the signed-in layout needs of a page's context (`session::Ctx` is the one there is).
/// A trait of this module, so that the layout does not depend on the session code that uses
/// it.
pub trait PageContext {
    /// The half of the site the page is in.
    fn area(&self) -> Area;
    /// The session's CSRF token, for the forms of the page.
    fn csrf_token(&self) -> &str;
    /// The application a customer's session is limited to.
    fn session_app(&self) -> Option<&str>;
    /// The session cannot change anything.
    fn read_only(&self) -> bool;
    /// The message the previous request left for this page.
    fn flash(&self) -> Option<&str>;
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="referrer" content="no-referrer";
        title { (title) " · Herald" }
        link rel="stylesheet" href="/portal/assets/portal.css";
        script src="/portal/assets/portal.js" defer {}
    }
}

/// A page in the signed-in layout.
pub fn page(ctx: &impl PageContext, title: &str, body: Markup) -> Markup {
    let nav: Vec<(String, &str)> = match ctx.area() {
        Area::Portal => {
            let base = format!(
                "{}/app/{}",
                Area::Portal.base(),
                seg(ctx.session_app().unwrap_or(""))
            );
            vec![
                (format!("{base}/endpoint"), "Endpoints"),
                (format!("{base}/event-type"), "Event types"),
                (format!("{base}/message"), "Messages"),
            ]
        }
        Area::Admin => vec![
            ("/admin".to_owned(), "Dashboard"),
            ("/admin/app".to_owned(), "Applications"),
            ("/admin/operational".to_owned(), "Operational webhooks"),
            ("/admin/inbox".to_owned(), "Inboxes"),
            ("/admin/api-key".to_owned(), "API keys"),
        ],
    };
    let label = match ctx.area() {
        Area::Portal => "Webhooks",
        Area::Admin => "console",
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Herald " span.area { (label) } }
                    nav aria-label="Main" {
                        ul { @for (href, text) in &nav { li { a href=(href) { (text) } } } }
                    }
                    form.signout method="post" action={ (ctx.area().base()) "/logout" } {
                        (csrf(ctx))
                        @if ctx.read_only() { span.badge.neutral { "read-only" } " " }
                        button.link type="submit" { "Sign out" }
                    }
                }
                main #main {
                    @if let Some(flash) = ctx.flash() {
                        div.notice.ok role="status" { (flash) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (errors, sign-in).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top { span.brand { "Herald" } }
                main #main.narrow { (body) }
            }
        }
    }
}

/// The customer's entry page (see `session::portal_entry`).
pub fn portal_entry(csrf: &str, continue_to: Option<&str>, error: Option<&str>) -> Markup {
    bare_page(
        "Webhook portal",
        html! {
            h1 { "Webhook portal" }
            @if let Some(e) = error { div.notice.error role="alert" { p { (e) } } }
            form #portal-entry method="post" action="/portal/session" data-continue=[continue_to] {
                input type="hidden" name="_csrf" value=(csrf);
                p { "Open the link you were given to manage your webhooks. If it does not "
                    "sign you in, paste its access key here." }
                label for="key" { "Access key" }
                input #key type="password" name="key" required autocomplete="off";
                button type="submit" { "Continue" }
            }
            @if let Some(to) = continue_to {
                p { a href=(to) { "Continue to your webhooks" } }
            }
        },
    )
}

pub fn admin_sign_in(csrf: &str, error: Option<&str>) -> Markup {
    bare_page(
        "Sign in",
        html! {
            h1 { "Herald console" }
            @if let Some(e) = error { div.notice.error role="alert" { p { (e) } } }
            form method="post" action="/admin/session" {
                input type="hidden" name="_csrf" value=(csrf);
                label for="token" { "Admin token or API key" }
                input #token type="password" name="token" required autocomplete="current-password";
                p.hint { "The admin token (herald-data/admin-token) or an API key without an "
                    "application. It is not stored: a 12-hour session is started instead." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn csrf(ctx: &impl PageContext) -> Markup {
    html! { input type="hidden" name="_csrf" value=(ctx.csrf_token()); }
}

/// A one-button form posting to `action`.
pub fn action_button(ctx: &impl PageContext, action: &str, text: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(ctx))
            button class=(class) type="submit" { (text) }
        }
    }
}

/// An API timestamp for people: `2026-03-10 16:15:50 UTC`; "—" for none.
pub fn time<'a>(t: impl Into<Option<&'a DateTime<Utc>>>) -> String {
    t.into().map_or_else(
        || "—".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// JSON indented for reading.
pub fn pretty<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A JSON document the API passes through as it was given (a payload, an inbox's value), as a
/// `Value`, so that it is shown the way the portal always showed it.
pub fn document(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The API's own name of one of its enum values (its serde name, e.g. `hmac-sha1-hex`), so a
/// page never spells it differently from the API.
pub fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A delivery or attempt status, as text in a coloured badge.
pub fn status_badge(status: &str) -> Markup {
    let class = match status {
        "success" => "ok",
        "fail" => "bad",
        "pending" | "sending" => "wait",
        _ => "neutral",
    };
    html! { span class={ "badge " (class) } { (status) } }
}

/// The text of the Svix numeric statuses.
pub fn status_text(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Success => "success",
        MessageStatus::Pending => "pending",
        MessageStatus::Fail => "fail",
        MessageStatus::Sending => "sending",
        MessageStatus::Canceled => "canceled",
    }
}

/// A `dl` of label and value pairs.
pub fn facts(rows: &[(&str, Markup)]) -> Markup {
    html! {
        dl.facts { @for (k, v) in rows { dt { (k) } dd { (v) } } }
    }
}

/// A JSON document, indented, in a scrollable block.
pub fn code_block(label: &str, text: &str) -> Markup {
    html! {
        figure.code {
            figcaption { (label) }
            pre tabindex="0" { code { (text) } }
        }
    }
}

/// Errors of a refused form: by field, and the rest.
#[derive(Debug, Default)]
pub struct Errors {
    fields: Vec<(String, String)>,
    pub general: Vec<String>,
}

impl Errors {
    /// Files each API message under the longest known field its location starts with.
    pub fn from_refusal(refusal: &Refusal, known: &[&str]) -> Self {
        let mut errors = Errors::default();
        if refusal.fields.is_empty() {
            errors.general.push(refusal.detail.clone());
        }
        for (loc, msg) in &refusal.fields {
            let found = (1..=loc.len())
                .rev()
                .map(|n| loc[..n].join("."))
                .find(|name| known.contains(&name.as_str()));
            match found {
                Some(name) => {
                    let rest = loc[name.split('.').count()..].join(".");
                    let msg = if rest.is_empty() {
                        msg.clone()
                    } else {
                        format!("{rest}: {msg}")
                    };
                    errors.fields.push((name, msg));
                }
                None => errors.general.push(format!("{}: {msg}", loc.join("."))),
            }
        }
        errors
    }

    pub fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.fields.push((field.to_owned(), msg.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    pub fn of(&self, field: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect()
    }

    /// The summary at the top of a form.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.notice.error role="alert" {
                    p { "The server did not accept this form:" }
                    ul {
                        @for m in &self.general { li { (m) } }
                        @for (f, m) in &self.fields { li { a href={ "#f-" (f.replace('.', "-")) } { (f) } ": " (m) } }
                    }
                }
            }
        }
    }
}

/// One labelled form control with its hint and errors. `control` receives the id to use and
/// the id of the description.
pub fn field(
    errors: &Errors,
    name: &str,
    label: &str,
    hint: &str,
    control: impl FnOnce(&str, &str) -> Markup,
) -> Markup {
    let id = format!("f-{}", name.replace('.', "-"));
    let described = format!("{id}-d");
    let errs = errors.of(name);
    html! {
        div class=(if errs.is_empty() { "field" } else { "field invalid" }) {
            label for=(id) { (label) }
            (control(&id, &described))
            div.hint id=(described) {
                (hint)
                @for e in &errs { span.field-error { " " (e) } }
            }
        }
    }
}

/// Pagination links for the Svix iterator lists.
pub fn pager<T: ToSchema>(base: &str, list: &ListResponse<T>, extra: &[(&str, &str)]) -> Markup {
    let next = list.iterator.as_deref().filter(|_| !list.done);
    let href = next.map(|it| {
        let mut pairs = extra.to_vec();
        pairs.push(("iterator", it));
        format!("{base}{}", super::client::query(&pairs))
    });
    html! {
        @if let Some(href) = href {
            nav.pager aria-label="Pages" { a href=(href) { "Next page →" } }
        }
    }
}

/// Inline SVG, already escaped where it carries text.
pub fn raw_svg(svg: String) -> Markup {
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn errors_go_to_the_longest_known_field() {
        let refusal = Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: String::new(),
            fields: vec![
                (vec!["signature".into(), "header".into()], "bad".into()),
                (vec!["eventTypes".into(), "0".into()], "worse".into()),
                (vec!["mystery".into()], "odd".into()),
            ],
        };
        let e = Errors::from_refusal(&refusal, &["signature.header", "eventTypes"]);
        assert_eq!(e.of("signature.header"), vec!["bad"]);
        assert_eq!(e.of("eventTypes"), vec!["0: worse"]);
        assert_eq!(e.general, vec!["mystery: odd"]);
    }
}
