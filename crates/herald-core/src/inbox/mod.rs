//! Inboxes: Herald on the receiving side.
//!
//! A customer without a server of their own points webhooks and device-agent posts at an inbox
//! by path, the way the Electric Imp factory tutorial points them at a Firebase database
//! (`…/blessing.json`, `…/testresult.json`). Herald checks the inbox's token (and, when
//! configured, the sender's signature), keeps every accepted request as an entry, serves the data
//! as a Firebase-style JSON tree, exports it as JSON or CSV, and can forward each write into an
//! application as a signed message.
//!
//! This module holds what is pure about that: the inbox record, the tree model ([`tree`]),
//! request bodies ([`body`]) and the flattening of bodies into CSV columns ([`flatten`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{AppId, InboxId};
use crate::signing::SignatureConfig;

pub mod body;
pub mod flatten;
pub mod push_id;
pub mod tree;

/// Seconds a Standard Webhooks timestamp may differ from now unless the inbox says otherwise.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;

/// Request headers an inbox never keeps with an entry: they carry credentials (the inbox token
/// itself may come in `Authorization`).
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// Tokenless writes a `publicWrite` inbox accepts per second from one source address (per
/// node) when it sets no `rateLimit` of its own.
pub const DEFAULT_PUBLIC_WRITE_RATE: u32 = 10;

/// Most names an inbox's `dropHeaders` may hold.
pub const MAX_DROP_HEADERS: usize = 32;

/// Whether an inbox keeps request header `name` with its entries.
pub fn keeps_header(drop_headers: &[String], name: &str) -> bool {
    !CREDENTIAL_HEADERS
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
        && !drop_headers.iter().any(|d| name.eq_ignore_ascii_case(d))
}

/// An inbox: a named place that accepts webhooks and device posts at `/in/{name}/…` and keeps
/// them as entries.
#[derive(Clone, PartialEq, Eq)]
pub struct Inbox {
    /// The inbox's id (`inbox_…`), stable for its lifetime.
    pub id: InboxId,
    /// Unique over the installation: it names the inbox in `/in/{name}/…`.
    pub name: String,
    /// The application the inbox belongs to: its app-scoped tokens may manage it, and forwarded
    /// writes become its messages.
    pub app_id: Option<AppId>,
    /// Free text describing the inbox; empty when not given.
    pub description: String,
    /// SHA-256 of the ingest token (the token itself is shown once).
    pub token_hash: Vec<u8>,
    /// How incoming requests must be signed, if at all.
    pub verification: Option<SealedVerification>,
    /// Largest accepted body; `None`: the server's `--max-body-bytes`.
    pub max_body_bytes: Option<u32>,
    /// Accepted requests per second (per node); `None`: unlimited. Tokenless writes to a
    /// `public_write` inbox are limited per source address instead, at this rate or
    /// [`DEFAULT_PUBLIC_WRITE_RATE`].
    pub rate_limit: Option<u32>,
    /// Whether writes without the token are accepted (Firebase's `auth == null` write rule).
    /// Reads still need the token; a `verification` setting still applies.
    pub public_write: bool,
    /// What to do with accepted writes besides keeping them: forward each as a message of
    /// `app_id` (which it then requires); `None` keeps them only.
    pub forward: Option<Forward>,
    /// Request headers not kept with entries, besides credentials (which never are): names as
    /// given, compared without case.
    pub drop_headers: Vec<String>,
    /// Requests refused because their signature did not verify.
    pub rejected_count: i64,
    /// When the inbox was created.
    pub created_at: DateTime<Utc>,
    /// When the inbox's settings last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("app_id", &self.app_id)
            .field("verification", &self.verification)
            .field("forward", &self.forward)
            .field("public_write", &self.public_write)
            .finish_non_exhaustive()
    }
}

/// How an inbox checks the requests it receives: any scheme Herald signs with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationConfig {
    /// The scheme and its options, as for signing deliveries (`scheme`, header names, …).
    #[serde(flatten)]
    pub signature: SignatureConfig,
    /// Largest accepted age of a Standard Webhooks timestamp, in seconds; 0 turns it off.
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u32,
}

fn default_tolerance() -> u32 {
    DEFAULT_TOLERANCE_SECONDS
}

/// A verification setting as stored: the secret sealed by [`crate::crypto::Keyring`].
#[derive(Clone, PartialEq, Eq)]
pub struct SealedVerification {
    /// The verification settings (everything but the secret).
    pub config: VerificationConfig,
    /// The verification secret, sealed.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for SealedVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedVerification({}, secret redacted)",
            self.config.signature.scheme.as_str()
        )
    }
}

/// Where a forwarded write's event type comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "eventTypeFrom",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Forward {
    /// The path written to, with `/` turned into `.` (`factory/blessing` → `factory.blessing`).
    Path,
    /// A request header.
    Header {
        /// The header whose (trimmed) value is the event type, matched without case.
        header: String,
    },
    /// Always the same.
    Fixed {
        /// The event type every forwarded write gets.
        event_type: String,
    },
}

