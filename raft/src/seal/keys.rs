//! The key material behind encryption at rest, and the one cipher it uses
//! (AES-256-GCM from `ring`).
//!
//! - The **root key** (32 random bytes) is never stored: it is rebuilt from
//!   key shares or derived from an auto-unseal key file. Every other key is
//!   derived from it (HKDF-SHA256, one label per purpose) or wrapped by it.
//! - The **keyring** holds this node's data keys (the log's). It is stored
//!   only wrapped by a key derived from the root key, and rotates: new
//!   writes use the newest key, older keys stay to read older entries.
//! - Raw key bytes live in `Zeroizing` buffers, wiped when dropped; the AES
//!   key schedule `ring` builds for one call lives only for that call.
//!
//! A sealed message is `version (1) | key id (u32 BE) | nonce (12) |
//! ciphertext | tag (16)`. Nonces are random (96 bits from the system
//! RNG); with at most 2^32 messages per key that keeps the chance of a
//! repeat negligible, and rotation starts a new key.

use std::collections::BTreeMap;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Length of every key keel uses.
pub const KEY_LEN: usize = 32;
/// Bytes a sealed message adds to its plaintext.
pub const OVERHEAD: usize = 1 + 4 + NONCE_LEN + 16;
const MESSAGE_VERSION: u8 = 1;

/// What can go wrong with keys and sealed data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Authentication failed: wrong key, or the bytes or their context were
    /// changed.
    #[error("cannot decrypt: wrong key, or the data or its context was altered")]
    Decrypt,
    /// The message names a key this keyring does not hold.
    #[error("the data was encrypted with key {0}, which this keyring does not hold")]
    UnknownKey(u32),
    /// Not a sealed message of a version this keel reads.
    #[error("not encrypted data of a version this keel reads")]
    Format,
    /// The system RNG failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A 32-byte key, wiped from memory when dropped.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh random key.
    pub fn random() -> Result<Key, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| KeyError::Random)?;
        Ok(Key(bytes))
    }

    /// A key from exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Key> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Key(Zeroizing::new(array)))
    }

    /// The raw bytes (for splitting into shares).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key for one purpose, derived from this one (HKDF-SHA256).
    pub fn derive(&self, label: &[u8]) -> Key {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keel key derivation v1");
        let prk = salt.extract(self.0.as_ref());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        prk.expand(&[label], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(out.as_mut()))
            .expect("HKDF-SHA256 yields 32 bytes");
        Key(out)
    }

    fn cipher(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("32-byte key"))
    }

    /// Seals `plain` under this key as key `id`, binding `aad`.
    pub fn seal(&self, id: u32, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Random)?;
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.push(MESSAGE_VERSION);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        let header = out.len();
        out.extend_from_slice(plain);
        let mut body = out.split_off(header);
        self.cipher()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| KeyError::Decrypt)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a message sealed under this key (whatever id it names).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (_, nonce, body) = split_message(sealed)?;
        self.open_parts(aad, nonce, body)
    }

    fn open_parts(
        &self,
        aad: &[u8],
        nonce: [u8; NONCE_LEN],
        body: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut buf = body.to_vec();
        let plain_len = self
            .cipher()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| KeyError::Decrypt)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }

    /// A short, one-way fingerprint of this key: proves a rebuilt root key
    /// is the right one without storing anything that reveals it.
    pub fn check_value(&self) -> String {
        let check = self.derive(b"keel/root-check/v1");
        check.expose()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The key id and nonce of a sealed message, and its ciphertext.
fn split_message(sealed: &[u8]) -> Result<(u32, [u8; NONCE_LEN], &[u8]), KeyError> {
    if sealed.len() < OVERHEAD || sealed[0] != MESSAGE_VERSION {
        return Err(KeyError::Format);
    }
    let id = u32::from_be_bytes(sealed[1..5].try_into().expect("4 bytes"));
    let nonce: [u8; NONCE_LEN] = sealed[5..5 + NONCE_LEN].try_into().expect("12 bytes");
    Ok((id, nonce, &sealed[5 + NONCE_LEN..]))
}

/// This node's data keys; the newest seals, any opens.
#[derive(Clone, Debug)]
pub struct Keyring {
    active: u32,
    keys: BTreeMap<u32, Key>,
}

/// The keyring as stored (inside a message sealed by the wrapping key).
#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active: u32,
    keys: Vec<(u32, Vec<u8>)>,
}

impl Drop for StoredKeyring {
    fn drop(&mut self) {
        for (_, key) in &mut self.keys {
            key.zeroize();
        }
    }
}

const KEYRING_AAD: &[u8] = b"keel/keyring/v1";

