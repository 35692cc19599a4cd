//! Reading tokens and the cluster secret from files, and generating them
//! in dev mode. Values never reach a log line.

use std::path::Path;

use rand::RngCore;

use super::{ConfigError, err};

/// Shortest accepted token or secret.
const MIN_SECRET_LEN: usize = 16;

/// A fresh random secret: 32 bytes, hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check(what: &str, path: &Path, value: &str) -> Result<(), ConfigError> {
    if value.len() < MIN_SECRET_LEN {
        return Err(err(format!(
            "{what} in {} must be at least {MIN_SECRET_LEN} characters",
            path.display()
        )));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(format!(
            "{what} in {} must not contain whitespace",
            path.display()
        )));
    }
    Ok(())
}

/// Admin tokens: one per line; blank lines and `#` comments are skipped.
/// Several tokens may be valid at once (rotation).
pub fn read_tokens(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("--admin-token-file {}: {e}", path.display())))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(err(format!(
            "--admin-token-file {} holds no token",
            path.display()
        )));
    }
    for t in &tokens {
        check("an admin token", path, t)?;
    }
    Ok(tokens)
}

/// An auto-unseal key: a file's trimmed contents, wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct UnsealKey(pub zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The auto-unseal key file's trimmed contents (32 characters at least).
pub fn read_unseal_key(path: &Path) -> Result<UnsealKey, ConfigError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| err(format!("--unseal-key-file {}: {e}", path.display())))?,
    );
    let key = text.trim();
    if key.len() < 32 || key.chars().any(char::is_whitespace) {
        return Err(err(format!(
            "--unseal-key-file {}: an auto-unseal key is at least 32 characters without white space (e.g. `openssl rand -hex 32`)",
            path.display()
        )));
    }
    Ok(UnsealKey(zeroize::Zeroizing::new(key.as_bytes().to_vec())))
}

/// The cluster secret: the file's trimmed contents.
pub fn read_cluster_secret(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("--cluster-secret-file {}: {e}", path.display())))?;
    let secret = text.trim().to_string();
    check("the cluster secret", path, &secret)?;
    Ok(secret)
}
