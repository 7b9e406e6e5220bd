//! API errors in the Svix wire shapes.
//!
//! Every 4xx and 5xx answer is JSON: `{"code": …, "detail": …}`, except invalid fields, which
//! get 422 with `{"detail": [{"loc": […], "msg": …, "type": …}]}`. The official SDKs parse both.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::validate::{Violation, Violations};
use herald_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than this server accepts (see --max-body-bytes)")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body did not arrive in time (see --client-timeout)")]
    RequestTimeout,
    #[error("invalid request")]
    Validation(Vec<Violation>),
    /// Over a rate limit: answered with `Retry-After` (whole seconds).
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u64 },
    #[error("the database is unavailable; retry later")]
    Unavailable,
    #[error("the database's disk is full; retry once space has been freed")]
    InsufficientStorage,
    #[error("internal error")]
    Internal(String),
}

/// `HttpErrorOut` of the Svix API.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(title = "HttpError")]
pub struct HttpErrorOut {
    pub code: String,
    pub detail: String,
}

/// One invalid field (`ValidationErrorItem`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationErrorItem {
    /// Where the problem is, e.g. `["body", "url"]` or `["query", "limit"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Herald: more about the problem, e.g. `{"line": 2, "column": 14}` for an error in a
    /// transformation's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ctx: Option<serde_json::Value>,
}

/// `HTTPValidationError` of the Svix API: 422 answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HttpValidationError {
    pub detail: Vec<ValidationErrorItem>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "authentication_failed",
            ApiError::Forbidden(_) => "insufficient_permissions",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Validation(_) => "validation",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable => "service_unavailable",
            ApiError::InsufficientStorage => "insufficient_storage",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// A single invalid field.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        let mut v = Violations::new();
        v.value(loc, msg);
        v.into()
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        ApiError::Forbidden(msg.into())
    }
}

impl From<Violations> for ApiError {
    fn from(v: Violations) -> Self {
        ApiError::Validation(v.into_inner())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ApiError::Conflict(what.to_owned()),
            StoreError::NotFound => ApiError::NotFound("not found"),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::StorageFull(e) => {
                tracing::warn!(error = %e, "the database's disk is full");
                ApiError::InsufficientStorage
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let body = match self {
            ApiError::Validation(items) => serde_json::to_vec(&HttpValidationError {
                detail: items
                    .into_iter()
                    .map(|v| ValidationErrorItem {
                        loc: v.loc,
                        msg: v.msg,
                        kind: v.kind,
                        ctx: v.ctx,
                    })
                    .collect(),
            }),
            ApiError::Internal(ref detail) => {
                // The detail may name internals; log it, do not send it.
                tracing::error!(%detail, "internal error");
                serde_json::to_vec(&HttpErrorOut {
                    code: self.code().into(),
                    detail: "internal error".into(),
                })
            }
            other => serde_json::to_vec(&HttpErrorOut {
                code: other.code().into(),
                detail: other.to_string(),
            }),
        }
        .expect("error bodies serialize");
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
