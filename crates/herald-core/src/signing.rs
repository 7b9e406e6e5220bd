//! How deliveries prove they come from Herald: the signature schemes, per endpoint.
//!
//! - `standard-v1` (default): Standard Webhooks, HMAC-SHA256 over
//!   `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded part of a `whsec_`
//!   secret; `webhook-signature: v1,<base64>`, several space-separated while a rotated secret is
//!   still in its grace period.
//! - `standard-v1a`: the same signed content with Ed25519; `v1a,<base64>`. The secret is the
//!   private key `whsk_<base64 of the 32-byte seed>`; receivers verify with the public key
//!   `whpk_<base64 of the 32-byte key>`, which the API hands out.
//! - `hmac-sha1-hex`: lowercase hex HMAC-SHA1 of the body in `X-Signature` (Ideavate).
//! - `hmac-sha256-hex`: `sha256=<hex HMAC-SHA256 of the body>` in `X-Signature-256`.
//! - `static-header`: the secret itself in `Impilo-Webhook-Secret` (Impilo). The weakest choice:
//!   anyone who sees one delivery can forge the next, and nothing ties it to the body.
//! - `none`: no proof at all (Kobiton's only option).
//!
//! The hex and static schemes use the secret's text as the key, whatever its form, so a
//! receiver configured with a plain shared key (`sharedSecret`) works as is. These schemes carry
//! one value, so during a rotation's grace period they keep signing with the secret in force
//! before the rotation and switch when the grace period ends: a receiver has the whole grace
//! period to learn the new secret without a failed delivery.
//!
//! Everything here signs (and `verify` checks) exactly the bytes given: the body as sent, after
//! any encoding or envelope.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::token::{ENDPOINT_SECRET_PREFIX, random_base62};

/// The prefix of a `standard-v1a` private key (`whsk_` + base64 of the 32-byte Ed25519 seed).
pub const PRIVATE_KEY_PREFIX: &str = "whsk_";
/// The prefix of a `standard-v1a` public key (`whpk_` + base64 of the 32-byte key), which
/// receivers verify with.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// A signature scheme (`scheme` of an endpoint's or inbox's `signature` setting); the module
/// documentation describes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// `standard-v1` (the default): Standard Webhooks HMAC-SHA256, `webhook-signature: v1,…`.
    #[default]
    StandardV1,
    /// `standard-v1a`: Standard Webhooks Ed25519, `webhook-signature: v1a,…`.
    StandardV1a,
    /// `hmac-sha1-hex`: hex HMAC-SHA1 of the body, in `X-Signature` by default (Ideavate).
    HmacSha1Hex,
    /// `hmac-sha256-hex`: `sha256=` + hex HMAC-SHA256 of the body, in `X-Signature-256` by default.
    HmacSha256Hex,
    /// `static-header`: the secret itself, in `Impilo-Webhook-Secret` by default (Impilo).
    StaticHeader,
    /// `none`: deliveries carry no signature.
    None,
}

