//! The receiving end of every scenario: an HTTP server on a loopback port in the benchmark's own
//! process, so that what it counts costs no network hop and needs no coordination with Herald.
//!
//! The first path segment says how to answer, so one sink serves every scenario:
//!
//! - `/ok/…`: 200 at once (counted);
//! - `/track/…`: 200 at once, and the arrival time of the `webhook-id` is reported (lag);
//! - `/hang/…`: never answers (Herald gives up at the endpoint's timeout);
//! - `/down/…`: holds the request until [`Sink::bring_up`], then 200; counted once per
//!   endpoint and message, since an attempt that timed out while the sink was down is retried
//!   and arrives again.
//!
//! Counting is an atomic add on the hot path; the benchmark polls the counters.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::{mpsc, watch};

/// Requests answered on one kind of path, and when the last one arrived.
#[derive(Default)]
pub struct Counter {
    count: AtomicU64,
    /// Nanoseconds after the sink started; 0 when nothing arrived yet.
    last_nanos: AtomicU64,
}

impl Counter {
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn hit(&self, started: Instant) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_nanos.fetch_max(nanos, Ordering::Relaxed);
    }
}

struct SinkState {
    started: Instant,
    ok: Counter,
    down: Counter,
    /// Hashes of (path, webhook-id) answered on `/down/…`.
    down_seen: Mutex<HashSet<u64>>,
    up: watch::Sender<bool>,
    arrivals: mpsc::UnboundedSender<(String, Instant)>,
}

pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Instant)>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sink {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let state = Arc::new(SinkState {
            started: Instant::now(),
            ok: Counter::default(),
            down: Counter::default(),
            down_seen: Mutex::new(HashSet::new()),
            up: watch::Sender::new(false),
            arrivals: arrivals_tx,
        });
        let router = Router::new().fallback(receive).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            addr,
            state,
            arrivals: tokio::sync::Mutex::new(arrivals),
            server,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests answered on `/ok/…` and `/track/…`.
    pub fn ok(&self) -> &Counter {
        &self.state.ok
    }

    /// Distinct deliveries answered on `/down/…`.
    pub fn down(&self) -> &Counter {
        &self.state.down
    }

    /// When the last request counted by `counter` arrived.
    pub fn last_arrival(&self, counter: &Counter) -> Option<Instant> {
        match counter.last_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.state.started + Duration::from_nanos(nanos)),
        }
    }

    /// Answers every held `/down/…` request, and from now on answers them at once.
    pub fn bring_up(&self) {
        self.state.up.send_replace(true);
    }

    /// Waits for the delivery of `msg_id` on a `/track/…` path and returns when it arrived,
    /// skipping earlier arrivals of other messages.
    pub async fn arrival_of(&self, msg_id: &str, within: Duration) -> Option<Instant> {
        let mut arrivals = self.arrivals.lock().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((id, at))) if id == msg_id => return Some(at),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

async fn receive(
    State(state): State<Arc<SinkState>>,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    let path = uri.path();
    let kind = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let webhook_id = || {
        headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    match kind {
        "ok" => state.ok.hit(state.started),
        "track" => {
            let at = Instant::now();
            state.ok.hit(state.started);
            let _ = state.arrivals.send((webhook_id().to_owned(), at));
        }
        "hang" => std::future::pending::<()>().await,
        "down" => {
            let mut up = state.up.subscribe();
            if up.wait_for(|up| *up).await.is_err() {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let mut hasher = DefaultHasher::new();
            (path, webhook_id()).hash(&mut hasher);
            let first = state
                .down_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hasher.finish());
            if first {
                state.down.hit(state.started);
            }
        }
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_tracks_and_holds_until_up() {
        let sink = Sink::start().await.unwrap();
        let client = reqwest::Client::new();
        let post = |path: &str, id: &str| {
            client
                .post(sink.url(path))
                .header("webhook-id", id)
                .body("{}")
                .send()
        };
        assert_eq!(post("/ok/1", "a").await.unwrap().status(), 200);
        assert_eq!(post("/track/1", "b").await.unwrap().status(), 200);
        assert_eq!(sink.ok().get(), 2);
        assert!(sink.last_arrival(sink.ok()).is_some());
        assert!(sink.arrival_of("b", Duration::from_secs(1)).await.is_some());
        assert_eq!(post("/nope", "c").await.unwrap().status(), 404);

        let held = tokio::spawn(post("/down/1", "d"));
        let again = tokio::spawn(post("/down/1", "d"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished());
        assert_eq!(sink.down().get(), 0);
        sink.bring_up();
        assert_eq!(held.await.unwrap().unwrap().status(), 200);
        assert_eq!(again.await.unwrap().unwrap().status(), 200);
        // The same delivery twice counts once.
        assert_eq!(sink.down().get(), 1);
    }
}