impl Keyring {
    /// A keyring with one fresh key (id 1).
    pub fn new() -> Result<Keyring, KeyError> {
        Ok(Keyring {
            active: 1,
            keys: BTreeMap::from([(1, Key::random()?)]),
        })
    }

    /// The id of the key new writes use.
    pub fn active(&self) -> u32 {
        self.active
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key (never true of a keyring in use).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a fresh key and makes it the active one; returns its id.
    pub fn rotate(&mut self) -> Result<u32, KeyError> {
        let id = self.active.checked_add(1).ok_or(KeyError::Format)?;
        self.keys.insert(id, Key::random()?);
        self.active = id;
        Ok(id)
    }

    /// Seals `plain` with the active key, binding `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.keys[&self.active].seal(self.active, aad, plain)
    }

    /// Opens a message sealed by any key of this keyring.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (id, nonce, body) = split_message(sealed)?;
        let key = self.keys.get(&id).ok_or(KeyError::UnknownKey(id))?;
        key.open_parts(aad, nonce, body)
    }

    /// The keyring sealed under `wrapping` (a key derived from the root).
    pub fn wrap(&self, wrapping: &Key) -> Result<Vec<u8>, KeyError> {
        let stored = StoredKeyring {
            active: self.active,
            keys: self
                .keys
                .iter()
                .map(|(id, k)| (*id, k.expose().to_vec()))
                .collect(),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&stored).map_err(|_| KeyError::Format)?);
        wrapping.seal(0, KEYRING_AAD, &plain)
    }

    /// A keyring that [`Keyring::wrap`] sealed under `wrapping`.
    pub fn unwrap(wrapping: &Key, sealed: &[u8]) -> Result<Keyring, KeyError> {
        let plain = Zeroizing::new(wrapping.open(KEYRING_AAD, sealed)?);
        let stored: StoredKeyring = serde_json::from_slice(&plain).map_err(|_| KeyError::Format)?;
        let mut keys = BTreeMap::new();
        for (id, bytes) in &stored.keys {
            keys.insert(*id, Key::from_slice(bytes).ok_or(KeyError::Format)?);
        }
        if !keys.contains_key(&stored.active) {
            return Err(KeyError::Format);
        }
        Ok(Keyring {
            active: stored.active,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_only_with_its_key_and_context() {
        let ring = Keyring::new().unwrap();
        let sealed = ring.seal(b"index 7", b"lease svc/web-1").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"svc/web-1"));
        assert_eq!(ring.open(b"index 7", &sealed).unwrap(), b"lease svc/web-1");
        assert_eq!(ring.open(b"index 8", &sealed), Err(KeyError::Decrypt));
        let other = Keyring::new().unwrap();
        assert_eq!(other.open(b"index 7", &sealed), Err(KeyError::Decrypt));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(b"index 7", &flipped), Err(KeyError::Decrypt));
        assert_eq!(ring.open(b"index 7", &sealed[..10]), Err(KeyError::Format));
    }

    #[test]
    fn a_rotated_keyring_seals_with_the_new_key_and_still_opens_the_old() {
        let mut ring = Keyring::new().unwrap();
        let old = ring.seal(b"a", b"old").unwrap();
        assert_eq!(ring.rotate().unwrap(), 2);
        let new = ring.seal(b"a", b"new").unwrap();
        assert_eq!(new[1..5], 2u32.to_be_bytes());
        assert_eq!(ring.open(b"a", &old).unwrap(), b"old");
        assert_eq!(ring.open(b"a", &new).unwrap(), b"new");
    }

    #[test]
    fn a_wrapped_keyring_unwraps_only_under_its_root() {
        let root = Key::random().unwrap();
        let wrapping = root.derive(b"keel/keyring-wrap/v1");
        let mut ring = Keyring::new().unwrap();
        ring.rotate().unwrap();
        let wrapped = ring.wrap(&wrapping).unwrap();
        let back = Keyring::unwrap(&wrapping, &wrapped).unwrap();
        assert_eq!(back.active(), 2);
        let sealed = ring.seal(b"x", b"y").unwrap();
        assert_eq!(back.open(b"x", &sealed).unwrap(), b"y");
        let wrong = Key::random().unwrap().derive(b"keel/keyring-wrap/v1");
        assert!(Keyring::unwrap(&wrong, &wrapped).is_err());
    }

    #[test]
    fn derived_keys_differ_by_label_and_the_check_value_names_the_root() {
        let root = Key::random().unwrap();
        assert_ne!(root.derive(b"a").expose(), root.derive(b"b").expose());
        assert_eq!(root.derive(b"a").expose(), root.derive(b"a").expose());
        let copy = Key::from_slice(root.expose()).unwrap();
        assert_eq!(root.check_value(), copy.check_value());
        assert_ne!(root.check_value(), Key::random().unwrap().check_value());
    }
}
