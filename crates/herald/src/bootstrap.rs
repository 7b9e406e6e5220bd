//! First-start set-up of the two secrets Herald itself owns: the data key that seals secrets at
//! rest, and the admin token.
//!
//! Both can come from the environment (`HERALD_ENCRYPTION_KEY`, `HERALD_ADMIN_TOKEN`). When they
//! do not, Herald generates them once and keeps them in files of mode 0600 in the data
//! directory. The database only ever holds the admin token's hash, and a sealed check value
//! that lets Herald refuse to start with a key that cannot open what the database holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use herald_core::crypto::{CryptoError, DataKey, Keyring};
use herald_core::token;
use herald_store::{Store, StoreError};
use zeroize::Zeroizing;

use crate::config::Config;

pub const ADMIN_TOKEN_FILE: &str = "admin-token";
pub const ENCRYPTION_KEY_FILE: &str = "encryption.key";
pub const NEW_ENCRYPTION_KEY_FILE: &str = "encryption.key.new";
const ADMIN_HASH_SETTING: &str = "admin_token_sha256";
const KEY_CHECK_SETTING: &str = "encryption_key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"herald encryption key check";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(PathBuf, #[source] std::io::Error),
    #[error("cannot read or write {0}: {1}")]
    File(PathBuf, #[source] std::io::Error),
    #[error("{0} does not hold a valid key: {1}")]
    BadKeyFile(PathBuf, #[source] CryptoError),
    #[error(
        "the configured encryption key cannot open the secrets in this database (they were \
         sealed under another key). Set HERALD_ENCRYPTION_KEY to the key this database was \
         created with, or list it in HERALD_ENCRYPTION_OLD_KEYS while rotating"
    )]
    WrongKey,
    #[error(
        "this database already holds secrets sealed under an encryption key, and this node has \
         none (no HERALD_ENCRYPTION_KEY, no {0}). Give every Herald node sharing a database \
         the same HERALD_ENCRYPTION_KEY (or a copy of the key file)"
    )]
    MissingKey(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the data directory (mode 0700) when missing.
pub fn ensure_data_dir(dir: &Path) -> Result<(), BootstrapError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| BootstrapError::DataDir(dir.to_owned(), e))
}

/// Writes `contents` to `path` with mode 0600, atomically (a temporary file, then a rename).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), BootstrapError> {
    let tmp = path.with_extension("tmp");
    let err = |e| BootstrapError::File(path.to_owned(), e);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Where the data key comes from.
pub struct KeySettings {
    pub data_dir: PathBuf,
    /// `HERALD_ENCRYPTION_KEY`; without it, the key file in the data directory.
    pub key: Option<Zeroizing<String>>,
    /// `HERALD_ENCRYPTION_OLD_KEYS`: keys still accepted for reading.
    pub old_keys: Vec<Zeroizing<String>>,
}

impl KeySettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            data_dir: config.storage.data_dir.clone(),
            key: config.encryption_key.clone(),
            old_keys: config.encryption_old_keys.clone(),
        }
    }

    fn key_file(&self) -> PathBuf {
        self.data_dir.join(ENCRYPTION_KEY_FILE)
    }

    /// A key file written by `herald secrets rotate-key` before it re-encrypts anything.
    fn new_key_file(&self) -> PathBuf {
        self.data_dir.join(NEW_ENCRYPTION_KEY_FILE)
    }
}

fn read_key(path: &Path) -> Result<DataKey, BootstrapError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| BootstrapError::File(path.to_owned(), e))?,
    );
    DataKey::from_base64(&text).map_err(|e| BootstrapError::BadKeyFile(path.to_owned(), e))
}

/// The keyring from the environment or the key file (created at first start), checked against
/// the database. A key rotation that was interrupted is finished first.
pub async fn load_keyring(
    keys: &KeySettings,
    store: &dyn Store,
) -> Result<Keyring, BootstrapError> {
    open_keyring(keys, store).await.map(|(keyring, _)| keyring)
}

