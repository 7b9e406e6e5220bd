//! Publishing deliveries to message brokers: MQTT 5, NATS (JetStream when a stream holds the
//! subject), AMQP 0-9-1 with publisher confirms, and Redis Streams.
//!
//! A broker endpoint goes through the same engine as an HTTP one (durable tasks, leases,
//! retries, per-endpoint concurrency, filters, shaping, signing, logs); only the last step
//! differs: instead of a request, a publish whose acknowledgement by the broker is the
//! success. This module owns that step.
//!
//! - **One connection per broker, reused.** Deliveries to the same broker, with the same
//!   credentials (and vhost or database), share a [`Link`]: opened by the first delivery,
//!   reused by the next, dropped when a publish on it fails for a reason that may be the
//!   connection's (or times out), and opened again by the next delivery after a back-off that
//!   doubles from 200 ms to 10 s while connecting keeps failing. A delivery that finds its link
//!   in back-off fails at once with the last error, and the endpoint's retry schedule takes
//!   over: no delivery waits on a broker that is down, and one broker down never holds a
//!   worker slot another endpoint could use for longer than its attempt's timeout.
//! - **The network policy at every connection.** The broker's host is resolved through the
//!   same [`Lookup`] and checked against the same [`NetworkPolicy`] as HTTP deliveries, each
//!   time a link connects; plain-text links connect to the address that was checked, so a
//!   second DNS answer cannot redirect them. TLS links (`mqtts`, `tls`, `amqps`, `rediss`)
//!   hand the client the host name, which it needs to verify the certificate, and the client
//!   looks it up again: see SECURITY.md, "Known gaps".
//! - **Everything within the attempt's timeout**, connecting included.
//!
//! The framing of a message (where the Standard Webhooks headers go) is each client's own;
//! README.md ("Broker endpoints") documents it with a receiving snippet per broker.

mod amqp;
mod mqtt;
mod nats;
mod redis;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_core::destination::{BrokerKind, BrokerUrl, Credentials};
use herald_core::net::NetworkPolicy;

use super::{Lookup, OutboundError};

/// One message as a broker gets it: the body as an HTTP endpoint would get it, and the
/// delivery's headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`, the endpoint's
/// and the transformation's own), lower-case names in the order they were set.
pub struct BrokerMessage<'a> {
    /// The message id (`webhook-id`): JetStream's `Nats-Msg-Id`, AMQP's `message_id`.
    pub id: &'a str,
    /// The body's media type (MQTT 5 and AMQP carry it in their own property).
    pub content_type: &'a str,
    /// Every other header.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Why a publish failed.
#[derive(Debug)]
pub(crate) enum PublishError {
    /// The broker refused this message (a nack, an unroutable message, a reason code): the
    /// connection is fine and stays.
    Refused(String),
    /// The connection failed or may have: it is dropped, and the next delivery opens another.
    Broken(String),
}

/// An open connection to one broker, of its kind.
#[derive(Clone)]
enum Client {
    Mqtt(mqtt::Client),
    /// Boxed: `async-nats`'s client and JetStream context are several times the others' size.
    Nats(Arc<nats::Client>),
    Amqp(amqp::Client),
    Redis(redis::Client),
}

impl Client {
    async fn publish(
        &self,
        broker: &BrokerUrl,
        message: &BrokerMessage<'_>,
    ) -> Result<String, PublishError> {
        match self {
            Self::Mqtt(client) => client.publish(broker, message).await,
            Self::Nats(client) => client.publish(broker, message).await,
            Self::Amqp(client) => client.publish(broker, message).await,
            Self::Redis(client) => client.publish(broker, message).await,
        }
    }
}

/// Where a connection goes and as whom: deliveries that agree on all of it share one.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LinkKey {
    kind: BrokerKind,
    tls: bool,
    host: String,
    port: u16,
    /// AMQP's vhost, Redis's database.
    namespace: String,
    credentials: Option<Credentials>,
}

/// How a client is told where to connect: the address the policy allowed, or (TLS) the host
/// name with the port.
pub(crate) struct Target<'a> {
    pub address: SocketAddr,
    pub host: &'a str,
    pub tls: bool,
    pub namespace: &'a str,
    pub credentials: Option<&'a Credentials>,
}

impl Target<'_> {
    /// The host to hand a client: the checked address for plain text, the name for TLS.
    pub fn connect_host(&self) -> String {
        if self.tls {
            self.host.to_owned()
        } else {
            self.address.ip().to_string()
        }
    }

    /// [`Target::connect_host`] as a URL's host (IPv6 in brackets).
    pub fn url_host(&self) -> String {
        let host = self.connect_host();
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        }
    }
}

