//! Redis Streams through `redis` (redis-rs, the Redis project's Rust client), on one
//! multiplexed connection per link.
//!
//! A delivery is one `XADD`: the entry id it answers is the success. With `maxlen=N` the
//! stream is trimmed exactly (`MAXLEN N`) as each entry is added.
//!
//! Framing: the entry's fields are `body` (the body's bytes), `content-type`, and every other
//! header by its name (`webhook-id`, `webhook-timestamp`, `webhook-signature`, …).

use std::time::Duration;

use herald_core::destination::{BrokerTarget, BrokerUrl};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::{BrokerMessage, PublishError, Target};

#[derive(Clone)]
pub(super) struct Client {
    connection: MultiplexedConnection,
}

impl Client {
    pub async fn connect(target: &Target<'_>) -> Result<Self, String> {
        let addr = if target.tls {
            ConnectionAddr::TcpTls {
                host: target.connect_host(),
                port: target.address.port(),
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(target.connect_host(), target.address.port())
        };
        let info: ConnectionInfo = addr
            .into_connection_info()
            .map_err(|e| format!("Redis: {e}"))?;
        let mut settings = info.redis_settings().clone().set_db(namespace_db(target));
        if let Some(credentials) = target.credentials {
            if !credentials.user.is_empty() {
                settings = settings.set_username(&credentials.user);
            }
            if let Some(password) = &credentials.password {
                settings = settings.set_password(password);
            }
        }
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| format!("Redis: {e}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            // The attempt's own timeout bounds each command.
            .set_response_timeout(None);
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(Self { connection })
    }

    pub async fn publish(
        &self,
        broker: &BrokerUrl,
        message: &BrokerMessage<'_>,
    ) -> Result<String, PublishError> {
        let BrokerTarget::Redis { stream, maxlen } = &broker.target else {
            return Err(PublishError::Refused("not a Redis destination".into()));
        };
        let mut command = redis::cmd("XADD");
        command.arg(stream);
        if let Some(maxlen) = maxlen {
            command.arg("MAXLEN").arg(*maxlen);
        }
        command
            .arg("*")
            .arg("body")
            .arg(message.body.as_ref())
            .arg("content-type")
            .arg(message.content_type);
        for (name, value) in &message.headers {
            // `body` and `content-type` are the entry's own fields.
            if name != "body" && name != "content-type" {
                command.arg(name).arg(value);
            }
        }
        let mut connection = self.connection.clone();
        let entry: String = command.query_async(&mut connection).await.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                PublishError::Broken(format!("Redis: {e}"))
            } else {
                // The server answered with an error (a wrong type at the key, no permission,
                // out of memory): the connection is fine.
                PublishError::Refused(format!("Redis refused XADD: {e}"))
            }
        })?;
        Ok(format!("XADD {stream} → entry {entry}"))
    }
}

fn namespace_db(target: &Target<'_>) -> i64 {
    target.namespace.parse().unwrap_or(0)
}
