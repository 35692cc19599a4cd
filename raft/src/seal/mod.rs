//! The node's keys and its seal: what makes encryption at rest work.
//!
//! A [`Keeper`] holds, while the node is unsealed, the root key, this
//! node's keyring (wrapped by the root key in the `node` column family)
//! and the stream key for snapshots; while sealed it holds none of them.
//! The log store and the snapshot code encrypt and decrypt through it, and
//! Raft runs only while it is unsealed (the node starts Raft after unseal
//! and stops it before sealing), so nothing is ever read or written in
//! clear.
//!
//! The root key comes from one of two places, fixed when the node is
//! initialized and recorded in its [`SealConfig`]:
//! - **key shares**: `init` makes a random root key, splits it into shares
//!   (returned once, never stored) and keeps a digest of each share and a
//!   check value of the root; `submit` takes one share at a time and
//!   rebuilds the root once `threshold` distinct, known shares are in. An
//!   unknown or repeated share is refused without touching the progress.
//! - **an auto-unseal key file**: the root is derived from the file's
//!   contents, so every node mounting the same file has the same root.
//!
//! Either way every node of a cluster has the same root key (the seal
//! configuration travels between nodes; see `init` and `adopt`), which is
//! what lets one set of shares unseal them all and a snapshot file or a
//! saved snapshot move between them.

pub mod keys;
pub mod shares;
pub mod stream;

use std::io::{Read, Write};
use std::sync::{Arc, RwLock, Weak};

use rocksdb::DB;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::store::NodeMeta;
use keys::{Key, KeyError, Keyring};
use shares::{ShareError, ShareText};
use stream::{DecryptReader, EncryptWriter};

const KEY_CONFIG: &[u8] = b"seal_config";
const KEY_KEYRING: &[u8] = b"keyring";
const LABEL_WRAP: &[u8] = b"keel/keyring-wrap/v1";
const LABEL_STREAM: &[u8] = b"keel/stream/v1";
const LABEL_AUTO: &[u8] = b"keel/auto-unseal-root/v1";

/// Where a cluster's root key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealKind {
    /// Rebuilt from key shares given by operators.
    Shares,
    /// Derived from an auto-unseal key file.
    KeyFile,
}

/// How a cluster is sealed; the same on every node, and safe to show: it
/// holds digests and a check value, never a share or a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// Where the root key comes from.
    pub kind: SealKind,
    /// Shares made at init (0 for a key file).
    pub shares: u8,
    /// Shares needed to unseal (0 for a key file).
    pub threshold: u8,
    /// SHA-256 of each share, to refuse a wrong share on its own.
    pub share_digests: Vec<String>,
    /// A one-way check value of the root key.
    pub root_check: String,
}

/// The seal as `/v1/sys/seal-status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealState {
    /// No keys in memory.
    pub sealed: bool,
    /// A seal configuration exists (init happened, here or on a peer).
    pub initialized: bool,
    /// Where the root key comes from, once initialized.
    pub kind: Option<SealKind>,
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub shares: u8,
    /// Distinct valid shares given since the last unseal or reset.
    pub progress: u8,
}

/// Why a seal operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// `init` on a node (or cluster) that already has a seal configuration.
    #[error("already initialized")]
    AlreadyInitialized,
    /// A share or unseal before any init.
    #[error("not initialized: run `keel operator init` on one node first")]
    NotInitialized,
    /// The share is not one of this cluster's.
    #[error("this key share is not one of this cluster's shares; progress is unchanged")]
    UnknownShare,
    /// The share was already given in this round.
    #[error("this key share was already given; progress is unchanged")]
    RepeatedShare,
    /// The operation needs the other kind of seal.
    #[error("{0}")]
    WrongKind(String),
    /// The auto-unseal key file does not produce this cluster's root key.
    #[error("the auto-unseal key file does not match this cluster's root key")]
    WrongKeyFile,
    /// Bad share encoding or counts.
    #[error(transparent)]
    Share(#[from] ShareError),
    /// Keys are needed but the node is sealed.
    #[error("sealed")]
    Sealed,
    /// Decryption failed or key material is corrupt.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Storage failed.
    #[error("seal storage: {0}")]
    Storage(String),
}

/// Keys held while unsealed; all wiped when dropped.
struct Unsealed {
    root: Key,
    keyring: Keyring,
    stream: Key,
}

#[derive(Default)]
struct Inner {
    config: Option<SealConfig>,
    keys: Option<Unsealed>,
    /// Share bytes given so far this round.
    pending: Vec<Zeroizing<Vec<u8>>>,
}

/// The node's key custodian (see the module docs).
pub struct Keeper {
    /// The database, weakly: the keeper outlives neither it nor its close.
    db: Weak<DB>,
    inner: RwLock<Inner>,
    sealed_tx: watch::Sender<bool>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("state", &self.state())
            .finish()
    }
}

