//! The client half of the command line: commands that talk to a running Herald over its API
//! (`send`, `app`, `endpoint`, `message`, `event-type`, `inbox`), and `listen`, a local receiver
//! for developing against real deliveries.
//!
//! Every command returns a [`ClientError`] that says whether the user asked for something
//! impossible (exit 2, like clap's own usage errors) or the request failed (exit 1).

use std::process::ExitCode;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::{Command, ServerArgs};

pub mod export;
pub mod listen;
pub mod poll;
pub mod resources;
pub mod table;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The request failed or the server refused it (exit 1).
    #[error("{0}")]
    Failure(String),
}

pub type ClientResult<T = ()> = Result<T, ClientError>;

impl ClientError {
    /// Prints the error and returns the exit code it means.
    pub fn report(&self) -> ExitCode {
        eprintln!("herald: {self}");
        match self {
            ClientError::Usage(_) => ExitCode::from(2),
            ClientError::Failure(_) => ExitCode::FAILURE,
        }
    }
}

/// Runs a client command (any other command is a bug in `main`).
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Listen(args) => match args.poll.clone() {
            Some(poller) => poll::run(args, poller).await,
            None => listen::run(args).await,
        },
        Command::Send(args) => resources::send(&args).await,
        Command::App(c) => resources::app(c).await,
        Command::Endpoint(c) => resources::endpoint(c).await,
        Command::Message(c) => resources::message(c).await,
        Command::EventType(c) => resources::event_type(c).await,
        Command::Inbox(c) => resources::inbox(c).await,
        other => Err(ClientError::Usage(format!(
            "not a client command: {other:?}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// A connection to one Herald server with one token.
pub struct Api {
    base: url::Url,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(server: &ServerArgs) -> ClientResult<Self> {
        let base = url::Url::parse(&server.server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "--server {:?} is not an http:// or https:// URL",
                    server.server
                ))
            })?;
        let token = server.token.clone().ok_or_else(|| {
            ClientError::Usage("no token: pass --token or set HERALD_TOKEN".into())
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("herald-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Failure(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    /// `path` (with its query) on the server.
    pub fn url(&self, path_and_query: &str) -> ClientResult<url::Url> {
        self.base
            .join(path_and_query)
            .map_err(|e| ClientError::Usage(format!("bad request path {path_and_query}: {e}")))
    }

    /// A request with the token, not yet sent.
    pub fn request(&self, method: Method, url: url::Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// Sends a request and returns the JSON answer (`null` for none); a non-2xx answer is a
    /// failure carrying the server's explanation.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ClientResult<Value> {
        let mut request = self.request(method, self.url(path)?);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Failure(format!("reading the answer failed: {e}")))?;
        if !status.is_success() {
            return Err(ClientError::Failure(explain(status, &bytes)));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Failure(format!("the server answered with non-JSON: {e}")))
    }

    /// The failure of a request that got no answer.
    pub fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Failure(format!("cannot reach Herald at {}: {e}", self.base))
    }
}

/// A failed answer in a line: the status and the server's `detail` (each invalid field of a
/// 422).
pub fn explain(status: StatusCode, body: &[u8]) -> String {
    let detail = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("detail") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    let loc: Vec<String> = i["loc"]
                        .as_array()
                        .map(|l| {
                            l.iter()
                                .filter_map(|p| p.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    format!(
                        "{}: {}",
                        loc.join("."),
                        i["msg"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => Value::Object(map).to_string(),
        },
        _ => String::from_utf8_lossy(body).chars().take(500).collect(),
    };
    format!("the server answered {status}: {detail}")
}

/// Percent-encodes one path segment (ids and uids are plain, but be safe).
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
