//! An endpoint's `type`: `http` (Herald POSTs to its URL) or `polling` (its consumers read its
//! messages from `GET /api/v1/app/{app}/poller/{endpoint}`, see `api::poller`).
//!
//! A polling endpoint has no URL of its own. Its `url` shows where it is polled, so that
//! clients that require the field (the Svix SDKs' `EndpointOut`) still read it and a person
//! sees at once how to consume it; a PUT or PATCH may send that URL back (or none) but no
//! other: a URL given with `"type": "polling"` is refused, never silently dropped. The type is
//! chosen at creation and never changes (entries already collected, or tasks already queued,
//! would otherwise be left behind).

use herald_core::id::{AppId, EndpointId};
use herald_core::model::{Endpoint, EndpointKind};
use herald_core::validate::Violations;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::AppState;

/// `http` (the default): Herald POSTs each message to `url`. `polling`: no URL; the endpoint
/// collects its messages and its consumers poll them (`GET /api/v1/app/{app_id}/poller/{sink_id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointType {
    Http,
    Polling,
}

impl From<EndpointKind> for EndpointType {
    fn from(kind: EndpointKind) -> Self {
        match kind {
            EndpointKind::Http => EndpointType::Http,
            EndpointKind::Polling => EndpointType::Polling,
        }
    }
}

impl From<EndpointType> for EndpointKind {
    fn from(kind: EndpointType) -> Self {
        match kind {
            EndpointType::Http => EndpointKind::Http,
            EndpointType::Polling => EndpointKind::Polling,
        }
    }
}

/// The path a polling endpoint is polled at.
pub(crate) fn poller_path(app: &AppId, endpoint: &EndpointId) -> String {
    format!("/api/v1/app/{app}/poller/{endpoint}")
}

/// The URL a polling endpoint is polled at, on this server.
pub(crate) fn poller_url(state: &AppState, app: &AppId, endpoint: &EndpointId) -> String {
    format!("{}{}", state.public_url, poller_path(app, endpoint))
}

/// A new endpoint's type and URL from the request: a polling endpoint's URL must be absent (it
/// becomes the poller's URL).
pub(super) fn settle_new(
    state: &AppState,
    v: &mut Violations,
    endpoint: &mut Endpoint,
    kind: Option<EndpointType>,
) {
    endpoint.options.kind = kind.map_or(EndpointKind::Http, Into::into);
    if endpoint.options.kind == EndpointKind::Polling {
        if !endpoint.url.is_empty() {
            v.value(
                &["body", "url"],
                "a polling endpoint has no URL: leave it out with \"type\": \"polling\"",
            );
        }
        endpoint.url = poller_url(state, &endpoint.app_id, &endpoint.id);
    }
}

/// A replaced endpoint's type: it cannot change.
pub(super) fn check_unchanged(v: &mut Violations, endpoint: &Endpoint, kind: Option<EndpointType>) {
    if let Some(kind) = kind
        && EndpointKind::from(kind) != endpoint.options.kind
    {
        v.value(
            &["body", "type"],
            "an endpoint's type is chosen when it is created and cannot change",
        );
    }
}

/// A changed polling endpoint keeps its poller's URL, which the request may repeat (as shown,
/// whatever the server's public URL was then) or leave out; any other URL stays for
/// [`check_polling_url`] to refuse.
pub(super) fn keep_poller_url(state: &AppState, endpoint: &mut Endpoint) {
    if endpoint.options.kind == EndpointKind::Polling
        && (endpoint.url.is_empty()
            || endpoint
                .url
                .ends_with(&poller_path(&endpoint.app_id, &endpoint.id)))
    {
        endpoint.url = poller_url(state, &endpoint.app_id, &endpoint.id);
    }
}

/// Settings that only shape or schedule HTTP deliveries have nothing to act on in a polling
/// endpoint, whose consumers read each message as published, signed with Standard Webhooks: a
/// 422 naming each one, never accepted and ignored. `filter`, event types and channels do
/// apply (they choose what it collects).
pub(super) fn refuse_delivery_settings(v: &mut Violations, endpoint: &Endpoint) {
    if endpoint.options.kind != EndpointKind::Polling {
        return;
    }
    let o = &endpoint.options;
    let defaults = herald_core::model::EndpointOptions::default();
    let set = [
        ("retrySchedule", o.retry_schedule.is_some()),
        ("retryWindowSeconds", o.retry_window_seconds.is_some()),
        ("timeoutSeconds", o.timeout_seconds.is_some()),
        ("maxConcurrency", o.max_concurrency.is_some()),
        ("ordering", o.ordering != defaults.ordering),
        ("signature", o.signature != defaults.signature),
        ("encoding", o.encoding != defaults.encoding),
        ("envelope", o.envelope != defaults.envelope),
        ("graphql", o.graphql.is_some()),
        ("graphqlByEventType", !o.graphql_by_event_type.is_empty()),
        ("successStatuses", o.success_statuses.is_some()),
        ("retryJitter", o.retry_jitter.is_some()),
        ("profile", o.profile.is_some()),
        ("throttleRate", endpoint.rate_limit.is_some()),
    ];
    for (field, _) in set.iter().filter(|(_, set)| *set) {
        v.value(
            &["body", field],
            "a polling endpoint gets no HTTP deliveries: its consumers read each message as \
             published, signed with Standard Webhooks, so this setting would do nothing",
        );
    }
}

/// Custom headers go out with HTTP deliveries only: refused for a polling endpoint.
pub(crate) fn refuse_headers(v: &mut Violations, endpoint: &Endpoint, given: bool) {
    if given && endpoint.options.kind == EndpointKind::Polling {
        v.value(
            &["body", "headers"],
            "a polling endpoint gets no HTTP deliveries, so custom headers would never be sent",
        );
    }
}

/// A polling endpoint's URL is its poller's: any other is refused.
pub(super) fn check_polling_url(state: &AppState, v: &mut Violations, endpoint: &Endpoint) {
    if endpoint.url != poller_url(state, &endpoint.app_id, &endpoint.id) {
        v.value(
            &["body", "url"],
            "a polling endpoint has no URL to deliver to: its url is where it is polled, and \
             cannot be set",
        );
    }
}

/// Refuses what would give a polling endpoint an HTTP delivery (a resend, a recovery, a
/// replay): the worker must never POST to it. Its consumers read again by seeking instead.
pub(crate) fn refuse_deliveries(endpoint: &Endpoint) -> crate::api::error::ApiResult<()> {
    if endpoint.options.kind == EndpointKind::Polling {
        return Err(crate::api::error::ApiError::Conflict(
            "a polling endpoint gets no deliveries: its consumers read its messages again by \
             seeking (POST …/poller/{endpoint}/consumer/{consumer}/seek)"
                .into(),
        ));
    }
    Ok(())
}
