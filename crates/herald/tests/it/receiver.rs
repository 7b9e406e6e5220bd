//! A scriptable webhook receiver on port 0.
//!
//! It speaks just enough HTTP/1.1 by hand (keep-alive included) to misbehave on purpose:
//! answer with a status sequence, wait, hang, reset the connection halfway through the body,
//! send an enormous body, or redirect. Every request it gets is recorded with its arrival time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do with one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer with this status and a short body.
    Status(u16),
    /// Answer with this status, headers and body.
    Respond(u16, Vec<(&'static str, String)>, String),
    /// Wait, then do the inner step.
    Delay(Duration, Box<Step>),
    /// Never answer (until the client gives up).
    Hang,
    /// Start a response, send part of the body, then reset the connection.
    ResetMidBody,
    /// Answer 200 with an endless body (as long as the client reads).
    HugeBody,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The key that counts requests to every path together.
const ALL_PATHS: &str = "*";

#[derive(Default)]
struct State {
    scripts: HashMap<String, VecDeque<Step>>,
    always: HashMap<String, Step>,
    received: Vec<Received>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    connections: usize,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    /// A receiver on a chosen address (another loopback address, a port already used on
    /// another address).
    pub async fn start_at(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                shared.lock().unwrap().connections += 1;
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Ok(Self { addr, state })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Steps for the next requests to `path`, in order; after them, `always` or 200.
    pub fn script(&self, path: &str, steps: Vec<Step>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_owned(), steps.into());
    }

    /// What to do with every request to `path` once its script is used up.
    pub fn always(&self, path: &str, step: Step) {
        self.state
            .lock()
            .unwrap()
            .always
            .insert(path.to_owned(), step);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// How many requests arrived, on every path.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Every request that arrived, on every path, in arrival order.
    pub fn all_received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The most requests, to every path together, that were being answered at the same time.
    pub fn max_in_flight_total(&self) -> usize {
        self.max_in_flight(ALL_PATHS)
    }

    /// The most requests to `path` that were being answered at the same time.
    pub fn max_in_flight(&self, path: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .max_in_flight
            .get(path)
            .unwrap_or(&0)
    }

    /// Waits until `path` got at least `n` requests, or panics after `timeout`.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: expected {n} requests within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    loop {
        // Read the head.
        let head_end = loop {
            // A TLS ClientHello (record type 0x16) to this plain-HTTP server gets a plain-HTTP
            // answer, as a real server would give, which the client cannot read as TLS.
            if buf.first() == Some(&0x16) {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return;
            }
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let method = request_line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);

        let step = {
            let mut s = state.lock().unwrap();
            s.received.push(Received {
                method,
                path: path.clone(),
                headers,
                body,
                at: Instant::now(),
            });
            // Per path, and over every path (under `*`).
            for key in [path.clone(), ALL_PATHS.to_owned()] {
                let now = {
                    let n = s.in_flight.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                let max = s.max_in_flight.entry(key).or_default();
                *max = (*max).max(now);
            }
            let scripted = s.scripts.get_mut(&path).and_then(VecDeque::pop_front);
            scripted
                .or_else(|| s.always.get(&path).cloned())
                .unwrap_or(Step::Status(200))
        };
        let keep_open = act(&mut stream, step).await;
        {
            let mut s = state.lock().unwrap();
            for key in [path.as_str(), ALL_PATHS] {
                if let Some(n) = s.in_flight.get_mut(key) {
                    *n -= 1;
                }
            }
        }
        if !keep_open {
            return;
        }
    }
}

/// Answers one request; returns whether the connection may carry another.
async fn act(stream: &mut TcpStream, step: Step) -> bool {
    match step {
        Step::Status(status) => respond(stream, status, &[], "ok").await,
        Step::Respond(status, headers, body) => respond(stream, status, &headers, &body).await,
        Step::Delay(wait, inner) => {
            tokio::time::sleep(wait).await;
            Box::pin(act(stream, *inner)).await
        }
        Step::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            false
        }
        Step::ResetMidBody => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
                .await;
            let _ = stream.flush().await;
            // Linger 0: closing sends a reset instead of a clean end of stream.
            let _ = stream.set_zero_linger();
            false
        }
        Step::HugeBody => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
            // Up to 1 GiB; the client is expected to stop reading long before.
            for _ in 0..16_384 {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
            }
            false
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) -> bool {
    let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.is_ok()
        && stream.write_all(body.as_bytes()).await.is_ok()
}
