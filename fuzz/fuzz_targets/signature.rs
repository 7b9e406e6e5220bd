//! Signatures (`herald_core::signing`): verification of any headers and body under every
//! scheme, as `herald verify` and inbox verification do it with headers from the network
//! (`webhook-signature: v1,… v1a,…` lists, timestamps, hex digests), the checks of
//! caller-supplied secrets, and sign-then-verify round trips: whatever Herald signs with a
//! secret it accepts must verify with that secret (or its public key).
#![no_main]

use arbitrary::Arbitrary;
use herald_core::signing::{
    self, Scheme, SignatureConfig, SigningSecrets, Verification, normalize_verification_secret,
};
use libfuzzer_sys::fuzz_target;

/// Valid secrets, so that most inputs get past key decoding to the signature parsing.
const SECRETS: [&str; 3] = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    // An Ed25519 seed (its public key is the fourth choice).
    "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "sharedSecret",
];

#[derive(Debug, Arbitrary)]
struct Input {
    scheme: u8,
    header: Option<String>,
    prefix: Option<String>,
    /// Index into `SECRETS`, 3 for the public key of `SECRETS[1]`, more for `own_secret`.
    secret_choice: u8,
    own_secret: String,
    /// Whether to add well-formed `webhook-id` and `webhook-timestamp` headers, and
    /// `webhook-signature: <signatures>`, first (the fuzzer rarely spells the names itself).
    standard_headers: bool,
    signatures: String,
    msg_id: String,
    timestamp: i64,
    headers: Vec<(String, String)>,
    tolerance: Option<(i64, i64)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let scheme = Scheme::ALL[usize::from(input.scheme) % Scheme::ALL.len()];
    let config = SignatureConfig {
        scheme,
        header: input.header.clone(),
        prefix: input.prefix.clone(),
    };
    let derived;
    let secret = match usize::from(input.secret_choice) {
        i if i < SECRETS.len() => SECRETS[i],
        3 => {
            derived = signing::public_key(SECRETS[1]).unwrap();
            derived.as_str()
        }
        _ => input.own_secret.as_str(),
    };

    // The checks of secrets a caller supplies.
    let _ = Scheme::parse(secret);
    let normalized = scheme.normalize_secret(secret);
    let _ = normalize_verification_secret(scheme, secret);
    let public = signing::public_key(secret);

    // Verification of anything.
    let mut headers = Vec::new();
    if input.standard_headers {
        headers.push(("webhook-id".to_owned(), input.msg_id.clone()));
        headers.push(("webhook-timestamp".to_owned(), input.timestamp.to_string()));
        headers.push(("webhook-signature".to_owned(), input.signatures.clone()));
    }
    headers.extend(input.headers.iter().cloned());
    let verification = Verification {
        config: &config,
        secret,
        now_and_tolerance: input.tolerance,
    };
    if let Err(e) = signing::verify(&verification, &headers, &input.body) {
        let _ = e.to_string();
    }

    // Sign, then verify what was signed. Header values travel trimmed (HTTP drops surrounding
    // whitespace), so ids with surrounding whitespace cannot round-trip, and Herald's are
    // `msg_…`.
    if normalized.is_err() || input.msg_id.trim() != input.msg_id {
        return;
    }
    let secrets = SigningSecrets {
        current: secret,
        previous: vec![],
    };
    let Ok(signed) = signing::sign(
        &config,
        &secrets,
        &input.msg_id,
        input.timestamp,
        &input.body,
    ) else {
        return;
    };
    let mut delivered = vec![
        ("webhook-id".to_owned(), input.msg_id.clone()),
        ("webhook-timestamp".to_owned(), input.timestamp.to_string()),
    ];
    // A custom signature header named like one of the two above is sent after them.
    delivered.extend(signed);
    let verifier_secret = match (scheme, &public) {
        (Scheme::StandardV1a, Ok(public)) => public.as_str(),
        _ => secret,
    };
    let receiver = Verification {
        config: &config,
        secret: verifier_secret,
        now_and_tolerance: Some((input.timestamp, 0)),
    };
    let outcome = signing::verify(&receiver, &delivered, &input.body);
    // A configured header name that collides with `webhook-id`/`webhook-timestamp`, or a
    // single-value header whose value HTTP would trim, is the one thing that may not verify.
    let collides = config.header_name().is_some_and(|h| {
        h.eq_ignore_ascii_case("webhook-id") || h.eq_ignore_ascii_case("webhook-timestamp")
    });
    let trimmed = delivered[2..].iter().any(|(_, v)| v.trim() != v);
    if !collides && !trimmed && scheme != Scheme::None {
        assert_eq!(outcome, Ok(()), "{scheme:?} {config:?}");
    }
});
