//! What an endpoint's `profile` asks of it beyond delivery defaults (issue 24): the limits of
//! Kobiton's webhook form, checked where every endpoint is checked, and Impilo's one webhook
//! secret per application, made when the first endpoint that sends it is saved.

use herald_core::model::Endpoint;
use herald_core::validate::{Limits, Violations};
use zeroize::Zeroizing;

use super::super::AppState;
use super::super::error::ApiResult;

/// Longest webhook name, in characters (Kobiton's form).
pub const MAX_NAME_CHARS: usize = 50;

/// Checks the endpoint's `name` and its profile's rules. A URL or description the server's own
/// limit already refuses is reported once, by that check.
pub(super) fn check(v: &mut Violations, e: &Endpoint, limits: &Limits) {
    if let Some(name) = &e.name {
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            v.value(
                &["body", "name"],
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            );
        } else if name.chars().any(char::is_control) {
            v.value(&["body", "name"], "must not contain control characters");
        }
    }
    let Some(profile) = e.options.profile else {
        return;
    };
    if profile.requires_name() && e.name.is_none() {
        v.value(
            &["body", "name"],
            format!(
                "required with profile {}: its webhooks are named (`webhookName`)",
                profile.name()
            ),
        );
    }
    if let Some(max) = profile.max_url_and_description() {
        for (loc, text, server) in [
            ("url", &e.url, limits.max_url_length),
            ("description", &e.description, limits.max_description_length),
        ] {
            let chars = text.chars().count();
            if chars > max && chars <= server {
                v.value(
                    &["body", loc],
                    format!("at most {max} characters with profile {}", profile.name()),
                );
            }
        }
    }
}

/// Makes the application's webhook secret if the endpoint sends it and the application has
/// none yet. Two requests racing here both generate one; the store keeps the first.
pub(crate) async fn ensure_webhook_secret(state: &AppState, endpoint: &Endpoint) -> ApiResult<()> {
    if !endpoint.options.sends_application_secret()
        || state
            .store
            .webhook_secret(&endpoint.app_id)
            .await?
            .is_some()
    {
        return Ok(());
    }
    let secret = Zeroizing::new(new_webhook_secret());
    state
        .store
        .set_webhook_secret(
            &endpoint.app_id,
            &state.keyring.seal(secret.as_bytes()),
            false,
        )
        .await?;
    Ok(())
}

/// A new application webhook secret: 32 base62 characters (190 bits).
pub(crate) fn new_webhook_secret() -> String {
    herald_core::token::random_base62(32)
}
