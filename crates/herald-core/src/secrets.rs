//! Secrets in the clear (an endpoint's, an application's GraphQL API credentials), and their
//! sealing for storage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, Keyring};
use crate::model::{PreviousSecret, SealedEndpointSecrets, SealedGraphqlApi};

/// An application's GraphQL API with its request headers in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct GraphqlApi {
    /// The GraphQL endpoint's URL (http or https); not secret, stored in the clear.
    pub url: String,
    /// Request headers sent with every query (usually credentials), by name; empty for none.
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for GraphqlApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphqlApi({}, headers redacted)", self.url)
    }
}

impl GraphqlApi {
    /// Opens a stored API with `keyring`; [`CryptoError`] when the headers cannot be opened or are
    /// not a JSON object of strings.
    pub fn open(keyring: &Keyring, sealed: &SealedGraphqlApi) -> Result<Self, CryptoError> {
        let headers = match &sealed.headers {
            Some(blob) => {
                serde_json::from_slice(&keyring.open(blob)?).map_err(|_| CryptoError::Malformed)?
            }
            None => BTreeMap::new(),
        };
        Ok(Self {
            url: sealed.url.clone(),
            headers,
        })
    }

    /// Seals the headers for storage (`None` when there are none); the URL stays in the clear.
    pub fn seal(&self, keyring: &Keyring) -> SealedGraphqlApi {
        SealedGraphqlApi {
            url: self.url.clone(),
            headers: (!self.headers.is_empty())
                .then(|| keyring.seal(json(&self.headers).as_bytes())),
        }
    }
}

/// The signing secret, secrets still valid after a rotation, and the custom headers.
pub struct EndpointSecrets {
    /// The current signing secret (`whsec_` + base64), wiped from memory when dropped.
    pub current: Zeroizing<String>,
    /// Superseded secrets, oldest first; each signs until its `expires_at` (see
    /// [`EndpointSecrets::active_previous`]).
    pub previous: Vec<PreviousSecret>,
    /// Custom headers sent with every delivery, by name; empty for none.
    pub headers: BTreeMap<String, String>,
    /// The credentials of a broker URL (`user:pass` as the URL wrote them, percent-encoded;
    /// see `destination::split_credentials`), wiped from memory when dropped.
    pub credentials: Option<Zeroizing<String>>,
    /// The stored version these were read at (see `SealedEndpointSecrets::version`).
    pub version: i64,
}

