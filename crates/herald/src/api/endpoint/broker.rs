//! Endpoints whose URL names a message broker (`mqtt://`, `nats://`, `amqp://`, `redis://`
//! and their TLS variants; see `herald_core::destination`).
//!
//! A broker URL may carry credentials (`amqp://user:pass@host/…`). They are secrets: taken out
//! of the URL before it is stored ([`take_credentials`]), sealed with the endpoint's other
//! secrets, and the stored URL says `****` in their place, so every reader of the URL (API
//! answers, the portal, attempt records, logs) sees it masked. Sending that masked URL back
//! (a client's GET-then-PUT) keeps the stored credentials; a URL without any removes them.

use herald_core::destination::{self, GivenCredentials};
use herald_core::model::Endpoint;
use herald_core::validate::Violations;
use zeroize::Zeroizing;

use super::secrets::{load_secrets, modify_secrets};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};

/// Takes a broker URL's credentials out of `endpoint.url`, leaving the mask in their place.
pub(super) fn take_credentials(endpoint: &mut Endpoint) -> GivenCredentials {
    let (url, given) = destination::split_credentials(&endpoint.url);
    endpoint.url = url;
    given
}

/// A new endpoint has no stored credentials for the mask to stand for.
pub(super) fn check_new(v: &mut Violations, given: &GivenCredentials) {
    if *given == GivenCredentials::Keep {
        v.value(
            &["body", "url"],
            format!(
                "{} stands for stored credentials, and a new endpoint has none: write them out",
                destination::CREDENTIALS_MASK
            ),
        );
    }
}

/// The mask stands for the credentials stored with the URL it was shown in: it keeps them only
/// for the same broker (scheme, host and port). Sent with another, the stored credentials would
/// go to a host they were never meant for (or in plain text): a 422 asks for them again.
pub(super) async fn check_kept(
    state: &AppState,
    endpoint: &Endpoint,
    given: &GivenCredentials,
) -> ApiResult<()> {
    if *given != GivenCredentials::Keep {
        return Ok(());
    }
    let place = |url: &str| {
        destination::parse(url)
            .ok()
            .flatten()
            .map(|b| (b.kind, b.tls, b.host, b.port))
    };
    let stored = state
        .store
        .get_endpoint(&endpoint.app_id, endpoint.id.as_str())
        .await?;
    let same_broker =
        stored.is_some_and(|s| place(&s.url).is_some() && place(&s.url) == place(&endpoint.url));
    if same_broker && load_secrets(state, endpoint).await?.credentials.is_some() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &["body", "url"],
        format!(
            "{} keeps the credentials stored for this endpoint's broker, and this URL names \
             another scheme, host or port (or none are stored): write the credentials out",
            destination::CREDENTIALS_MASK
        ),
    ))
}

/// Stores what a changed endpoint's URL said about its credentials: new ones are sealed, none
/// removes stored ones, the mask keeps them.
pub(super) async fn store_credentials(
    state: &AppState,
    endpoint: &Endpoint,
    given: GivenCredentials,
) -> ApiResult<()> {
    match given {
        GivenCredentials::Keep => Ok(()),
        GivenCredentials::New(userinfo) => {
            modify_secrets(state, endpoint, |secrets| {
                secrets.credentials = Some(Zeroizing::new(userinfo.clone()));
                Ok(())
            })
            .await
        }
        GivenCredentials::None => {
            if load_secrets(state, endpoint).await?.credentials.is_none() {
                return Ok(());
            }
            modify_secrets(state, endpoint, |secrets| {
                secrets.credentials = None;
                Ok(())
            })
            .await
        }
    }
}

/// A broker acknowledges or refuses a publish; it answers no HTTP status, so a setting that
/// reads one would do nothing: a 422 naming it.
pub(super) fn refuse_http_only_settings(v: &mut Violations, endpoint: &Endpoint) {
    if !destination::is_broker_url(&endpoint.url) {
        return;
    }
    if endpoint.options.success_statuses.is_some() {
        v.value(
            &["body", "successStatuses"],
            "a broker endpoint's deliveries succeed when the broker acknowledges them: there is \
             no HTTP status for this setting to read",
        );
    }
    if let Some(profile) = endpoint.options.profile
        && profile.success_statuses().is_some()
    {
        v.value(
            &["body", "profile"],
            format!(
                "profile {} counts only some HTTP statuses as delivered, and a broker answers \
                 none: a broker endpoint cannot take it",
                profile.name()
            ),
        );
    }
}
