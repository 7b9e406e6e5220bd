//! Field validation shared by the API and the CLI.
//!
//! Validation collects every problem of a request instead of stopping at the first, so that a
//! client sees all of them in one 422 answer (`{"detail": [{loc, msg, type}, …]}`, the shape the
//! Svix API and its SDKs use).

use std::collections::BTreeMap;

use serde::Serialize;

/// One problem with one field. `loc` is a path such as `["body", "eventTypes", "2"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Where the problem is: `body`, `query` or `path`, then field names and array positions.
    pub loc: Vec<String>,
    /// What is wrong, for a person.
    pub msg: String,
    /// The error class (`type` on the wire), e.g. `value_error`, `value_error.missing`,
    /// `type_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// More about the problem, as pydantic's `ctx`: where in a transformation's code a syntax
    /// error is (`{"line", "column"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Value>,
}

/// The problems found so far in one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation at `loc` with message `msg` and error class `kind`.
    pub fn push(&mut self, loc: &[&str], msg: impl Into<String>, kind: &str) {
        self.0.push(Violation {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: kind.to_owned(),
            ctx: None,
        });
    }

    /// Records a value error at `loc` with a context object (see [`Violation::ctx`]).
    pub fn value_with(&mut self, loc: &[&str], msg: impl Into<String>, ctx: serde_json::Value) {
        self.0.push(Violation {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: "value_error".to_owned(),
            ctx: Some(ctx),
        });
    }

    /// Records a value error at `loc`.
    pub fn value(&mut self, loc: &[&str], msg: impl Into<String>) {
        self.push(loc, msg, "value_error");
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations recorded, in order.
    pub fn into_inner(self) -> Vec<Violation> {
        self.0
    }

    /// `Ok(())` when nothing was recorded, the collected violations otherwise.
    pub fn finish(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The violations recorded, in order, without taking them.
    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }
}

/// Limits that a deployment may tune (see the `--max-url-length` family of options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest endpoint URL accepted, in bytes (`--max-url-length`, default 8192).
    pub max_url_length: usize,
    /// Longest description accepted, in characters (`--max-description-length`, default 512).
    pub max_description_length: usize,
    /// Most endpoints one application may have (`--max-endpoints-per-app`, default 1000).
    pub max_endpoints_per_app: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_url_length: 8_192,
            max_description_length: 512,
            max_endpoints_per_app: 1000,
        }
    }
}

