//! The numeric enums of the Svix API's delivery records (`MessageStatus`, `StatusCodeClass`,
//! `MessageAttemptTriggerType`) and their text twin `MessageStatusText`. On the wire they are
//! plain integers, as the official SDKs expect.

use herald_core::model::{DeliveryStatus, Trigger};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// The sending status of a message: 0 success, 1 pending, 2 fail, 3 sending, 4 canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[repr(u8)]
pub enum MessageStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
    Canceled = 4,
}

/// The status Svix's lists report: a canceled delivery reads as a success unless the client
/// asked for `expanded_statuses`.
pub fn reported(status: DeliveryStatus, expanded_statuses: bool) -> DeliveryStatus {
    match status {
        DeliveryStatus::Canceled if !expanded_statuses => DeliveryStatus::Success,
        other => other,
    }
}

impl From<DeliveryStatus> for MessageStatus {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Success => MessageStatus::Success,
            DeliveryStatus::Pending => MessageStatus::Pending,
            DeliveryStatus::Fail => MessageStatus::Fail,
            DeliveryStatus::Sending => MessageStatus::Sending,
            DeliveryStatus::Canceled => MessageStatus::Canceled,
        }
    }
}

impl From<MessageStatus> for DeliveryStatus {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Success => DeliveryStatus::Success,
            MessageStatus::Pending => DeliveryStatus::Pending,
            MessageStatus::Fail => DeliveryStatus::Fail,
            MessageStatus::Sending => DeliveryStatus::Sending,
            MessageStatus::Canceled => DeliveryStatus::Canceled,
        }
    }
}

impl Serialize for MessageStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(*self as u8)
    }
}

impl<'de> Deserialize<'de> for MessageStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u8::deserialize(deserializer)?;
        DeliveryStatus::from_code(i64::from(code))
            .map(Self::from)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "expected 0 (success), 1 (pending), 2 (fail), 3 (sending) or 4 (canceled), got {code}"
                ))
            })
    }
}

/// The sending status as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatusText {
    Success,
    Pending,
    Fail,
    Sending,
    Canceled,
}

impl From<DeliveryStatus> for MessageStatusText {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Success => MessageStatusText::Success,
            DeliveryStatus::Pending => MessageStatusText::Pending,
            DeliveryStatus::Fail => MessageStatusText::Fail,
            DeliveryStatus::Sending => MessageStatusText::Sending,
            DeliveryStatus::Canceled => MessageStatusText::Canceled,
        }
    }
}

/// A class of HTTP status codes: 0 (no response), 100, 200, 300, 400 or 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[repr(u16)]
pub enum StatusCodeClass {
    CodeNone = 0,
    Code1xx = 100,
    Code2xx = 200,
    Code3xx = 300,
    Code4xx = 400,
    Code5xx = 500,
}

impl StatusCodeClass {
    pub fn code(self) -> u16 {
        self as u16
    }
}

impl<'de> Deserialize<'de> for StatusCodeClass {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match u16::deserialize(deserializer)? {
            0 => StatusCodeClass::CodeNone,
            100 => StatusCodeClass::Code1xx,
            200 => StatusCodeClass::Code2xx,
            300 => StatusCodeClass::Code3xx,
            400 => StatusCodeClass::Code4xx,
            500 => StatusCodeClass::Code5xx,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected 0, 100, 200, 300, 400 or 500, got {other}"
                )));
            }
        })
    }
}

/// Why an attempt was made: 0 scheduled, 1 manual (a resend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[repr(u8)]
pub enum MessageAttemptTriggerType {
    Scheduled = 0,
    Manual = 1,
}

impl From<Trigger> for MessageAttemptTriggerType {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Scheduled => MessageAttemptTriggerType::Scheduled,
            Trigger::Manual => MessageAttemptTriggerType::Manual,
        }
    }
}

impl Serialize for MessageAttemptTriggerType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(*self as u8)
    }
}

impl<'de> Deserialize<'de> for MessageAttemptTriggerType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u8::deserialize(deserializer)? {
            0 => Ok(MessageAttemptTriggerType::Scheduled),
            1 => Ok(MessageAttemptTriggerType::Manual),
            other => Err(serde::de::Error::custom(format!(
                "expected 0 (scheduled) or 1 (manual), got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values() {
        assert_eq!(serde_json::to_string(&MessageStatus::Sending).unwrap(), "3");
        assert_eq!(
            serde_json::to_string(&MessageStatusText::Fail).unwrap(),
            "\"fail\""
        );
        assert_eq!(
            serde_json::to_string(&MessageAttemptTriggerType::Manual).unwrap(),
            "1"
        );
        assert_eq!(
            serde_json::from_str::<MessageStatus>("2").unwrap(),
            MessageStatus::Fail
        );
        assert_eq!(
            serde_json::from_str::<MessageStatus>("4").unwrap(),
            MessageStatus::Canceled
        );
        assert!(serde_json::from_str::<MessageStatus>("5").is_err());
        assert_eq!(
            serde_json::from_str::<StatusCodeClass>("400").unwrap(),
            StatusCodeClass::Code4xx
        );
        assert!(serde_json::from_str::<StatusCodeClass>("404").is_err());
        assert_eq!(
            serde_json::from_str::<MessageAttemptTriggerType>("1").unwrap(),
            MessageAttemptTriggerType::Manual
        );
        assert!(serde_json::from_str::<MessageAttemptTriggerType>("2").is_err());
        assert_eq!(
            serde_json::from_str::<MessageStatusText>("\"sending\"").unwrap(),
            MessageStatusText::Sending
        );
    }
}
