//! Wake-ups of the delivery worker: who tells it that work became due.
//!
//! The same announcements ring the *poll bell*, which long polls of polling endpoints wait on
//! (`api::poller`): every publish that names endpoints rings it, whether or not this process
//! runs a worker, so that a waiting poll reads again at once.
//!
//! A publish through this process's API wakes it directly; on Postgres a publish through any
//! node is announced by the database and relayed here ([`forward_wakeups`]). Its own module
//! because the API, the operational-webhook publisher and the worker all hold one, and none of
//! them should depend on another for it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use herald_core::id::EndpointId;
use herald_store::WakeupEvent;
use tokio::sync::Notify;

/// Wakes the worker when work becomes due: after a publish through this process's API, and
/// (on Postgres) after one through any node, announced by the database
/// (`subscribe_wakeups` of the store). Duplicate wake-ups coalesce: endpoints named while the
/// dispatcher is busy are handled together on its next turn.
#[derive(Clone)]
pub struct Wakeup {
    /// `None` in a process that runs no worker (`--role api`): wake-ups are dropped.
    inner: Option<Arc<WakeInner>>,
    /// Bumped by every announcement; long polls watch it (see the module documentation).
    bell: Arc<tokio::sync::watch::Sender<u64>>,
    /// Set when the process stops: waiting long polls answer at once instead of holding the
    /// shutdown for up to their 30 seconds.
    polls_ended: Arc<AtomicBool>,
}

#[derive(Default)]
struct WakeInner {
    endpoints: Mutex<HashSet<EndpointId>>,
    /// Wake-ups may have been missed: look for due work everywhere.
    resync: AtomicBool,
    notify: Notify,
}

impl Default for Wakeup {
    fn default() -> Self {
        Self {
            inner: Some(Arc::default()),
            bell: Arc::new(tokio::sync::watch::Sender::new(0)),
            polls_ended: Arc::default(),
        }
    }
}

impl Wakeup {
    /// A wake-up that goes nowhere, for a process without a worker.
    pub fn inert() -> Self {
        Self {
            inner: None,
            bell: Arc::new(tokio::sync::watch::Sender::new(0)),
            polls_ended: Arc::default(),
        }
    }

    /// What a long poll waits on: it changes after every announcement.
    pub fn poll_bell(&self) -> tokio::sync::watch::Receiver<u64> {
        self.bell.subscribe()
    }

    /// Ends every waiting long poll (the process is stopping); later ones do not wait.
    pub fn end_long_polls(&self) {
        self.polls_ended.store(true, AtomicOrdering::SeqCst);
        self.ring();
    }

    /// Whether long polls should answer without waiting.
    pub fn long_polls_ended(&self) -> bool {
        self.polls_ended.load(AtomicOrdering::SeqCst)
    }

    fn ring(&self) {
        self.bell.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn endpoints(&self, ids: impl IntoIterator<Item = EndpointId>) {
        self.ring();
        let Some(inner) = &self.inner else {
            return;
        };
        let mut pending = inner.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.len();
        pending.extend(ids);
        if pending.len() > before {
            drop(pending);
            inner.notify.notify_one();
        }
    }

    /// Asks the worker to look for due work on every endpoint.
    pub fn everything(&self) {
        self.ring();
        if let Some(inner) = &self.inner {
            inner.resync.store(true, AtomicOrdering::SeqCst);
            inner.notify.notify_one();
        }
    }

    pub(crate) async fn notified(&self) {
        match &self.inner {
            Some(inner) => inner.notify.notified().await,
            None => std::future::pending().await,
        }
    }

    /// The endpoints named since the last call, and whether to look everywhere.
    pub(crate) fn take(&self) -> (HashSet<EndpointId>, bool) {
        let Some(inner) = &self.inner else {
            return (HashSet::new(), false);
        };
        let endpoints =
            std::mem::take(&mut *inner.endpoints.lock().unwrap_or_else(|p| p.into_inner()));
        (endpoints, inner.resync.swap(false, AtomicOrdering::SeqCst))
    }
}

/// Passes the database's wake-ups (other nodes' publishes) to the dispatcher until the
/// subscription ends (the store is closed).
pub async fn forward_wakeups(mut wakeups: herald_store::Wakeups, wakeup: Wakeup) {
    while let Some(event) = wakeups.recv().await {
        match event {
            WakeupEvent::Endpoints(ids) => wakeup.endpoints(ids),
            WakeupEvent::Resync => wakeup.everything(),
        }
    }
}
