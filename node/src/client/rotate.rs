//! `keel cert renew --cert F --key F [--ca F]`: rotate a certificate held
//! in local files, make before break.
//!
//! 1. Preflight: every target directory takes a probe file (write, fsync,
//!    remove), so an unwritable or full file system fails before anything.
//! 2. A fresh key and CSR are generated locally; the node renews the
//!    certificate (new serial, `replaces` the old; the old stays valid).
//! 3. Key and certificate are staged beside the originals as
//!    `<name>.keel-next` (temporary file, fsync, rename, fsync of the
//!    directory; key mode 0600), read back and checked: the pair matches
//!    and chains to the CA.
//! 4. The originals are kept as `<name>.keel-prev` (hard links), then the
//!    staged files replace them (rename, fsync), are read back and checked.
//! 5. Only then is the new certificate activated, which supersedes the old,
//!    and the `.keel-prev` copies are retired.
//!
//! Any failure before step 4 leaves the original files byte-for-byte
//! untouched and the old certificate valid; until step 5 the old files stay
//! on disk (in place, or as `.keel-prev`) and the old certificate valid.
//! Running the command again after a crash at any step finishes the job:
//! staged files are picked up, and a switched but unactivated certificate
//! is activated.
//!
//! `KEEL_ROTATE_PAUSE=<step>` (`preflight`, `renewed`, `staged`,
//! `switched`) makes the command stop and wait after that step: a
//! fault-injection point for tests that kill it there.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, KeyPair};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ClientError;
use super::http::ApiClient;

const PROBE_BYTES: usize = 64 * 1024;

fn fail(msg: impl Into<String>) -> ClientError {
    ClientError::Message(msg.into())
}

