//! MQTT 5 through `rumqttc` (bytebeam's client: MQTT 5, rustls, tokio; maintained, and the one
//! most Rust MQTT users run).
//!
//! `rumqttc` queues a publish and reports its progress only as events of its event loop: an
//! `Outgoing::Publish(packet id)` when it is written, an incoming `PubAck` with that id when
//! the broker has it. Publishes enter its request channel one at a time (under `order`), and
//! the event loop takes them in that order, so the n-th `Outgoing::Publish` is the n-th
//! publish queued: that is how each delivery learns its packet id and then its PUBACK.
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
    order: tokio::sync::Mutex<()>,
    pending: Arc<Mutex<Pending>>,
    event_loop: tokio::task::JoinHandle<()>,
}

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
            // Room for the deliveries of every endpoint publishing to this broker at once.
            .set_request_channel_capacity(1024);
        if target.tls {
            options.set_transport(rumqttc::Transport::tls_with_default_config());
        }
        if let Some(credentials) = target.credentials {
            options.set_credentials(
                credentials.user.clone(),
                credentials.password.clone().unwrap_or_default(),
            );
        }
        let (client, mut event_loop) = AsyncClient::new(options, 1024);
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        return Err(format!("the broker refused the connection: {:?}", ack.code));
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) => return Err(describe(&e)),
            }
        }
        let pending = Arc::new(Mutex::new(Pending::default()));
        let event_loop = tokio::spawn(run(event_loop, pending.clone()));
        Ok(Self(Arc::new(Inner {
            client,
            order: tokio::sync::Mutex::new(()),
            pending,
            event_loop,
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
        let (done, answer) = oneshot::channel();
        {
            let _order = self.0.order.lock().await;
            {
                let mut pending = lock(&self.0.pending);
                if let Some(reason) = &pending.closed {
                    return Err(PublishError::Broken(reason.clone()));
                }
                pending.queued.push_back((*qos, done));
            }
            let sent = self
                .0
                .client
                .publish_bytes_with_properties(
                    topic.as_str(),
                    level,
                    *retain,
                    message.body.clone(),
                    properties,
                )
                .await;
            if let Err(e) = sent {
                // Never queued: take back this delivery's place (the last one, under `order`).
                lock(&self.0.pending).queued.pop_back();
                return Err(PublishError::Broken(format!(
                    "the MQTT client stopped: {e}"
                )));
            }
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
