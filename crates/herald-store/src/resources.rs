//! The resources role: what users configure through the API and what routing reads.
//! Applications, event types and endpoints (with their sealed secrets). Every change is one
//! row or one short transaction; publishing reads endpoints inside its own transaction (see
//! [`crate::MessageStore`]).

use async_trait::async_trait;
use herald_core::id::{AppId, EndpointId};
use herald_core::model::{Application, Endpoint, EventType, SealedEndpointSecrets, Transformation};
use herald_core::page::{ListParams, Page};

use crate::Result;

/// An endpoint's transformation as stored: the code and its state in the clear, the variables
/// sealed (they are credentials: tokens for the APIs a handler's output goes to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredTransformation {
    /// `None` until one is saved.
    pub transformation: Option<Transformation>,
    /// Sealed JSON object of strings; `None` for no variables.
    pub variables: Option<Vec<u8>>,
}

/// Applications, event types and endpoints (see the module documentation).
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Fails with `Conflict` when the uid is taken.
    async fn create_app(&self, app: &Application) -> Result<()>;
    /// Looks an application up by id, or else by uid. The reserved operational-webhook
    /// application (`herald_core::model::OPERATIONAL_APP_ID`) is never found.
    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>>;
    /// Lists applications; `only` restricts the list to one application (an app-scoped token).
    /// The reserved operational-webhook application is never listed.
    async fn list_apps(
        &self,
        params: &ListParams,
        only: Option<&AppId>,
    ) -> Result<Page<Application>>;
    /// Saves an application. `NotFound` when it does not exist, `Conflict` when its uid is taken.
    async fn update_app(&self, app: &Application) -> Result<()>;
    /// Deletes an application with its endpoints, messages, attempts and keys.
    async fn delete_app(&self, id: &AppId) -> Result<bool>;

    // -- event types --

    /// Fails with `Conflict` when an event type of this name exists (archived or not).
    async fn create_event_type(&self, event_type: &EventType) -> Result<()>;
    /// The event type `name`, archived or not; `None` when there is none.
    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>>;
    /// Lists event types keyed by name; archived ones only with `include_archived`.
    async fn list_event_types(
        &self,
        params: &ListParams,
        include_archived: bool,
    ) -> Result<Page<EventType>>;
    /// Saves an event type, found by name. `NotFound` when it does not exist.
    async fn update_event_type(&self, event_type: &EventType) -> Result<()>;
    /// Deletes an event type for good (the API archives by default).
    async fn delete_event_type(&self, name: &str) -> Result<bool>;

    // -- endpoints --

    /// Creates an endpoint with its sealed secrets, with no limit on how many its application
    /// has. Fails with `Conflict` when its uid is taken in the application.
    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        secrets: &SealedEndpointSecrets,
    ) -> Result<()> {
        self.create_endpoint_within(endpoint, secrets, u64::MAX)
            .await
            .map(drop)
    }
    /// Creates an endpoint unless its application already has `max` endpoints: `false` then,
    /// and nothing is written. The count is taken in the insert's transaction, with creates for
    /// one application serialized (on Postgres, by a lock on its row), so concurrent creates
    /// cannot overshoot (`--max-endpoints-per-app`).
    async fn create_endpoint_within(
        &self,
        endpoint: &Endpoint,
        secrets: &SealedEndpointSecrets,
        max: u64,
    ) -> Result<bool>;
    /// Looks an endpoint of `app` up by id, or else by uid.
    async fn get_endpoint(&self, app: &AppId, id_or_uid: &str) -> Result<Option<Endpoint>>;
    /// Looks an endpoint of `app` up by its serial (Impilo's integer webhook id).
    async fn get_endpoint_by_serial(&self, app: &AppId, serial: i64) -> Result<Option<Endpoint>>;
    /// The next number of `kind`: unique across the server, never given twice (see
    /// [`crate::serial`]).
    async fn next_serial(&self, kind: crate::SerialKind) -> Result<i64>;
    /// The application's webhook secret, sealed (Impilo's `Impilo-Webhook-Secret`).
    async fn webhook_secret(&self, app: &AppId) -> Result<Option<Vec<u8>>>;
    /// Sets the application's webhook secret (sealed). With `replace` false it is set only if
    /// the application has none; returns whether it was written (`NotFound` for no such
    /// application).
    async fn set_webhook_secret(&self, app: &AppId, sealed: &[u8], replace: bool) -> Result<bool>;
    /// An endpoint's transformation and its sealed variables; `NotFound` for no such endpoint.
    async fn get_transformation(&self, id: &EndpointId) -> Result<StoredTransformation>;
    /// Saves an endpoint's transformation and its sealed variables (the whole record: the
    /// last save wins); `NotFound` for no such endpoint.
    async fn set_transformation(
        &self,
        id: &EndpointId,
        stored: &StoredTransformation,
    ) -> Result<()>;
    /// Looks an endpoint up by id alone (the delivery worker knows no application).
    async fn get_endpoint_by_id(&self, id: &EndpointId) -> Result<Option<Endpoint>>;
    /// Lists the endpoints of `app`, keyed by endpoint id.
    async fn list_endpoints(&self, app: &AppId, params: &ListParams) -> Result<Page<Endpoint>>;
    /// How many endpoints `app` has.
    async fn count_endpoints(&self, app: &AppId) -> Result<u64>;
    /// Saves an endpoint. Disabling it fails its pending tasks (their retries stop; `recover`
    /// brings them back).
    async fn update_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    /// Deletes an endpoint of `app` with its tasks and attempts; `false` when `app` has no such
    /// endpoint.
    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool>;
    /// An endpoint's sealed secrets and headers; `None` when the endpoint is gone.
    async fn get_endpoint_secrets(&self, id: &EndpointId) -> Result<Option<SealedEndpointSecrets>>;
    /// Replaces an endpoint's secrets if they are still at `secrets.version` (returns `false`
    /// otherwise: someone changed them since they were read).
    async fn set_endpoint_secrets(
        &self,
        id: &EndpointId,
        secrets: &SealedEndpointSecrets,
    ) -> Result<bool>;
}
