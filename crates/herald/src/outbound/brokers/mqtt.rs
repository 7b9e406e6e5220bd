//! MQTT 5 through `rumqttc` (bytebeam's client: MQTT 5, rustls, tokio; maintained, and the one
//! most Rust MQTT users run).
//!
//! `rumqttc` queues a publish and reports its progress only as events of its event loop: an
//! `Outgoing::Publish(packet id)` when it is written, an incoming `PubAck` with that id when
//! the broker has it. A delivery enters its request channel (`try_publish`, which never
//! waits) and takes its place in `queued` under one lock, with no await in between, so a
//! delivery canceled at any point (its attempt timing out) can never leave its place behind;
//! the event loop takes requests in channel order, so the n-th `Outgoing::Publish` is the n-th
//! place in `queued`: that is how each delivery learns its packet id and then its PUBACK. A
//! full channel (the broker slow to acknowledge) fails the attempt at once.
//!
//! Framing: the body is the payload, `content-type` the MQTT 5 content type, and every other
//! header (`webhook-id`, `webhook-timestamp`, `webhook-signature`, …) a user property.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::destination::{BrokerTarget, BrokerUrl};
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::oneshot;

use super::{BrokerMessage, PublishError, Target};

type Done = oneshot::Sender<Result<String, PublishError>>;

#[derive(Default)]
struct Pending {
    /// Publishes queued and not yet written, oldest first, with their QoS.
    queued: VecDeque<(u8, Done)>,
    /// Publishes written (QoS 1), by packet id, waiting for their PUBACK.
    written: HashMap<u16, Done>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
}

impl Pending {
    fn fail_all(&mut self, reason: &str) {
        self.closed = Some(reason.to_owned());
        for (_, done) in self.queued.drain(..) {
            let _ = done.send(Err(PublishError::Broken(reason.to_owned())));
        }
        for (_, done) in self.written.drain() {
            let _ = done.send(Err(PublishError::Broken(reason.to_owned())));
        }
    }
}

struct Inner {
    client: AsyncClient,
    pending: Arc<Mutex<Pending>>,
    event_loop: tokio::task::JoinHandle<()>,
    /// The broker's maximum packet size (MQTT 5 CONNACK), if it set one.
    max_packet: Option<u32>,
}

/// Room in the request channel: publishes queued for the event loop, over every endpoint
/// publishing to this broker.
const REQUEST_CHANNEL: usize = 4096;

impl Drop for Inner {
    fn drop(&mut self) {
        self.event_loop.abort();
    }
}

#[derive(Clone)]
pub(super) struct Client(Arc<Inner>);

impl Client {
    pub async fn connect(target: &Target<'_>) -> Result<Self, String> {
        let id = format!("herald-{}", herald_core::token::random_base62(12));
        let mut options = MqttOptions::new(id, target.connect_host(), target.address.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(true)
            .set_request_channel_capacity(REQUEST_CHANNEL);
        if target.tls {
            options.set_transport(rumqttc::Transport::tls_with_default_config());
        }
        if let Some(credentials) = target.credentials {
            options.set_credentials(
                credentials.user.clone(),
                credentials.password.clone().unwrap_or_default(),
            );
        }
        let (client, mut event_loop) = AsyncClient::new(options, REQUEST_CHANNEL);
        let max_packet = loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        return Err(format!("the broker refused the connection: {:?}", ack.code));
                    }
                    break ack.properties.and_then(|p| p.max_packet_size);
                }
                Ok(_) => {}
                Err(e) => return Err(describe(&e)),
            }
        };
        let pending = Arc::new(Mutex::new(Pending::default()));
        let event_loop = tokio::spawn(run(event_loop, pending.clone()));
        Ok(Self(Arc::new(Inner {
            client,
            pending,
            event_loop,
            max_packet,
        })))
    }

    pub async fn publish(
        &self,
        broker: &BrokerUrl,
        message: &BrokerMessage<'_>,
    ) -> Result<String, PublishError> {
        let BrokerTarget::Mqtt { topic, qos, retain } = &broker.target else {
            return Err(PublishError::Refused("not an MQTT destination".into()));
        };
        let properties = PublishProperties {
            content_type: Some(message.content_type.to_owned()),
            user_properties: message.headers.clone(),
            ..PublishProperties::default()
        };
        let level = if *qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        // A packet over the broker's limit would end the connection for every delivery on it:
        // refused alone (its size is the message's, so its retries fail the same way).
        let size = message.body.len()
            + topic.len()
            + message
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 5)
                .sum::<usize>()
            + message.content_type.len()
            + 32;
        if let Some(max) = self.0.max_packet
            && size > max as usize
        {
            return Err(PublishError::Refused(format!(
                "the message (about {size} bytes with its properties) is larger than the \
                 broker's maximum packet size ({max} bytes)"
            )));
        }
        let (done, answer) = oneshot::channel();
        {
            // No await while this is held: see the module's documentation.
            let mut pending = lock(&self.0.pending);
            if let Some(reason) = &pending.closed {
                return Err(PublishError::Broken(reason.clone()));
            }
            self.0
                .client
                .try_publish_with_properties(
                    topic.as_str(),
                    level,
                    *retain,
                    message.body.clone(),
                    properties,
                )
                .map_err(|e| {
                    PublishError::Refused(format!(
                        "the MQTT client has {REQUEST_CHANNEL} publishes waiting for the broker \
                         and takes no more now: {e}"
                    ))
                })?;
            pending.queued.push_back((*qos, done));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(PublishError::Broken("the MQTT connection closed".into())))
    }

    /// Ends the connection (the event loop stops; waiting publishes fail).
    pub fn close(&self) {
        self.0.event_loop.abort();
        lock(&self.0.pending).fail_all("the connection was closed");
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drives the connection, matching written publishes to their acknowledgements, until it
/// fails (the link then opens a new one: no reconnection here, so that each connection goes
/// through the network policy).
async fn run(mut event_loop: EventLoop, pending: Arc<Mutex<Pending>>) {
    loop {
        match event_loop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(packet_id))) => {
                let mut pending = lock(&pending);
                if let Some((qos, done)) = pending.queued.pop_front() {
                    if qos == 0 {
                        let _ = done.send(Ok("sent with QoS 0 (no acknowledgement)".into()));
                    } else {
                        pending.written.insert(packet_id, done);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(done) = lock(&pending).written.remove(&ack.pkid) {
                    let _ = done.send(match ack.reason {
                        PubAckReason::Success => Ok("PUBACK".into()),
                        PubAckReason::NoMatchingSubscribers => {
                            Ok("PUBACK (no matching subscribers)".into())
                        }
                        other => Err(PublishError::Refused(format!(
                            "the broker refused the message: {other:?}"
                        ))),
                    });
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                lock(&pending).fail_all(&format!("the broker disconnected: {:?}", d.reason_code));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                lock(&pending).fail_all(&describe(&e));
                return;
            }
        }
    }
}

fn describe(e: &rumqttc::v5::ConnectionError) -> String {
    match e {
        rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        other => format!("MQTT connection failed: {other}"),
    }
}
