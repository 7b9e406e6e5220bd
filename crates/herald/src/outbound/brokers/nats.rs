//! NATS through `async-nats` (the NATS team's own client, released with the server).
//!
//! When a JetStream stream holds the subject, the publish goes through JetStream: the stream's
//! acknowledgement is the success, and `Nats-Msg-Id` is the message id, so a retry after a
//! lost acknowledgement is dropped by the stream's de-duplication window instead of stored
//! twice. Otherwise it is a core publish followed by a flush (written to the server's
//! connection: core NATS acknowledges nothing and keeps nothing for absent subscribers). Which subjects a stream holds is asked once and
//! remembered for 30 s, so a stream created later is used soon after.
//!
//! Framing: the body is the payload; every header is a NATS header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream;
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use herald_core::destination::{BrokerTarget, BrokerUrl};

use super::{BrokerMessage, PublishError, Target};

const STREAM_LOOKUP_TTL: Duration = Duration::from_secs(30);

/// Subject → the stream holding it (or none), and when that was learned.
type StreamCache = Arc<Mutex<HashMap<String, (Option<String>, Instant)>>>;

#[derive(Clone)]
pub(super) struct Client {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    streams: StreamCache,
}

impl Client {
    pub async fn connect(target: &Target<'_>) -> Result<Self, String> {
        let mut options = async_nats::ConnectOptions::new()
            .name("herald")
            .connection_timeout(Duration::from_secs(10))
            // Only the server the policy checked: never one the cluster advertises.
            .ignore_discovered_servers()
            .require_tls(target.tls);
        if let Some(credentials) = target.credentials {
            options = match &credentials.password {
                Some(password) => {
                    options.user_and_password(credentials.user.clone(), password.clone())
                }
                None => options.token(credentials.user.clone()),
            };
        }
        let address = format!("{}:{}", target.url_host(), target.address.port());
        let client = options
            .connect(address)
            .await
            .map_err(|e| format!("NATS: {e}"))?;
        Ok(Self {
            jetstream: jetstream::new(client.clone()),
            client,
            streams: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub async fn publish(
        &self,
        broker: &BrokerUrl,
        message: &BrokerMessage<'_>,
    ) -> Result<String, PublishError> {
        let BrokerTarget::Nats { subject } = &broker.target else {
            return Err(PublishError::Refused("not a NATS destination".into()));
        };
        if self.client.connection_state() != State::Connected {
            return Err(PublishError::Broken(
                "not connected to the NATS server".into(),
            ));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("content-type", message.content_type);
        for (name, value) in &message.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        match self.stream_for(subject).await? {
            Some(_) => {
                headers.insert("Nats-Msg-Id", message.id);
                let ack = self
                    .jetstream
                    .publish_with_headers(subject.clone(), headers, message.body.clone())
                    .await
                    .map_err(|e| PublishError::Broken(format!("JetStream publish failed: {e}")))?
                    .await
                    .map_err(|e| {
                        PublishError::Refused(format!("JetStream did not acknowledge: {e}"))
                    })?;
                Ok(format!(
                    "JetStream ack: stream {}, sequence {}{}",
                    ack.stream,
                    ack.sequence,
                    if ack.duplicate {
                        " (a duplicate: the stream already had this message id)"
                    } else {
                        ""
                    }
                ))
            }
            None => {
                self.client
                    .publish_with_headers(subject.clone(), headers, message.body.clone())
                    .await
                    .map_err(|e| PublishError::Broken(format!("NATS publish failed: {e}")))?;
                self.client
                    .flush()
                    .await
                    .map_err(|e| PublishError::Broken(format!("NATS flush failed: {e}")))?;
                Ok("published and flushed (core NATS: no stream holds the subject)".into())
            }
        }
    }

    /// The stream holding `subject`, if any (asked of the server, remembered a while).
    async fn stream_for(&self, subject: &str) -> Result<Option<String>, PublishError> {
        let streams = || self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((stream, at)) = streams().get(subject)
            && at.elapsed() < STREAM_LOOKUP_TTL
        {
            return Ok(stream.clone());
        }
        let stream = match self.jetstream.stream_by_subject(subject).await {
            Ok(stream) => Some(stream),
            Err(e) => match e.kind() {
                GetStreamByNameErrorKind::NotFound | GetStreamByNameErrorKind::InvalidSubject => {
                    None
                }
                // A server without JetStream has no responder for its API.
                GetStreamByNameErrorKind::Request if no_responders(&e) => None,
                _ => {
                    // Not knowing, publishing without JetStream's acknowledgement could lose
                    // a message a stream should have: fail, and the retry asks again.
                    return Err(PublishError::Broken(format!(
                        "cannot tell whether a JetStream stream holds {subject}: {e}"
                    )));
                }
            },
        };
        streams().insert(subject.to_owned(), (stream.clone(), Instant::now()));
        Ok(stream)
    }
}

/// Whether a JetStream API request found nobody to answer it: a server without JetStream.
fn no_responders(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let jetstream = error
            .downcast_ref::<async_nats::jetstream::context::RequestError>()
            .is_some_and(|e| {
                matches!(
                    e.kind(),
                    async_nats::jetstream::context::RequestErrorKind::NoResponders
                )
            });
        let core = error
            .downcast_ref::<async_nats::RequestError>()
            .is_some_and(|e| matches!(e.kind(), async_nats::RequestErrorKind::NoResponders));
        if jetstream || core {
            return true;
        }
        cause = error.source();
    }
    false
}
