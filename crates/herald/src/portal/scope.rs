//! Whose endpoints a page shows ([`Scope`]: an application's, or the operator's operational
//! webhook endpoints), and the navigation and path pieces the endpoint, secret, message and
//! event pages share. Its own module so that those pages depend on it and not on each other.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use maud::{Markup, html};

use super::PortalState;
use super::area::Area;
use super::client::seg;
use super::error::PortalError;
use super::session::Ctx;
use crate::api::endpoint::EndpointOut;
use crate::api::event_type::EventTypeOut;
use crate::api::pagination::ListResponse;

/// The event types of operational webhooks.
const OPERATIONAL_EVENTS: &[&str] = &[
    "endpoint.created",
    "endpoint.updated",
    "endpoint.deleted",
    "endpoint.disabled",
    "message.attempt.failing",
    "message.attempt.exhausted",
    "message.attempt.recovered",
];

/// Whose endpoints a page shows.
pub struct Scope {
    pub ctx: Ctx,
    /// The application (id or uid as in the address); `None` for operational endpoints.
    pub app: Option<String>,
}

impl FromRequestParts<PortalState> for Scope {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PortalState,
    ) -> Result<Self, Self::Rejection> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ctx.error(StatusCode::BAD_REQUEST, e.to_string()))?;
        let app = params
            .iter()
            .find(|(k, _)| *k == "app_id")
            .map(|(_, v)| v.to_owned());
        Ok(Scope { ctx, app })
    }
}

impl Scope {
    /// The API path of these endpoints, plus `rest`.
    pub fn api(&self, rest: &str) -> String {
        match &self.app {
            Some(app) => format!("/api/v1/app/{}/endpoint{rest}", seg(app)),
            None => format!("/api/v1/operational-webhook/endpoint{rest}"),
        }
    }

    /// The page path of these endpoints, plus `rest`.
    pub fn page(&self, rest: &str) -> String {
        match &self.app {
            Some(app) => format!("{}/endpoint{rest}", self.ctx.app_base(app)),
            None => format!("/admin/operational{rest}"),
        }
    }

    pub fn noun(&self) -> &'static str {
        if self.app.is_some() {
            "endpoint"
        } else {
            "operational endpoint"
        }
    }

    /// Event types to offer as toggles: the catalogue, or the operational events.
    pub async fn catalogue(&self) -> Result<Vec<(String, String)>, PortalError> {
        if self.app.is_none() {
            return Ok(OPERATIONAL_EVENTS
                .iter()
                .map(|e| ((*e).to_owned(), String::new()))
                .collect());
        }
        let list: ListResponse<EventTypeOut> = self
            .ctx
            .api
            .get_as("/api/v1/event-type?limit=250")
            .await
            .map_err(|r| self.ctx.fail(r))?;
        Ok(list
            .data
            .into_iter()
            .map(|t| (t.name, t.description))
            .collect())
    }

    pub async fn endpoint(&self, ep: &str) -> Result<EndpointOut, PortalError> {
        self.ctx
            .api
            .get_as(&self.api(&format!("/{}", seg(ep))))
            .await
            .map_err(|r| self.ctx.fail(r))
    }

    /// The application sub-navigation, for operators (customers have it in the header).
    pub fn app_nav(&self) -> Markup {
        match &self.app {
            Some(app) => app_nav(&self.ctx, app),
            None => html! {},
        }
    }
}

/// The operator's navigation within one application.
pub fn app_nav(ctx: &Ctx, app: &str) -> Markup {
    if ctx.area == Area::Portal {
        return html! {};
    }
    let base = ctx.app_base(app);
    html! {
        nav.sub aria-label="Application" {
            span { "Application " code { (app) } }
            a href={ (base) "/endpoint" } { "Endpoints" }
            a href={ (base) "/event-type" } { "Event types" }
            a href={ (base) "/message" } { "Messages" }
            a href={ (base) "/device" } { "Devices" }
            a href={ (base) "/portal-link" } { "Portal link" }
        }
    }
}

pub fn ep_of(params: &HashMap<String, String>) -> &str {
    params.get("ep").map_or("", String::as_str)
}