enum LinkState {
    Down {
        failures: u32,
        retry_at: Option<Instant>,
        last_error: String,
    },
    Up {
        client: Client,
        generation: u64,
    },
}

/// One broker connection, opened on demand.
struct Link {
    state: tokio::sync::Mutex<LinkState>,
    /// When a delivery last used it, in ms since `Brokers::epoch`.
    last_used: AtomicU64,
}

/// The broker connections of a node.
pub struct Brokers {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
    links: std::sync::Mutex<HashMap<LinkKey, Arc<Link>>>,
    generations: AtomicU64,
    epoch: Instant,
    /// When idle links were last looked for, in ms since `epoch`.
    last_sweep: AtomicU64,
}

/// A link unused this long is closed and forgotten (an endpoint deleted, or its URL or
/// credentials changed): its connection, keep-alives and credentials go with it.
const IDLE_LINK: Duration = Duration::from_secs(300);
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// No connection yet (generations start at 0).
const NO_GENERATION: u64 = u64::MAX;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Brokers {
    pub fn new(policy: Arc<NetworkPolicy>, lookup: Arc<dyn Lookup>) -> Self {
        Self {
            policy,
            lookup,
            links: std::sync::Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            epoch: Instant::now(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Publishes `message` to `broker`, all within `timeout`; the answer describes the
    /// broker's acknowledgement (the attempt's recorded response).
    pub async fn publish(
        &self,
        broker: &BrokerUrl,
        credentials: Option<Credentials>,
        message: &BrokerMessage<'_>,
        timeout: Duration,
    ) -> Result<String, OutboundError> {
        let key = LinkKey {
            kind: broker.kind,
            tls: broker.tls,
            host: broker.host.clone(),
            port: broker.port,
            namespace: broker.namespace.clone(),
            credentials,
        };
        let link = self.link(&key);
        let started = Instant::now();
        // The connection this publish went out on, for the timeout below.
        let used = AtomicU64::new(NO_GENERATION);
        let exchange = async {
            let (client, generation) = self.client(&link, &key, timeout).await?;
            used.store(generation, Ordering::Relaxed);
            match client.publish(broker, message).await {
                Ok(ack) => Ok(ack),
                Err(PublishError::Refused(reason)) => Err(OutboundError::Failed(reason)),
                Err(PublishError::Broken(reason)) => {
                    drop_client(&link, generation, &reason).await;
                    Err(OutboundError::Failed(reason))
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                timed_out(&link, used.load(Ordering::Relaxed));
                Err(OutboundError::Timeout(started.elapsed()))
            }
        }
    }

    fn link(&self, key: &LinkKey) -> Arc<Link> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let since_sweep = now.saturating_sub(self.last_sweep.load(Ordering::Relaxed));
        if u128::from(since_sweep) >= SWEEP_EVERY.as_millis() {
            self.last_sweep.store(now, Ordering::Relaxed);
            // Only links no delivery holds (the map's own reference is the one left).
            links.retain(|_, link| {
                let idle = now.saturating_sub(link.last_used.load(Ordering::Relaxed));
                Arc::strong_count(link) > 1 || u128::from(idle) < IDLE_LINK.as_millis()
            });
        }
        let link = links
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Link {
                    state: tokio::sync::Mutex::new(LinkState::Down {
                        failures: 0,
                        retry_at: None,
                        last_error: String::new(),
                    }),
                    last_used: AtomicU64::new(now),
                })
            })
            .clone();
        link.last_used.store(now, Ordering::Relaxed);
        link
    }

    /// The link's client, connecting when it has none (one delivery connects; the others
    /// wait for it, within their own timeouts).
    async fn client(
        &self,
        link: &Link,
        key: &LinkKey,
        timeout: Duration,
    ) -> Result<(Client, u64), OutboundError> {
        let mut state = link.state.lock().await;
        let failures = match &*state {
            LinkState::Up { client, generation } => return Ok((client.clone(), *generation)),
            LinkState::Down {
                failures,
                retry_at,
                last_error,
            } => {
                if let Some(at) = retry_at
                    && *at > Instant::now()
                {
                    return Err(OutboundError::Failed(format!(
                        "not connected to the broker (next try in {} ms): {last_error}",
                        at.saturating_duration_since(Instant::now()).as_millis()
                    )));
                }
                *failures
            }
        };
        match self.connect(key, timeout).await {
            Ok(client) => {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                *state = LinkState::Up {
                    client: client.clone(),
                    generation,
                };
                Ok((client, generation))
            }
            Err(e) => {
                *state = down_after(failures, e.to_string());
                Err(e)
            }
        }
    }

    async fn connect(&self, key: &LinkKey, timeout: Duration) -> Result<Client, OutboundError> {
        let address = self.resolve(&key.host, key.port).await?;
        let target = Target {
            address,
            host: &key.host,
            tls: key.tls,
            namespace: &key.namespace,
            credentials: key.credentials.as_ref(),
        };
        let connecting = async {
            Ok::<_, String>(match key.kind {
                BrokerKind::Mqtt => Client::Mqtt(mqtt::Client::connect(&target).await?),
                BrokerKind::Nats => Client::Nats(Arc::new(nats::Client::connect(&target).await?)),
                BrokerKind::Amqp => Client::Amqp(amqp::Client::connect(&target).await?),
                BrokerKind::Redis => Client::Redis(redis::Client::connect(&target).await?),
            })
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(reason)) => Err(OutboundError::Failed(format!(
                "cannot connect to the broker: {reason}"
            ))),
            Err(_) => Err(OutboundError::Timeout(timeout)),
        }
    }

    /// The address to connect to: the literal one, or the first the lookup found that the
    /// network policy allows.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, OutboundError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return match self.policy.check(ip) {
                Ok(()) => Ok(SocketAddr::new(ip, port)),
                Err(reason) => Err(OutboundError::Refused(format!(
                    "destination refused by the network policy: {ip} is a {reason} \
                     (see --allow-network)"
                ))),
            };
        }
        let found = self
            .lookup
            .lookup(host.to_owned())
            .await
            .map_err(|e| OutboundError::Failed(format!("cannot resolve {host}: {e}")))?;
        found
            .into_iter()
            .find(|ip| match self.policy.check(*ip) {
                Ok(()) => true,
                Err(reason) => {
                    // For the operator only (as for HTTP deliveries).
                    tracing::debug!(%host, %ip, %reason, "resolved address refused");
                    false
                }
            })
            .map(|ip| SocketAddr::new(ip, port))
            .ok_or_else(|| {
                OutboundError::Refused(format!(
                    "destination refused by the network policy: {host} resolves to no address \
                     it allows (see --allow-network)"
                ))
            })
    }
}