impl std::fmt::Debug for EndpointSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSecrets")
            .field("previous", &self.previous.len())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EndpointSecrets {
    /// Secrets of a new endpoint: no previous secrets, version 0.
    pub fn new(current: Zeroizing<String>, headers: BTreeMap<String, String>) -> Self {
        Self {
            current,
            previous: Vec::new(),
            headers,
            credentials: None,
            version: 0,
        }
    }

    /// Opens stored secrets with `keyring`; [`CryptoError`] when a value cannot be opened or its
    /// JSON is not the expected shape.
    pub fn open(keyring: &Keyring, sealed: &SealedEndpointSecrets) -> Result<Self, CryptoError> {
        let current = keyring.open_string(&sealed.secret)?;
        let previous = match &sealed.previous {
            Some(blob) => {
                serde_json::from_slice(&keyring.open(blob)?).map_err(|_| CryptoError::Malformed)?
            }
            None => Vec::new(),
        };
        let headers = match &sealed.headers {
            Some(blob) => {
                serde_json::from_slice(&keyring.open(blob)?).map_err(|_| CryptoError::Malformed)?
            }
            None => BTreeMap::new(),
        };
        let credentials = sealed
            .credentials
            .as_ref()
            .map(|blob| keyring.open_string(blob))
            .transpose()?;
        Ok(Self {
            current,
            previous,
            headers,
            credentials,
            version: sealed.version,
        })
    }

    /// Seals every value for storage (empty lists and maps as `None`), keeping `version`.
    pub fn seal(&self, keyring: &Keyring) -> SealedEndpointSecrets {
        SealedEndpointSecrets {
            secret: keyring.seal(self.current.as_bytes()),
            previous: (!self.previous.is_empty())
                .then(|| keyring.seal(json(&self.previous).as_bytes())),
            headers: (!self.headers.is_empty())
                .then(|| keyring.seal(json(&self.headers).as_bytes())),
            credentials: self
                .credentials
                .as_ref()
                .map(|c| keyring.seal(c.as_bytes())),
            version: self.version,
        }
    }

    /// Replaces the current secret; the old one keeps signing until `grace_until`. A grace
    /// that is not in the future makes the new secret the only one at once: it ends the grace
    /// of every older secret too, whatever earlier rotations gave them (single-value schemes
    /// sign with the oldest secret in grace, so one left over would go on signing alone).
    /// Expired previous secrets are dropped.
    pub fn rotate(
        &mut self,
        new: Zeroizing<String>,
        now: DateTime<Utc>,
        grace_until: DateTime<Utc>,
    ) {
        let old = std::mem::replace(&mut self.current, new);
        if grace_until > now {
            self.previous.retain(|p| p.expires_at > now);
            self.previous.push(PreviousSecret {
                key: old.to_string(),
                expires_at: grace_until,
            });
        } else {
            self.previous.clear();
        }
    }

    /// Previous secrets whose grace period has not ended at `now`.
    pub fn active_previous(&self, now: DateTime<Utc>) -> impl Iterator<Item = &str> {
        self.previous
            .iter()
            .filter(move |p| p.expires_at > now)
            .map(|p| p.key.as_str())
    }
}

/// Opens a sealed JSON object of strings (an endpoint's transformation variables); empty for
/// `None`.
pub fn open_map(
    keyring: &Keyring,
    sealed: Option<&[u8]>,
) -> Result<BTreeMap<String, String>, CryptoError> {
    match sealed {
        Some(blob) => {
            serde_json::from_slice(&keyring.open(blob)?).map_err(|_| CryptoError::Malformed)
        }
        None => Ok(BTreeMap::new()),
    }
}

/// Seals a map of strings for storage; `None` when it is empty.
pub fn seal_map(keyring: &Keyring, map: &BTreeMap<String, String>) -> Option<Vec<u8>> {
    (!map.is_empty()).then(|| keyring.seal(json(map).as_bytes()))
}

/// JSON of secret material, wiped from memory after use.
fn json<T: serde::Serialize>(value: &T) -> Zeroizing<String> {
    Zeroizing::new(serde_json::to_string(value).expect("plain data serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DataKey;
    use chrono::Duration;

    #[test]
    fn seal_open_and_rotate() {
        let ring = Keyring::new(DataKey::from_bytes(&[7; 32]).unwrap(), vec![]);
        let mut s = EndpointSecrets::new(
            Zeroizing::new("whsec_old".into()),
            BTreeMap::from([("X-Api".into(), "v".into())]),
        );
        let now = Utc::now();
        s.rotate(
            Zeroizing::new("whsec_new".into()),
            now,
            now + Duration::hours(1),
        );
        let sealed = s.seal(&ring);
        let opened = EndpointSecrets::open(&ring, &sealed).unwrap();
        assert_eq!(opened.current.as_str(), "whsec_new");
        assert_eq!(
            opened.active_previous(now).collect::<Vec<_>>(),
            vec!["whsec_old"]
        );
        assert_eq!(opened.active_previous(now + Duration::hours(2)).count(), 0);
        assert_eq!(opened.headers["X-Api"], "v");
        assert!(!format!("{opened:?}").contains("whsec"));

        // A rotation without grace ends every older secret's grace, also one an earlier
        // rotation gave.
        let mut immediate = opened;
        immediate.rotate(Zeroizing::new("whsec_3".into()), now, now);
        assert_eq!(immediate.active_previous(now).count(), 0);
        assert_eq!(immediate.current.as_str(), "whsec_3");
    }
}
