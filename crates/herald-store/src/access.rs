//! The access role: what decides who may do what and what was already done. API keys (and
//! the portal tokens and console sessions minted as keys), small server-wide settings (the
//! admin token's hash) and `Idempotency-Key` records. The API's authentication and its
//! idempotency layer use it; nothing here is on the delivery path.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::id::{ApiKeyId, AppId, IntegrationId};
use herald_core::model::{ApiKey, Integration};
use herald_core::page::{ListParams, Page};

use crate::Result;

/// A response remembered for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status to answer with.
    pub status: u16,
    /// The response body, as sent.
    pub body: Vec<u8>,
}

/// An `Idempotency-Key`'s answer, recorded by the transaction that does the request's work so
/// that the two commit together or not at all. A client whose answer was lost (the connection
/// dropped during the commit, a 503 whose outcome it cannot know) and who retries with the key
/// then gets this answer back if the work was committed, and a fresh run if it was not: never
/// the work twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyCompletion {
    /// Who used the key (the caller's scope, as passed to `idempotency_begin`).
    pub scope: String,
    /// The `Idempotency-Key` header's value.
    pub key: String,
    /// The claim `idempotency_begin` made: only while it still holds the key is the answer
    /// recorded, and the work done (otherwise the work fails with `Conflict`).
    pub claim: String,
    /// The answer to record, returned to retries with the key.
    pub response: StoredResponse,
}

/// What `idempotency_begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The key is new: the caller now holds it and must `complete` or `abandon` it.
    Started,
    /// Another request with this key is still running.
    InProgress,
    /// A request with this key finished; replay its response.
    Completed(StoredResponse),
    /// The key was used for a different request (method, path or body).
    Mismatch,
}

/// Keys, settings and idempotency records (see the module documentation).
#[async_trait]
pub trait AccessStore: Send + Sync {
    // -- settings: small server-wide values (the admin token's hash) --

    /// The value stored under `key`; `None` when there is none.
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless `key` already has one; returns whether it was stored.
    async fn insert_setting(&self, key: &str, value: &str) -> Result<bool>;
    /// Stores `value` under `key`, replacing any value.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    // -- API keys --

    /// Stores a new key (API key, portal token or console session).
    async fn create_api_key(&self, key: &ApiKey) -> Result<()>;
    /// The key with id `id`, expired or not (the caller checks `expires_at`); `None` when
    /// there is none.
    async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>>;
    /// Lists every key: API keys, customers' portal tokens and console sessions.
    async fn list_api_keys(&self, params: &ListParams) -> Result<Page<ApiKey>>;
    /// Deletes a key, and the console sessions minted from it.
    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool>;
    /// Ends every portal token of `app` at `at` (at once, deleted, when `at` is not after
    /// `now`; a token that expires sooner keeps its sooner expiry). Returns how many changed.
    async fn expire_portal_keys(
        &self,
        app: &AppId,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Removes keys whose expiry has passed.
    async fn purge_expired_api_keys(&self, now: DateTime<Utc>) -> Result<u64>;

    // -- integrations: named credentials of one application, each with its key --

    /// Stores a new integration with its key, in one transaction.
    async fn create_integration(&self, integration: &Integration, key: &ApiKey) -> Result<()>;
    /// The integration `id` of `app`; `None` when there is none.
    async fn get_integration(&self, app: &AppId, id: &IntegrationId)
    -> Result<Option<Integration>>;
    /// Lists `app`'s integrations, keyed by id.
    async fn list_integrations(
        &self,
        app: &AppId,
        params: &ListParams,
    ) -> Result<Page<Integration>>;
    /// Saves an integration's name and feature flags (its key's flags too); `false` when it is
    /// gone.
    async fn update_integration(&self, integration: &Integration) -> Result<bool>;
    /// Replaces the integration's key with `key` (the old one stops working at once) and
    /// records `integration.updated_at`, in one transaction; `false` when it is gone.
    async fn rotate_integration_key(&self, integration: &Integration, key: &ApiKey)
    -> Result<bool>;
    /// Deletes an integration and its key; `false` when there is none.
    async fn delete_integration(&self, app: &AppId, id: &IntegrationId) -> Result<bool>;

    // -- idempotency --

    /// Claims `key` in `scope` for a request with `fingerprint` (a hash of method, path and
    /// body), as `claim` (a token unique to this request). Keys older than `expires_before`
    /// count as absent, and a claim still unfinished since before `abandoned_before` is taken
    /// over (its request died without releasing it).
    #[allow(clippy::too_many_arguments)]
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        claim: &str,
        fingerprint: &[u8],
        now: DateTime<Utc>,
        expires_before: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<IdempotencyState>;
    /// Records the answer of the request holding `claim`; nothing if the claim was released or
    /// taken over meanwhile.
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        claim: &str,
        response: &StoredResponse,
    ) -> Result<()>;
    /// Releases the key of a request that failed in a way worth retrying (5xx), if `claim`
    /// still holds it unfinished: an answer already recorded stays.
    async fn idempotency_abandon(&self, scope: &str, key: &str, claim: &str) -> Result<()>;
    /// Deletes the idempotency records created before `older_than`, finished or not; returns
    /// how many.
    async fn purge_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64>;
}