/// Deepest nesting of arrays and objects accepted in a JSON body. Payloads are walked
/// recursively later (filters, GraphQL selections, form encoding), so depth is bounded where
/// JSON enters rather than trusted to each walker; 64 levels is twice what Firebase allows.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether a JSON text nests arrays and objects deeper than `max`, found by scanning, not
/// parsing (brackets inside strings do not count), so a hostile body costs one pass.
pub fn json_too_deep(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The Svix identifier rule used by `uid`s, event type names and channels:
/// `^[a-zA-Z0-9\-_.]+$`.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A channel: identifier characters and `:`, 1 to 128 of them. The colon (an addition to the
/// Svix rules) lets device events use `group:<g>`, `team:<t>`, `bundle:<b>`.
pub fn channel(v: &mut Violations, loc: &[&str], value: &str) {
    if value.is_empty() || value.len() > 128 {
        v.push(
            loc,
            "must be between 1 and 128 characters long",
            "value_error.any_str.length",
        );
    } else if !value
        .split(':')
        .all(|part| part.is_empty() || is_identifier(part))
    {
        v.push(
            loc,
            "may only contain letters, digits, '-', '_', '.' and ':'",
            "value_error.str.regex",
        );
    }
}

/// The `event_types` and `channel` filters that message and attempt lists share, at their
/// query locations.
pub fn list_filters(v: &mut Violations, event_types: &[String], channel: Option<&str>) {
    for (i, et) in event_types.iter().enumerate() {
        identifier(v, &["query", "event_types", &i.to_string()], et, 256);
    }
    if let Some(channel) = channel {
        self::channel(v, &["query", "channel"], channel);
    }
}

/// A list of channels: each valid, no duplicates, at most `max_items`.
pub fn channel_list(v: &mut Violations, loc: &[&str], values: &[String], max_items: usize) {
    if values.is_empty() {
        v.push(
            loc,
            "must contain at least one item (use null for none)",
            "value_error.list.min_items",
        );
    }
    if values.len() > max_items {
        v.push(
            loc,
            format!("must contain at most {max_items} items"),
            "value_error.list.max_items",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in values.iter().enumerate() {
        let index = i.to_string();
        let mut item_loc: Vec<&str> = loc.to_vec();
        item_loc.push(&index);
        channel(v, &item_loc, item);
        if !seen.insert(item.as_str()) {
            v.push(&item_loc, "duplicate item", "value_error.list.unique_items");
        }
    }
}

/// `uid`: 1 to 256 identifier characters.
pub fn uid(v: &mut Violations, loc: &[&str], value: &str) {
    identifier(v, loc, value, 256);
}

/// An identifier of at most `max` characters.
pub fn identifier(v: &mut Violations, loc: &[&str], value: &str, max: usize) {
    if value.is_empty() || value.len() > max {
        v.push(
            loc,
            format!("must be between 1 and {max} characters long"),
            "value_error.any_str.length",
        );
    } else if !is_identifier(value) {
        v.push(
            loc,
            "may only contain letters, digits, '-', '_' and '.'",
            "value_error.str.regex",
        );
    }
}

/// An endpoint's `eventTypes`: event type names, or patterns ending in `.*` (`reading.*`);
/// otherwise the rules of [`identifier_list`].
pub fn event_type_patterns(v: &mut Violations, loc: &[&str], values: &[String]) {
    if values.is_empty() {
        v.push(
            loc,
            "must contain at least one item (use null for none)",
            "value_error.list.min_items",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in values.iter().enumerate() {
        let index = i.to_string();
        let mut item_loc: Vec<&str> = loc.to_vec();
        item_loc.push(&index);
        identifier(v, &item_loc, item.strip_suffix(".*").unwrap_or(item), 254);
        if !seen.insert(item.as_str()) {
            v.push(&item_loc, "duplicate item", "value_error.list.unique_items");
        }
    }
}

/// A list of identifiers (event types, channels): each valid, no duplicates, within `max_items`.
pub fn identifier_list(
    v: &mut Violations,
    loc: &[&str],
    values: &[String],
    max_len: usize,
    max_items: Option<usize>,
) {
    if values.is_empty() {
        v.push(
            loc,
            "must contain at least one item (use null for none)",
            "value_error.list.min_items",
        );
    }
    if let Some(max) = max_items
        && values.len() > max
    {
        v.push(
            loc,
            format!("must contain at most {max} items"),
            "value_error.list.max_items",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in values.iter().enumerate() {
        let index = i.to_string();
        let mut item_loc: Vec<&str> = loc.to_vec();
        item_loc.push(&index);
        identifier(v, &item_loc, item, max_len);
        if !seen.insert(item.as_str()) {
            v.push(&item_loc, "duplicate item", "value_error.list.unique_items");
        }
    }
}

/// An endpoint URL: absolute `http` or `https` with a host, within the configured length.
pub fn endpoint_url(v: &mut Violations, loc: &[&str], value: &str, limits: &Limits) {
    http_url(v, loc, value, limits, "URL scheme must be http or https");
}

/// A URL within the configured length (1 or more characters); what `v` was told if not.
fn url_length(v: &mut Violations, loc: &[&str], value: &str, limits: &Limits) -> bool {
    let fits = !value.is_empty() && value.len() <= limits.max_url_length;
    if !fits {
        v.push(
            loc,
            format!(
                "must be between 1 and {} characters long",
                limits.max_url_length
            ),
            "value_error.any_str.length",
        );
    }
    fits
}

fn http_url(v: &mut Violations, loc: &[&str], value: &str, limits: &Limits, other_scheme: &str) {
    if !url_length(v, loc, value, limits) {
        return;
    }
    match url::Url::parse(value) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
            if parsed.host_str().is_none_or(str::is_empty) {
                v.value(loc, "URL must have a host");
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                v.value(
                    loc,
                    "URL must not contain credentials; use endpoint headers instead",
                );
            }
        }
        Ok(_) => v.value(loc, other_scheme),
        Err(e) => v.push(loc, format!("invalid URL: {e}"), "value_error.url"),
    }
}

/// An endpoint's URL: an `http(s)` URL as [`endpoint_url`] checks it, or a broker URL
/// (`mqtt://`, `nats://`, `amqp://`, `redis://` and their TLS variants) that
/// [`crate::destination::parse`] reads. A broker URL may carry credentials: they are taken out
/// and sealed before it is stored.
pub fn delivery_url(v: &mut Violations, loc: &[&str], value: &str, limits: &Limits) {
    if !crate::destination::is_broker_url(value) {
        http_url(
            v,
            loc,
            value,
            limits,
            "URL scheme must be http or https, or a broker's: mqtt, mqtts, nats, tls, amqp, \
             amqps, redis or rediss",
        );
        return;
    }
    if !url_length(v, loc, value, limits) {
        return;
    }
    if let Err(e) = crate::destination::parse(value) {
        v.value(loc, format!("invalid broker URL: {e}"));
    }
}

/// A free-text description within the configured length (in characters).
pub fn description(v: &mut Violations, loc: &[&str], value: &str, limits: &Limits) {
    if value.chars().count() > limits.max_description_length {
        v.push(
            loc,
            format!(
                "must be at most {} characters long",
                limits.max_description_length
            ),
            "value_error.any_str.max_length",
        );
    }
}

/// A non-empty name.
pub fn non_empty(v: &mut Violations, loc: &[&str], value: &str) {
    if value.trim().is_empty() {
        v.push(loc, "must not be empty", "value_error.any_str.min_length");
    }
}

/// Metadata: string keys and values with sane bounds so that a row cannot grow without limit.
pub fn metadata(v: &mut Violations, loc: &[&str], value: &BTreeMap<String, String>) {
    const MAX_ENTRIES: usize = 50;
    const MAX_KEY: usize = 256;
    const MAX_VALUE: usize = 4096;
    if value.len() > MAX_ENTRIES {
        v.value(loc, format!("must have at most {MAX_ENTRIES} entries"));
    }
    for (key, val) in value {
        let mut key_loc: Vec<&str> = loc.to_vec();
        key_loc.push(key);
        if key.is_empty() || key.len() > MAX_KEY {
            v.value(&key_loc, format!("keys must be 1 to {MAX_KEY} bytes long"));
        }
        if val.len() > MAX_VALUE {
            v.value(
                &key_loc,
                format!("values must be at most {MAX_VALUE} bytes"),
            );
        }
    }
}

/// A rate in messages per second: at least 1 (`null` means unlimited).
pub fn rate(v: &mut Violations, loc: &[&str], value: Option<u16>) {
    if value == Some(0) {
        v.push(
            loc,
            "must be at least 1 (use null for unlimited)",
            "value_error.number.not_ge",
        );
    }
}

/// An integer within `min..=max`.
pub fn range(v: &mut Violations, loc: &[&str], value: i64, min: i64, max: i64) {
    if value < min {
        v.push(
            loc,
            format!("must be at least {min}"),
            "value_error.number.not_ge",
        );
    } else if value > max {
        v.push(
            loc,
            format!("must be at most {max}"),
            "value_error.number.not_le",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("user.signup"));
        assert!(is_identifier("a-b_c.D9"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("has space"));
        assert!(!is_identifier("slash/no"));
        let mut v = Violations::new();
        uid(&mut v, &["body", "uid"], &"x".repeat(257));
        uid(&mut v, &["body", "uid"], &"x".repeat(256));
        assert_eq!(v.iter().count(), 1);
    }

    #[test]
    fn urls() {
        let limits = Limits::default();
        let ok = |u: &str| {
            let mut v = Violations::new();
            endpoint_url(&mut v, &["body", "url"], u, &limits);
            v.is_empty()
        };
        assert!(ok("https://example.com/hook"));
        assert!(ok("http://127.0.0.1:8080/x?y=1"));
        assert!(!ok("ftp://example.com"));
        assert!(!ok("/relative"));
        assert!(!ok("https://user:pw@example.com/"));
        assert!(!ok(""));
        let short = Limits {
            max_url_length: 20,
            ..limits
        };
        let mut v = Violations::new();
        endpoint_url(&mut v, &["url"], "https://example.com/abcdef", &short);
        assert!(!v.is_empty());
    }

    #[test]
    fn lists_reject_duplicates_and_empty() {
        let mut v = Violations::new();
        identifier_list(&mut v, &["b"], &[], 256, None);
        assert_eq!(v.iter().count(), 1);
        let mut v = Violations::new();
        identifier_list(&mut v, &["b"], &["a".into(), "a".into()], 256, None);
        assert_eq!(v.iter().next().unwrap().loc, vec!["b", "1"]);
        let mut v = Violations::new();
        let many: Vec<String> = (0..11).map(|i| format!("c{i}")).collect();
        identifier_list(&mut v, &["b"], &many, 128, Some(10));
        assert_eq!(v.iter().count(), 1);
    }

    #[test]
    fn json_depth_is_counted_outside_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!json_too_deep(deep(64).as_bytes(), 64));
        assert!(json_too_deep(deep(65).as_bytes(), 64));
        assert!(json_too_deep(br#"{"a": {"b": [1]}}"#, 2));
        assert!(!json_too_deep(br#"{"a": {"b": 1}}"#, 2));
        // Brackets in strings, escaped quotes included, are text.
        assert!(!json_too_deep(br#"{"a": "[[[{{\"[[["}"#, 1));
        assert!(!json_too_deep(
            format!("[\"{}\"]", "[".repeat(500)).as_bytes(),
            1
        ));
    }
}