impl Keeper {
    /// A sealed keeper over the node metadata (loading its configuration).
    pub(crate) fn load(db: &Arc<DB>) -> Result<Arc<Keeper>, SealError> {
        let meta = NodeMeta::new(db.clone());
        let config = match meta.get_raw(KEY_CONFIG).map_err(storage)? {
            None => None,
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                SealError::Storage(format!("stored seal configuration is corrupt: {e}"))
            })?),
        };
        Ok(Arc::new(Keeper {
            db: Arc::downgrade(db),
            inner: RwLock::new(Inner {
                config,
                ..Inner::default()
            }),
            sealed_tx: watch::channel(true).0,
        }))
    }

    fn meta(&self) -> Result<NodeMeta, SealError> {
        self.db
            .upgrade()
            .map(NodeMeta::new)
            .ok_or_else(|| SealError::Storage("the database is closed".into()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The seal as operators see it.
    pub fn state(&self) -> SealState {
        let inner = self.read();
        let config = inner.config.as_ref();
        SealState {
            sealed: inner.keys.is_none(),
            initialized: config.is_some(),
            kind: config.map(|c| c.kind),
            threshold: config.map_or(0, |c| c.threshold),
            shares: config.map_or(0, |c| c.shares),
            progress: u8::try_from(inner.pending.len()).unwrap_or(u8::MAX),
        }
    }

    /// Whether no keys are in memory.
    pub fn is_sealed(&self) -> bool {
        self.read().keys.is_none()
    }

    /// The seal configuration, if initialized.
    pub fn config(&self) -> Option<SealConfig> {
        self.read().config.clone()
    }

    /// Follows the seal: `true` while sealed.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.sealed_tx.subscribe()
    }

    fn store_config(&self, inner: &mut Inner, config: SealConfig) -> Result<(), SealError> {
        let bytes = serde_json::to_vec(&config).map_err(|e| SealError::Storage(e.to_string()))?;
        self.meta()?.put_raw(KEY_CONFIG, &bytes).map_err(storage)?;
        inner.config = Some(config);
        Ok(())
    }

    /// Initializes key-share sealing: a random root key split into
    /// `shares`, `threshold` of which unseal. Returns the shares: they are
    /// shown once and never stored. The node stays sealed.
    pub fn init(&self, shares: u8, threshold: u8) -> Result<Vec<ShareText>, SealError> {
        let mut inner = self.write();
        if inner.config.is_some() {
            return Err(SealError::AlreadyInitialized);
        }
        let root = Key::random()?;
        let texts = shares::split(&root, shares, threshold)?;
        let share_digests = texts
            .iter()
            .map(|t| shares::decode(t).map(|b| shares::digest_of(&b)))
            .collect::<Result<_, _>>()?;
        let config = SealConfig {
            kind: SealKind::Shares,
            shares,
            threshold,
            share_digests,
            root_check: root.check_value(),
        };
        self.store_config(&mut inner, config)?;
        Ok(texts)
    }

    /// Takes a peer's seal configuration when this node has none (a node
    /// joining a cluster initialized elsewhere). A different configuration
    /// than the one held is refused.
    pub fn adopt(&self, config: SealConfig) -> Result<(), SealError> {
        let mut inner = self.write();
        match &inner.config {
            Some(held) if *held == config => Ok(()),
            Some(_) => Err(SealError::WrongKind(
                "this node holds another seal configuration than its peer".into(),
            )),
            None => self.store_config(&mut inner, config),
        }
    }

    /// Takes one key share. Unseals once `threshold` distinct shares of this
    /// cluster are in; an unknown or repeated share changes nothing.
    pub fn submit(&self, share: &str) -> Result<SealState, SealError> {
        {
            let mut inner = self.write();
            let config = inner.config.clone().ok_or(SealError::NotInitialized)?;
            if config.kind != SealKind::Shares {
                return Err(SealError::WrongKind(
                    "this cluster unseals with its auto-unseal key file, not with key shares"
                        .into(),
                ));
            }
            if inner.keys.is_some() {
                drop(inner);
                return Ok(self.state());
            }
            let bytes = shares::decode(share)?;
            let digest = shares::digest_of(&bytes);
            if !config.share_digests.contains(&digest) {
                return Err(SealError::UnknownShare);
            }
            if inner.pending.iter().any(|p| shares::digest_of(p) == digest) {
                return Err(SealError::RepeatedShare);
            }
            inner.pending.push(bytes);
            if inner.pending.len() >= usize::from(config.threshold) {
                let pending = std::mem::take(&mut inner.pending);
                let root = shares::combine(&pending, config.threshold)?;
                if root.check_value() != config.root_check {
                    return Err(SealError::Share(ShareError::Combine));
                }
                self.install(&mut inner, root)?;
            }
        }
        Ok(self.state())
    }

    /// Unseals with the key material of an auto-unseal key file,
    /// initializing the node for key-file sealing if it is not yet.
    pub fn unseal_with_file(&self, material: &[u8]) -> Result<(), SealError> {
        let mut inner = self.write();
        let root = Key::from_slice(&ring_sha256(material))
            .expect("32 bytes")
            .derive(LABEL_AUTO);
        match &inner.config {
            None => {
                let config = SealConfig {
                    kind: SealKind::KeyFile,
                    shares: 0,
                    threshold: 0,
                    share_digests: Vec::new(),
                    root_check: root.check_value(),
                };
                self.store_config(&mut inner, config)?;
            }
            Some(c) if c.kind != SealKind::KeyFile => {
                return Err(SealError::WrongKind(
                    "this cluster unseals with key shares; an auto-unseal key file cannot unseal it"
                        .into(),
                ));
            }
            Some(c) if c.root_check != root.check_value() => return Err(SealError::WrongKeyFile),
            Some(_) => {}
        }
        if inner.keys.is_none() {
            self.install(&mut inner, root)?;
        }
        Ok(())
    }

    /// Loads this node's keyring under `root` (making one, stored and read
    /// back before use, if the node has none) and holds the keys.
    fn install(&self, inner: &mut Inner, root: Key) -> Result<(), SealError> {
        let wrapping = root.derive(LABEL_WRAP);
        let keyring = match self.meta()?.get_raw(KEY_KEYRING).map_err(storage)? {
            Some(sealed) => Keyring::unwrap(&wrapping, &sealed)?,
            None => {
                let fresh = Keyring::new()?;
                self.store_keyring(&wrapping, &fresh)?
            }
        };
        inner.pending.clear();
        inner.keys = Some(Unsealed {
            stream: root.derive(LABEL_STREAM),
            root,
            keyring,
        });
        self.sealed_tx.send_replace(false);
        tracing::info!("unsealed: keys loaded");
        Ok(())
    }

    /// Stores `keyring` wrapped, reads it back and returns what was read:
    /// a keyring is used only once it is known to be stored (lesson 3).
    fn store_keyring(&self, wrapping: &Key, keyring: &Keyring) -> Result<Keyring, SealError> {
        let meta = self.meta()?;
        meta.put_raw(KEY_KEYRING, &keyring.wrap(wrapping)?)
            .map_err(storage)?;
        let stored = meta
            .get_raw(KEY_KEYRING)
            .map_err(storage)?
            .ok_or_else(|| SealError::Storage("the keyring was not stored".into()))?;
        Ok(Keyring::unwrap(wrapping, &stored)?)
    }

    /// Adds a new data key for new writes; older keys stay to read older
    /// entries. Returns the new key's id and how many keys the ring holds.
    pub fn rotate(&self) -> Result<(u32, usize), SealError> {
        let mut inner = self.write();
        let keys = inner.keys.as_mut().ok_or(SealError::Sealed)?;
        let mut next = keys.keyring.clone();
        let id = next.rotate()?;
        let stored = self.store_keyring(&keys.root.derive(LABEL_WRAP), &next)?;
        keys.keyring = stored;
        tracing::info!(key = id, "keyring rotated");
        Ok((id, keys.keyring.len()))
    }

    /// Drops every key from memory (wiped) and any share progress.
    pub fn drop_keys(&self) {
        let mut inner = self.write();
        inner.keys = None;
        inner.pending.clear();
        drop(inner);
        self.sealed_tx.send_replace(true);
        tracing::info!("sealed: keys dropped from memory");
    }

    /// Forgets shares given so far.
    pub fn reset_progress(&self) {
        self.write().pending.clear();
    }

    /// Encrypts a record with the active data key, binding `aad`.
    pub fn seal_record(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let inner = self.read();
        let keys = inner.keys.as_ref().ok_or(SealError::Sealed)?;
        Ok(keys.keyring.seal(aad, plain)?)
    }

    /// Decrypts a record [`Keeper::seal_record`] wrote.
    pub fn open_record(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let inner = self.read();
        let keys = inner.keys.as_ref().ok_or(SealError::Sealed)?;
        Ok(keys.keyring.open(aad, sealed)?)
    }

    fn stream_key(&self) -> Result<Key, SealError> {
        let inner = self.read();
        Ok(inner.keys.as_ref().ok_or(SealError::Sealed)?.stream.clone())
    }

    /// An encrypting writer for a snapshot or a saved snapshot.
    pub fn encrypt_to<W: Write>(&self, out: W) -> std::io::Result<EncryptWriter<W>> {
        let key = self.stream_key().map_err(std::io::Error::other)?;
        EncryptWriter::new(out, &key)
    }

    /// A decrypting reader of what [`Keeper::encrypt_to`] wrote.
    pub fn decrypt_from<R: Read>(&self, input: R) -> std::io::Result<DecryptReader<R>> {
        let key = self.stream_key().map_err(std::io::Error::other)?;
        DecryptReader::new(input, &key)
    }
}

fn ring_sha256(material: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, material)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn storage(e: crate::error::Error) -> SealError {
    SealError::Storage(e.to_string())
}

#[cfg(test)]
mod tests;
