//! Background tasks: work an API call starts and that goes on after the answer (replays,
//! recoveries, purges, statistics), as Svix's `BackgroundTaskOut` reports it.
//!
//! The types live here because the store persists them and the API shows them; running them
//! is the server's (`herald::tasks`).

use serde::{Deserialize, Serialize};

/// What a background task does (`task` in the API; Svix's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BackgroundTaskType {
    /// `…/endpoint/{id}/replay-missing`: sends an endpoint the messages it never got.
    #[serde(rename = "endpoint.replay")]
    EndpointReplay,
    /// `…/endpoint/{id}/recover`: makes an endpoint's failed deliveries due again.
    #[serde(rename = "endpoint.recover")]
    EndpointRecover,
    /// `POST /api/v1/stats/usage/app`: message destinations per application.
    #[serde(rename = "application.stats")]
    ApplicationStats,
    /// `PUT /api/v1/stats/usage/event-types`: what each application's endpoints subscribe to.
    #[serde(rename = "event-type.aggregate")]
    EventTypeAggregate,
    /// `…/msg/expunge-all-contents`: deletes every payload of an application.
    #[serde(rename = "application.purge_content")]
    ApplicationPurgeContent,
    /// `…/endpoint/{id}/bulk-replay`: sends a window of an endpoint's messages again.
    #[serde(rename = "endpoint.bulk-replay")]
    EndpointBulkReplay,
}

impl BackgroundTaskType {
    /// Every type, for parsing.
    pub const ALL: [Self; 6] = [
        Self::EndpointReplay,
        Self::EndpointRecover,
        Self::ApplicationStats,
        Self::EventTypeAggregate,
        Self::ApplicationPurgeContent,
        Self::EndpointBulkReplay,
    ];

    /// The API's name, also what the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointReplay => "endpoint.replay",
            Self::EndpointRecover => "endpoint.recover",
            Self::ApplicationStats => "application.stats",
            Self::EventTypeAggregate => "event-type.aggregate",
            Self::ApplicationPurgeContent => "application.purge_content",
            Self::EndpointBulkReplay => "endpoint.bulk-replay",
        }
    }

    /// The type of a stored name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Where a background task is (`status` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundTaskStatus {
    /// Not finished: running, or waiting for a node to resume it.
    Running,
    /// Done; `data` holds the result.
    Finished,
    /// Stopped on an error that retrying would not fix; `data.error` says which.
    Failed,
}

impl BackgroundTaskStatus {
    /// The API's name, also what the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }

    /// The status of a stored name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Running, Self::Finished, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for t in BackgroundTaskType::ALL {
            assert_eq!(BackgroundTaskType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::Value::from(t.as_str()))
            );
        }
        for s in [
            BackgroundTaskStatus::Running,
            BackgroundTaskStatus::Finished,
            BackgroundTaskStatus::Failed,
        ] {
            assert_eq!(BackgroundTaskStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
        assert_eq!(BackgroundTaskType::parse("sdk.generate"), None);
    }
}
