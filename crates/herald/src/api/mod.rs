//! The JSON API: one module per resource, each with its own router, assembled here into
//! [`routes`]; `crate::http` composes it with the rest of the process's HTTP application.
//!
//! `/api/v1` routes other than health pass [`auth::authenticate`] and [`idempotency::layer`],
//! inside the layers every request passes (see `crate::http`).

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Html;
use axum::routing::get;
use herald_core::crypto::Keyring;
use herald_core::validate::Limits;
use herald_store::Store;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub mod api_key;
pub mod application;
pub mod attempt;
pub mod auth;
pub mod background_task;
pub mod content;
pub mod delivery;
pub mod delivery_log;
pub mod device;
pub mod docs;
pub mod endpoint;
pub mod environment;
pub mod error;
pub mod event_type;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod impilo;
pub mod inbox;
pub mod integration;
pub mod message;
pub mod metrics;
pub mod openapi;
pub mod openapi_import;
pub mod operational;
pub mod pagination;
pub mod params;
pub mod poller;
pub mod queue;
pub mod session;
pub mod stats;
pub mod status;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
    /// SHA-256 of the admin token.
    pub admin_token_hash: Vec<u8>,
    pub limits: Limits,
    /// Where deliveries may go: endpoint URLs with a literal address the policy refuses are
    /// refused when saved (hostnames are checked at every delivery, by the outbound client).
    pub destinations: herald_core::net::NetworkPolicy,
    /// Endpoint URLs must be `https`.
    pub require_https: bool,
    pub max_body_bytes: usize,
    /// Base of links handed out (portal URLs), without a trailing slash.
    pub public_url: String,
    /// Tells the delivery worker about new work.
    pub wakeup: crate::wakeup::Wakeup,
    /// Publishes operational webhook events.
    pub operational: crate::operational::Operational,
    /// How long a payload is kept at most (`--payload-retention-days`).
    pub payload_retention: chrono::Duration,
    /// SHA-256 of the token `GET /metrics` requires, when one is set.
    pub metrics_token_hash: Option<Vec<u8>>,
    /// Inboxes' rate limits (per node).
    pub ingest_limiter: inbox::ingest::RateLimiter,
    /// Tokenless writes to `publicWrite` inboxes, per inbox and source address (per node).
    pub public_write_limiter: inbox::firebase::PublicWriteLimiter,
    /// Requests per second per API token (0: unlimited), and the tokens' buckets (per node).
    pub api_rate_limit: u32,
    pub api_limiter: herald_core::rate::TokenBuckets<String>,
    /// Time a client has to send a request body (`--client-timeout`).
    pub client_timeout: std::time::Duration,
    /// The catalogue's event types, the only ones that label metrics.
    pub event_type_labels: Arc<crate::metrics::EventTypeLabels>,
    /// Starts background tasks (replays, recoveries, purges, statistics) and wakes this
    /// node's runner.
    pub tasks: crate::tasks::BackgroundTasks,
    /// Runs transformations: checks them when saved, simulates them (the worker shares it).
    pub sandbox: herald_transform::Sandbox,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The OpenAPI document of every route, without serving anything (used by tests and by the
/// `/api/v1/openapi.json` route).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(authenticated_routes())
        .merge(health::router())
        .split_for_parts();
    let mut doc = doc;
    doc.merge(<inbox::ingest::IngestDoc as utoipa::OpenApi>::openapi());
    openapi::finish(doc)
}

/// Every route that needs a bearer token.
fn authenticated_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(application::router())
        .merge(event_type::router())
        .merge(openapi_import::router())
        .merge(environment::router())
        .merge(endpoint::router())
        .merge(poller::router())
        .merge(message::router())
        .merge(content::router())
        .merge(device::router())
        .merge(attempt::router())
        .merge(delivery::router())
        .merge(delivery_log::router())
        .merge(operational::router())
        .merge(api_key::router())
        .merge(integration::router())
        .merge(session::router())
        .merge(inbox::router())
        .merge(queue::router())
        .merge(background_task::router())
        .merge(stats::router())
        .merge(impilo::router())
}

/// The JSON API's routes under `/api/v1` with their middleware: the authenticated resources
/// (behind [`auth::authenticate`] and [`idempotency::layer`]) and the health checks. The
/// process's whole HTTP application, of which this is one part, is assembled in `crate::http`.
pub fn routes(state: &AppState) -> Router<AppState> {
    let protected = authenticated_routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let (api, _) = OpenApiRouter::new()
        .merge(protected)
        .merge(health::router())
        .split_for_parts();
    api
}

/// The health checks alone (a `--role worker` node serves nothing else).
pub fn health_routes() -> Router<AppState> {
    let (health, _) = OpenApiRouter::new()
        .merge(health::router())
        .split_for_parts();
    health
}

/// `GET /api/v1/openapi.json` and `GET /docs`: the OpenAPI document of every route and its
/// reference page, both rendered once.
pub fn document_routes() -> Router<AppState> {
    let document = openapi_document();
    let (spec_json, docs_html) = match serde_json::to_value(&document) {
        Ok(value) => (
            serde_json::to_vec_pretty(&value).unwrap_or_default(),
            docs::render(&value),
        ),
        // utoipa's document is plain data; should it ever fail to serialise, the routes say
        // so instead of taking the server down.
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            (Vec::new(), String::new())
        }
    };
    let spec_json = Arc::new(spec_json);
    let docs_html = Arc::new(docs_html);
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec_json.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        spec.as_ref().clone(),
                    )
                }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let html = docs_html.clone();
                async move { Html(html.as_ref().clone()) }
            }),
        )
}

/// Checks a URL Herald will call (an endpoint, a GraphQL API) or publish to (a broker)
/// against the deployment's rules: `--require-https` (TLS variants of broker schemes), and the
/// network policy for literal addresses. Hostnames cannot be judged
/// here (their addresses may change): the outbound client checks them at every request.
pub fn check_destination(
    state: &AppState,
    v: &mut herald_core::validate::Violations,
    loc: &[&str],
    url: &str,
) {
    let Ok(parsed) = url::Url::parse(url) else {
        return; // `validate::endpoint_url` reports it.
    };
    let broker = herald_core::destination::parse(url).ok().flatten();
    let plain = match &broker {
        Some(broker) => !broker.tls,
        None => parsed.scheme() == "http",
    };
    if state.require_https && plain {
        v.value(
            loc,
            "this server only delivers over TLS (--require-https): use https, mqtts, tls (NATS), \
             amqps or rediss",
        );
    }
    let literal = match &broker {
        Some(broker) => broker.literal_ip(),
        None => herald_core::net::literal_address(&parsed),
    };
    if let Some(ip) = literal
        && let Err(reason) = state.destinations.check(ip)
    {
        v.value(
            loc,
            format!("destination refused by the network policy: {ip} is a {reason} (see --allow-network)"),
        );
    }
}
