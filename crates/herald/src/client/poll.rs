//! `herald listen --poll ENDPOINT_URL`: consumes a polling endpoint and passes each message on
//! to a local URL, for developing behind NAT (nothing needs to reach this machine).
//!
//! It reads as a consumer whose position Herald keeps (`--consumer`, default `herald-listen`),
//! long-polling (`wait=30`), and acknowledges a batch (by sending its `iterator` with the next
//! poll) only once every message of it was passed on with a 2xx answer. A message whose
//! forward fails is tried again, with growing pauses, until it succeeds: never skipped. So a
//! `listen` that is stopped or crashes resumes, next time, with the first batch not passed on
//! in full: at least once, in order.
//!
//! Each message is POSTed as Herald would deliver it: the payload (compact JSON, the bytes the
//! signature covers) with the message's `webhook-id`, `webhook-timestamp` and
//! `webhook-signature`, so the local application verifies it as it would a delivery.

use std::io::Write as _;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{ClientError, ClientResult, explain};
use crate::cli::ListenArgs;

/// Longest pause between two tries of a failing forward or poll.
const MAX_PAUSE: Duration = Duration::from_secs(30);

pub async fn run(args: ListenArgs, poller: String) -> ClientResult {
    super::listen::check_args(&args)?;
    let poller = url::Url::parse(&poller)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.path().contains("/poller/"))
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "--poll {poller:?} is not a poller URL (http://host/api/v1/app/APP/poller/ENDPOINT)"
            ))
        })?;
    let token = args.token.clone().ok_or_else(|| {
        ClientError::Usage("--poll needs a token: pass --token or set HERALD_TOKEN".into())
    })?;
    let consumer = super::segment(&args.consumer);
    let base = format!(
        "{}/consumer/{consumer}",
        poller.as_str().trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .user_agent(concat!("herald-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Failure(format!("cannot build an HTTP client: {e}")))?;
    eprintln!(
        "herald: consuming {poller} as {}{}; Ctrl-C to stop",
        args.consumer,
        args.forward_to
            .as_deref()
            .map(|to| format!(", forwarding to {to}"))
            .unwrap_or_default()
    );
    let consume = async {
        let mut acknowledge: Option<String> = None;
        let mut pause = Duration::from_millis(250);
        loop {
            let mut url = format!("{base}?wait=30&limit=50");
            if let Some(iterator) = &acknowledge {
                url.push_str("&iterator=");
                url.push_str(iterator);
            }
            let answer = match poll(&http, &token, &url).await {
                Ok(answer) => answer,
                Err(ClientError::Usage(e)) => return Err(ClientError::Usage(e)),
                Err(e) => {
                    eprintln!("herald: {e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                }
            };
            pause = Duration::from_millis(250);
            for message in answer["data"].as_array().into_iter().flatten() {
                pass_on(&http, &args, message).await;
            }
            // Every message of the batch was passed on: the next poll acknowledges it.
            acknowledge = answer["iterator"].as_str().map(str::to_owned);
        }
    };
    tokio::select! {
        result = consume => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// One consumer poll; a refusal that retrying cannot cure (401, 403, 404, 422) is a usage error.
async fn poll(http: &reqwest::Client, token: &str, url: &str) -> ClientResult<Value> {
    let response = http
        .request(Method::GET, url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(45))
        .send()
        .await
        .map_err(|e| ClientError::Failure(format!("cannot reach Herald: {e}")))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ClientError::Failure(format!("reading the answer failed: {e}")))?;
    if status.is_client_error() && status.as_u16() != 429 {
        return Err(ClientError::Usage(explain(status, &bytes)));
    }
    if !status.is_success() {
        return Err(ClientError::Failure(explain(status, &bytes)));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Failure(format!("the server answered with non-JSON: {e}")))
}

/// Prints a message and passes it on (when `--forward-to` is given), trying until it succeeds.
async fn pass_on(http: &reqwest::Client, args: &ListenArgs, message: &Value) {
    let body = serde_json::to_vec(&message["payload"]).unwrap_or_default();
    let headers: Vec<(String, String)> = message["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    let mut report = format!(
        "--- {} {} {}\n",
        herald_core::time::format(herald_core::time::now()),
        message["eventType"].as_str().unwrap_or_default(),
        message["id"].as_str().unwrap_or_default(),
    );
    for (name, value) in &headers {
        report.push_str(&format!("{name}: {value}\n"));
    }
    report.push('\n');
    report.push_str(&super::listen::printable(&body));
    report.push('\n');
    let mut header_map = axum::http::HeaderMap::new();
    for (name, value) in &headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            header_map.insert(name, value);
        }
    }
    report.push_str(&super::listen::verification(args, &header_map, &body));
    report.push('\n');
    if let Some(target) = &args.forward_to {
        let mut pause = Duration::from_millis(250);
        loop {
            let mut request = http
                .post(target)
                .header("content-type", "application/json")
                .body(body.clone());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    report.push_str(&format!("forwarded to {target}: {}\n", response.status()));
                    break;
                }
                outcome => {
                    let why = match outcome {
                        Ok(response) => response.status().to_string(),
                        Err(e) => e.to_string(),
                    };
                    eprintln!(
                        "herald: forwarding to {target} failed ({why}); trying again in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
    report.push_str("acknowledged with the next poll\n");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.as_bytes());
    let _ = stdout.flush();
}