/// The state after the `failures`+1-th failure to connect in a row: down, with a back-off
/// doubling from `FIRST_BACKOFF` to `MAX_BACKOFF`.
fn down_after(failures: u32, last_error: String) -> LinkState {
    let backoff = FIRST_BACKOFF
        .saturating_mul(1 << failures.min(6))
        .min(MAX_BACKOFF);
    LinkState::Down {
        failures: failures + 1,
        retry_at: Some(Instant::now() + backoff),
        last_error,
    }
}

/// After an attempt ran out of time: a connection it was publishing on may be dead, so it is
/// dropped; a connection attempt that was cut short counts as a failure to connect (a broker
/// that accepts and never answers gets the back-off too). Never waits for the link: if another
/// delivery holds it (connecting), that one records its own outcome.
fn timed_out(link: &Link, used: u64) {
    let Ok(mut state) = link.state.try_lock() else {
        return;
    };
    match &*state {
        // Another connection than the one this publish used: it stays.
        LinkState::Up { generation, .. } if *generation != used => {}
        LinkState::Up { client, .. } => {
            if let Client::Mqtt(client) = client {
                client.close();
            }
            tracing::debug!("broker connection dropped after a timeout");
            *state = LinkState::Down {
                failures: 0,
                retry_at: None,
                last_error: "a publish timed out".into(),
            };
        }
        LinkState::Down {
            failures, retry_at, ..
        } => {
            if retry_at.is_none_or(|at| at <= Instant::now()) {
                *state = down_after(*failures, "connecting timed out".into());
            }
        }
    }
}

/// Drops the link's client if it is still the one that failed (a newer one may already have
/// replaced it), and closes it.
async fn drop_client(link: &Link, failed: u64, reason: &str) {
    let mut state = link.state.lock().await;
    if matches!(&*state, LinkState::Up { generation, .. } if *generation == failed) {
        let old = std::mem::replace(
            &mut *state,
            LinkState::Down {
                failures: 0,
                retry_at: None,
                last_error: reason.to_owned(),
            },
        );
        drop(state);
        if let LinkState::Up { client, .. } = old {
            tracing::debug!(%reason, "broker connection dropped");
            if let Client::Mqtt(client) = client {
                client.close();
            }
        }
    }
}