impl Scheme {
    /// The scheme's wire name (`standard-v1`, `hmac-sha256-hex`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::StandardV1 => "standard-v1",
            Scheme::StandardV1a => "standard-v1a",
            Scheme::HmacSha1Hex => "hmac-sha1-hex",
            Scheme::HmacSha256Hex => "hmac-sha256-hex",
            Scheme::StaticHeader => "static-header",
            Scheme::None => "none",
        }
    }

    /// Every scheme.
    pub const ALL: [Scheme; 6] = [
        Scheme::StandardV1,
        Scheme::StandardV1a,
        Scheme::HmacSha1Hex,
        Scheme::HmacSha256Hex,
        Scheme::StaticHeader,
        Scheme::None,
    ];

    /// Parses a wire name [`Scheme::as_str`] gives; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the scheme's secret is an Ed25519 key pair rather than a shared secret.
    pub fn is_asymmetric(self) -> bool {
        self == Scheme::StandardV1a
    }

    /// The header a single-value scheme writes by default.
    pub fn default_header(self) -> Option<&'static str> {
        match self {
            Scheme::HmacSha1Hex => Some("X-Signature"),
            Scheme::HmacSha256Hex => Some("X-Signature-256"),
            Scheme::StaticHeader => Some("Impilo-Webhook-Secret"),
            _ => None,
        }
    }

    /// A new secret of the right kind for the scheme.
    pub fn generate_secret(self) -> Zeroizing<String> {
        match self {
            Scheme::StandardV1a => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rand::fill(&mut seed[..]);
                Zeroizing::new(format!(
                    "{PRIVATE_KEY_PREFIX}{}",
                    STANDARD.encode(&seed[..])
                ))
            }
            Scheme::StandardV1 => crate::token::generate_endpoint_secret(),
            _ => Zeroizing::new(random_base62(40)),
        }
    }

    /// Checks a caller-supplied secret for the scheme and returns its stored form.
    pub fn normalize_secret(self, secret: &str) -> Result<String, &'static str> {
        match self {
            Scheme::StandardV1 => crate::token::normalize_endpoint_secret(secret),
            Scheme::StandardV1a => {
                private_key(secret)
                    .map_err(|_| "must be `whsk_` followed by base64 of a 32-byte Ed25519 seed")?;
                Ok(secret.to_owned())
            }
            _ => {
                if secret.is_empty()
                    || secret.len() > 512
                    || !secret.bytes().all(|b| b.is_ascii_graphic())
                {
                    Err("must be 1 to 512 visible ASCII characters")
                } else {
                    Ok(secret.to_owned())
                }
            }
        }
    }
}

/// Checks a secret a receiver verifies with (an inbox's): as [`Scheme::normalize_secret`],
/// except that `standard-v1a` takes the sender's public key `whpk_…`.
pub fn normalize_verification_secret(scheme: Scheme, secret: &str) -> Result<String, &'static str> {
    if scheme == Scheme::StandardV1a {
        verifying_key(secret).map_err(
            |_| "must be the sender's public key: `whpk_` followed by base64 of 32 bytes",
        )?;
        return Ok(secret.to_owned());
    }
    scheme.normalize_secret(secret)
}

/// An endpoint's `signature` setting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureConfig {
    /// The scheme deliveries are signed with (`standard-v1` when absent).
    #[serde(default)]
    pub scheme: Scheme,
    /// Header name for `hmac-sha1-hex`, `hmac-sha256-hex` and `static-header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Text before the hex digest for the hex schemes (`sha256=` by default for
    /// `hmac-sha256-hex`, none for `hmac-sha1-hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl SignatureConfig {
    /// The header a single-value scheme writes: `header` if set, else the scheme's
    /// [`default_header`](Scheme::default_header); `None` when neither is set (the Standard
    /// Webhooks schemes and `none`, by default).
    pub fn header_name(&self) -> Option<&str> {
        self.header
            .as_deref()
            .or_else(|| self.scheme.default_header())
    }

    /// The text before the hex digest: `prefix` if set, else `sha256=` for `hmac-sha256-hex` and
    /// nothing otherwise.
    pub fn digest_prefix(&self) -> &str {
        match (&self.prefix, self.scheme) {
            (Some(p), _) => p,
            (None, Scheme::HmacSha256Hex) => "sha256=",
            _ => "",
        }
    }
}

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The secret does not have the form the scheme needs (not base64, not a `whsk_`/`whpk_`
    /// key): a configuration problem, not the sender's.
    #[error("the secret does not fit the signature scheme")]
    BadSecret,
    /// The request lacks a header the scheme signs with (its name).
    #[error("a signature header is missing: {0}")]
    MissingHeader(String),
    /// No signature in the request matches the secret: forged, altered, or signed with another
    /// secret.
    #[error("the signature does not match")]
    NoMatch,
    /// `webhook-timestamp` is not a number of seconds, or is further from now than the tolerance
    /// allows (a possible replay).
    #[error("the timestamp is outside the tolerance")]
    Timestamp,
}

/// The HMAC key of a `whsec_…` secret.
fn standard_key(secret: &str) -> Result<Zeroizing<Vec<u8>>, SignatureError> {
    let body = secret
        .strip_prefix(ENDPOINT_SECRET_PREFIX)
        .unwrap_or(secret);
    STANDARD
        .decode(body)
        .map(Zeroizing::new)
        .map_err(|_| SignatureError::BadSecret)
}

