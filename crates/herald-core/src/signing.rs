//! Standard Webhooks signatures (symmetric `v1`: HMAC-SHA256).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}` over the exact bytes sent;
//! the key is the base64-decoded part of the secret after `whsec_`; the header value is
//! `v1,<base64 signature>`, several separated by spaces while a rotated secret is still in its
//! grace period.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::token::ENDPOINT_SECRET_PREFIX;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("no signature in the header matches")]
    NoMatch,
    #[error("the timestamp is outside the tolerance")]
    Timestamp,
}

/// The HMAC key of a `whsec_…` secret.
fn key(secret: &str) -> Result<Zeroizing<Vec<u8>>, SignatureError> {
    let body = secret
        .strip_prefix(ENDPOINT_SECRET_PREFIX)
        .unwrap_or(secret);
    STANDARD
        .decode(body)
        .map(Zeroizing::new)
        .map_err(|_| SignatureError::BadSecret)
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// `v1,<base64>` for one secret.
pub fn sign_v1(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = key(secret)?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac(&key, msg_id, timestamp, body))
    ))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let signatures = secrets
        .into_iter()
        .map(|s| sign_v1(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// Verifies a `webhook-signature` header against one secret, as a receiver would: any `v1`
/// signature in the header may match; other versions are ignored. `now` and `tolerance_secs`
/// bound the timestamp (`None` skips that check, for old test vectors).
pub fn verify_v1(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now_and_tolerance: Option<(i64, i64)>,
) -> Result<(), SignatureError> {
    if let Some((now, tolerance)) = now_and_tolerance
        && (timestamp - now).abs() > tolerance
    {
        return Err(SignatureError::Timestamp);
    }
    let expected = mac(&key(secret)?, msg_id, timestamp, body);
    let matched = header
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| bool::from(sig.as_slice().ct_eq(&expected)));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn published_vectors_sign_and_verify() {
        for (secret, id, ts, body, expected) in VECTORS {
            assert_eq!(sign_v1(secret, id, ts, body.as_bytes()).unwrap(), expected);
            verify_v1(secret, id, ts, body.as_bytes(), expected, None).unwrap();
        }
    }

    #[test]
    fn rotation_headers_carry_both_and_either_verifies() {
        let (old, new) = (VECTORS[0].0, VECTORS[1].0);
        let header = signature_header([new, old], "msg_1", 10, b"{}").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        verify_v1(old, "msg_1", 10, b"{}", &header, None).unwrap();
        verify_v1(new, "msg_1", 10, b"{}", &header, None).unwrap();
        assert_eq!(
            verify_v1(old, "msg_1", 10, b"{ }", &header, None),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_v1(old, "msg_1", 10, b"{}", &header, Some((10 + 301, 300))),
            Err(SignatureError::Timestamp)
        );
        assert_eq!(
            verify_v1(old, "msg_1", 10, b"{}", "v2,abc v1a,xyz", None),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            sign_v1("whsec_!!", "m", 1, b""),
            Err(SignatureError::BadSecret)
        );
    }
}
