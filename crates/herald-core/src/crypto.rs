//! Encryption at rest for secrets (endpoint signing keys, custom header values).
//!
//! Values are sealed with XChaCha20-Poly1305 under a 32-byte data key. The 24-byte random nonce
//! makes nonce reuse a non-issue for any realistic number of writes. A sealed value is
//!
//! ```text
//! version (1 byte, = 1) | key id (4 bytes) | nonce (24 bytes) | ciphertext + tag
//! ```
//!
//! The key id is the start of SHA-256 of the key, so a [`Keyring`] holding the current key and
//! older ones can open values sealed under any of them; this is what makes key rotation possible
//! without downtime (`herald secrets rotate-key` re-seals everything under the new key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why a key could not be loaded or a sealed value could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The key is not base64 of exactly 32 bytes (a configuration error).
    #[error("encryption key must be base64 of exactly 32 bytes")]
    BadKey,
    /// The value is too short, has an unknown format version, or is not UTF-8 where text was
    /// expected: it is not something Herald sealed.
    #[error("sealed value is malformed")]
    Malformed,
    /// The value was sealed under a key the [`Keyring`] does not hold (its key id, in hex): the
    /// older key is missing from the configuration.
    #[error("sealed value was encrypted under a key that is not configured (key id {0})")]
    UnknownKey(String),
    /// Decryption failed authentication: the data was altered, or the key is a different one with a
    /// colliding id.
    #[error("sealed value failed authentication (wrong key or tampered data)")]
    Tampered,
}

/// One data key. Its bytes are wiped from memory when dropped and never printed.
pub struct DataKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl DataKey {
    /// A key from its 32 raw bytes; [`CryptoError::BadKey`] for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { id, cipher })
    }

    /// Parses the base64 form used by `HERALD_ENCRYPTION_KEY` and the key file.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::BadKey)?,
        );
        Self::from_bytes(&bytes)
    }

    /// A new random key, as base64 (the caller persists it).
    pub fn generate_base64() -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::fill(&mut bytes[..]);
        Zeroizing::new(STANDARD.encode(&bytes[..]))
    }

    /// The key's id as 8 hex digits (the first 4 bytes of SHA-256 of the key): safe to log, and
    /// the id sealed values carry.
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({}, redacted)", self.id_hex())
    }
}

/// The current key (used to seal) and older keys (only used to open).
#[derive(Debug)]
pub struct Keyring {
    current: DataKey,
    older: Vec<DataKey>,
}

impl Keyring {
    /// A keyring that seals under `current` and opens values sealed under it or any of `older`.
    pub fn new(current: DataKey, older: Vec<DataKey>) -> Self {
        Self { current, older }
    }

    /// The current key's id as 8 hex digits (see [`DataKey::id_hex`]).
    pub fn current_key_id(&self) -> String {
        self.current.id_hex()
    }

    /// Encrypts `plaintext` under the current key with a fresh random nonce, in the format the
    /// module documents.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XNonce::generate();
        let ciphertext = self
            .current
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts a value sealed under any key of the ring; the plaintext is wiped when dropped.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(CryptoError::Malformed);
        }
        let key_id = &sealed[1..1 + KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(self.older.iter())
            .find(|k| k.id == key_id)
            .ok_or_else(|| {
                CryptoError::UnknownKey(key_id.iter().map(|b| format!("{b:02x}")).collect())
            })?;
        let nonce = XNonce::try_from(&sealed[1 + KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| CryptoError::Malformed)?;
        key.cipher
            .decrypt(&nonce, &sealed[HEADER_LEN..])
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }

    /// Opens a value sealed from UTF-8 text.
    pub fn open_string(&self, sealed: &[u8]) -> Result<Zeroizing<String>, CryptoError> {
        let bytes = self.open(sealed)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Malformed)
    }

    /// Whether `sealed` is already under the current key (rotation skips those).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.len() >= HEADER_LEN && sealed[1..1 + KEY_ID_LEN] == self.current.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_base64(&DataKey::generate_base64()).unwrap()
    }

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let ring = Keyring::new(key(), vec![]);
        let sealed = ring.seal(b"whsec_topsecret");
        assert!(!sealed.windows(6).any(|w| w == b"whsec_"));
        assert_eq!(&ring.open(&sealed).unwrap()[..], b"whsec_topsecret");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(&bad), Err(CryptoError::Tampered));
        assert_eq!(ring.open(&sealed[..10]), Err(CryptoError::Malformed));
    }

    #[test]
    fn older_keys_open_and_rotation_is_detected() {
        let old = Keyring::new(key(), vec![]);
        let sealed = old.seal(b"x");
        let old_key = DataKey::from_bytes(&[0u8; 32]).unwrap();
        let with_zero = Keyring::new(DataKey::from_bytes(&[0u8; 32]).unwrap(), vec![]);
        let sealed_zero = with_zero.seal(b"y");
        let rotated = Keyring::new(key(), vec![old_key]);
        assert_eq!(&rotated.open(&sealed_zero).unwrap()[..], b"y");
        assert!(!rotated.is_current(&sealed_zero));
        assert!(matches!(
            rotated.open(&sealed),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert_eq!(
            DataKey::from_base64("c2hvcnQ=").unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            DataKey::from_base64("not base64!").unwrap_err(),
            CryptoError::BadKey
        );
        assert!(!format!("{:?}", key()).contains('='));
    }
}
