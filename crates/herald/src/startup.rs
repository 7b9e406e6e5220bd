//! Assembling and running a Herald server.
//!
//! [`Application::build`] does everything that can fail at start (data directory, database and
//! migrations, keys, binding the port) and returns a value that only has to be run;
//! [`Application::run_until_stopped`] serves until the shutdown future completes, then stops
//! accepting connections and lets open requests finish. Tests build one on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use herald_store::Store;
use tokio::net::TcpListener;

use crate::api::{self, AppState, Shared};
use crate::bootstrap::{self, AdminTokenNotice, BootstrapError};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("cannot open the database: {0}")]
    Store(#[from] herald_store::StoreError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    admin_notice: AdminTokenNotice,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        bootstrap::ensure_data_dir(&config.storage.data_dir)?;
        let store = herald_store::connect(&config.storage.database_url).await?;
        let keyring = bootstrap::load_keyring(&config, store.as_ref()).await?;
        let (admin_token_hash, admin_notice) =
            bootstrap::admin_token(&config, store.as_ref()).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Bind(config.listen, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(config.listen, e))?;
        let public_url = config
            .public_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let state = AppState::new(Shared {
            store,
            keyring,
            admin_token_hash,
            limits: config.limits,
            max_body_bytes: config.max_body_bytes,
            public_url,
        });
        Ok(Self {
            listener,
            local_addr,
            state,
            admin_notice,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Prints how to get the admin token (to stderr).
    pub fn print_admin_notice(&self) {
        self.admin_notice.print();
    }

    /// Serves until `shutdown` completes, then drains open requests and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let store = self.state.store.clone();
        let maintenance = tokio::spawn(maintenance(store.clone()));
        tracing::info!(address = %self.local_addr, "herald is listening");
        let result = axum::serve(self.listener, api::router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(StartError::Serve);
        maintenance.abort();
        store.close().await;
        tracing::info!("herald stopped");
        result
    }
}

/// Periodic clean-up of expired idempotency records and portal sessions.
async fn maintenance(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = herald_core::time::now();
        if let Err(e) = store
            .purge_idempotency(now - chrono::Duration::hours(24))
            .await
        {
            tracing::warn!(error = %e, "purging idempotency keys failed");
        }
        if let Err(e) = store.purge_expired_api_keys(now).await {
            tracing::warn!(error = %e, "purging expired keys failed");
        }
    }
}
