//! A page that could not be shown: the API's refusal or the portal's own, as an error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::area::Area;
use super::client::Refusal;

/// A page that could not be shown. Renders on its own (no navigation), so it needs nothing
/// that might have failed.
#[derive(Debug)]
pub struct PortalError {
    pub status: StatusCode,
    pub messages: Vec<String>,
    /// Where a 401 sends the browser to sign in again.
    pub area: Area,
}

impl PortalError {
    pub fn new(area: Area, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            messages: vec![message.into()],
            area,
        }
    }

    pub fn refused(area: Area, refusal: Refusal) -> Self {
        Self {
            status: refusal.status,
            messages: refusal.messages(),
            area,
        }
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return Redirect::to(self.area.base()).into_response();
        }
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::CONFLICT => "Not possible now",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "Not accepted",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE => "Unavailable",
            _ => "Something went wrong",
        };
        let body: Markup = html! {
            h1 { (title) }
            div.notice.error role="alert" {
                @for message in &self.messages { p { (message) } }
            }
            p { a href=(self.area.base()) { "Back to the start" } }
        };
        (self.status, super::view::bare_page(title, body)).into_response()
    }
}

/// Handlers answer pages or errors.
pub type PageResult = Result<Response, PortalError>;