fn private_key(secret: &str) -> Result<SigningKey, SignatureError> {
    let body = secret
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(SignatureError::BadSecret)?;
    let bytes = Zeroizing::new(
        STANDARD
            .decode(body)
            .map_err(|_| SignatureError::BadSecret)?,
    );
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignatureError::BadSecret)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The `whpk_…` public key of a `whsk_…` private key.
pub fn public_key(secret: &str) -> Result<String, SignatureError> {
    let key = private_key(secret)?;
    Ok(format!(
        "{PUBLIC_KEY_PREFIX}{}",
        STANDARD.encode(key.verifying_key().to_bytes())
    ))
}

fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(msg_id.len() + 24 + body.len());
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `v1,<base64>` for one `whsec_` secret.
pub fn sign_v1(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = standard_key(secret)?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(hmac_sha256(&key, &signed_content(msg_id, timestamp, body)))
    ))
}

/// `v1a,<base64>` for one `whsk_` private key.
pub fn sign_v1a(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = private_key(secret)?;
    let signature = key.sign(&signed_content(msg_id, timestamp, body));
    Ok(format!("v1a,{}", STANDARD.encode(signature.to_bytes())))
}

/// The secrets that sign one delivery: the current one, and (oldest first) the previous ones
/// whose grace period has not ended.
pub struct SigningSecrets<'a> {
    /// The secret in force: `whsec_…` for `standard-v1`, `whsk_…` for `standard-v1a`, the plain
    /// text for the other schemes.
    pub current: &'a str,
    /// Previous secrets still in their grace period, oldest first: the Standard Webhooks schemes
    /// sign with each as well; the single-value schemes sign with the first of them, if any,
    /// instead of `current`.
    pub previous: Vec<&'a str>,
}

/// The signature headers of a delivery under `config`: `(name, value)` pairs.
pub fn sign(
    config: &SignatureConfig,
    secrets: &SigningSecrets<'_>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, SignatureError> {
    // Single-value schemes sign with the secret in force before the rotation until its grace
    // period ends (see the module documentation).
    let in_force = secrets.previous.first().copied().unwrap_or(secrets.current);
    let single = |value: String| -> Vec<(String, String)> {
        config
            .header_name()
            .map(|name| vec![(name.to_owned(), value)])
            .unwrap_or_default()
    };
    Ok(match config.scheme {
        Scheme::StandardV1 | Scheme::StandardV1a => {
            let sign_one = if config.scheme == Scheme::StandardV1 {
                sign_v1
            } else {
                sign_v1a
            };
            let signatures = std::iter::once(secrets.current)
                .chain(secrets.previous.iter().copied())
                .map(|s| sign_one(s, msg_id, timestamp, body))
                .collect::<Result<Vec<_>, _>>()?;
            vec![("webhook-signature".to_owned(), signatures.join(" "))]
        }
        Scheme::HmacSha1Hex => single(format!(
            "{}{}",
            config.digest_prefix(),
            hex(&hmac_sha1(in_force.as_bytes(), body))
        )),
        Scheme::HmacSha256Hex => single(format!(
            "{}{}",
            config.digest_prefix(),
            hex(&hmac_sha256(in_force.as_bytes(), body))
        )),
        Scheme::StaticHeader => single(in_force.to_owned()),
        Scheme::None => Vec::new(),
    })
}

/// What a receiver checks a delivery with.
pub struct Verification<'a> {
    /// The receiver's signature setting (scheme, header, prefix).
    pub config: &'a SignatureConfig,
    /// The shared secret; for `standard-v1a` the public key `whpk_…` (or the private key).
    pub secret: &'a str,
    /// `(now, tolerance)` in seconds for Standard Webhooks timestamps; `None` skips the check.
    pub now_and_tolerance: Option<(i64, i64)>,
}

