//! What an inbox does with what it receives: streamed JSON and CSV exports, signature
//! verification on ingest, size and rate limits, and forwarding into an application as signed
//! messages.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json as body_json};
use crate::inbox::{in_url, inbox, read, send};
use crate::receiver::Receiver;

#[tokio::test]
async fn exports_stream_json_and_csv() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(&t, json!({"name": "factory"})).await;
    let bodies = [
        json!({"device_id": "a1", "mac": "0c:2a", "type": "imp005", "msg": "Message from an imp"}),
        json!({"device_id": "a2", "net": {"rssi": -60, "ssid": "lab, 2nd floor"}, "key": "k"}),
        json!({"device_id": "a3", "mac": "0c:2b", "tags": ["x", "y"], "msg": "line one\nline \"two\""}),
    ];
    let mut keys = Vec::new();
    for body in &bodies {
        let (_, out) = send(
            &t,
            Method::POST,
            "factory/testresult.json",
            &token,
            Some(body.clone()),
        )
        .await;
        keys.push(out["name"].as_str().unwrap().to_owned());
    }
    send(
        &t,
        Method::POST,
        "factory/blessing.json",
        &token,
        Some(json!({"other": true})),
    )
    .await;

    let response = t
        .request(
            Method::GET,
            "/api/v1/inbox/factory/export?format=csv&path=testresult",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-herald-entry-count"], "3");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        headers,
        [
            "key",
            "path",
            "receivedAt",
            "device_id",
            "mac",
            "type",
            "msg",
            "net.rssi",
            "net.ssid",
            "body.key",
            "tags.0",
            "tags.1"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let cell = |row: usize, column: &str| -> String {
        let i = headers.iter().position(|h| h == column).unwrap();
        rows[row][i].to_owned()
    };
    assert_eq!(cell(0, "key"), keys[0]);
    assert_eq!(cell(0, "path"), "testresult");
    assert!(chrono::DateTime::parse_from_rfc3339(&cell(0, "receivedAt")).is_ok());
    assert_eq!(cell(0, "msg"), "Message from an imp");
    assert_eq!(cell(1, "mac"), "", "a missing field is an empty cell");
    assert_eq!(cell(1, "net.ssid"), "lab, 2nd floor");
    assert_eq!(cell(1, "net.rssi"), "-60");
    assert_eq!(cell(1, "body.key"), "k");
    assert_eq!(cell(2, "msg"), "line one\nline \"two\"");
    assert_eq!(cell(2, "tags.1"), "y");

    let response = t
        .request(Method::GET, "/api/v1/inbox/factory/export?format=json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-herald-entry-count"], "4");
    let all: Value = response.json().await.unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["key"], keys[0].as_str());
    assert_eq!(all[0]["value"], bodies[0]);
    assert_eq!(all[3]["path"], "blessing");

    // An empty export is still well formed.
    let (_, token2) = inbox(&t, json!({"name": "empty"})).await;
    let _ = token2;
    let text = t
        .request(Method::GET, "/api/v1/inbox/empty/export?format=csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.trim(), "key,path,receivedAt");
    let empty: Value = t
        .request(Method::GET, "/api/v1/inbox/empty/export")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!([]));
}