fn step(name: &str, detail: &str) {
    eprintln!("cert renew: {name}: {detail}");
    if std::env::var("KEEL_ROTATE_PAUSE").is_ok_and(|p| p == name) {
        eprintln!("cert renew: paused after {name} (KEEL_ROTATE_PAUSE)");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn staged(path: &Path) -> PathBuf {
    sibling(path, ".keel-next")
}

fn previous(path: &Path) -> PathBuf {
    sibling(path, ".keel-prev")
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Fsyncs a directory, so a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over `path`, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = dir_of(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Proves `dir` is writable and has room, leaving nothing behind.
fn preflight(dir: &Path) -> Result<(), ClientError> {
    let probe = dir.join(format!(".keel-probe-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)?;
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    })();
    let _ = fs::remove_file(&probe);
    result.map_err(|e| {
        fail(format!(
            "{} is not writable or has no room ({e}); nothing was changed",
            dir.display()
        ))
    })
}

struct Parsed {
    serial: String,
    common_name: String,
    public_key: Vec<u8>,
    der: Vec<u8>,
}

fn parse_cert(pem: &str, what: &str) -> Result<Parsed, ClientError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| fail(format!("{what} is not a PEM certificate: {e}")))?;
    let (_, cert) = X509Certificate::from_der(&block.contents)
        .map_err(|e| fail(format!("{what} is not a certificate: {e}")))?;
    let serial = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("keel")
        .to_string();
    let public_key = cert.public_key().subject_public_key.data.to_vec();
    Ok(Parsed {
        serial,
        common_name,
        public_key,
        der: block.contents.clone(),
    })
}

/// Checks that `cert_pem` and `key_pem` form a pair and chain to `ca_pem`.
fn check_pair(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<Parsed, ClientError> {
    let cert = parse_cert(cert_pem, "the certificate")?;
    let key = KeyPair::from_pem(key_pem)
        .map_err(|e| fail(format!("the key is not a usable private key: {e}")))?;
    if key.public_key_raw() != cert.public_key.as_slice() {
        return Err(fail("the certificate and the key do not match"));
    }
    let ca = parse_cert(ca_pem, "the CA certificate")?;
    let (_, ca_cert) = X509Certificate::from_der(&ca.der).map_err(|e| fail(e.to_string()))?;
    let (_, leaf) = X509Certificate::from_der(&cert.der).map_err(|e| fail(e.to_string()))?;
    leaf.verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| fail("the certificate does not chain to the CA"))?;
    Ok(cert)
}

fn read(path: &Path) -> Result<String, ClientError> {
    fs::read_to_string(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
}

/// Keeps the originals as `.keel-prev`, renames the staged files over them
/// (key first), then reads the result back and checks it.
fn switch(cert: &Path, key: &Path, ca_pem: &str) -> Result<Parsed, ClientError> {
    for path in [key, cert] {
        let next = staged(path);
        let prev = previous(path);
        if next.exists() && !prev.exists() {
            fs::hard_link(path, &prev).map_err(|e| {
                fail(format!(
                    "cannot keep {} as {}: {e}",
                    path.display(),
                    prev.display()
                ))
            })?;
        }
    }
    for path in [key, cert] {
        let next = staged(path);
        if next.exists() {
            fs::rename(&next, path)
                .map_err(|e| fail(format!("cannot move {} into place: {e}", next.display())))?;
            sync_dir(&dir_of(path))
                .map_err(|e| fail(format!("fsync {}: {e}", dir_of(path).display())))?;
        }
    }
    let parsed = check_pair(&read(cert)?, &read(key)?, ca_pem)?;
    step(
        "switched",
        &format!(
            "{} and {} now hold serial {}",
            cert.display(),
            key.display(),
            parsed.serial
        ),
    );
    Ok(parsed)
}

/// Activates the new certificate, then retires the `.keel-prev` copies.
async fn activate(
    client: &ApiClient,
    serial: &str,
    cert: &Path,
    key: &Path,
) -> Result<(), ClientError> {
    client
        .post(&format!("/v1/pki/certs/{serial}/activate"), None)
        .await?;
    for path in [cert, key] {
        let prev = previous(path);
        if prev.exists() {
            fs::remove_file(&prev)
                .map_err(|e| fail(format!("cannot retire {}: {e}", prev.display())))?;
        }
    }
    step(
        "activated",
        &format!("{serial} is active; the certificate it replaces is superseded"),
    );
    Ok(())
}

/// Rotates the certificate in `cert_path`/`key_path`. Returns
/// `{"old_serial", "new_serial"}`.
pub async fn run(
    client: &ApiClient,
    cert_path: &Path,
    key_path: &Path,
    ca_path: Option<&Path>,
    ttl: Option<&str>,
) -> Result<Value, ClientError> {
    let ca_pem = match ca_path {
        Some(p) => read(p)?,
        None => client.get("/v1/pki/ca").await?["certificate"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let current = parse_cert(&read(cert_path)?, &cert_path.display().to_string())?;

    // Resume a rotation a crash interrupted.
    let staged_cert = staged(cert_path);
    if staged_cert.exists() {
        let staged_key = staged(key_path);
        let key_file = if staged_key.exists() {
            staged_key
        } else {
            key_path.to_path_buf()
        };
        if let Ok(next) = check_pair(&read(&staged_cert)?, &read(&key_file)?, &ca_pem) {
            step(
                "resume",
                &format!("found staged certificate {}", next.serial),
            );
            let done = switch(cert_path, key_path, &ca_pem)?;
            let old = client
                .get(&format!("/v1/pki/certs/{}", done.serial))
                .await?["replaces"]
                .clone();
            activate(client, &done.serial, cert_path, key_path).await?;
            return Ok(json!({"old_serial": old, "new_serial": done.serial}));
        }
        let _ = fs::remove_file(&staged_cert);
        let _ = fs::remove_file(staged(key_path));
    }
    let record = client
        .get(&format!("/v1/pki/certs/{}", current.serial))
        .await?;
    if let Some(old) = record["replaces"].as_str() {
        let old_state = client.get(&format!("/v1/pki/certs/{old}")).await?["state"].clone();
        if old_state != json!("superseded") && old_state != json!("revoked") {
            check_pair(&read(cert_path)?, &read(key_path)?, &ca_pem)?;
            step(
                "resume",
                &format!("{} is in place but not yet activated", current.serial),
            );
            activate(client, &current.serial, cert_path, key_path).await?;
            return Ok(json!({"old_serial": old, "new_serial": current.serial}));
        }
    }

    // Copies left by a rotation that completed but was cut off before
    // retiring them belong to an older generation: drop them.
    for path in [cert_path, key_path] {
        let _ = fs::remove_file(previous(path));
    }

    // 1. Preflight.
    let mut dirs = vec![dir_of(cert_path), dir_of(key_path)];
    dirs.dedup();
    for dir in &dirs {
        preflight(dir)?;
    }
    step("preflight", "target directories are writable and have room");

    // 2. A fresh key, a CSR, the renewal.
    let key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| fail(e.to_string()))?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, current.common_name.clone());
    let csr = params
        .serialize_request(&key)
        .map_err(|e| fail(e.to_string()))?;
    let mut body = json!({"csr": csr.pem().map_err(|e| fail(e.to_string()))?});
    if let Some(ttl) = ttl {
        body["ttl"] = ttl
            .parse::<u64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| json!(ttl));
    }
    let renewed = client
        .post(
            &format!("/v1/pki/certs/{}/renew", current.serial),
            Some(body),
        )
        .await?;
    let new_pem = renewed["certificate"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let new_serial = renewed["serial"].as_str().unwrap_or_default().to_string();
    step(
        "renewed",
        &format!(
            "{} renewed as {new_serial} (old one still valid)",
            current.serial
        ),
    );

    // 3. Stage both files, read them back, check them.
    let stage = || -> Result<(), ClientError> {
        write_atomic(&staged(key_path), key.serialize_pem().as_bytes(), 0o600).map_err(|e| {
            fail(format!(
                "cannot write the new key next to {}: {e}",
                key_path.display()
            ))
        })?;
        write_atomic(&staged_cert, new_pem.as_bytes(), 0o644).map_err(|e| {
            fail(format!(
                "cannot write the new certificate next to {}: {e}",
                cert_path.display()
            ))
        })?;
        check_pair(&read(&staged_cert)?, &read(&staged(key_path))?, &ca_pem)?;
        Ok(())
    };
    if let Err(e) = stage() {
        let _ = fs::remove_file(&staged_cert);
        let _ = fs::remove_file(staged(key_path));
        return Err(fail(format!(
            "{e}; the original files are untouched and the old certificate stays valid"
        )));
    }
    step(
        "staged",
        "new key and certificate written, read back and checked",
    );

    // 4. Switch, 5. activate.
    let done = switch(cert_path, key_path, &ca_pem)?;
    activate(client, &done.serial, cert_path, key_path).await?;
    Ok(json!({"old_serial": current.serial, "new_serial": done.serial}))
}