/// What identifies a verified request for replay protection: the Standard Webhooks message
/// id, or for the hex schemes (which sign the body alone) a digest of the body. `None` for
/// schemes that sign nothing a replay could be told by (`static-header` sends the secret
/// itself; `none`).
pub fn replay_key(
    config: &SignatureConfig,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<String> {
    match config.scheme {
        Scheme::StandardV1 | Scheme::StandardV1a => header(headers, "webhook-id")
            .or_else(|| header(headers, "svix-id"))
            .map(|id| format!("id:{id}")),
        Scheme::HmacSha1Hex | Scheme::HmacSha256Hex => {
            Some(format!("sha256:{}", hex(&Sha256::digest(body))))
        }
        Scheme::StaticHeader | Scheme::None => None,
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Checks a received delivery's `headers` and `body`, in constant time.
pub fn verify(
    v: &Verification<'_>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), SignatureError> {
    let required = |name: &str| {
        header(headers, name).ok_or_else(|| SignatureError::MissingHeader(name.to_owned()))
    };
    match v.config.scheme {
        Scheme::StandardV1 | Scheme::StandardV1a => {
            // Older Svix libraries send the same values under svix-* names.
            let pick = |a: &str, b: &str| header(headers, a).or_else(|| header(headers, b));
            let id = pick("webhook-id", "svix-id")
                .ok_or_else(|| SignatureError::MissingHeader("webhook-id".into()))?;
            let ts_text = pick("webhook-timestamp", "svix-timestamp")
                .ok_or_else(|| SignatureError::MissingHeader("webhook-timestamp".into()))?;
            let signatures = pick("webhook-signature", "svix-signature")
                .ok_or_else(|| SignatureError::MissingHeader("webhook-signature".into()))?;
            let ts: i64 = ts_text.parse().map_err(|_| SignatureError::Timestamp)?;
            // `abs_diff`: both come from outside (a header, a flag), and `ts - now` overflows.
            if let Some((now, tolerance)) = v.now_and_tolerance
                && ts.abs_diff(now) > tolerance.unsigned_abs()
            {
                return Err(SignatureError::Timestamp);
            }
            let content = signed_content(id, ts, body);
            let matched = if v.config.scheme == Scheme::StandardV1 {
                let expected = hmac_sha256(&standard_key(v.secret)?, &content);
                signatures
                    .split(' ')
                    .filter_map(|part| part.strip_prefix("v1,"))
                    .filter_map(|b64| STANDARD.decode(b64).ok())
                    .any(|sig| ct_eq(&sig, &expected))
            } else {
                let key = verifying_key(v.secret)?;
                signatures
                    .split(' ')
                    .filter_map(|part| part.strip_prefix("v1a,"))
                    .filter_map(|b64| STANDARD.decode(b64).ok())
                    .filter_map(|sig| <[u8; 64]>::try_from(sig.as_slice()).ok())
                    .any(|sig| {
                        key.verify_strict(&content, &ed25519_dalek::Signature::from_bytes(&sig))
                            .is_ok()
                    })
            };
            if matched {
                Ok(())
            } else {
                Err(SignatureError::NoMatch)
            }
        }
        Scheme::HmacSha1Hex | Scheme::HmacSha256Hex => {
            let name = v.config.header_name().unwrap_or_default();
            let got = required(name)?;
            let digest = if v.config.scheme == Scheme::HmacSha1Hex {
                hmac_sha1(v.secret.as_bytes(), body)
            } else {
                hmac_sha256(v.secret.as_bytes(), body)
            };
            // Hex digits in either case; the prefix as configured, in either case too (it may
            // have capitals: `SHA256=`).
            let prefix = v.config.digest_prefix();
            let digits = got
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .and_then(|_| got.get(prefix.len()..))
                .unwrap_or_default();
            if ct_eq(
                digits.to_ascii_lowercase().as_bytes(),
                hex(&digest).as_bytes(),
            ) {
                Ok(())
            } else {
                Err(SignatureError::NoMatch)
            }
        }
        Scheme::StaticHeader => {
            let got = required(v.config.header_name().unwrap_or_default())?;
            if ct_eq(got.as_bytes(), v.secret.as_bytes()) {
                Ok(())
            } else {
                Err(SignatureError::NoMatch)
            }
        }
        Scheme::None => Ok(()),
    }
}

fn verifying_key(secret: &str) -> Result<ed25519_dalek::VerifyingKey, SignatureError> {
    if secret.starts_with(PRIVATE_KEY_PREFIX) {
        return Ok(private_key(secret)?.verifying_key());
    }
    let body = secret
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .ok_or(SignatureError::BadSecret)?;
    let bytes: [u8; 32] = STANDARD
        .decode(body)
        .map_err(|_| SignatureError::BadSecret)?
        .as_slice()
        .try_into()
        .map_err(|_| SignatureError::BadSecret)?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::BadSecret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs with one secret and no rotation in progress.
    fn sign_one(
        c: &SignatureConfig,
        secret: &str,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SignatureError> {
        let secrets = SigningSecrets {
            current: secret,
            previous: vec![],
        };
        sign(c, &secrets, id, timestamp, body)
    }

    /// The vectors published with the Standard Webhooks libraries.
    const VECTORS: [(&str, &str, i64, &str, &str); 2] = [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];

    fn headers(pairs: &[(String, String)], id: &str, ts: i64) -> Vec<(String, String)> {
        let mut all = vec![
            ("webhook-id".to_owned(), id.to_owned()),
            ("webhook-timestamp".to_owned(), ts.to_string()),
        ];
        all.extend_from_slice(pairs);
        all
    }

    fn config(scheme: Scheme) -> SignatureConfig {
        SignatureConfig {
            scheme,
            ..Default::default()
        }
    }

    #[test]
    fn published_vectors_sign_and_verify() {
        for (secret, id, ts, body, expected) in VECTORS {
            assert_eq!(sign_v1(secret, id, ts, body.as_bytes()).unwrap(), expected);
            let c = config(Scheme::StandardV1);
            let v = Verification {
                config: &c,
                secret,
                now_and_tolerance: None,
            };
            let h = headers(&[("webhook-signature".into(), expected.into())], id, ts);
            verify(&v, &h, body.as_bytes()).unwrap();
            // With a 5-minute tolerance these old vectors are refused.
            let strict = Verification {
                now_and_tolerance: Some((ts + 301, 300)),
                ..v
            };
            assert_eq!(
                verify(&strict, &h, body.as_bytes()),
                Err(SignatureError::Timestamp)
            );
        }
    }

    #[test]
    fn every_scheme_signs_and_verifies_and_rejects_tampering() {
        for scheme in [
            Scheme::StandardV1,
            Scheme::StandardV1a,
            Scheme::HmacSha1Hex,
            Scheme::HmacSha256Hex,
            Scheme::StaticHeader,
        ] {
            let secret = scheme.generate_secret();
            assert_eq!(
                scheme.normalize_secret(&secret).as_deref(),
                Ok(secret.as_str())
            );
            let c = config(scheme);
            let signed = sign_one(&c, &secret, "msg_1", 1000, b"{\"a\":1}").unwrap();
            assert_eq!(signed.len(), 1, "{scheme:?}");
            let h = headers(&signed, "msg_1", 1000);
            let verifier_secret = if scheme.is_asymmetric() {
                public_key(&secret).unwrap()
            } else {
                secret.to_string()
            };
            let v = Verification {
                config: &c,
                secret: &verifier_secret,
                now_and_tolerance: Some((1000, 300)),
            };
            verify(&v, &h, b"{\"a\":1}").unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            if scheme != Scheme::StaticHeader {
                assert_eq!(
                    verify(&v, &h, b"{\"a\":2}"),
                    Err(SignatureError::NoMatch),
                    "{scheme:?}"
                );
            }
            let other = scheme.generate_secret();
            let other = if scheme.is_asymmetric() {
                public_key(&other).unwrap()
            } else {
                other.to_string()
            };
            let wrong = Verification {
                secret: &other,
                ..v
            };
            assert_eq!(
                verify(&wrong, &h, b"{\"a\":1}"),
                Err(SignatureError::NoMatch),
                "{scheme:?}"
            );
        }
        assert!(
            sign_one(&config(Scheme::None), "x", "m", 1, b"")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn known_hex_digests() {
        // Ideavate's example key; the digests computed independently with
        // `printf hello | openssl dgst -sha1 -hmac sharedSecret` (and -sha256).
        let c = config(Scheme::HmacSha1Hex);
        let s = sign_one(&c, "sharedSecret", "m", 1, b"hello").unwrap();
        assert_eq!(
            s,
            vec![(
                "X-Signature".to_owned(),
                "9ccb28db7764da89936e9eec2a54b5f69f488def".to_owned()
            )]
        );
        let c = SignatureConfig {
            scheme: Scheme::HmacSha256Hex,
            header: Some("X-Hub-Signature-256".into()),
            prefix: None,
        };
        let s = sign_one(&c, "sharedSecret", "m", 1, b"hello").unwrap();
        assert_eq!(s[0].0, "X-Hub-Signature-256");
        assert_eq!(
            s[0].1,
            "sha256=a0049c02db78fabdd4d9f4ae20a1adf7aa1cc79333a3f2f3c33fc176025dd457"
        );
    }

    #[test]
    fn rotation_overlap() {
        let (old, new) = (VECTORS[0].0, VECTORS[1].0);
        let c = config(Scheme::StandardV1);
        let during = SigningSecrets {
            current: new,
            previous: vec![old],
        };
        let signed = sign(&c, &during, "msg_1", 10, b"{}").unwrap();
        assert_eq!(signed[0].1.split(' ').count(), 2);
        let h = headers(&signed, "msg_1", 10);
        for secret in [old, new] {
            verify(
                &Verification {
                    config: &c,
                    secret,
                    now_and_tolerance: None,
                },
                &h,
                b"{}",
            )
            .unwrap();
        }
        // Single-value schemes keep the secret in force before the rotation.
        let c = config(Scheme::StaticHeader);
        assert_eq!(sign(&c, &during, "m", 1, b"").unwrap()[0].1, old);
        let after = SigningSecrets {
            current: new,
            previous: vec![],
        };
        assert_eq!(sign(&c, &after, "m", 1, b"").unwrap()[0].1, new);
    }

    #[test]
    fn hex_prefixes_with_capitals_verify() {
        // Found by the `signature` fuzz target: the received value was lowercased whole and
        // compared with the configured prefix as is, so a prefix with capitals never matched.
        let c = SignatureConfig {
            scheme: Scheme::HmacSha256Hex,
            header: None,
            prefix: Some("SHA256=".into()),
        };
        let signed = sign_one(&c, "sharedSecret", "m", 1, b"hello").unwrap();
        let v = Verification {
            config: &c,
            secret: "sharedSecret",
            now_and_tolerance: None,
        };
        verify(&v, &signed, b"hello").unwrap();
        // Either case of the digits and of the prefix, as before.
        let lower = vec![(signed[0].0.clone(), signed[0].1.to_ascii_lowercase())];
        verify(&v, &lower, b"hello").unwrap();
        let upper = vec![(signed[0].0.clone(), signed[0].1.to_ascii_uppercase())];
        verify(&v, &upper, b"hello").unwrap();
        let wrong_prefix = vec![(
            signed[0].0.clone(),
            signed[0].1.replace("SHA256=", "sha1=xx"),
        )];
        assert_eq!(
            verify(&v, &wrong_prefix, b"hello"),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn extreme_timestamps_are_outside_the_tolerance() {
        // Found by the `signature` fuzz target: `ts - now` overflowed (a panic in debug builds;
        // in release `i64::MIN.abs()` stayed negative and passed the tolerance check).
        let c = config(Scheme::StandardV1);
        let secret = VECTORS[0].0;
        for (ts, now) in [
            (i64::MIN, 1),
            (i64::MIN, 0),
            (i64::MAX, -1),
            (i64::MIN + 5, 5),
        ] {
            let signed = sign_one(&c, secret, "msg_1", ts, b"{}").unwrap();
            let v = Verification {
                config: &c,
                secret,
                now_and_tolerance: Some((now, 300)),
            };
            assert_eq!(
                verify(&v, &headers(&signed, "msg_1", ts), b"{}"),
                Err(SignatureError::Timestamp),
                "{ts} at {now}"
            );
        }
    }

    #[test]
    fn bad_secrets() {
        assert_eq!(
            sign_v1("whsec_!!", "m", 1, b""),
            Err(SignatureError::BadSecret)
        );
        assert!(
            Scheme::StandardV1a
                .normalize_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .is_err()
        );
        assert!(Scheme::HmacSha1Hex.normalize_secret("has space").is_err());
        assert_eq!(Scheme::parse("hmac-sha1-hex"), Some(Scheme::HmacSha1Hex));
        assert_eq!(Scheme::parse("nope"), None);
        assert!(
            public_key(&Scheme::StandardV1a.generate_secret())
                .unwrap()
                .starts_with("whpk_")
        );
    }
}