#[tokio::test]
async fn ingest_verifies_signatures_and_counts_failures_without_storing() {
    let t = TestApp::spawn().await;
    // A Herald endpoint delivering into a Herald inbox: Standard Webhooks end to end.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (_, token) = inbox(
        &t,
        json!({"name": "upstream", "verification": {"scheme": "standard-v1", "secret": secret}}),
    )
    .await;
    let app = t.create_app("Sender").await;
    t.create_endpoint(
        &app,
        json!({"url": format!("{}?token={token}", t.url("/in/upstream/events.json")), "secret": secret}),
    )
    .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "device.blessed", "payload": {"device": "a1"}}),
        )
        .await;
    let mut entries = Value::Null;
    for _ in 0..250 {
        entries = read(&t, "upstream/events.json", &token, &[]).await;
        if !entries.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: Vec<&Value> = entries
        .as_object()
        .expect("the delivery was stored")
        .values()
        .collect();
    assert_eq!(stored, [&json!({"device": "a1"})]);
    let (_, listed) = t.get("/api/v1/inbox/upstream/entries").await;
    assert_eq!(listed["data"][0]["headers"]["webhook-id"], msg.as_str());

    // Forged or unsigned requests: 401, counted, not stored.
    let forged = t
        .client
        .post(in_url(&t, "/in/upstream/events.json", &token, &[]))
        .header("webhook-id", "msg_x")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,AAAA")
        .json(&json!({"device": "evil"}))
        .send()
        .await
        .unwrap();
    let (status, out) = body_json(forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
    assert_eq!(out["code"], "verification_failed");
    let (status, _) = send(
        &t,
        Method::POST,
        "upstream/events",
        &token,
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, got) = t.get("/api/v1/inbox/upstream").await;
    assert_eq!(got["rejectedCount"], 2);
    assert_eq!(got["verification"]["scheme"], "standard-v1");
    assert!(got["verification"].get("secret").is_none());
    assert_eq!(
        read(&t, "upstream/events.json", &token, &[])
            .await
            .as_object()
            .unwrap()
            .len(),
        1
    );

    // HMAC-SHA1 hex (Ideavate-style), computed here independently.
    let (_, token) = inbox(
        &t,
        json!({"name": "ideavate", "verification": {"scheme": "hmac-sha1-hex", "secret": "ideavate-shared-key-7Qz"}}),
    )
    .await;
    let body = br#"{"trigger":"energy"}"#;
    let good = crate::signatures::hex(&crate::signatures::hmac1(b"ideavate-shared-key-7Qz", body));
    for (signature, expected) in [
        (good.as_str(), StatusCode::OK),
        ("00ff", StatusCode::UNAUTHORIZED),
    ] {
        let response = t
            .client
            .post(in_url(&t, "/in/ideavate/hooks", &token, &[]))
            .header("content-type", "application/json")
            .header("X-Signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let (_, got) = t.get("/api/v1/inbox/ideavate").await;
    assert_eq!(got["rejectedCount"], 1);

    // A static-header secret is checked, and not kept with the entry.
    let (_, token) = inbox(
        &t,
        json!({"name": "impilo", "verification": {"scheme": "static-header", "secret": "impilo-static-secret-9Xw"}}),
    )
    .await;
    let response = t
        .client
        .post(in_url(&t, "/in/impilo/hooks", &token, &[]))
        .header("Impilo-Webhook-Secret", "impilo-static-secret-9Xw")
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, listed) = t.get("/api/v1/inbox/impilo/entries").await;
    assert!(
        listed["data"][0]["headers"]
            .get("impilo-webhook-secret")
            .is_none()
    );

    // The verification secrets are sealed at rest.
    let dir = t.stop().await;
    for file in ["herald.db", "herald.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        for needle in [&b"ideavate-shared-key-7Qz"[..], b"impilo-static-secret-9Xw"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{file} holds a verification secret in the clear"
            );
        }
    }
}

