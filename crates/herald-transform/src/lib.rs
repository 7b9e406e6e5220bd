//! Transformations: an endpoint's JavaScript `handler(webhook)`, run in a bounded sandbox.
//!
//! A transformation lets one endpoint receive a shape no fixed option gives (a Slack message,
//! a partner's legacy format, a URL that depends on the payload). The handler gets
//! `{method, url, eventType, payload, headers, variables, cancel}` and returns it, changed:
//! another `method` (POST or PUT), `url`, `payload` (any JSON), added `headers`, or
//! `cancel = true` to skip the delivery. The caller (Herald's worker) re-encodes, signs and
//! sends what comes back, under the same network policy as any other URL.
//!
//! # Why QuickJS (through `rquickjs`)
//! The code is written by Herald's users' customers and runs inside the delivery worker, so
//! the engine must be able to stop it, and cheaply:
//! - **Sandboxing.** QuickJS-ng exposes nothing of the host unless the embedder adds it:
//!   there is no `require`, file, socket, `setTimeout` or `console` here (the `quickjs-libc`
//!   modules that have them are not linked in), and the job queue is never run, so a Promise
//!   never settles. A runtime has a **memory limit** (every allocation of its heap counts;
//!   past it an allocation fails with an `out of memory` error) and an **interrupt handler**
//!   the interpreter polls while it runs (the **time limit**: it raises an uncatchable
//!   exception). It also checks its own stack depth, so deep recursion and deep JSON are
//!   errors, not crashes. Boa (pure Rust) has loop and recursion limits but no memory limit
//!   and no wall-clock interrupt; V8 (`deno_core`) needs isolates per thread and a
//!   multi-hundred-megabyte build.
//! - **Speed.** A fresh context per run (so one run can leave nothing behind for the next,
//!   whoever's code it is) costs tens of microseconds; see BENCHMARKS.md for the deliveries/s
//!   with a trivial transformation against none.
//! - **Maintenance.** `rquickjs` is actively released (0.14, 2026) and vendors QuickJS-ng,
//!   the maintained fork of Bellard's QuickJS; it builds with `cc`, no bindgen.
//!
//! # Threads
//! A QuickJS runtime belongs to one thread and a run blocks it, so runs never happen on the
//! async executor: [`Sandbox`] owns a few OS threads, each with its own runtime, and hands
//! them runs through a queue. Transformations therefore run in parallel (one per thread), and
//! a handler that loops forever holds one thread for at most the time limit.

mod engine;
mod pool;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use pool::Sandbox;

/// The largest code accepted, in bytes: a handler is a function, not a library.
pub const MAX_CODE_BYTES: usize = 64 * 1024;

/// What one run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The runtime's heap, in bytes (QuickJS's own structures count too: about 200 KiB).
    pub memory_bytes: usize,
    /// Wall-clock time of one run: evaluating the code and calling the handler.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 * 1024 * 1024,
            time: Duration::from_millis(50),
        }
    }
}

/// The HTTP method a transformation may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Method {
    #[default]
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// What the handler receives (as `webhook`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub method: Method,
    pub url: String,
    pub event_type: String,
    /// The document that would be sent (after selection and envelope).
    pub payload: Value,
    /// The endpoint's transformation variables (stored encrypted).
    pub variables: BTreeMap<String, String>,
}

/// What the handler returned, checked for shape (not yet against the network policy or the
/// reserved header names: the caller owns those rules).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub method: Method,
    pub url: String,
    pub payload: Value,
    /// Headers the handler added, by name.
    pub headers: BTreeMap<String, String>,
    /// The handler asked to skip this delivery.
    pub cancel: bool,
}

/// Where in the code an error is (1-based), when the engine says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}{}", position(*line, *column))]
pub struct CodeError {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

fn position(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        (Some(line), None) => format!(" (line {line})"),
        _ => String::new(),
    }
}

/// Why a run produced no [`Outcome`]. Each is the reason recorded on the failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The code does not compile, or defines no `handler` function.
    #[error("the transformation's code is invalid: {0}")]
    Code(CodeError),
    /// The code or the handler threw.
    #[error("the transformation threw: {0}")]
    Threw(CodeError),
    /// Stopped at the time limit.
    #[error("the transformation ran longer than its limit of {0} ms and was stopped")]
    TimedOut(u128),
    /// Stopped at the memory limit.
    #[error("the transformation needed more than its limit of {0} bytes of memory and was stopped")]
    OutOfMemory(usize),
    /// The handler returned something other than a webhook.
    #[error("the transformation returned {0}")]
    BadReturn(String),
    /// The sandbox could not run anything (it could not start, or it is shutting down).
    #[error("the transformation sandbox is unavailable: {0}")]
    Unavailable(String),
}

/// The handler's return value as JSON, before its fields are checked.
#[derive(Deserialize)]
struct Returned {
    method: Option<Value>,
    url: Option<Value>,
    payload: Option<Value>,
    headers: Option<Value>,
    cancel: Option<Value>,
}

impl Outcome {
    /// Checks the handler's return value (`json`, as `JSON.stringify` wrote it) against what was
    /// sent in: fields left out keep their values; a field of the wrong type is an error.
    fn from_returned(json: &str, sent: &Webhook) -> Result<Self, Failure> {
        let bad = |what: String| Failure::BadReturn(what);
        let returned: Returned = serde_json::from_str(json)
            .map_err(|e| bad(format!("something that is not a webhook object: {e}")))?;
        let method = match returned.method {
            None => sent.method,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("POST") => Method::Post,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("PUT") => Method::Put,
            Some(other) => return Err(bad(format!("method {other}: only POST and PUT are sent"))),
        };
        let url = match returned.url {
            None => sent.url.clone(),
            Some(Value::String(url)) => url,
            Some(other) => return Err(bad(format!("url {other}: it must be a string"))),
        };
        let payload = returned.payload.ok_or_else(|| {
            bad("a webhook without `payload` (return the webhook it was given)".into())
        })?;
        let headers = match returned.headers {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(value) => Ok((name, value)),
                    other => Err(bad(format!("header {name}: {other}: it must be a string"))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(bad(format!("headers {other}: they must be an object"))),
        };
        let cancel = match returned.cancel {
            None | Some(Value::Null) => false,
            Some(Value::Bool(cancel)) => cancel,
            Some(other) => return Err(bad(format!("cancel {other}: it must be true or false"))),
        };
        Ok(Outcome {
            method,
            url,
            payload,
            headers,
            cancel,
        })
    }
}

#[cfg(test)]
mod tests;
