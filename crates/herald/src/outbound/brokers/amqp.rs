//! AMQP 0-9-1 (RabbitMQ) through `lapin` (the most used Rust AMQP client, maintained, with
//! publisher confirms as one future per publish).
//!
//! The channel is in confirm mode and every publish is `mandatory`: the broker's ack is the
//! success; a nack, or a message returned because no queue is bound to its routing key, is a
//! failed attempt (retried on the schedule: a queue bound later gets it).
//!
//! Framing: the body is the message body; `content-type` the `content_type` property, the
//! message id (`webhook-id`) the `message_id` property (a consumer's de-duplication key), and
//! every header an AMQP header (a long string). Messages are persistent (`delivery_mode` 2).

use std::sync::Arc;

use herald_core::destination::{BrokerTarget, BrokerUrl};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

use super::{BrokerMessage, PublishError, Target};

#[derive(Clone)]
pub(super) struct Client {
    connection: Arc<Connection>,
    /// The confirm-mode channel. A broker closes a channel over one message's fault (an
    /// exchange that does not exist): that fails only that publish, and a new channel is
    /// opened on the same connection for the next, so the other endpoints on this connection
    /// go on.
    channel: Arc<tokio::sync::Mutex<lapin::Channel>>,
}

async fn confirm_channel(connection: &Connection) -> Result<lapin::Channel, String> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| format!("AMQP channel: {e}"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| format!("AMQP confirm mode: {e}"))?;
    Ok(channel)
}

impl Client {
    pub async fn connect(target: &Target<'_>) -> Result<Self, String> {
        let mut userinfo = AMQPUserInfo::default();
        if let Some(credentials) = target.credentials {
            userinfo.username.clone_from(&credentials.user);
            userinfo.password = credentials.password.clone().unwrap_or_default();
        }
        let uri = AMQPUri {
            scheme: if target.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo,
                host: target.connect_host(),
                port: target.address.port(),
            },
            vhost: target.namespace.to_owned(),
            query: AMQPQueryString::default(),
        };
        let connection = Connection::connect_uri(uri, ConnectionProperties::default())
            .await
            .map_err(|e| format!("AMQP: {e}"))?;
        let channel = confirm_channel(&connection).await?;
        Ok(Self {
            connection: Arc::new(connection),
            channel: Arc::new(tokio::sync::Mutex::new(channel)),
        })
    }

    pub async fn publish(
        &self,
        broker: &BrokerUrl,
        message: &BrokerMessage<'_>,
    ) -> Result<String, PublishError> {
        let BrokerTarget::Amqp {
            exchange,
            routing_key,
        } = &broker.target
        else {
            return Err(PublishError::Refused("not an AMQP destination".into()));
        };
        let channel = self.channel().await?;
        let mut headers = FieldTable::default();
        for (name, value) in &message.headers {
            headers.insert(
                ShortString::from(name.as_str()),
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from(message.content_type))
            .with_message_id(ShortString::from(message.id))
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                ShortString::from(exchange.as_str()),
                ShortString::from(routing_key.as_str()),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                properties,
            )
            .await
            .map_err(|e| self.failed(format!("AMQP publish failed: {e}")))?
            .await
            .map_err(|e| self.failed(format!("AMQP publisher confirm failed: {e}")))?;
        match confirm {
            Confirmation::Ack(None) => Ok("confirmed by the broker (ack)".into()),
            Confirmation::Ack(Some(returned)) => Err(PublishError::Refused(format!(
                "the broker could not route the message (returned: {} {}): no queue is bound \
                 to routing key {routing_key:?} on exchange {exchange:?}",
                returned.reply_code, returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(PublishError::Refused(
                "the broker refused the message (nack)".into(),
            )),
            Confirmation::NotRequested => Err(PublishError::Broken(
                "the channel is not in confirm mode".into(),
            )),
        }
    }
}

impl Client {
    /// The open channel, or a new one when the broker closed the last (the connection up).
    async fn channel(&self) -> Result<lapin::Channel, PublishError> {
        let mut channel = self.channel.lock().await;
        if !channel.status().connected() {
            if !self.connection.status().connected() {
                return Err(PublishError::Broken("the AMQP connection is closed".into()));
            }
            *channel = confirm_channel(&self.connection)
                .await
                .map_err(PublishError::Broken)?;
        }
        Ok(channel.clone())
    }

    /// A failed publish: the connection's fault if it is down, else this message's (its
    /// channel closed by the broker, reopened by the next publish).
    fn failed(&self, reason: String) -> PublishError {
        if self.connection.status().connected() {
            PublishError::Refused(reason)
        } else {
            PublishError::Broken(reason)
        }
    }
}
