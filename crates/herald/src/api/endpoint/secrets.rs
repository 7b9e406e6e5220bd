//! An endpoint's custom headers and signing secret.
//!
//! Both live in one sealed record (see `herald_core::secrets`); every change is a
//! compare-and-swap on its version, so concurrent changes cannot undo one another.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use chrono::Duration;
use herald_core::model::Endpoint;
use herald_core::secrets::EndpointSecrets;
use herald_core::signing::{self, Scheme};
use herald_core::validate::{self, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use zeroize::Zeroizing;

use super::load;
use super::options::SchemeName;
use crate::api::AppState;
use crate::api::auth::ScopedApp;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{Json, OptionalJson};
use crate::api::params::EndpointPath;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_headers, update_headers, patch_headers))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointHeadersIn {
    pub headers: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointHeadersPatchIn {
    /// Headers to set; `null` removes a header.
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointHeadersOut {
    /// Header values, except sensitive ones. For read-only and portal tokens every value is
    /// masked (`"****"`): only full-access tokens read them.
    pub headers: BTreeMap<String, String>,
    /// Names of headers whose values are not shown (credentials).
    pub sensitive: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretOut {
    /// The secret receivers verify with: the shared secret, or for `standard-v1a` the public
    /// key (`whpk_…`; the private key never leaves Herald).
    #[schema(example = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]
    pub key: String,
    /// Herald: the endpoint's signature scheme.
    pub scheme: SchemeName,
    /// Herald: for `standard-v1a`, the public key (same as `key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl EndpointSecretOut {
    fn new(scheme: Scheme, secret: &str) -> ApiResult<Self> {
        let public_key = if scheme.is_asymmetric() {
            Some(signing::public_key(secret).map_err(|e| ApiError::Internal(e.to_string()))?)
        } else {
            None
        };
        Ok(Self {
            key: public_key.clone().unwrap_or_else(|| secret.to_owned()),
            scheme: scheme.into(),
            public_key,
        })
    }
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSecretRotateIn {
    /// The new secret (for `standard-v1a` a `whsk_` private key); generated when omitted.
    pub key: Option<String>,
    /// How long the previous secret keeps signing too (0 to 604800, default 86400).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<i64>,
}

/// What a header value reads as for tokens without full access.
const MASK: &str = "****";

/// Header names whose values are credentials and are not shown back.
fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "password",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|s| name.contains(s))
}

const MAX_HEADERS: usize = 20;

/// Checks custom headers; `signature_header` is the header the endpoint's signature scheme
/// writes (`X-Signature`, …), which a custom header may not shadow either.
pub(super) fn check_headers<'a>(
    v: &mut Violations,
    signature_header: Option<&str>,
    headers: impl Iterator<Item = (&'a String, Option<&'a String>)>,
) {
    let mut count = 0;
    for (name, value) in headers {
        count += 1;
        let loc = ["body", "headers", name.as_str()];
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.value(&loc, "not a valid HTTP header name");
        } else if herald_core::headers::is_reserved(name)
            || signature_header.is_some_and(|h| h.eq_ignore_ascii_case(name))
        {
            v.value(
                &loc,
                "this header is set by Herald and cannot be overridden",
            );
        }
        if let Some(value) = value
            && (HeaderValue::from_str(value).is_err() || value.len() > 4096)
        {
            v.value(
                &loc,
                "not a valid HTTP header value (visible ASCII, at most 4096 bytes)",
            );
        }
    }
    if count > MAX_HEADERS {
        v.value(
            &["body", "headers"],
            format!("at most {MAX_HEADERS} headers"),
        );
    }
}

/// Checks a caller-supplied secret against the endpoint's signature scheme.
pub(super) fn check_secret(
    v: &mut Violations,
    loc: &[&str],
    scheme: Scheme,
    secret: Option<&str>,
) -> Option<String> {
    match secret.map(|s| scheme.normalize_secret(s)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(msg)) => {
            v.value(loc, msg);
            None
        }
    }
}

pub(super) async fn load_secrets(
    state: &AppState,
    endpoint: &Endpoint,
) -> ApiResult<EndpointSecrets> {
    let sealed = state
        .store
        .get_endpoint_secrets(&endpoint.id)
        .await?
        .ok_or(ApiError::NotFound("endpoint not found"))?;
    EndpointSecrets::open(&state.keyring, &sealed)
        .map_err(|e| ApiError::Internal(format!("cannot open the secrets of {}: {e}", endpoint.id)))
}

/// After a change of signature scheme: a secret that does not fit the new scheme (a shared
/// secret for Ed25519, a plain shared key for Standard Webhooks) is replaced by a new one.
pub(super) async fn fit_secret_to_scheme(state: &AppState, endpoint: &Endpoint) -> ApiResult<()> {
    let scheme = endpoint.options.signature.scheme;
    modify_secrets(state, endpoint, |secrets| {
        if scheme.normalize_secret(&secrets.current).is_err() {
            secrets.current = scheme.generate_secret();
            secrets.previous.clear();
        }
        Ok(())
    })
    .await
}

/// Get the custom headers sent with every delivery.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    operation_id = "v1.endpoint.get-headers",
    params(EndpointPath),
    responses((status = 200, body = EndpointHeadersOut)))]
pub(crate) async fn get_headers(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointHeadersOut>> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let secrets = load_secrets(&state, &endpoint).await?;
    let (sensitive, mut visible): (BTreeMap<_, _>, BTreeMap<_, _>) = secrets
        .headers
        .into_iter()
        .partition(|(name, _)| is_sensitive_header(name));
    // A header value may be a credential under any name (`X-Custom-Auth`): read-only and
    // portal tokens see that a header is there, not what it says.
    if !scoped.principal.has_full_access() {
        visible
            .values_mut()
            .for_each(|value| *value = MASK.to_owned());
    }
    Ok(axum::Json(EndpointHeadersOut {
        headers: visible,
        sensitive: sensitive.into_keys().collect(),
    }))
}