/// `load_keyring`, also telling how many values a finished rotation re-encrypted.
async fn open_keyring(
    keys: &KeySettings,
    store: &dyn Store,
) -> Result<(Keyring, u64), BootstrapError> {
    let mut older = keys
        .old_keys
        .iter()
        .map(|k| DataKey::from_base64(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BootstrapError::WrongKey)?;
    let current = match &keys.key {
        Some(key) => DataKey::from_base64(key).map_err(|_| BootstrapError::WrongKey)?,
        None => {
            let (path, new_path) = (keys.key_file(), keys.new_key_file());
            if !path.exists() && !new_path.exists() {
                // A new key only for a database that has none yet: typically a second node of a
                // shared database started without the first one's key.
                if store.get_setting(KEY_CHECK_SETTING).await?.is_some() {
                    return Err(BootstrapError::MissingKey(path));
                }
                write_private(&path, DataKey::generate_base64().as_bytes())?;
            }
            if new_path.exists() {
                // `rotate-key` wrote the new key and may have re-encrypted some of the data:
                // finish the job under the new key, then make it the key file.
                if path.exists() {
                    older.push(read_key(&path)?);
                }
                let keyring = Keyring::new(read_key(&new_path)?, older);
                let changed = reseal_everything(store, &keyring).await?;
                std::fs::rename(&new_path, &path).map_err(|e| BootstrapError::File(path, e))?;
                return Ok((keyring, changed));
            }
            read_key(&path)?
        }
    };
    let keyring = Keyring::new(current, older);
    match store.get_setting(KEY_CHECK_SETTING).await? {
        None => {
            let sealed = hex(&keyring.seal(KEY_CHECK_PLAINTEXT));
            store.insert_setting(KEY_CHECK_SETTING, &sealed).await?;
        }
        Some(_) => check_key(store, &keyring).await?,
    }
    Ok((keyring, 0))
}

/// Fails unless the keyring opens the check value this database was sealed with.
async fn check_key(store: &dyn Store, keyring: &Keyring) -> Result<(), BootstrapError> {
    let sealed = store
        .get_setting(KEY_CHECK_SETTING)
        .await?
        .and_then(|s| unhex(&s))
        .ok_or(BootstrapError::WrongKey)?;
    match keyring.open(&sealed) {
        Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(BootstrapError::WrongKey),
    }
}

/// Re-encrypts every sealed value not yet under the keyring's current key, then the check
/// value. Safe to repeat: values already under the current key are left alone.
async fn reseal_everything(store: &dyn Store, keyring: &Keyring) -> Result<u64, BootstrapError> {
    check_key(store, keyring).await?;
    let changed = store
        .reseal_all(&|sealed: &[u8]| {
            if keyring.is_current(sealed) {
                return Ok(None);
            }
            keyring
                .open(sealed)
                .map(|plain| Some(keyring.seal(&plain)))
                .map_err(|e| e.to_string())
        })
        .await?;
    store
        .set_setting(KEY_CHECK_SETTING, &hex(&keyring.seal(KEY_CHECK_PLAINTEXT)))
        .await?;
    Ok(changed)
}

/// `herald secrets rotate-key`: re-encrypts everything under a new key.
///
/// With `HERALD_ENCRYPTION_KEY`, the new key is that one and the old keys come from
/// `HERALD_ENCRYPTION_OLD_KEYS`. With the key file, a new key is generated and written next to
/// it first (`encryption.key.new`), everything is re-encrypted, and the new file replaces the
/// old one; if this is interrupted, the next start (or run) finishes it.
pub async fn rotate_key(keys: &KeySettings, store: &dyn Store) -> Result<u64, BootstrapError> {
    if keys.key.is_some() {
        let keyring = load_keyring(keys, store).await?;
        return reseal_everything(store, &keyring).await;
    }
    if !keys.key_file().exists() {
        return Err(BootstrapError::File(
            keys.key_file(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no key file to rotate"),
        ));
    }
    if !keys.new_key_file().exists() {
        write_private(&keys.new_key_file(), DataKey::generate_base64().as_bytes())?;
    }
    let (_, changed) = open_keyring(keys, store).await?;
    Ok(changed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What to tell the operator about the admin token at start.
pub enum AdminTokenNotice {
    /// From `HERALD_ADMIN_TOKEN`.
    FromEnvironment,
    /// Generated now: shown this once.
    Generated {
        token: Zeroizing<String>,
        file: PathBuf,
    },
    /// Generated at an earlier start.
    Existing { file: PathBuf },
}

/// The admin token's SHA-256, generating the token at first start.
pub async fn admin_token(
    config: &Config,
    store: &dyn Store,
) -> Result<(Vec<u8>, AdminTokenNotice), BootstrapError> {
    if let Some(token) = &config.admin_token {
        return Ok((
            token::sha256(token.as_bytes()),
            AdminTokenNotice::FromEnvironment,
        ));
    }
    let file = config.storage.data_dir.join(ADMIN_TOKEN_FILE);
    if let Some(hash) = store.get_setting(ADMIN_HASH_SETTING).await? {
        let hash = unhex(&hash).ok_or_else(|| {
            StoreError::Corrupt(format!("setting {ADMIN_HASH_SETTING} is not hex"))
        })?;
        return Ok((hash, AdminTokenNotice::Existing { file }));
    }
    let token = token::generate_admin_token();
    // The file first: a stored hash whose token was never written down would lock everyone out.
    write_private(&file, format!("{}\n", token.as_str()).as_bytes())?;
    let hash = token::sha256(token.as_bytes());
    if !store
        .insert_setting(ADMIN_HASH_SETTING, &hex(&hash))
        .await?
    {
        // Another node generated one at the same moment; theirs stands.
        let hash = store
            .get_setting(ADMIN_HASH_SETTING)
            .await?
            .and_then(|h| unhex(&h))
            .ok_or_else(|| StoreError::Corrupt(format!("setting {ADMIN_HASH_SETTING}")))?;
        return Ok((hash, AdminTokenNotice::Existing { file }));
    }
    Ok((hash, AdminTokenNotice::Generated { token, file }))
}

impl AdminTokenNotice {
    /// Prints the notice to stderr (not to the log: a log may be shipped elsewhere).
    pub fn print(&self) {
        match self {
            AdminTokenNotice::FromEnvironment => {
                eprintln!("herald: admin token taken from HERALD_ADMIN_TOKEN");
            }
            AdminTokenNotice::Generated { token, file } => {
                eprintln!(
                    "herald: generated an admin token (shown only this once):\n\n    {}\n\n\
                     herald: it is also saved in {} (mode 0600). Use it as \
                     `Authorization: Bearer <token>`.",
                    token.as_str(),
                    file.display()
                );
            }
            AdminTokenNotice::Existing { file } if file.exists() => {
                eprintln!("herald: admin token: see {} (mode 0600)", file.display());
            }
            AdminTokenNotice::Existing { file } => {
                eprintln!(
                    "herald: an admin token was generated earlier but {} is gone; set \
                     HERALD_ADMIN_TOKEN to choose a new one",
                    file.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        assert_eq!(
            unhex(&hex(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
