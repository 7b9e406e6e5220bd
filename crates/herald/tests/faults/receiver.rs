//! The suite's webhook receivers: plain HTTP/1.1 on loopback, written on raw sockets so that
//! they can misbehave in ways a web framework would not allow (answer nothing, answer one byte
//! a second, reset the connection mid-answer, send a body that never ends, answer after the
//! timeout). A healthy receiver logs every request it gets: that log is half of what the
//! checker reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a receiver does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 at once; the request is logged.
    Healthy,
    /// Reads the request and never answers.
    Hang,
    /// Answers `200 OK` one byte a second.
    Drip,
    /// Sends half a status line, then resets the connection (RST).
    Reset,
    /// Answers 200 with a chunked body that never ends.
    Endless,
    /// Answers 200 after `--delivery-timeout` has passed.
    Late,
}

impl Behaviour {
    pub const MISBEHAVING: [Behaviour; 5] = [
        Behaviour::Hang,
        Behaviour::Drip,
        Behaviour::Reset,
        Behaviour::Endless,
        Behaviour::Late,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Hang => "accept-never-answer",
            Behaviour::Drip => "one-byte-a-second",
            Behaviour::Reset => "reset-mid-response",
            Behaviour::Endless => "endless-body",
            Behaviour::Late => "200-after-timeout",
        }
    }
}

/// One request a healthy receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub webhook_id: String,
    /// The message's `seq` (from its payload).
    pub seq: u64,
    /// Since the run started.
    pub at: Duration,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Request>>>,
    /// While set, even a misbehaving receiver answers 200 at once (the calm phase).
    pub behaving: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(behaviour: Behaviour, epoch: Instant, late_by: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let behaving = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (log2, behaving2) = (log.clone(), behaving.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = log2.clone();
                let behaving = behaving2.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, behaviour, epoch, late_by, &log, &behaving).await;
                });
            }
        });
        Self {
            addr,
            log,
            behaving,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

async fn serve(
    mut socket: TcpStream,
    behaviour: Behaviour,
    epoch: Instant,
    late_by: Duration,
    log: &Mutex<Vec<Request>>,
    behaving: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    loop {
        let Some((head, body)) = read_request(&mut socket, &mut buf).await? else {
            return Ok(());
        };
        let behaviour = if behaving.load(std::sync::atomic::Ordering::Relaxed) {
            Behaviour::Healthy
        } else {
            behaviour
        };
        match behaviour {
            Behaviour::Healthy => {
                let webhook_id = header(&head, "webhook-id").unwrap_or_default();
                let seq = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["seq"].as_u64())
                    .unwrap_or(u64::MAX);
                log.lock().unwrap().push(Request {
                    webhook_id,
                    seq,
                    at: epoch.elapsed(),
                });
                socket.write_all(OK).await?;
            }
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::Drip => {
                for byte in OK {
                    socket.write_all(&[*byte]).await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Behaviour::Reset => {
                socket.write_all(b"HTTP/1.1 2").await?;
                // A zero linger never blocks: the close sends RST at once.
                #[allow(deprecated)]
                socket.set_linger(Some(Duration::ZERO))?;
                return Ok(());
            }
            Behaviour::Endless => {
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await?;
                let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
                loop {
                    socket.write_all(chunk.as_bytes()).await?;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Behaviour::Late => {
                tokio::time::sleep(late_by).await;
                socket.write_all(OK).await?;
            }
        }
    }
}

/// Reads one request (head and `content-length` body); `None` when the client closed.
async fn read_request(
    socket: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let start = end + 4;
    while buf.len() < start + length {
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[start..start + length].to_vec();
    buf.drain(..start + length);
    Ok(Some((head, body)))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