/// Changes an endpoint's secrets or headers: read, `change`, write back if nobody changed them
/// in between (compare-and-swap on their version), else start over. `change` may refuse.
pub(super) async fn modify_secrets(
    state: &AppState,
    endpoint: &herald_core::model::Endpoint,
    mut change: impl FnMut(&mut EndpointSecrets) -> ApiResult<()>,
) -> ApiResult<()> {
    for _ in 0..5 {
        let mut secrets = load_secrets(state, endpoint).await?;
        change(&mut secrets)?;
        if state
            .store
            .set_endpoint_secrets(&endpoint.id, &secrets.seal(&state.keyring))
            .await?
        {
            return Ok(());
        }
    }
    Err(ApiError::Conflict(
        "the endpoint's secrets are being changed concurrently; retry".into(),
    ))
}

async fn change_headers(
    state: &AppState,
    scoped: &ScopedApp,
    id: &str,
    change: impl Fn(&mut BTreeMap<String, String>),
) -> ApiResult<StatusCode> {
    let endpoint = load(state, scoped, id).await?;
    modify_secrets(state, &endpoint, |secrets| {
        change(&mut secrets.headers);
        if secrets.headers.len() > MAX_HEADERS {
            return Err(ApiError::invalid(
                &["body", "headers"],
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the custom headers.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    operation_id = "v1.endpoint.update-headers",
    params(EndpointPath),
    request_body = EndpointHeadersIn,
    responses((status = 204, description = "Replaced")))]
pub(crate) async fn update_headers(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let mut v = Violations::new();
    super::kind::refuse_headers(&mut v, &endpoint, true);
    check_headers(
        &mut v,
        endpoint.options.signature.header_name(),
        body.headers.iter().map(|(k, val)| (k, Some(val))),
    );
    v.finish()?;
    change_headers(&state, &scoped, &path.endpoint_id, |headers| {
        headers.clone_from(&body.headers)
    })
    .await
}

/// Set or remove (`null`) some custom headers.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    operation_id = "v1.endpoint.patch-headers",
    params(EndpointPath),
    request_body = EndpointHeadersPatchIn,
    responses((status = 204, description = "Updated")))]
async fn patch_headers(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    Json(body): Json<EndpointHeadersPatchIn>,
) -> ApiResult<StatusCode> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let mut v = Violations::new();
    super::kind::refuse_headers(&mut v, &endpoint, true);
    check_headers(
        &mut v,
        endpoint.options.signature.header_name(),
        body.headers.iter().map(|(k, val)| (k, val.as_ref())),
    );
    v.finish()?;
    change_headers(&state, &scoped, &path.endpoint_id, |headers| {
        for (name, value) in &body.headers {
            match value {
                Some(value) => {
                    headers.insert(name.clone(), value.clone());
                }
                None => {
                    headers.remove(name);
                }
            }
        }
    })
    .await
}

/// Get the endpoint's signing secret.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", tag = "Endpoint",
    operation_id = "v1.endpoint.get-secret",
    params(EndpointPath),
    responses((status = 200, body = EndpointSecretOut)))]
pub(crate) async fn get_secret(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointSecretOut>> {
    // A signing secret lets its holder forge deliveries: reading it is a privilege of tokens
    // that may change the endpoint, not of read-only ones.
    if scoped.principal.role == herald_core::model::Role::ReadOnly {
        return Err(ApiError::forbidden(
            "read-only tokens cannot read signing secrets",
        ));
    }
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let secrets = load_secrets(&state, &endpoint).await?;
    Ok(axum::Json(EndpointSecretOut::new(
        endpoint.options.signature.scheme,
        &secrets.current,
    )?))
}

/// Rotate the signing secret. The previous secret keeps signing for the grace period: Standard
/// Webhooks deliveries carry both signatures; single-value schemes keep the previous secret
/// until the grace period ends, then switch.
///
/// Answers 200 with the new secret (the reference API answers 204 with no body; the current
/// official SDKs read the new secret from the body, older ones ignore it).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Endpoint",
    operation_id = "v1.endpoint.rotate-secret",
    params(EndpointPath),
    request_body = EndpointSecretRotateIn,
    responses((status = 200, body = EndpointSecretOut, description = "Rotated")))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    scoped: ScopedApp,
    Path(path): Path<EndpointPath>,
    OptionalJson(body): OptionalJson<EndpointSecretRotateIn>,
) -> ApiResult<axum::Json<EndpointSecretOut>> {
    let endpoint = load(&state, &scoped, &path.endpoint_id).await?;
    let scheme = endpoint.options.signature.scheme;
    let mut v = Violations::new();
    let key = check_secret(&mut v, &["body", "key"], scheme, body.key.as_deref());
    let grace = body.grace_period_seconds.unwrap_or(86_400);
    validate::range(&mut v, &["body", "gracePeriodSeconds"], grace, 0, 604_800);
    v.finish()?;
    let new = key.map_or_else(|| scheme.generate_secret(), Zeroizing::new);
    let now = herald_core::time::now();
    modify_secrets(&state, &endpoint, |secrets| {
        secrets.rotate(new.clone(), now, now + Duration::seconds(grace));
        Ok(())
    })
    .await?;
    Ok(axum::Json(EndpointSecretOut::new(scheme, &new)?))
}
