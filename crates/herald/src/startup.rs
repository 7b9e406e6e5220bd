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

use crate::api::{AppState, Shared};
use crate::bootstrap::{self, AdminTokenNotice, BootstrapError};
use crate::config::{Config, Role};
use crate::operational::Operational;
use crate::outbound::{Outbound, SystemLookup};
use crate::retention::RetentionConfig;
use crate::wakeup::Wakeup;
use crate::worker::{Worker, WorkerConfig};

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
    #[error(
        "another herald process is using {0}; SQLite serves one process (use Postgres for \
         several nodes)"
    )]
    Locked(String),
    #[error("invalid --outbound-proxy: {0}")]
    Proxy(String),
    #[error("cannot lock {0}: {1}")]
    Lock(String, #[source] std::io::Error),
    #[error("cannot start the transformation sandbox's threads: {0}")]
    Sandbox(#[source] std::io::Error),
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    admin_notice: AdminTokenNotice,
    role: Role,
    worker: WorkerConfig,
    outbound: Arc<Outbound>,
    retention: RetentionConfig,
    client_timeout: std::time::Duration,
    /// Held for the life of the process: the SQLite database is used by this process alone.
    _lock: Option<std::fs::File>,
}

/// Descriptors Herald needs besides its attempts' connections: clients, database, files.
const DESCRIPTOR_RESERVE: u64 = 512;

/// Warns when `--max-in-flight` connections and the reserve for everything else do not fit in
/// the process's soft limit of open files (read from `/proc/self/limits`, where there is one):
/// attempts would then fail with "too many open files" instead of waiting for a slot.
fn warn_if_descriptors_are_short(max_in_flight: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(soft) = soft
        && max_in_flight as u64 + DESCRIPTOR_RESERVE > soft
    {
        tracing::warn!(
            max_in_flight,
            open_files_limit = soft,
            "--max-in-flight plus {DESCRIPTOR_RESERVE} other descriptors exceeds the open-files \
             limit: raise it (ulimit -n) or lower --max-in-flight"
        );
    }
}

/// Takes the exclusive lock that keeps a second Herald off a SQLite database. Leases written by
/// an earlier process on the same database are then known to be dead.
pub fn lock_sqlite(database_url: &str) -> Result<Option<std::fs::File>, StartError> {
    let Some(rest) = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    else {
        return Ok(None);
    };
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    // Owner only, like the database next to it.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock_path)
        .map_err(|e| StartError::Lock(lock_path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Locked(path.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::Lock(lock_path, e)),
    }
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        bootstrap::ensure_data_dir(&config.storage.data_dir)?;
        let lock = lock_sqlite(&config.storage.database_url)?;
        let store =
            herald_store::connect_with(&config.storage.database_url, &config.database).await?;
        if lock.is_some() {
            // The only process on this database: every lease is from a process that is gone.
            store.reset_leases().await?;
        }
        let keyring = bootstrap::load_keyring(
            &bootstrap::KeySettings::from_config(&config),
            store.as_ref(),
        )
        .await?;
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
        let keyring = Arc::new(keyring);
        let worker = WorkerConfig::from(&config);
        warn_if_descriptors_are_short(worker.max_in_flight);
        // Installed before anything records, so that histograms get their buckets.
        crate::metrics::handle();
        let policy = herald_core::net::NetworkPolicy::new(config.allow_networks.clone());
        let outbound = Arc::new(match &config.delivery.outbound_proxy {
            None => Outbound::new(policy, Arc::new(SystemLookup), worker.max_response_bytes),
            Some(proxy) => Outbound::through_proxy(policy, proxy, worker.max_response_bytes)
                .map_err(StartError::Proxy)?,
        });
        // A node that does not deliver has no worker to wake: publishes reach the delivering
        // nodes through the store's wake-ups (LISTEN/NOTIFY on Postgres).
        let wakeup = if config.role.delivers() {
            Wakeup::default()
        } else {
            Wakeup::inert()
        };
        let operational = Operational::new(
            store.clone(),
            wakeup.clone(),
            crate::retention::period(config.retention.payload_days),
        );
        let event_type_labels = Arc::new(crate::metrics::EventTypeLabels::default());
        event_type_labels.reload(store.as_ref()).await?;
        let tasks =
            crate::tasks::BackgroundTasks::new(store.clone(), wakeup.clone(), &worker.node_id);
        let transformations = &config.transformations;
        let sandbox =
            herald_transform::Sandbox::start(transformations.threads, transformations.limits)
                .map_err(StartError::Sandbox)?;
        let state = AppState::new(Shared {
            store,
            keyring,
            admin_token_hash,
            limits: config.limits,
            destinations: herald_core::net::NetworkPolicy::new(config.allow_networks.clone()),
            require_https: config.delivery.require_https,
            max_body_bytes: config.max_body_bytes,
            public_url,
            wakeup,
            operational,
            payload_retention: crate::retention::period(config.retention.payload_days),
            metrics_token_hash: config
                .metrics
                .token
                .as_ref()
                .map(|t| herald_core::token::sha256(t.as_bytes())),
            ingest_limiter: Default::default(),
            public_write_limiter: Default::default(),
            api_rate_limit: config.api_rate_limit,
            api_limiter: Default::default(),
            client_timeout: config.client_timeout,
            event_type_labels,
            tasks,
            sandbox,
        });
        Ok(Self {
            listener,
            local_addr,
            state,
            admin_notice,
            role: config.role,
            worker,
            outbound,
            retention: config.retention,
            client_timeout: config.client_timeout,
            _lock: lock,
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

    /// Replaces the outbound client (tests use it to control DNS).
    pub fn set_outbound(&mut self, outbound: Outbound) {
        self.outbound = Arc::new(outbound);
    }

    /// Adjusts the delivery worker's settings before it starts.
    pub fn worker_config_mut(&mut self) -> &mut WorkerConfig {
        &mut self.worker
    }

    /// Serves the API and runs the delivery worker until `shutdown` completes; then stops
    /// accepting requests, lets open ones finish, stops the worker (see `Worker::shutdown`) and
    /// closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let store = self.state.store.clone();
        let maintenance = tokio::spawn(maintenance(store.clone()));
        let labels = tokio::spawn(reload_event_type_labels(
            store.clone(),
            self.state.event_type_labels.clone(),
        ));
        let retention = tokio::spawn(crate::retention::run(store.clone(), self.retention));
        let worker = self.role.delivers().then(|| {
            Worker::start(
                store.clone(),
                self.state.keyring.clone(),
                self.outbound.clone(),
                self.state.sandbox.clone(),
                self.worker.clone(),
                self.state.wakeup.clone(),
                self.state.operational.clone(),
            )
        });
        let stopping = tokio_util::sync::CancellationToken::new();
        // Every node runs background tasks, whatever its role: a task started on a node that
        // died is resumed by any other.
        let tasks = tokio::spawn(self.state.tasks.clone().run(stopping.child_token()));
        // Every node relays operational events too: the outbox rows any node wrote.
        let operational = self.state.operational.clone();
        let relay = tokio::spawn(operational.clone().run(stopping.child_token()));
        let signal = stopping.clone();
        let wakeup = self.state.wakeup.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal.cancel();
            wakeup.end_long_polls();
        });
        tracing::info!(
            address = %self.local_addr,
            node = %self.worker.node_id,
            role = ?self.role,
            "herald is listening"
        );
        let router = if self.role.serves_api() {
            crate::http::app(self.state)
        } else {
            crate::http::health_only(self.state)
        };
        let serve = crate::serve::run(
            self.listener,
            router,
            self.client_timeout,
            stopping.clone().cancelled_owned(),
        );
        // Open requests get the same grace as deliveries in flight.
        let grace = self.worker.shutdown_grace + std::time::Duration::from_secs(5);
        let server = async {
            let serving = tokio::spawn(serve);
            stopping.cancelled().await;
            match tokio::time::timeout(grace, serving).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(join)) => Err(StartError::Serve(std::io::Error::other(join))),
                Err(_) => {
                    tracing::warn!("requests still open after the grace period; closing");
                    Ok(())
                }
            }
        };
        let (result, ()) = tokio::join!(server, async {
            stopping.cancelled().await;
            if let Some(worker) = worker {
                worker.shutdown().await;
            }
            if let Err(e) = tasks.await {
                tracing::warn!(error = %e, "the background task runner stopped abnormally");
            }
            // The last results' events: published now, or by the next start (they are in the
            // outbox either way).
            let _ = relay.await;
            if let Err(e) = operational.relay().await {
                tracing::warn!(error = %e, "operational events left for the next start");
            }
        });
        maintenance.abort();
        labels.abort();
        retention.abort();
        store.close().await;
        tracing::info!("herald stopped");
        result
    }
}

/// Keeps the metrics' event type labels in step with catalogue changes made through other
/// nodes (this node's own changes apply at once).
async fn reload_event_type_labels(
    store: Arc<dyn Store>,
    labels: Arc<crate::metrics::EventTypeLabels>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = labels.reload(store.as_ref()).await {
            tracing::warn!(error = %e, "reloading the event types that label metrics failed");
        }
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
