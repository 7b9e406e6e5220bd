//! A TCP proxy on loopback that a test controls: it forwards to a real service (a broker)
//! until the test stops it (every connection cut, new ones refused, as when the service is
//! stopped), starts it again on the same port, turns it into a black hole (connections
//! accepted and never answered, as a hung service), or pauses it (nothing crosses until it
//! resumes, then everything held does: a network partition that heals, as TCP retransmits).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Shared {
    accepted: AtomicUsize,
    black_hole: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
    /// Tells open connections to stop forwarding (and stay open).
    freeze: tokio::sync::Notify,
    /// While true, nothing is forwarded in either direction (see [`TcpProxy::pause`]).
    paused: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Self {
            addr,
            upstream,
            shared: Arc::default(),
            listener: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// From now on, connections are accepted and never answered.
    pub fn black_hole(&self, on: bool) {
        self.shared.black_hole.store(on, Ordering::SeqCst);
    }

    /// Like the service hanging: open connections stay open and nothing more crosses them,
    /// and new ones are accepted and never answered, until [`TcpProxy::black_hole`]`(false)`
    /// (which lets new connections through again).
    pub fn freeze(&self) {
        self.black_hole(true);
        self.shared.freeze.notify_waiters();
    }

    /// A partition while `on`: connections stay open and new ones are accepted, but no byte
    /// crosses in either direction until it is called with `false`; then what was held goes
    /// through.
    #[allow(dead_code)] // Used by the faults suite (tests/faults), which includes this file.
    pub fn pause(&self, on: bool) {
        self.shared.paused.send_replace(on);
    }

    /// Like the service stopping: the port closes and every open connection is cut.
    pub fn stop(&self) {
        if let Some(task) = self.listener.lock().unwrap().take() {
            task.abort();
        }
        for connection in self.shared.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Like the service starting again, on the same port.
    pub async fn start_again(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                // The old listener's socket may take a moment to close.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let black_hole = shared.black_hole.load(Ordering::SeqCst);
                let frozen = shared.clone();
                let connection = tokio::spawn(async move {
                    if black_hole {
                        std::future::pending::<()>().await;
                    }
                    let paused = frozen.paused.subscribe();
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        // The halves live here, so that a frozen connection stays open.
                        let (mut from_client, mut to_client) = inbound.into_split();
                        let (mut from_service, mut to_service) = outbound.into_split();
                        let forward = async {
                            tokio::select! {
                                () = pipe(&mut from_client, &mut to_service, paused.clone()) => {}
                                () = pipe(&mut from_service, &mut to_client, paused.clone()) => {}
                            }
                        };
                        tokio::select! {
                            () = forward => {}
                            () = frozen.freeze.notified() => {
                                // Hold the client's connection open, answering nothing.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                });
                shared.connections.lock().unwrap().push(connection);
            }
        });
        *self.listener.lock().unwrap() = Some(task);
    }
}

/// Copies `from` to `to` until either closes, holding each chunk while the proxy is paused.
async fn pipe(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
