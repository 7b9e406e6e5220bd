//! The HTTP listener: accepts connections and serves the router over HTTP/1.1.
//!
//! `axum::serve` gives a client as long as it likes to send its request: a few hundred
//! connections trickling header bytes (slowloris) or idling between keep-alive requests would
//! hold Herald's sockets and memory for ever. This loop serves the same router with hyper's
//! HTTP/1 connection builder configured against such clients:
//!
//! - a client has `--client-timeout` to send a request's headers, counted from the moment the
//!   connection is ready for the next request, so idle keep-alive connections close after it too;
//! - the body then has `--client-timeout` of its own (see `http::app`, which answers 408);
//! - at most [`MAX_HEADERS`] headers and [`MAX_HEAD_BYTES`] of request line and headers are read
//!   (431 beyond them).
//!
//! The peer's address is put in each request as axum's `ConnectInfo`, and shutting down stops
//! accepting, then lets open connections finish their requests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Most headers one request may carry.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of request line and headers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections
/// to finish (the caller bounds that wait).
pub async fn run(
    listener: TcpListener,
    router: Router,
    client_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let response = router.clone().oneshot(request.map(axum::body::Body::new));
            async move { Ok::<_, Infallible>(response.await.unwrap_or_else(|e| match e {})) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
