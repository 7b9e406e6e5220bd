//! Reading a polling endpoint: the page after a position, filtered, signed, waited for.
//!
//! **What is signed.** Each message's `headers` hold `webhook-id` (the message id),
//! `webhook-timestamp` (the time of this read, so that a receiver's tolerance window holds for
//! an old message read late) and `webhook-signature`, made with the endpoint's secret (every
//! secret in its rotation grace period too, as deliveries are) over
//! `{webhook-id}.{webhook-timestamp}.{payload}`, where `{payload}` is the message's payload
//! serialised as compact JSON: byte for byte what the answer carries as `payload`. A receiver
//! re-serialises the parsed `payload` compactly (in Python
//! `json.dumps(payload, separators=(",", ":"), ensure_ascii=False)`, in JavaScript
//! `JSON.stringify(payload)`) and verifies with any Standard Webhooks library.
//!
//! **Retention.** An entry whose payload retention removed is skipped (the iterator moves past
//! it): a message not polled within the payload retention is gone for its pollers, as its
//! content is for everything else.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_core::model::{Endpoint, Message};
use herald_core::secrets::EndpointSecrets;
use herald_core::signing::{self, SigningSecrets};
use herald_core::validate::Violations;
use herald_store::PollPosition;

use super::{PollingEndpointMessageOut, PollingEndpointOut};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};

/// Positions as the API shows them (`iterator`).
pub(super) type Position = PollPosition;

/// The `iterator` text of positions.
pub(super) trait IteratorText: Sized {
    /// The position an iterator names; a violation at `query.iterator` when it names none.
    fn parse(v: &mut Violations, text: &str) -> Option<Self>;
    fn encode(self) -> String;
}

impl IteratorText for PollPosition {
    fn parse(v: &mut Violations, text: &str) -> Option<Self> {
        let position = URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|plain| {
                let (xid, seq) = plain.split_once(':')?;
                Some(PollPosition {
                    xid: xid.parse().ok()?,
                    seq: seq.parse().ok()?,
                })
            });
        if position.is_none() {
            v.value(
                &["query", "iterator"],
                "not an iterator of this endpoint's answers",
            );
        }
        position
    }

    fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.xid, self.seq))
    }
}

/// Filters of the (stateless) poll route.
#[derive(Debug, Default)]
pub(super) struct Filter {
    pub(super) event_type: Option<String>,
    pub(super) channel: Option<String>,
}

impl Filter {
    fn admits(&self, msg: &Message) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|t| *t == msg.event_type)
            && self.channel.as_ref().is_none_or(|c| {
                msg.channels
                    .as_ref()
                    .is_some_and(|channels| channels.contains(c))
            })
    }
}

pub(super) struct Request {
    pub(super) from: Position,
    pub(super) limit: u32,
    /// Seconds to wait for a message when there is none.
    pub(super) wait: u32,
    pub(super) filter: Filter,
}

/// How often a waiting poll reads again without a bell.
const RECHECK: Duration = Duration::from_millis(250);

/// Reads a page after `request.from`, waiting up to `request.wait` seconds for one message.
pub(super) async fn read(
    state: &AppState,
    endpoint: &Endpoint,
    request: Request,
    reader: &'static str,
) -> ApiResult<PollingEndpointOut> {
    let Request {
        mut from,
        limit,
        wait,
        filter,
    } = request;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    // Subscribed before the first read: a publish committed after that read rings it.
    let mut bell = state.wakeup.poll_bell();
    loop {
        bell.borrow_and_update();
        let entries = state.store.read_polled(&endpoint.id, from, limit).await?;
        let done = entries.len() < limit as usize;
        let mut found = Vec::new();
        for entry in entries {
            from = entry.position;
            if entry.message.payload.is_some() && filter.admits(&entry.message) {
                found.push(entry.message);
            }
        }
        let now = tokio::time::Instant::now();
        // A stopping process answers at once rather than hold its shutdown.
        if !found.is_empty() || now >= deadline || !done || state.wakeup.long_polls_ended() {
            let data = sign_all(state, endpoint, found).await?;
            metrics::counter!(crate::metrics::POLLED_MESSAGES, "kind" => "polling", "reader" => reader)
                .increment(data.len() as u64);
            return Ok(PollingEndpointOut {
                data,
                iterator: from.encode(),
                done,
            });
        }
        let nap = RECHECK.min(deadline - now);
        tokio::select! {
            _ = bell.changed() => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// The messages as pollers get them, each signed.
async fn sign_all(
    state: &AppState,
    endpoint: &Endpoint,
    messages: Vec<Message>,
) -> ApiResult<Vec<PollingEndpointMessageOut>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let sealed = state
        .store
        .get_endpoint_secrets(&endpoint.id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))?;
    let secrets = EndpointSecrets::open(&state.keyring, &sealed).map_err(|e| {
        ApiError::Internal(format!("cannot open the secrets of {}: {e}", endpoint.id))
    })?;
    let now = herald_core::time::now();
    let signing = SigningSecrets {
        current: &secrets.current,
        previous: secrets.active_previous(now).collect(),
    };
    let timestamp = now.timestamp();
    messages
        .into_iter()
        .map(|msg| {
            let text = msg.payload.as_deref().unwrap_or("null");
            let payload: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.to_owned()));
            let body = serde_json::to_vec(&payload)
                .map_err(|e| ApiError::Internal(format!("payload of {}: {e}", msg.id)))?;
            let mut headers: BTreeMap<String, String> = signing::sign(
                &endpoint.options.signature,
                &signing,
                msg.id.as_str(),
                timestamp,
                &body,
            )
            .map_err(|e| ApiError::Internal(format!("cannot sign for {}: {e}", endpoint.id)))?
            .into_iter()
            .collect();
            headers.insert("webhook-id".into(), msg.id.as_str().to_owned());
            headers.insert("webhook-timestamp".into(), timestamp.to_string());
            Ok(PollingEndpointMessageOut {
                id: msg.id.into_string(),
                event_type: msg.event_type,
                payload,
                timestamp: msg.created_at,
                headers,
                event_id: msg.event_id,
                channels: msg.channels,
                tags: msg.tags,
                deliver_at: msg.deliver_at,
            })
        })
        .collect()
}
