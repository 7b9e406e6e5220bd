//! What a delivery needs of its endpoint, shared by the attempt ([`super::attempt`]) and the
//! shaping of its request ([`super::shaping`]); its own module so that neither depends on the
//! other for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::model::Endpoint;
use herald_core::retry::RetryPolicy;
use herald_core::secrets::{EndpointSecrets, GraphqlApi};

/// The `User-Agent` of every request Herald makes to an endpoint or a GraphQL API.
pub const USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));

/// What an attempt needs of its endpoint, loaded once per dispatch round.
pub struct EndpointSnapshot {
    pub endpoint: Endpoint,
    pub secrets: EndpointSecrets,
    /// The application's GraphQL API, for endpoints with a GraphQL selection.
    pub graphql_api: Option<GraphqlApi>,
    /// The application's default rate (`throttleRate`), for an endpoint without its own.
    pub app_rate: Option<u16>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// The endpoint's transformation, when enabled.
    pub transformation: Option<ActiveTransformation>,
}

/// An enabled transformation with its variables opened.
pub struct ActiveTransformation {
    pub code: Arc<str>,
    pub variables: BTreeMap<String, String>,
}
