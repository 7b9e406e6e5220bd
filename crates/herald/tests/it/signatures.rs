//! Every signature scheme end to end: real deliveries checked with implementations written here
//! (and, in `sdk.rs`, with the Standard Webhooks libraries), rotation overlaps, and the
//! `verify` and `secrets rotate-key` commands.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::receiver::{Received, Receiver};

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Standard Webhooks `v1,…` signature of `body` as message `id` at `ts`, made here.
pub(crate) fn sign_v1(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut content = format!("{id}.{ts}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac256(&key, &content)))
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub(crate) fn hmac1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn signed_content(r: &Received) -> Vec<u8> {
    let mut content = format!(
        "{}.{}.",
        r.header("webhook-id").unwrap(),
        r.header("webhook-timestamp").unwrap()
    )
    .into_bytes();
    content.extend_from_slice(&r.body);
    content
}

/// The `v1` signatures of a delivery that verify with `secret`, counted.
fn v1_matches(r: &Received, secret: &str) -> usize {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let expected = format!("v1,{}", STANDARD.encode(hmac256(&key, &signed_content(r))));
    r.header("webhook-signature")
        .unwrap()
        .split(' ')
        .filter(|s| *s == expected)
        .count()
}

async fn endpoint(t: &TestApp, app: &str, url: String, extra: Value) -> String {
    let mut body = json!({"url": url});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    t.create_endpoint(app, body).await
}

async fn secret_of(t: &TestApp, app: &str, ep: &str) -> Value {
    let (status, out) = t
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret"))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

#[tokio::test]
async fn every_scheme_verifies_with_an_independent_implementation() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Schemes").await;
    let v1 = endpoint(&t, &app, r.url("/v1"), json!({"eventTypes": ["e"]})).await;
    let v1a = endpoint(
        &t,
        &app,
        r.url("/v1a"),
        json!({"eventTypes": ["e"], "signature": {"scheme": "standard-v1a"}}),
    )
    .await;
    endpoint(&t, &app, r.url("/sha1"), json!({"eventTypes": ["e"], "secret": "sharedSecret", "signature": {"scheme": "hmac-sha1-hex"}})).await;
    endpoint(
        &t,
        &app,
        r.url("/sha256"),
        json!({"eventTypes": ["e"], "secret": "sharedSecret",
        "signature": {"scheme": "hmac-sha256-hex", "header": "X-Hub-Signature-256"}}),
    )
    .await;
    endpoint(&t, &app, r.url("/static"), json!({"eventTypes": ["e"], "secret": "impilo-shared-secret", "signature": {"scheme": "static-header"}})).await;
    endpoint(
        &t,
        &app,
        r.url("/none"),
        json!({"eventTypes": ["e"], "signature": {"scheme": "none"}}),
    )
    .await;
    t.publish(
        &app,
        json!({"eventType": "e", "payload": {"reading": {"weight": 81.5}}}),
    )
    .await;
    let wait = Duration::from_secs(5);

    // standard-v1: HMAC-SHA256 of id.timestamp.body with the decoded whsec_ key.
    let got = &r.wait_for("/v1", 1, wait).await[0];
    let secret = secret_of(&t, &app, &v1).await;
    assert_eq!(secret["scheme"], "standard-v1");
    assert_eq!(v1_matches(got, secret["key"].as_str().unwrap()), 1);

    // standard-v1a: Ed25519, verified with the public key the API hands out.
    let got = &r.wait_for("/v1a", 1, wait).await[0];
    let secret = secret_of(&t, &app, &v1a).await;
    let public = secret["key"].as_str().unwrap();
    assert!(public.starts_with("whpk_"), "{secret}");
    assert_eq!(secret["publicKey"], public);
    let key_bytes: [u8; 32] = STANDARD
        .decode(public.trim_start_matches("whpk_"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
    let sig = got
        .header("webhook-signature")
        .unwrap()
        .strip_prefix("v1a,")
        .unwrap();
    let sig: [u8; 64] = STANDARD.decode(sig).unwrap().try_into().unwrap();
    key.verify_strict(
        &signed_content(got),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .unwrap();
    assert!(
        got.header("svix-signature").is_none(),
        "svix-* copies are for v1 only"
    );

    // hmac-sha1-hex (Ideavate): lowercase hex of the body in X-Signature.
    let got = &r.wait_for("/sha1", 1, wait).await[0];
    assert_eq!(
        got.header("x-signature").unwrap(),
        hex(&hmac1(b"sharedSecret", &got.body))
    );
    assert!(got.header("webhook-signature").is_none());
    assert!(
        got.header("webhook-id").is_some(),
        "the id is sent for deduplication"
    );

    // hmac-sha256-hex with a custom header.
    let got = &r.wait_for("/sha256", 1, wait).await[0];
    assert_eq!(
        got.header("x-hub-signature-256").unwrap(),
        format!("sha256={}", hex(&hmac256(b"sharedSecret", &got.body)))
    );

    // static-header (Impilo): the secret itself.
    let got = &r.wait_for("/static", 1, wait).await[0];
    assert_eq!(
        got.header("impilo-webhook-secret"),
        Some("impilo-shared-secret")
    );

    // none: nothing.
    let got = &r.wait_for("/none", 1, wait).await[0];
    assert!(got.header("webhook-signature").is_none() && got.header("x-signature").is_none());

    // The endpoint shows its effective settings.
    let (_, out) = t.get(&format!("/api/v1/app/{app}/endpoint/{v1a}")).await;
    assert_eq!(out["signature"], json!({"scheme": "standard-v1a"}));
    let (_, list) = t.get(&format!("/api/v1/app/{app}/endpoint")).await;
    let sha1 = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == r.url("/sha1"))
        .unwrap();
    assert_eq!(
        sha1["signature"],
        json!({"scheme": "hmac-sha1-hex", "header": "X-Signature"})
    );
    t.stop().await;
}

#[tokio::test]
async fn secrets_and_settings_are_checked_per_scheme() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Checks").await;
    let base = format!("/api/v1/app/{app}/endpoint");
    for (body, loc) in [
        (
            json!({"url": "https://e.com", "signature": {"scheme": "standard-v1a"}, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            "body.secret",
        ),
        (
            json!({"url": "https://e.com", "secret": "sharedSecret"}),
            "body.secret",
        ),
        (
            json!({"url": "https://e.com", "signature": {"scheme": "hmac-sha1-hex"}, "secret": "has space"}),
            "body.secret",
        ),
        (
            json!({"url": "https://e.com", "signature": {"scheme": "standard-v1", "header": "X-Sig"}}),
            "body.signature.header",
        ),
        (
            json!({"url": "https://e.com", "signature": {"scheme": "static-header", "header": "webhook-id"}}),
            "body.signature.header",
        ),
        (
            json!({"url": "https://e.com", "signature": {"scheme": "hmac-sha1-hex", "header": "bad header"}}),
            "body.signature.header",
        ),
        (
            json!({"url": "https://e.com", "signature": {"scheme": "static-header", "prefix": "x="}}),
            "body.signature.prefix",
        ),
        (
            json!({"url": "https://e.com", "signature": {"scheme": "rot13"}}),
            "body.signature.scheme",
        ),
    ] {
        let (status, out) = t.post(&base, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {out}");
        assert!(
            crate::helpers::error_locs(&out)
                .iter()
                .any(|l| l.starts_with(loc)),
            "{body}: {out}"
        );
    }
    // Switching to a scheme the secret does not fit replaces the secret.
    let ep = t
        .create_endpoint(&app, json!({"url": "https://e.com"}))
        .await;
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("{base}/{ep}"),
            Some(json!({"signature": {"scheme": "standard-v1a"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        secret_of(&t, &app, &ep).await["key"]
            .as_str()
            .unwrap()
            .starts_with("whpk_")
    );
    // A symmetric secret carries over between the symmetric schemes.
    let ep = t
        .create_endpoint(
            &app,
            json!({"url": "https://e.com", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        )
        .await;
    t.call(
        Method::PATCH,
        &format!("{base}/{ep}"),
        Some(json!({"signature": {"scheme": "hmac-sha1-hex"}})),
    )
    .await;
    assert_eq!(
        secret_of(&t, &app, &ep).await["key"],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    // A PUT that does not mention Herald's fields (as the Svix SDKs send it) keeps them.
    let (_, put) = t
        .call(
            Method::PUT,
            &format!("{base}/{ep}"),
            Some(json!({"url": "https://e.org"})),
        )
        .await;
    assert_eq!(put["signature"]["scheme"], "hmac-sha1-hex");
    t.stop().await;
}

#[tokio::test]
async fn rotation_overlap_before_during_and_after_the_grace_period() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Rotation").await;
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let ep = endpoint(
        &t,
        &app,
        r.url("/std"),
        json!({"eventTypes": ["std"], "secret": old}),
    )
    .await;
    let st = endpoint(&t, &app, r.url("/static"), json!({"eventTypes": ["static"], "secret": "old-static-secret", "signature": {"scheme": "static-header"}})).await;
    let wait = Duration::from_secs(5);

    // Before: one signature, with the old secret.
    t.publish(&app, json!({"eventType": "std", "payload": {"n": 1}}))
        .await;
    t.publish(&app, json!({"eventType": "static", "payload": {"n": 1}}))
        .await;
    let before = &r.wait_for("/std", 1, wait).await[0];
    assert_eq!(
        before
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert_eq!((v1_matches(before, old), v1_matches(before, new)), (1, 0));
    assert_eq!(
        r.wait_for("/static", 1, wait).await[0].header("impilo-webhook-secret"),
        Some("old-static-secret")
    );

    // During the grace period: both signatures, each verifies; the single-value scheme keeps
    // the old secret.
    let grace = 2;
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate"),
            json!({"key": new, "gracePeriodSeconds": grace}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{st}/secret/rotate"),
            json!({"key": "new-static-secret", "gracePeriodSeconds": grace}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    t.publish(&app, json!({"eventType": "std", "payload": {"n": 2}}))
        .await;
    t.publish(&app, json!({"eventType": "static", "payload": {"n": 2}}))
        .await;
    let during = &r.wait_for("/std", 2, wait).await[1];
    assert_eq!(
        during
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    assert_eq!((v1_matches(during, old), v1_matches(during, new)), (1, 1));
    assert_eq!(
        during.header("svix-signature"),
        during.header("webhook-signature")
    );
    assert_eq!(
        r.wait_for("/static", 2, wait).await[1].header("impilo-webhook-secret"),
        Some("old-static-secret")
    );

    // After it: only the new secret.
    tokio::time::sleep(Duration::from_millis(grace * 1000 + 300)).await;
    t.publish(&app, json!({"eventType": "std", "payload": {"n": 3}}))
        .await;
    t.publish(&app, json!({"eventType": "static", "payload": {"n": 3}}))
        .await;
    let after = &r.wait_for("/std", 3, wait).await[2];
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert_eq!((v1_matches(after, old), v1_matches(after, new)), (0, 1));
    assert_eq!(
        r.wait_for("/static", 3, wait).await[2].header("impilo-webhook-secret"),
        Some("new-static-secret")
    );
    t.stop().await;
}

/// A rotation with `gracePeriodSeconds: 0` is immediate whatever came before: after a rotation
/// with the default grace, a second one without grace leaves only the newest secret signing,
/// in every scheme, as `GET …/secret` says.
#[tokio::test]
async fn a_rotation_without_grace_ends_every_older_secrets_grace() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Immediate").await;
    let secrets = |scheme: &str| -> [String; 3] {
        match scheme {
            "standard-v1" => [
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
                "whsec_3yWzVJpPUh8xJ5TuRZ6pGzYXWkk5LoNm".into(),
            ],
            _ => [
                "first-secret".into(),
                "second-secret".into(),
                "third-secret".into(),
            ],
        }
    };
    for scheme in ["standard-v1", "hmac-sha1-hex", "static-header"] {
        let [first, second, third] = secrets(scheme);
        let path = format!("/{scheme}");
        let ep = endpoint(
            &t,
            &app,
            r.url(&path),
            json!({"eventTypes": [scheme], "secret": first, "signature": {"scheme": scheme}}),
        )
        .await;
        let rotate = format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate");
        let (status, _) = t.post(&rotate, json!({"key": second})).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
        let (status, _) = t
            .post(&rotate, json!({"key": third, "gracePeriodSeconds": 0}))
            .await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
        let (_, shown) = t
            .get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret"))
            .await;
        assert_eq!(shown["key"], third.as_str(), "{scheme}");

        t.publish(&app, json!({"eventType": scheme, "payload": {"n": 1}}))
            .await;
        let got = &r.wait_for(&path, 1, Duration::from_secs(5)).await[0];
        match scheme {
            "standard-v1" => {
                let signatures = got.header("webhook-signature").unwrap();
                assert_eq!(signatures.split(' ').count(), 1, "{signatures}");
                assert_eq!(v1_matches(got, &third), 1);
            }
            "hmac-sha1-hex" => assert_eq!(
                got.header("x-signature"),
                Some(hex(&hmac1(third.as_bytes(), &got.body)).as_str())
            ),
            _ => assert_eq!(got.header("impilo-webhook-secret"), Some(third.as_str())),
        }
    }
    t.stop().await;
}

#[tokio::test]
async fn svix_headers_can_be_turned_off() {
    let r = Receiver::start().await;
    let t = TestApp::spawn_with(|c| c.delivery.svix_headers = false).await;
    let app = t.create_app("Plain").await;
    endpoint(&t, &app, r.url("/plain"), json!({})).await;
    t.publish(&app, json!({"eventType": "e", "payload": {}}))
        .await;
    let got = &r.wait_for("/plain", 1, Duration::from_secs(5)).await[0];
    assert!(got.header("webhook-signature").is_some());
    assert!(got.header("svix-id").is_none() && got.header("svix-signature").is_none());
    t.stop().await;
}

/// Runs `herald verify` with `body` on stdin; returns the exit code and stdout.
fn verify(args: &[&str], body: &[u8]) -> (i32, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("verify")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_verify_command_checks_real_deliveries() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Verify").await;
    let ep = endpoint(&t, &app, r.url("/v"), json!({"eventTypes": ["v"]})).await;
    let v1a = endpoint(
        &t,
        &app,
        r.url("/v1a"),
        json!({"eventTypes": ["v"], "signature": {"scheme": "standard-v1a"}}),
    )
    .await;
    endpoint(
        &t,
        &app,
        r.url("/hex"),
        json!({"eventTypes": ["v"], "secret": "k3y", "signature": {"scheme": "hmac-sha1-hex"}}),
    )
    .await;
    t.publish(&app, json!({"eventType": "v", "payload": {"x": "y"}}))
        .await;
    let secret = secret_of(&t, &app, &ep).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let public = secret_of(&t, &app, &v1a).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let wait = Duration::from_secs(5);
    let headers = |got: &Received, names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("{n}: {}", got.header(n).unwrap()))
            .collect()
    };
    let std_names = ["webhook-id", "webhook-timestamp", "webhook-signature"];

    let got = r.wait_for("/v", 1, wait).await.remove(0);
    let mut args: Vec<String> = vec!["--secret".into(), secret.clone()];
    for h in headers(&got, &std_names) {
        args.extend(["-H".into(), h]);
    }
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(verify(&args_ref, &got.body), (0, "verified\n".into()));
    let (code, out) = verify(&args_ref, b"{\"x\":\"tampered\"}");
    assert_eq!(code, 1);
    assert!(out.starts_with("not verified"), "{out}");

    let got = r.wait_for("/v1a", 1, wait).await.remove(0);
    let mut args: Vec<String> = vec![
        "--scheme".into(),
        "standard-v1a".into(),
        "--secret".into(),
        public,
    ];
    for h in headers(&got, &std_names) {
        args.extend(["-H".into(), h]);
    }
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(verify(&args_ref, &got.body).0, 0);

    let got = r.wait_for("/hex", 1, wait).await.remove(0);
    let sig = format!("X-Signature: {}", got.header("x-signature").unwrap());
    assert_eq!(
        verify(
            &["--scheme", "hmac-sha1-hex", "--secret", "k3y", "-H", &sig],
            &got.body
        )
        .0,
        0
    );
    assert_eq!(
        verify(
            &["--scheme", "hmac-sha1-hex", "--secret", "wrong", "-H", &sig],
            &got.body
        )
        .0,
        1
    );
    // Usage errors exit 2.
    assert_eq!(verify(&["--scheme", "rot13", "--secret", "x"], b"").0, 2);
    assert_eq!(verify(&["--secret", "x", "-H", "no colon"], b"").0, 2);
    t.stop().await;
}