#[tokio::test]
async fn size_and_rate_limits() {
    let t = TestApp::spawn().await;
    let (_, token) = inbox(
        &t,
        json!({"name": "small", "maxBodyBytes": 16, "rateLimit": 3}),
    )
    .await;
    let (status, out) = send(
        &t,
        Method::POST,
        "small/x",
        &token,
        Some(json!({"long": "0123456789abcdef"})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{out}");
    let (status, _) = send(&t, Method::POST, "small/x", &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::OK);
    let mut limited = None;
    for _ in 0..5 {
        let response = t
            .client
            .post(in_url(&t, "/in/small/x", &token, &[]))
            .json(&json!({"a": 1}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the fourth request within a second is limited");
    assert_eq!(limited.headers()["retry-after"], "1");
    let (status, out) = t
        .post(
            "/api/v1/inbox",
            json!({"name": "huge", "maxBodyBytes": 100_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
}

#[tokio::test]
async fn forwarding_turns_writes_into_signed_messages() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Gateway").await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    t.create_endpoint(
        &app,
        json!({"url": r.url("/sub"), "secret": secret, "eventTypes": ["factory.blessing"]}),
    )
    .await;
    let (_, token) = inbox(
        &t,
        json!({"name": "imp", "appId": app, "forward": {"eventTypeFrom": "path"}}),
    )
    .await;
    let raw = r#"{"device_id": "c0010c2a69f088a4",  "result": "pass"}"#;
    let response = t
        .client
        .post(in_url(&t, "/in/imp/factory/blessing.json", &token, &[]))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (status, out) = body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let got = r.wait_for("/sub", 1, Duration::from_secs(5)).await;
    assert_eq!(got[0].body, raw.as_bytes(), "the body byte for byte");
    let msg_id = got[0].header("webhook-id").unwrap().to_owned();
    let args = [
        "--secret",
        secret,
        "-H",
        &format!("webhook-id: {msg_id}"),
        "-H",
        &format!(
            "webhook-timestamp: {}",
            got[0].header("webhook-timestamp").unwrap()
        ),
        "-H",
        &format!(
            "webhook-signature: {}",
            got[0].header("webhook-signature").unwrap()
        ),
    ];
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("verify")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    verify
        .stdin
        .as_ref()
        .unwrap()
        .write_all(&got[0].body)
        .unwrap();
    let output = verify.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let (_, message) = t.get(&format!("/api/v1/app/{app}/msg/{msg_id}")).await;
    assert_eq!(message["eventType"], "factory.blessing");
    let (_, entries) = t.get("/api/v1/inbox/imp/entries").await;
    assert_eq!(message["eventId"], entries["data"][0]["id"]);

    // The event type from a header: a write without it is refused (422) and stores nothing.
    let (status, _) = t
        .call(
            Method::PATCH,
            "/api/v1/inbox/imp",
            Some(json!({"forward": {"eventTypeFrom": "header", "header": "X-Event"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, out) = send(&t, Method::POST, "imp/any", &token, Some(json!({"a": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let response = t
        .client
        .put(in_url(&t, "/in/imp/devices/abc", &token, &[]))
        .header("X-Event", "factory.blessing")
        .json(&json!("blessed"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let got = r.wait_for("/sub", 2, Duration::from_secs(5)).await;
    assert_eq!(
        got[1].body, br#"{"value":"blessed"}"#,
        "a value that is not an object is wrapped"
    );
    let (_, entries) = t.get("/api/v1/inbox/imp/entries").await;
    assert_eq!(entries["data"].as_array().unwrap().len(), 2);
}

/// A signed request accepted once is refused as a replay (409, nothing stored) for as long as
/// its signature could be presented: by its `webhook-id` for Standard Webhooks, by its body for
/// the hex schemes. Another message, or the same body signed anew, is accepted.
#[tokio::test]
async fn replayed_signed_requests_are_refused() {
    let t = TestApp::spawn().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (_, token) = inbox(
        &t,
        json!({"name": "signed", "verification": {"scheme": "standard-v1", "secret": secret}}),
    )
    .await;
    let body = br#"{"device":"a1"}"#;
    let send_signed = |id: &'static str| {
        let ts = chrono::Utc::now().timestamp();
        t.client
            .post(in_url(&t, "/in/signed/events", &token, &[]))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                crate::signatures::sign_v1(secret, id, ts, body),
            )
            .body(body.to_vec())
            .send()
    };
    assert_eq!(send_signed("msg_1").await.unwrap().status(), StatusCode::OK);
    let (status, out) = body_json(send_signed("msg_1").await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{out}");
    assert!(out["detail"].as_str().unwrap().contains("replay"), "{out}");
    assert_eq!(send_signed("msg_2").await.unwrap().status(), StatusCode::OK);
    let (_, listed) = t.get("/api/v1/inbox/signed/entries").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    // The hex schemes sign the body alone: the same body again is the replay.
    let key = "ideavate-shared-key-7Qz";
    let (_, token) = inbox(
        &t,
        json!({"name": "hex", "verification": {"scheme": "hmac-sha1-hex", "secret": key}}),
    )
    .await;
    let post = |body: &'static [u8]| {
        t.client
            .post(in_url(&t, "/in/hex/hooks", &token, &[]))
            .header("content-type", "application/json")
            .header(
                "X-Signature",
                crate::signatures::hex(&crate::signatures::hmac1(key.as_bytes(), body)),
            )
            .body(body.to_vec())
            .send()
    };
    assert_eq!(post(br#"{"n":1}"#).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        post(br#"{"n":1}"#).await.unwrap().status(),
        StatusCode::CONFLICT
    );
    assert_eq!(post(br#"{"n":2}"#).await.unwrap().status(), StatusCode::OK);
    t.stop().await;
}

/// Credentials never reach an entry: `Authorization`, `Cookie`, `Proxy-Authorization` and
/// `X-Api-Key` are dropped, and so is every header the inbox lists in `dropHeaders`.
#[tokio::test]
async fn credential_headers_are_not_stored() {
    let t = TestApp::spawn().await;
    let (created, token) = inbox(
        &t,
        json!({"name": "careful", "dropHeaders": ["X-Session-Ticket"]}),
    )
    .await;
    assert_eq!(created["dropHeaders"], json!(["X-Session-Ticket"]));
    let response = t
        .client
        .post(t.url("/in/careful/events"))
        .bearer_auth(&token)
        .header("cookie", "session=abc")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("x-api-key", "k-123")
        .header("x-session-ticket", "ticket-9")
        .header("x-device", "a1")
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, listed) = t.get("/api/v1/inbox/careful/entries").await;
    let headers = listed["data"][0]["headers"].as_object().unwrap().clone();
    for dropped in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "x-session-ticket",
    ] {
        assert!(!headers.contains_key(dropped), "{dropped} was stored");
    }
    assert_eq!(headers["x-device"], "a1");
    // The list can be changed, and is checked.
    let (status, _) = t
        .call(
            Method::PATCH,
            "/api/v1/inbox/careful",
            Some(json!({"dropHeaders": ["bad header"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}

/// Inbox names are an application's own: two applications may both have a `factory`, each
/// created without learning of the other, each reached at `/in/{app}/factory/…` and, with its
/// token, at `/in/factory/…`.
#[tokio::test]
async fn inbox_names_are_unique_per_application() {
    let t = TestApp::spawn().await;
    let (a, b) = (t.create_app("A").await, t.create_app("B").await);
    let key_a = t.api_key(json!({"role": "app", "appId": a})).await;
    let key_b = t.api_key(json!({"role": "app", "appId": b})).await;
    // An inbox of no application with the name too: the applications' tokens still find their
    // own by name, not this one.
    let (status, _) = t.post("/api/v1/inbox", json!({"name": "factory"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut tokens = Vec::new();
    for key in [&key_a, &key_b] {
        let (status, out) = t
            .call_as(
                key,
                Method::POST,
                "/api/v1/inbox",
                Some(json!({"name": "factory"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
        tokens.push(out["token"].as_str().unwrap().to_owned());
        // Its own application's token finds it by name.
        let (status, got) = t
            .call_as(key, Method::GET, "/api/v1/inbox/factory", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["id"], out["id"]);
    }
    for ((app, token), n) in [(&a, &tokens[0]), (&b, &tokens[1])].into_iter().zip([1, 2]) {
        let status = t
            .client
            .put(in_url(&t, &format!("/in/{app}/factory/n"), token, &[]))
            .json(&json!(n))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    // Each reads its own, by either form; another inbox's token reads nothing.
    assert_eq!(
        read(&t, &format!("{a}/factory/n.json"), &tokens[0], &[]).await,
        json!(1)
    );
    assert_eq!(read(&t, "factory/n.json", &tokens[1], &[]).await, json!(2));
    let wrong = t
        .client
        .get(in_url(
            &t,
            &format!("/in/{a}/factory/n.json"),
            &tokens[1],
            &[],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // An unscoped token must say which one it means.
    let (status, _) = t.get("/api/v1/inbox/factory").await;
    assert_eq!(status, StatusCode::CONFLICT);
    t.stop().await;
}
