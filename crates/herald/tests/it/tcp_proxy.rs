//! A TCP proxy on loopback that a test controls: it forwards to a real service (a broker)
//! until the test stops it (every connection cut, new ones refused, as when the service is
//! stopped), starts it again on the same port, or turns it into a black hole (connections
//! accepted and never answered, as a hung service).

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
            while let Ok((mut inbound, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let black_hole = shared.black_hole.load(Ordering::SeqCst);
                let frozen = shared.clone();
                let connection = tokio::spawn(async move {
                    if black_hole {
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
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

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
