//! Reading back what Herald published, with each broker's own client, as a customer's
//! consumer would: the body and the Standard Webhooks headers in the broker's framing.

use std::time::Duration;

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};

/// One message as a consumer got it.
pub struct Got {
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        herald_core::token::random_base62(10).to_lowercase()
    )
}

/// An MQTT 5 subscriber (QoS 1) collecting what arrives on `topic`.
pub struct MqttSubscriber {
    got: std::sync::Arc<std::sync::Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttSubscriber {
    pub async fn start(port: u16, topic: &str) -> Self {
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{AsyncClient, Event, MqttOptions};
        let mut options = MqttOptions::new(unique("sub-"), "127.0.0.1", port);
        options.set_max_packet_size(Some(1 << 20));
        let (client, mut events) = AsyncClient::new(options, 100);
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        // Until the broker confirms the subscription.
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
                break;
            }
        }
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collect = got.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let props = p.properties.unwrap_or_default();
                        let headers = header_map(
                            props
                                .user_properties
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str())),
                        );
                        collect.lock().unwrap().push(Got {
                            body: p.payload.to_vec(),
                            headers,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Self { got, task }
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn distinct(&self) -> u64 {
        super::distinct(&self.got.lock().unwrap())
    }

    pub fn take(self) -> Vec<Got> {
        self.task.abort();
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// A JetStream stream holding `subject`, made for the test and deleted at the end.
pub struct JetStream {
    context: async_nats::jetstream::Context,
    pub name: String,
}

impl JetStream {
    pub async fn create(port: u16, subject: &str) -> Self {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let context = async_nats::jetstream::new(client);
        let name = unique("HERALD_TEST_").to_uppercase();
        context
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject.to_owned()],
                ..Default::default()
            })
            .await
            .unwrap();
        Self { context, name }
    }

    pub async fn count(&self) -> u64 {
        let mut stream = self.context.get_stream(&self.name).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Every message in the stream, in order.
    pub async fn read_all(&self) -> Vec<Got> {
        let stream = self.context.get_stream(&self.name).await.unwrap();
        let mut got = Vec::new();
        let mut seq = 1;
        while let Ok(message) = stream.get_raw_message(seq).await {
            let headers = message.headers;
            let headers = header_map(
                headers
                    .iter()
                    .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_ref(), v.as_str()))),
            );
            got.push(Got {
                body: message.payload.to_vec(),
                headers,
            });
            seq += 1;
        }
        got
    }

    pub async fn delete(self) {
        let _ = self.context.delete_stream(&self.name).await;
    }
}

/// A core NATS subscriber (no stream) collecting what arrives on `subject`.
pub async fn nats_subscribe(port: u16, subject: &str) -> async_nats::Subscriber {
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let subscriber = client.subscribe(subject.to_owned()).await.unwrap();
    client.flush().await.unwrap();
    subscriber
}

pub async fn nats_next(subscriber: &mut async_nats::Subscriber) -> Got {
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("a message within 10 s")
        .unwrap();
    let headers = message.headers.unwrap_or_default();
    Got {
        body: message.payload.to_vec(),
        headers: header_map(
            headers
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_ref(), v.as_str()))),
        ),
    }
}

/// An AMQP queue made for the test (deleted when its connection closes).
pub struct AmqpQueue {
    channel: lapin::Channel,
    _connection: lapin::Connection,
    pub name: String,
}

impl AmqpQueue {
    pub async fn declare(port: u16) -> Self {
        let connection = lapin::Connection::connect(
            &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let name = unique("herald-test-");
        channel
            .queue_declare(
                name.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            channel,
            _connection: connection,
            name,
        }
    }

    pub async fn count(&self) -> u32 {
        self.channel
            .queue_declare(
                self.name.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Takes every message in the queue, in order.
    pub async fn drain(&self) -> Vec<Got> {
        let mut got = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(
                self.name.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let properties = &message.delivery.properties;
            let mut pairs: Vec<(String, String)> = Vec::new();
            if let Some(table) = properties.headers() {
                for (name, value) in table.inner() {
                    if let lapin::types::AMQPValue::LongString(s) = value {
                        pairs.push((name.to_string(), s.to_string()));
                    }
                }
            }
            assert_eq!(
                properties.message_id().as_ref().map(|s| s.to_string()),
                pairs
                    .iter()
                    .find(|(k, _)| k == "webhook-id")
                    .map(|(_, v)| v.clone()),
                "message_id is the webhook id"
            );
            got.push(Got {
                body: message.delivery.data.clone(),
                headers: header_map(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            });
        }
        got
    }
}

/// A Redis stream made for the test (deleted by `delete`).
pub struct RedisStream {
    connection: redis::aio::MultiplexedConnection,
    pub key: String,
}

/// A stream entry as `XRANGE` answers it: its id and its fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

impl RedisStream {
    pub async fn new(port: u16, prefix: &str) -> Self {
        let connection = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        Self {
            connection,
            key: unique(prefix),
        }
    }

    pub async fn len(&self) -> u64 {
        redis::cmd("XLEN")
            .arg(&self.key)
            .query_async(&mut self.connection.clone())
            .await
            .unwrap()
    }

    /// Different messages in the stream so far.
    pub async fn distinct(&self) -> u64 {
        super::distinct(&self.read().await)
    }

    /// Every entry, in order: its `body` field and the rest as headers.
    pub async fn read(&self) -> Vec<Got> {
        let entries: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.connection.clone())
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|(_, fields)| {
                let body = fields
                    .iter()
                    .find(|(k, _)| k == "body")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let pairs: Vec<(String, String)> = fields
                    .iter()
                    .filter(|(k, _)| k != "body")
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect();
                Got {
                    body,
                    headers: header_map(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                }
            })
            .collect()
    }

    pub async fn delete(self) {
        let _: () = redis::cmd("DEL")
            .arg(&self.key)
            .query_async(&mut self.connection.clone())
            .await
            .unwrap();
    }
}
