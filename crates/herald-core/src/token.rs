//! Bearer tokens and endpoint signing secrets.
//!
//! API tokens have the form `hk_<key id body>_<secret>`: the key id locates the stored row with
//! one indexed lookup, and only SHA-256 of the secret part is stored, compared in constant time.
//! Tokens carry 238 bits of randomness, so a fast hash is the right tool (a slow password hash
//! protects low-entropy human passwords, which these are not).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::id::{ApiKeyId, BODY_LEN};

const TOKEN_PREFIX: &str = "hk_";
const SECRET_LEN: usize = 40;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters from a CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut buf = [0u8; 64];
        rand::fill(&mut buf[..]);
        // Rejection sampling keeps every character equally likely (256 = 4 * 62 + 8).
        for b in buf {
            if b < 248 && out.len() < len {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// SHA-256 of `data` (32 bytes): what the store keeps of token secrets.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Constant-time comparison of a presented secret's hash against a stored hash.
pub fn hash_matches(presented: &[u8], stored_hash: &[u8]) -> bool {
    let presented_hash = Sha256::digest(presented);
    presented_hash.as_slice().ct_eq(stored_hash).into()
}

/// A newly issued API token: the full text is shown to the caller once; the store keeps the id
/// and the hash.
pub struct IssuedToken {
    /// The id of the key row the token belongs to.
    pub key_id: ApiKeyId,
    /// The full token (`hk_<id body>_<secret>`), wiped from memory when dropped.
    pub token: Zeroizing<String>,
    /// SHA-256 of the secret part, to store as
    /// [`ApiKey::secret_hash`](crate::model::ApiKey::secret_hash).
    pub secret_hash: Vec<u8>,
}

/// A fresh API token for a new key id: 40 random base62 characters of secret.
pub fn issue_api_token() -> IssuedToken {
    let key_id = ApiKeyId::generate();
    let secret = Zeroizing::new(random_base62(SECRET_LEN));
    let body = &key_id.as_str()["key_".len()..];
    let token = Zeroizing::new(format!("{TOKEN_PREFIX}{body}_{}", secret.as_str()));
    IssuedToken {
        secret_hash: sha256(secret.as_bytes()),
        key_id,
        token,
    }
}

/// Splits a presented API token into the key id and the secret part. `None` when it is not an
/// API token at all (it may still be the admin token).
pub fn parse_api_token(token: &str) -> Option<(ApiKeyId, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (body, secret) = rest.split_at_checked(BODY_LEN)?;
    let secret = secret.strip_prefix('_')?;
    if secret.len() != SECRET_LEN {
        return None;
    }
    let key_id = ApiKeyId::parse(&format!("key_{body}"))?;
    Some((key_id, secret))
}

/// A generated admin token (when `HERALD_ADMIN_TOKEN` is not set).
pub fn generate_admin_token() -> Zeroizing<String> {
    Zeroizing::new(format!("hadm_{}", random_base62(SECRET_LEN)))
}

/// The prefix of Standard Webhooks endpoint secrets (`whsec_`), before the base64 key.
pub const ENDPOINT_SECRET_PREFIX: &str = "whsec_";

/// A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes.
pub fn generate_endpoint_secret() -> Zeroizing<String> {
    let mut key = Zeroizing::new([0u8; 24]);
    rand::fill(&mut key[..]);
    Zeroizing::new(format!(
        "{ENDPOINT_SECRET_PREFIX}{}",
        STANDARD.encode(&key[..])
    ))
}

/// Checks a caller-supplied endpoint secret (`^(whsec_)?[a-zA-Z0-9+/=]{32,100}$`, and the part
/// after the prefix must decode as base64 to 24..=64 bytes) and returns it with the prefix.
pub fn normalize_endpoint_secret(secret: &str) -> Result<String, &'static str> {
    let body = secret
        .strip_prefix(ENDPOINT_SECRET_PREFIX)
        .unwrap_or(secret);
    if !(32..=100).contains(&body.len())
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(
            "must match ^(whsec_)?[a-zA-Z0-9+/=]{32,100}$ (base64 of 24 to 64 random bytes)",
        );
    }
    let decoded = STANDARD
        .decode(body)
        .map_err(|_| "the part after `whsec_` must be valid base64")?;
    if !(24..=64).contains(&decoded.len()) {
        return Err("the secret must decode to 24 to 64 bytes");
    }
    Ok(format!("{ENDPOINT_SECRET_PREFIX}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_roundtrip() {
        let issued = issue_api_token();
        let (key_id, secret) = parse_api_token(&issued.token).unwrap();
        assert_eq!(key_id, issued.key_id);
        assert!(hash_matches(secret.as_bytes(), &issued.secret_hash));
        assert!(!hash_matches(b"wrong", &issued.secret_hash));
        assert!(parse_api_token("hadm_whatever").is_none());
        assert!(parse_api_token("hk_short").is_none());
        assert!(!issued.token.contains('.'));
    }

    #[test]
    fn endpoint_secrets() {
        let s = generate_endpoint_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(normalize_endpoint_secret(&s).unwrap(), *s);
        assert_eq!(
            normalize_endpoint_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
        assert!(normalize_endpoint_secret("whsec_short").is_err());
        assert!(normalize_endpoint_secret("whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!").is_err());
    }

    #[test]
    fn base62_is_uniform_alphabet() {
        let s = random_base62(1000);
        assert_eq!(s.len(), 1000);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
