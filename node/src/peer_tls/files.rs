//! The node's peer identity on disk, in `<data-dir>/peer/`: its key
//! (`node.key.sealed`: PKCS#8 PEM encrypted with the node's keyring, like
//! everything else at rest, so it is read only once the node is unsealed),
//! its certificate (`node.pem`) and the peer CAs it trusts (`ca.pem`). Each file is written to a temporary
//! file, synced and renamed, and the directory synced; then the whole
//! identity is read back and checked before it is used (lesson 3: the new
//! pair is stored and readable before the old one is retired).
//!
//! The bootstrap node also keeps the peer CA it created, sealed with its
//! keyring (`bootstrap-ca.sealed`), until the CA is in the replicated
//! state.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keel_raft::pki::SecretPem;
use keel_raft::pki::peer::{NodeCertInfo, node_cert_info};
use keel_raft::seal::Keeper;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A node's key, certificate and trusted CAs, as PEM.
#[derive(Clone)]
pub struct Identity {
    /// The node's private key.
    pub key_pem: SecretPem,
    /// The node's certificate.
    pub cert_pem: String,
    /// The trusted peer CAs, the signer first.
    pub trust_pem: String,
}

/// An identity, parsed and checked.
pub struct Parsed {
    /// The key.
    pub key: PrivateKeyDer<'static>,
    /// The node certificate.
    pub cert: CertificateDer<'static>,
    /// The trusted CAs.
    pub cas: Vec<CertificateDer<'static>>,
    /// What the certificate names.
    pub info: NodeCertInfo,
}

impl Identity {
    /// Parses and checks the identity: one key, one certificate naming a
    /// keel node, at least one CA.
    pub fn parse(&self) -> Result<Parsed, String> {
        let key = rustls_pemfile::private_key(&mut self.key_pem.expose().as_bytes())
            .map_err(|e| format!("node key: {e}"))?
            .ok_or("node key: no private key")?;
        let cert = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()
            .ok_or("node certificate: none")?
            .map_err(|e| format!("node certificate: {e}"))?;
        let cas = rustls_pemfile::certs(&mut self.trust_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("peer CAs: {e}"))?;
        if cas.is_empty() {
            return Err("peer CAs: none".into());
        }
        let info =
            node_cert_info(cert.as_ref()).ok_or("the node certificate names no keel node")?;
        Ok(Parsed {
            key,
            cert,
            cas,
            info,
        })
    }
}

/// Where a data directory keeps its peer identity.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("peer")
}

const KEY: &str = "node.key.sealed";
const KEY_AAD: &[u8] = b"keel/node-key/v1";
const CERT: &str = "node.pem";
const TRUST: &str = "ca.pem";
/// The bootstrap node's sealed copy of the peer CA it created.
pub const BOOTSTRAP_CA: &str = "bootstrap-ca.sealed";

/// Reads the stored identity (the key opened with `keeper`); `None` if
/// there is none.
pub fn load(dir: &Path, keeper: &Keeper) -> Result<Option<Identity>, String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f));
    match (std::fs::read(dir.join(KEY)), read(CERT), read(TRUST)) {
        (Ok(sealed), Ok(cert), Ok(trust)) => {
            let plain = zeroize::Zeroizing::new(
                keeper
                    .open_record(KEY_AAD, &sealed)
                    .map_err(|e| format!("opening the node key: {e}"))?,
            );
            let key = String::from_utf8(plain.to_vec()).map_err(|_| "the node key is not PEM")?;
            Ok(Some(Identity {
                key_pem: SecretPem::new(key),
                cert_pem: cert,
                trust_pem: trust,
            }))
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e))
            if e.kind() == std::io::ErrorKind::NotFound && !dir.join(CERT).exists() =>
        {
            Ok(None)
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            Err(format!("peer identity in {}: {e}", dir.display()))
        }
    }
}

/// Writes `bytes` to `dir/name` crash-atomically with mode 0600.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("writing {}: {e}", dir.join(name).display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).map_err(fail)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}

/// Stores `identity` (trust first, certificate last: a crash in between
/// leaves the old pair with a trust that still covers it), reads it back
/// and checks it is what was meant to be stored.
pub fn store(dir: &Path, keeper: &Keeper, identity: &Identity) -> Result<Parsed, String> {
    identity.parse()?;
    let sealed = keeper
        .seal_record(KEY_AAD, identity.key_pem.expose().as_bytes())
        .map_err(|e| format!("sealing the node key: {e}"))?;
    write_atomic(dir, TRUST, identity.trust_pem.as_bytes())?;
    write_atomic(dir, KEY, &sealed)?;
    write_atomic(dir, CERT, identity.cert_pem.as_bytes())?;
    let back = load(dir, keeper)?.ok_or("the stored identity is missing")?;
    if back.cert_pem != identity.cert_pem
        || back.key_pem.expose() != identity.key_pem.expose()
        || back.trust_pem != identity.trust_pem
    {
        return Err("the stored identity reads back differently".into());
    }
    back.parse()
}

/// Replaces only the trusted CAs.
pub fn store_trust(dir: &Path, trust_pem: &str) -> Result<(), String> {
    write_atomic(dir, TRUST, trust_pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_identity_reads_back_and_its_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("peer");
        let storage = keel_raft::Storage::open(&d.path().join("db")).unwrap();
        let keeper = storage.keeper().clone();
        keeper
            .unseal_with_file(b"keel unit tests: not a secret, only a key file")
            .unwrap();
        assert!(load(&dir, &keeper).unwrap().is_none());
        let ca = keel_raft::pki::peer::create_peer_ca("c1", 1_000_000, 1 << 40).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let who = keel_raft::pki::peer::NodeIdentity {
            cluster: "c1".into(),
            node: 1,
        };
        let cert =
            keel_raft::pki::peer::sign_node_csr(&ca, &csr, &who, &[], 1_000_000, 1 << 30).unwrap();
        let id = Identity {
            key_pem: SecretPem::new(key.serialize_pem()),
            cert_pem: cert,
            trust_pem: ca.certificate_pem.clone(),
        };
        let parsed = store(&dir, &keeper, &id).unwrap();
        assert_eq!(parsed.info.identity, who);
        let mode = std::fs::metadata(dir.join(KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let raw = std::fs::read(dir.join(KEY)).unwrap();
        assert!(
            !raw.windows(11).any(|w| w == b"PRIVATE KEY"),
            "the node key is stored sealed"
        );
        assert!(load(&dir, &keeper).unwrap().is_some());
        keeper.drop_keys();
        assert!(load(&dir, &keeper).is_err(), "a sealed node cannot read it");
    }
}
