//! `Idempotency-Key` on POST requests.
//!
//! The first request with a key claims it in the store, runs, and has its status and body
//! remembered for 24 hours; a later request with the same key from the same caller gets that
//! response back without running again (marked `idempotent-replayed: true`). A request that
//! arrives while the first is still running gets 409, and reusing a key for a different
//! request (method, path, query or body) gets 422. Server errors (5xx) release the key so the
//! client's retry runs for real; that is how the official SDKs retry. (If the database refuses
//! even that, on a full disk say, the release is retried in the background until it works.)
//!
//! Every claim carries a token of its own, and a request records or releases the key only while
//! its claim still holds it: a request dropped mid-flight, or one whose claim a retry took over,
//! can neither overwrite the key's answer nor, for a message, publish (its publish fails).
//!
//! A claim whose request never finishes (the client went away mid-request, the handler
//! panicked) is released when the request is dropped, and in any case taken over after a
//! minute, so an SDK retrying with the same key is never locked out for the whole window.
//!
//! Remembered bodies are sealed like other secrets: some answers carry tokens or signing
//! secrets (`POST /api/v1/api-key`, portal access, secret rotation).
//!
//! A message create records its answer in the transaction that stores the message
//! ([`IdempotencyClaim`], `Store::create_message_idempotent`): the key and the message commit
//! together or not at all. A publish whose outcome the client could not learn (a 503 after a
//! commit that failed on the way back, a connection dropped during the commit, a crash) and
//! that it retries with the same key is therefore replayed if it was stored and run if it was
//! not; never stored twice. Other requests record their answer after their effect: if Herald
//! dies between the two, their retry runs again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use herald_store::{IdempotencyState, Store, StoredResponse};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Principal;
use super::error::ApiError;

const HEADER: &str = "idempotency-key";
const WINDOW_HOURS: i64 = 24;
const ABANDONED_AFTER_SECONDS: i64 = 60;
const MAX_KEY_LEN: usize = 256;

/// The key a request holds, in its extensions for handlers that record their answer with their
/// effect, in one transaction (the message create).
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    /// This request's claim on the key: whatever it records or releases applies only while
    /// the claim still holds the key (not after a takeover, nor once released).
    pub token: String,
}

impl IdempotencyClaim {
    /// The answer `status` with `body` as the store records it (the body sealed).
    pub fn completion(
        &self,
        state: &AppState,
        status: StatusCode,
        body: &[u8],
    ) -> herald_store::IdempotencyCompletion {
        herald_store::IdempotencyCompletion {
            scope: self.scope.clone(),
            key: self.key.clone(),
            claim: self.token.clone(),
            response: StoredResponse {
                status: status.as_u16(),
                body: state.keyring.seal(body),
            },
        }
    }

    /// Releases the key for a retry, now if the database lets it, else in the background
    /// until it does (on a full disk even this delete can fail): a client retrying after a
    /// 503 or 507 must not find the key "still being processed" once the database is back.
    /// Past the takeover time there is nothing left to do.
    async fn release(self, store: Arc<dyn Store>) {
        let failed = match store
            .idempotency_abandon(&self.scope, &self.key, &self.token)
            .await
        {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::warn!(error = %failed, "could not release an idempotency key yet; retrying");
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now()
                + std::time::Duration::from_secs(ABANDONED_AFTER_SECONDS as u64);
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if store
                    .idempotency_abandon(&self.scope, &self.key, &self.token)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
        });
    }
}

/// Marks a response whose answer the handler already recorded with its effect, in one
/// transaction: the layer has nothing left to write.
#[derive(Debug, Clone, Copy)]
pub struct RecordedWithEffect;

/// Releases a claimed key if the request ends without recording an answer (it was dropped).
struct Claim {
    state: AppState,
    id: IdempotencyClaim,
    settled: bool,
}

impl Claim {
    async fn complete(mut self, stored: &StoredResponse) {
        self.settled = true;
        let sealed = StoredResponse {
            status: stored.status,
            body: self.state.keyring.seal(&stored.body),
        };
        if let Err(e) = self
            .state
            .store
            .idempotency_complete(&self.id.scope, &self.id.key, &self.id.token, &sealed)
            .await
        {
            // The effect happened and the client gets its answer; a retry with this key finds
            // it unfinished and takes it over after a minute.
            tracing::warn!(error = %e, "could not record an idempotent response");
        }
    }

    /// The handler recorded the answer itself.
    fn recorded(mut self) {
        self.settled = true;
    }

    async fn release(mut self) {
        self.settled = true;
        self.id.clone().release(self.state.store.clone()).await;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, id) = (self.state.store.clone(), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(id.release(store));
        }
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match handle(state, req, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::invalid(
                &["header", HEADER],
                format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
        })?
        .to_owned();
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;

    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path());
    hasher.update([0]);
    hasher.update(parts.uri.query().unwrap_or_default());
    hasher.update([0]);
    hasher.update(&bytes);
    let fingerprint = hasher.finalize();

    let claim = IdempotencyClaim {
        scope: principal.scope(),
        key,
        token: herald_core::token::random_base62(22),
    };
    let now = herald_core::time::now();
    let found = state
        .store
        .idempotency_begin(
            &claim.scope,
            &claim.key,
            &claim.token,
            &fingerprint,
            now,
            now - Duration::hours(WINDOW_HOURS),
            now - Duration::seconds(ABANDONED_AFTER_SECONDS),
        )
        .await?;
    match found {
        IdempotencyState::Started => {}
        IdempotencyState::InProgress => {
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed".into(),
            ));
        }
        IdempotencyState::Mismatch => {
            return Err(ApiError::invalid(
                &["header", HEADER],
                "this key was already used for a different request",
            ));
        }
        IdempotencyState::Completed(stored) => {
            let body = state.keyring.open(&stored.body).map_err(|e| {
                ApiError::Internal(format!("cannot open a remembered response: {e}"))
            })?;
            return Ok(replay(stored.status, body.to_vec()));
        }
    }

    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(claim.clone());
    let claim = Claim {
        state: state.clone(),
        id: claim,
        settled: false,
    };
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            claim.release().await;
            return Err(ApiError::Internal(format!(
                "reading the response failed: {e}"
            )));
        }
    };
    if parts.extensions.get::<RecordedWithEffect>().is_some() {
        claim.recorded();
    } else if parts.status.is_server_error() {
        // A claim its request completed in its own transaction stays completed.
        claim.release().await;
    } else {
        claim
            .complete(&StoredResponse {
                status: parts.status.as_u16(),
                body: body.to_vec(),
            })
            .await;
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn replay(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let has_body = !body.is_empty();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
