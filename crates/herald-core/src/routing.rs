//! Which endpoints a message goes to.

use crate::model::Endpoint;

/// An endpoint receives a message when it is enabled, its `eventTypes` is unset or names the
/// message's event type, and its `channels` is unset or shares a channel with the message.
pub fn endpoint_matches(
    endpoint: &Endpoint,
    event_type: &str,
    channels: Option<&[String]>,
) -> bool {
    if endpoint.disabled {
        return false;
    }
    let type_ok = endpoint
        .event_types
        .as_ref()
        .is_none_or(|types| types.is_empty() || types.iter().any(|t| t == event_type));
    let channel_ok = match endpoint.channels.as_deref() {
        None | Some([]) => true,
        Some(wanted) => channels.is_some_and(|have| have.iter().any(|c| wanted.contains(c))),
    };
    type_ok && channel_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{AppId, EndpointId};

    fn endpoint(types: Option<&[&str]>, channels: Option<&[&str]>, disabled: bool) -> Endpoint {
        let now = chrono::Utc::now();
        Endpoint {
            id: EndpointId::generate(),
            app_id: AppId::generate(),
            uid: None,
            url: "https://example.com".into(),
            description: String::new(),
            event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            channels: channels.map(|t| t.iter().map(|s| s.to_string()).collect()),
            disabled,
            rate_limit: None,
            metadata: Default::default(),
            options: Default::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Endpoint event types, endpoint channels, disabled, message event type, message
    /// channels, expected match.
    type Case<'a> = (
        Option<&'a [&'a str]>,
        Option<&'a [&'a str]>,
        bool,
        &'a str,
        Option<&'a [String]>,
        bool,
    );

    #[test]
    fn routing_table() {
        let qa = vec!["team.qa".to_owned()];
        let ops = vec!["team.ops".to_owned(), "group.a".to_owned()];
        let cases: &[Case] = &[
            (None, None, false, "a.b", None, true),
            (None, None, true, "a.b", None, false),
            (Some(&["a.b"]), None, false, "a.b", None, true),
            (Some(&["a.c"]), None, false, "a.b", None, false),
            (Some(&[]), None, false, "a.b", None, true),
            (None, Some(&["team.qa"]), false, "a.b", Some(&qa), true),
            (None, Some(&["team.qa"]), false, "a.b", Some(&ops), false),
            (None, Some(&["team.qa"]), false, "a.b", None, false),
            (
                None,
                Some(&["group.a", "x"]),
                false,
                "a.b",
                Some(&ops),
                true,
            ),
            (None, None, false, "a.b", Some(&qa), true),
            (
                Some(&["a.b"]),
                Some(&["team.qa"]),
                false,
                "a.b",
                Some(&ops),
                false,
            ),
        ];
        for (i, (types, channels, disabled, event, msg_channels, expected)) in
            cases.iter().enumerate()
        {
            let ep = endpoint(*types, *channels, *disabled);
            assert_eq!(
                endpoint_matches(&ep, event, *msg_channels),
                *expected,
                "case {i}"
            );
        }
    }
}
