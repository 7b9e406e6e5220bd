//! Which endpoints a message goes to.
//!
//! An endpoint receives a message when it is enabled and all of these hold:
//! - its `eventTypes` is unset or empty, or names the message's event type, or has a pattern
//!   ending in `.*` that the event type starts with (`reading.*` matches `reading.weight` and
//!   `reading.weight.kg`, not `reading`);
//! - its `channels` is unset or empty, or shares a channel with the message (channels scope
//!   deliveries to device groups, teams or bundles);
//! - its `filter` is unset, or the payload meets it ([`crate::filter`]).

use std::cell::OnceCell;

use serde_json::Value;

use crate::filter::Filter;
use crate::model::Endpoint;

/// What routing looks at in a message. The payload is parsed at most once, and only when an
/// endpoint has a filter.
pub struct MessageFacts<'a> {
    /// The message's event type name.
    pub event_type: &'a str,
    /// The message's channels; `None` when it was published without any.
    pub channels: Option<&'a [String]>,
    payload: Option<&'a str>,
    parsed: OnceCell<Option<Value>>,
}

impl<'a> MessageFacts<'a> {
    /// The facts of a message; `payload` is the JSON text as published, `None` once it is gone
    /// (an endpoint with a filter then does not match).
    pub fn new(
        event_type: &'a str,
        channels: Option<&'a [String]>,
        payload: Option<&'a str>,
    ) -> Self {
        Self {
            event_type,
            channels,
            payload,
            parsed: OnceCell::new(),
        }
    }

    fn payload(&self) -> Option<&Value> {
        self.parsed
            .get_or_init(|| self.payload.and_then(|p| serde_json::from_str(p).ok()))
            .as_ref()
    }
}

/// Whether an `eventTypes` entry selects an event type.
pub fn event_type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            event_type.len() > prefix.len() && event_type.starts_with(prefix)
        }
        _ => pattern == event_type,
    }
}

/// Whether `endpoint` receives the message: the rules of the module documentation (enabled,
/// event type, channels, filter).
pub fn endpoint_matches(endpoint: &Endpoint, msg: &MessageFacts<'_>) -> bool {
    endpoint_may_match(endpoint, msg.event_type, msg.channels) && filter_ok(endpoint, msg)
}

/// Whether an enabled endpoint would take a message of this event type and these channels
/// before its payload is known (its `filter`, if any, is not applied): what
/// `POST …/msg/precheck/active` answers.
pub fn endpoint_may_match(
    endpoint: &Endpoint,
    event_type: &str,
    channels: Option<&[String]>,
) -> bool {
    if endpoint.disabled {
        return false;
    }
    let type_ok = endpoint.event_types.as_ref().is_none_or(|types| {
        types.is_empty() || types.iter().any(|t| event_type_matches(t, event_type))
    });
    let channel_ok = match endpoint.channels.as_deref() {
        None | Some([]) => true,
        Some(wanted) => channels.is_some_and(|have| have.iter().any(|c| wanted.contains(c))),
    };
    type_ok && channel_ok
}

/// A filter that no longer parses (it was checked when saved) matches nothing rather than
/// everything: delivering what a subscriber excluded is the worse failure.
fn filter_ok(endpoint: &Endpoint, msg: &MessageFacts<'_>) -> bool {
    let Some(filter) = &endpoint.options.filter else {
        return true;
    };
    match (Filter::parse(filter), msg.payload()) {
        (Ok(filter), Some(payload)) => filter.matches(payload),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{AppId, EndpointId};
    use serde_json::json;

    struct Case {
        types: Option<&'static [&'static str]>,
        channels: Option<&'static [&'static str]>,
        filter: Option<Value>,
        disabled: bool,
        event: &'static str,
        msg_channels: Option<&'static [&'static str]>,
        payload: &'static str,
        expected: bool,
    }

    const P: &str = r#"{"device": {"kind": "local"}, "battery": 7}"#;

    fn case(types: Option<&'static [&'static str]>, event: &'static str, expected: bool) -> Case {
        Case {
            types,
            channels: None,
            filter: None,
            disabled: false,
            event,
            msg_channels: None,
            payload: P,
            expected,
        }
    }

    fn endpoint(c: &Case) -> Endpoint {
        let now = chrono::Utc::now();
        let list = |l: Option<&[&str]>| l.map(|t| t.iter().map(|s| s.to_string()).collect());
        Endpoint {
            id: EndpointId::generate(),
            app_id: AppId::generate(),
            uid: None,
            serial: 1,
            name: None,
            url: "https://example.com".into(),
            url_version: 0,
            description: String::new(),
            event_types: list(c.types),
            channels: list(c.channels),
            disabled: c.disabled,
            rate_limit: None,
            metadata: Default::default(),
            options: crate::model::EndpointOptions {
                filter: c.filter.clone(),
                ..Default::default()
            },
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn routing_table() {
        let kind_filter =
            json!({"device.kind": {"$in": ["private", "local"]}, "battery": {"$lt": 20}});
        let cases = [
            case(None, "a.b", true),
            Case {
                disabled: true,
                ..case(None, "a.b", false)
            },
            case(Some(&["a.b"]), "a.b", true),
            case(Some(&["a.c"]), "a.b", false),
            case(Some(&[]), "a.b", true),
            // Patterns.
            case(Some(&["reading.*"]), "reading.weight", true),
            case(Some(&["reading.*"]), "reading.weight.kg", true),
            case(Some(&["reading.*"]), "reading", false),
            case(Some(&["reading.*"]), "readings.weight", false),
            case(Some(&["device.*", "order.status"]), "order.status", true),
            case(Some(&["reading*"]), "readings", false),
            // Channels.
            Case {
                channels: Some(&["team:qa"]),
                msg_channels: Some(&["team:qa"]),
                ..case(None, "a.b", true)
            },
            Case {
                channels: Some(&["team:qa"]),
                msg_channels: Some(&["team:ops", "group:a"]),
                ..case(None, "a.b", false)
            },
            Case {
                channels: Some(&["team:qa"]),
                ..case(None, "a.b", false)
            },
            Case {
                channels: Some(&["group:a", "x"]),
                msg_channels: Some(&["team:ops", "group:a"]),
                ..case(None, "a.b", true)
            },
            Case {
                msg_channels: Some(&["team:qa"]),
                ..case(None, "a.b", true)
            },
            Case {
                channels: Some(&["team:qa"]),
                msg_channels: Some(&["team:ops"]),
                ..case(Some(&["a.b"]), "a.b", false)
            },
            // Filters.
            Case {
                filter: Some(kind_filter.clone()),
                ..case(None, "a.b", true)
            },
            Case {
                filter: Some(kind_filter.clone()),
                payload: r#"{"device": {"kind": "public"}, "battery": 7}"#,
                ..case(None, "a.b", false)
            },
            Case {
                filter: Some(kind_filter.clone()),
                payload: r#"{"battery": 7}"#,
                ..case(None, "a.b", false)
            },
            Case {
                filter: Some(kind_filter.clone()),
                ..case(Some(&["device.*"]), "a.b", false)
            },
            Case {
                filter: Some(json!({"$bad": 1})),
                ..case(None, "a.b", false)
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let channels: Option<Vec<String>> = c
                .msg_channels
                .map(|l| l.iter().map(|s| s.to_string()).collect());
            let facts = MessageFacts::new(c.event, channels.as_deref(), Some(c.payload));
            assert_eq!(
                endpoint_matches(&endpoint(c), &facts),
                c.expected,
                "case {i}"
            );
        }
    }
}