impl Forward {
    /// The event type of a write at `path` (segments) with `headers`, or why there is none.
    pub fn event_type(
        &self,
        path: &[String],
        headers: &[(String, String)],
    ) -> Result<String, String> {
        let found = match self {
            Forward::Path if path.is_empty() => {
                return Err("the event type comes from the path, and this write has none".into());
            }
            Forward::Path => path.join("."),
            Forward::Header { header } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(header))
                .map(|(_, v)| v.trim().to_owned())
                .ok_or_else(|| {
                    format!("the event type comes from the `{header}` header, which is missing")
                })?,
            Forward::Fixed { event_type } => event_type.clone(),
        };
        if found.len() > 256 || !crate::validate::is_identifier(&found) {
            return Err(format!(
                "{found:?} is not a valid event type (1 to 256 letters, digits, '-', '_' and '.')"
            ));
        }
        Ok(found)
    }
}

/// The key of the marker an unreadable stored value reads as (see [`stored_value`]): `$` is not
/// allowed in a key, so no write can make one.
pub const UNREADABLE_KEY: &str = "$unreadable";

/// A stored entry's value. One that cannot be read back as JSON (nested deeper than the 128
/// levels the JSON reader allows: written before Herald limited nesting, or a hand-edited
/// database) reads as `{"$unreadable": why}`, so that it costs a marker in its place rather
/// than every read of its inbox. A write over that place replaces it as usual.
pub fn stored_value(text: &str) -> serde_json::Value {
    match readable(text) {
        Ok(()) => serde_json::from_str(text).unwrap_or_else(unreadable),
        Err(why) => unreadable(why),
    }
}

/// Deepest nesting a stored value is read back with (the JSON reader's own limit; every write
/// Herald accepts today nests at most [`crate::validate::MAX_JSON_DEPTH`] levels).
pub const MAX_STORED_DEPTH: usize = 128;

/// Whether a stored value's text can be handed out as it is: `Err` with the reason when it
/// nests deeper than [`MAX_STORED_DEPTH`] (found by scanning, not parsing).
pub fn readable(text: &str) -> Result<(), String> {
    if crate::validate::json_too_deep(text.as_bytes(), MAX_STORED_DEPTH) {
        return Err(format!("it nests deeper than {MAX_STORED_DEPTH} levels"));
    }
    Ok(())
}

/// The marker of a stored value that cannot be read back, saying why.
pub fn unreadable(why: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({ UNREADABLE_KEY: format!("this stored value cannot be read back: {why}") })
}

/// The payload of the message a forwarded write becomes: the JSON body byte for byte when it is
/// an object, otherwise the value wrapped as `{"value": …}` (a message payload is an object).
pub fn forward_payload(raw_json: Option<&str>, value: &serde_json::Value) -> String {
    match (raw_json, value) {
        (Some(raw), serde_json::Value::Object(_)) => raw.to_owned(),
        (None, serde_json::Value::Object(_)) => value.to_string(),
        _ => serde_json::json!({ "value": value }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_from_path_header_and_setting() {
        let path = vec!["factory".to_owned(), "blessing".to_owned()];
        let headers = vec![("X-Event".to_owned(), " device.blinkup ".to_owned())];
        assert_eq!(
            Forward::Path.event_type(&path, &headers).unwrap(),
            "factory.blessing"
        );
        assert!(Forward::Path.event_type(&[], &headers).is_err());
        let header = Forward::Header {
            header: "x-event".into(),
        };
        assert_eq!(
            header.event_type(&path, &headers).unwrap(),
            "device.blinkup"
        );
        assert!(header.event_type(&path, &[]).is_err());
        let fixed = Forward::Fixed {
            event_type: "a b".into(),
        };
        assert!(fixed.event_type(&path, &headers).is_err());
        assert_eq!(
            serde_json::to_value(Forward::Fixed {
                event_type: "x".into()
            })
            .unwrap(),
            serde_json::json!({"eventTypeFrom": "fixed", "eventType": "x"})
        );
    }

    #[test]
    fn a_value_nested_too_deep_to_read_reads_as_a_marker() {
        assert_eq!(stored_value(r#"{"a": [1]}"#), serde_json::json!({"a": [1]}));
        let deep = format!("{}1{}", "[".repeat(3_000), "]".repeat(3_000));
        let marker = stored_value(&deep);
        assert!(
            marker[UNREADABLE_KEY]
                .as_str()
                .unwrap()
                .contains("deeper than 128")
        );
        assert!(stored_value("{nope")[UNREADABLE_KEY].is_string());
    }

    #[test]
    fn payloads_are_objects() {
        let obj = serde_json::json!({"a": 1});
        assert_eq!(forward_payload(Some("{\"a\":  1}"), &obj), "{\"a\":  1}");
        assert_eq!(
            forward_payload(None, &serde_json::json!("hi")),
            r#"{"value":"hi"}"#
        );
    }
}
