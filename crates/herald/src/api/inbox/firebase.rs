//! What `/in/…` shares with Firebase's REST API beyond the tree itself: the `print` and
//! `shallow` query parameters, Firebase's error bodies, and the limit on writes without the
//! token (Firebase's `auth == null` write rule, which Herald's `publicWrite` replaces).
//!
//! Followed: the Firebase Realtime Database REST reference and its "Retrieving Data" guide
//! (firebase.google.com/docs/reference/rest/database, …/docs/database/rest/retrieve-data).
//! `print=pretty` answers human-readable JSON (Firebase's layout: two-space indents and
//! `"key" : value`); `print=silent` answers 204 with no body, on reads and writes alike;
//! `shallow=true` gives a primitive as it is and an object's keys each mapped to `true`, and
//! cannot be mixed with the other query parameters.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::id::InboxId;
use serde_json::Value;

/// Per-address token buckets for tokenless writes, per inbox, in this node's memory.
pub type PublicWriteLimiter = herald_core::rate::TokenBuckets<(InboxId, IpAddr)>;

/// Most (inbox, address) pairs a node keeps buckets for: past it, buckets idle for a second
/// (full again) are forgotten, and a new address is refused (429) while none is.
pub const MAX_PUBLIC_WRITE_ADDRESSES: usize = 10_000;

/// Firebase's `print` query parameter, as the OpenAPI document names its values.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FirebasePrint {
    /// Indented JSON, as Firebase lays it out.
    Pretty,
    /// 204 with no body.
    Silent,
}

/// How an answer is printed: Firebase's `print` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Print {
    /// Compact JSON (no `print`).
    #[default]
    Compact,
    /// `print=pretty`: indented, as Firebase lays it out.
    Pretty,
    /// `print=silent`: 204 with no body.
    Silent,
}

impl Print {
    /// Reads the `print` parameter: `pretty`, `silent`, or nothing; any other is refused with
    /// Firebase's 400.
    pub fn parse(given: Option<&str>) -> Result<Self, Box<Response>> {
        match given {
            None => Ok(Self::Compact),
            Some("pretty") => Ok(Self::Pretty),
            Some("silent") => Ok(Self::Silent),
            Some(other) => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("print={other:?} is not supported: use print=pretty or print=silent"),
            ))),
        }
    }

    /// The answer carrying `value` (200), printed this way.
    pub fn respond(self, value: &Value) -> Response {
        let body = match self {
            Self::Silent => return StatusCode::NO_CONTENT.into_response(),
            Self::Compact => value.to_string(),
            Self::Pretty => pretty(value),
        };
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Firebase's error body, for the query parameters taken from Firebase.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FirebaseErrorOut {
    pub error: String,
}

/// A refused tree read: Herald's error body, or Firebase's for Firebase's own parameters
/// (`shallow` mixed with a query, a bad `print`), as Firebase's clients expect.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TreeReadErrorOut {
    Herald(super::super::error::HttpErrorOut),
    Firebase(FirebaseErrorOut),
}

/// Firebase's error body, `{"error": "…"}`, for the query parameters taken from Firebase.
pub fn error(status: StatusCode, detail: impl Into<String>) -> Response {
    let mut response = (
        status,
        axum::Json(serde_json::json!({ "error": detail.into() })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The address a tokenless write is counted against: an IPv4 address, or an IPv6 address's
/// /64 network (one host usually holds a whole /64, so counting single IPv6 addresses would
/// let it take as many buckets as it likes).
pub fn counted_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Takes a tokenless write's token from its address's bucket: `Err(wait)` past `per_second`.
pub fn take_public_write(
    limiter: &PublicWriteLimiter,
    inbox: &InboxId,
    source: Option<IpAddr>,
    per_second: u32,
) -> Result<(), std::time::Duration> {
    // Without a peer address (never over TCP), every such write shares one bucket.
    let address = source.map_or(IpAddr::from([0, 0, 0, 0]), counted_address);
    limiter.take_bounded(
        &(inbox.clone(), address),
        per_second,
        Instant::now(),
        MAX_PUBLIC_WRITE_ADDRESSES,
    )
}

/// `value` as Firebase's `print=pretty` lays it out.
fn pretty(value: &Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, FirebasePretty::new());
    match value.serialize(&mut serializer) {
        Ok(()) => String::from_utf8(out).unwrap_or_else(|_| value.to_string()),
        Err(_) => value.to_string(),
    }
}

/// serde_json's pretty layout with Firebase's ` : ` between a key and its value.
struct FirebasePretty<'a>(serde_json::ser::PrettyFormatter<'a>);

impl FirebasePretty<'_> {
    fn new() -> Self {
        Self(serde_json::ser::PrettyFormatter::with_indent(b"  "))
    }
}

impl serde_json::ser::Formatter for FirebasePretty<'_> {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b" : ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_is_laid_out_as_firebase_does() {
        assert_eq!(
            pretty(&json!({"first": "Jack", "tags": [1, {"a": true}], "e": {}})),
            "{\n  \"first\" : \"Jack\",\n  \"tags\" : [\n    1,\n    {\n      \"a\" : true\n    }\n  ],\n  \"e\" : {}\n}"
        );
        assert_eq!(pretty(&Value::Null), "null");
    }

    #[test]
    fn print_values() {
        assert_eq!(Print::parse(None).unwrap(), Print::Compact);
        assert_eq!(Print::parse(Some("pretty")).unwrap(), Print::Pretty);
        assert_eq!(Print::parse(Some("silent")).unwrap(), Print::Silent);
        assert_eq!(
            Print::parse(Some("loud")).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn ipv6_hosts_count_by_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(counted_address(a), counted_address(b));
        assert_ne!(counted_address(a), counted_address(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            counted_address(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
