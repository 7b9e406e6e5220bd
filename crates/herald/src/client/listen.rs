//! `herald listen`: a receiver on this machine for developing against real deliveries (as
//! `stripe listen` is for Stripe's). Each request is printed whole (time, method, path, headers,
//! the body as pretty JSON when it is JSON) with its verification result, and answered 200 (or
//! `--status`), or passed on to `--forward-to` whose answer is returned. With `--poll` the
//! command consumes a polling endpoint instead (`poll.rs`, which uses this module's printing).

use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use herald_core::signing::Scheme;

use super::{ClientError, ClientResult};
use crate::cli::{ListenArgs, VerifyArgs};

/// Largest body `listen` accepts.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Headers that belong to one connection, not to the request: not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
];

struct Listener {
    args: ListenArgs,
    http: reqwest::Client,
}

/// The options both modes share, checked.
pub(super) fn check_args(args: &ListenArgs) -> ClientResult {
    if Scheme::parse(&args.scheme).is_none() {
        return Err(ClientError::Usage(format!(
            "unknown --scheme {:?} (standard-v1, standard-v1a, hmac-sha1-hex, hmac-sha256-hex, \
             static-header, none)",
            args.scheme
        )));
    }
    if let Some(target) = &args.forward_to {
        url::Url::parse(target)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                ClientError::Usage(format!("--forward-to {target:?} is not an http(s) URL"))
            })?;
    }
    if let Some(status) = args.status
        && StatusCode::from_u16(status).is_err()
    {
        return Err(ClientError::Usage(format!(
            "--status {status} is not an HTTP status"
        )));
    }
    Ok(())
}

pub async fn run(args: ListenArgs) -> ClientResult {
    check_args(&args)?;
    let address = SocketAddr::from(([127, 0, 0, 1], args.port));
    let socket = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| ClientError::Failure(format!("cannot listen on {address}: {e}")))?;
    let bound = socket
        .local_addr()
        .map_err(|e| ClientError::Failure(format!("cannot listen on {address}: {e}")))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::Failure(format!("cannot build an HTTP client: {e}")))?;
    let state = std::sync::Arc::new(Listener { args, http });
    let router = Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    let verifying = match &state.args.secret {
        Some(_) => format!("verifying {} signatures", state.args.scheme),
        None => "not verifying (no --secret)".to_owned(),
    };
    eprintln!("herald: listening on http://{bound} ({verifying}); Ctrl-C to stop");
    axum::serve(socket, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| ClientError::Failure(format!("the listener failed: {e}")))
}

/// What `herald verify` says about a delivery, as one line.
pub(super) fn verification(args: &ListenArgs, headers: &HeaderMap, body: &[u8]) -> String {
    let Some(secret) = &args.secret else {
        return "not verified (no --secret)".into();
    };
    let verify = VerifyArgs {
        scheme: args.scheme.clone(),
        secret: secret.clone(),
        headers: headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect(),
        signature_header: args.signature_header.clone(),
        prefix: args.prefix.clone(),
        tolerance: args.tolerance,
    };
    match crate::commands::verify(&verify, body, chrono::Utc::now().timestamp()) {
        Ok(()) => format!("verified ({})", args.scheme),
        Err(reason) => format!("not verified: {reason}"),
    }
}

/// The body for people: pretty JSON when it is JSON, the text when it is text.
pub(super) fn printable(body: &[u8]) -> String {
    if body.is_empty() {
        return "(no body)".into();
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        return serde_json::to_string_pretty(&value).expect("JSON values serialize");
    }
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("({} bytes of binary data)", body.len()),
    }
}

async fn receive(
    State(state): State<std::sync::Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = &state.args;
    let mut report = format!(
        "--- {} {method} {uri}\n",
        herald_core::time::format(herald_core::time::now())
    );
    for (name, value) in &headers {
        report.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    report.push('\n');
    report.push_str(&printable(&body));
    report.push('\n');
    report.push_str(&verification(args, &headers, &body));
    report.push('\n');

    let mut answer: Response = StatusCode::OK.into_response();
    if let Some(target) = &args.forward_to {
        answer = match forward(&state.http, target, &method, &uri, &headers, &body).await {
            Ok(response) => {
                report.push_str(&format!("forwarded to {target}: {}\n", response.status()));
                response
            }
            Err(e) => {
                report.push_str(&format!("forwarding to {target} failed: {e}\n"));
                StatusCode::BAD_GATEWAY.into_response()
            }
        };
    }
    if let Some(status) = args.status {
        answer = StatusCode::from_u16(status)
            .unwrap_or(StatusCode::OK)
            .into_response();
    }
    report.push_str(&format!("answered {}\n", answer.status().as_u16()));
    // One write per delivery, so concurrent deliveries do not interleave.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.as_bytes());
    let _ = stdout.flush();
    answer
}

/// Passes a delivery on unchanged (same method, path, query, headers and body).
async fn forward(
    http: &reqwest::Client,
    target: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, reqwest::Error> {
    let mut url = target.trim_end_matches('/').to_owned();
    if uri.path() != "/" {
        url.push_str(uri.path());
    }
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    let mut request = http.request(method.clone(), url).body(body.clone());
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let response = request.send().await?;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = response.bytes().await?;
    let mut answer = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(answer)
}
