//! The one HTTP client every outbound request goes through.
//!
//! Endpoint URLs come from customers, so this client is where Herald refuses to become a proxy
//! into the operator's network:
//!
//! - Host names are resolved by [`PolicyResolver`], which drops every address the
//!   [`NetworkPolicy`] refuses and fails when none is left. The connection is made to one of the
//!   addresses it returned: there is no second lookup an attacker's DNS could answer
//!   differently. Literal IP hosts never reach a resolver and are checked before sending.
//! - Redirects are never followed (a 3xx is a failed attempt) and proxy environment variables
//!   are ignored. An operator may name a proxy (`--outbound-proxy`): it then resolves host names
//!   and owns the policy for them, since Herald never learns which address it connects to;
//!   literal addresses are still checked here.
//! - Every request has a deadline covering connect, request and response, and a response body is
//!   read only up to a cap: a huge or endless response costs no memory.

pub mod brokers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_core::net::NetworkPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;

/// Looks up a host's addresses. The system resolver in production; tests substitute their own
/// (for example to play a DNS-rebinding attack).
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver.
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Resolves through a [`Lookup`] and keeps only the addresses the policy allows.
struct PolicyResolver {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = lookup
                .lookup(host.clone())
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|ip| match policy.check(*ip) {
                    Ok(()) => true,
                    Err(reason) => {
                        // For the operator only: the attempt's error, which the endpoint's
                        // owner reads, must not map the operator's network for them.
                        tracing::debug!(%host, %ip, %reason, "resolved address refused");
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "destination refused by the network policy: {host} resolves to no address \
                     it allows (see --allow-network)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A response, with the body cut at the cap.
#[derive(Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// Why no response was received.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Refused(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
}

pub struct Outbound {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    max_response_bytes: usize,
    /// Broker destinations' connections, under the same policy and lookup.
    brokers: brokers::Brokers,
}

impl Outbound {
    /// Connects directly, to addresses found through `lookup` and allowed by `policy`.
    pub fn new(policy: NetworkPolicy, lookup: Arc<dyn Lookup>, max_response_bytes: usize) -> Self {
        let policy = Arc::new(policy);
        let client = Self::client_builder()
            .no_proxy()
            .dns_resolver(PolicyResolver {
                policy: policy.clone(),
                lookup: lookup.clone(),
            })
            .build()
            .expect("the HTTP client configuration is valid");
        Self {
            client,
            brokers: brokers::Brokers::new(policy.clone(), lookup),
            policy,
            max_response_bytes,
        }
    }

    /// Sends every request through the HTTP proxy at `proxy` (`--outbound-proxy`). The proxy's
    /// own host name is resolved by the system (operators put proxies on private networks).
    /// Broker connections do not go through an HTTP proxy: Herald resolves and checks their
    /// hosts itself.
    pub fn through_proxy(
        policy: NetworkPolicy,
        proxy: &url::Url,
        max_response_bytes: usize,
    ) -> Result<Self, String> {
        let proxy = reqwest::Proxy::all(proxy.as_str()).map_err(|e| e.to_string())?;
        let client = Self::client_builder()
            .proxy(proxy)
            .build()
            .map_err(|e| e.to_string())?;
        let policy = Arc::new(policy);
        Ok(Self {
            client,
            brokers: brokers::Brokers::new(policy.clone(), Arc::new(SystemLookup)),
            policy,
            max_response_bytes,
        })
    }

    fn client_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
    }

    /// POSTs `body` to `url` with `headers`, all within `timeout`, keeping at most the
    /// configured number of response bytes.
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<OutboundResponse, OutboundError> {
        self.send("POST", url, headers, body, timeout).await
    }

    /// [`Outbound::post`] with another method (a transformation may choose `PUT`).
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<OutboundResponse, OutboundError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| OutboundError::Refused(format!("invalid method: {e}")))?;
        self.request(method, url, headers, body, timeout, self.max_response_bytes)
            .await
    }

    /// The broker connections, for deliveries to broker endpoints.
    pub fn brokers(&self) -> &brokers::Brokers {
        &self.brokers
    }

    /// [`Outbound::post`] keeping at most `max_response_bytes` of the response (a GraphQL
    /// answer is the delivery's content, not a log excerpt, so it gets a larger cap).
    pub async fn post_capped(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<OutboundResponse, OutboundError> {
        self.request(
            reqwest::Method::POST,
            url,
            headers,
            body,
            timeout,
            max_response_bytes,
        )
        .await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<OutboundResponse, OutboundError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| OutboundError::Refused(format!("invalid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::Refused(
                "only http and https URLs are delivered to".into(),
            ));
        }
        if parsed.host().is_none() {
            return Err(OutboundError::Refused("the URL has no host".into()));
        }
        if let Some(ip) = herald_core::net::literal_address(&parsed)
            && let Err(reason) = self.policy.check(ip)
        {
            return Err(OutboundError::Refused(format!(
                "destination refused by the network policy: {ip} is a {reason} (see --allow-network)"
            )));
        }
        let started = Instant::now();
        let request = self
            .client
            .request(method, parsed)
            .headers(headers)
            .body(body)
            .send();
        let exchange = async {
            let mut response = request.await.map_err(describe)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await.map_err(describe)? {
                let room = max_response_bytes - body.len();
                if chunk.len() >= room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    // Stop reading: dropping the response closes the connection.
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(OutboundResponse {
                status,
                headers,
                body,
                truncated,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout(started.elapsed())),
        }
    }
}

/// A one-line description of a client error with its causes ("connection refused", the TLS
/// reason, the policy refusal from the resolver, …).
fn describe(err: reqwest::Error) -> OutboundError {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else if err.is_body() || err.is_decode() {
        "reading the response failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(&err);
    let mut refused = false;
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        refused |= cause_text.contains("refused by the network policy");
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if refused {
        OutboundError::Refused(text)
    } else {
        OutboundError::Failed(text)
    }
}
