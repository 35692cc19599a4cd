//! Free text in requests: every string a client sends (names, account
//! references, metadata, certificate names, CSRs, filters, cursors) is
//! checked for length and characters here, before it can reach the Raft
//! log or a log line. The limits are the ones `/openapi.json` states (the
//! `pattern`, `maxLength` and `maxItems` of each field), so a request the
//! document allows is never refused for its text, and one it forbids is
//! always a 400.

use keel_raft::domain::{account, lease};

use crate::error::ApiError;

/// Longest accepted CSR (PEM text).
pub const MAX_CSR_LEN: usize = 16 * 1024;
/// Most DNS names or IP addresses in one certificate request.
pub const MAX_SANS: usize = 100;
/// An account name, as the OpenAPI document states it.
pub const ACCOUNT_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";
/// A lease id, as the OpenAPI document states it.
pub const LEASE_ID_PATTERN: &str = "^[0-9a-fA-F]{16}$";
/// A certificate serial, as the OpenAPI document states it.
pub const SERIAL_PATTERN: &str = "^[0-9a-fA-F]{1,40}$";

/// Whether `c` is refused in free text: C0 and C1 controls and DEL.
fn is_control(c: char) -> bool {
    c.is_control()
}

/// Checks printable text of 1 to `max` characters (not bytes: the
/// OpenAPI `maxLength` counts characters).
pub fn printable(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(ApiError::BadRequest(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    if value.chars().any(is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a reference to an account (`account` of a lease or
/// certificate, `?account=` filters).
pub fn account_ref(field: &str, value: &str) -> Result<(), ApiError> {
    account::validate_name(value).map_err(|_| {
        ApiError::BadRequest(format!(
            "{field} is not an account name ([a-z0-9][a-z0-9._-]{{0,62}})"
        ))
    })
}

/// Checks an optional account reference.
pub fn maybe_account_ref(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| account_ref(field, v))
}

/// Checks a lease name or name prefix.
pub fn lease_name(field: &str, value: &str) -> Result<(), ApiError> {
    printable(field, value, lease::MAX_NAME_LEN)
}

/// Checks a lease's metadata: at most 32 entries, keys and values printable,
/// keys 1 to 1024 characters, values at most 1024.
pub fn metadata(map: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    if map.len() > lease::MAX_METADATA_ENTRIES {
        return Err(ApiError::BadRequest(format!(
            "metadata may hold at most {} entries",
            lease::MAX_METADATA_ENTRIES
        )));
    }
    for (k, v) in map {
        printable("metadata key", k, lease::MAX_METADATA_LEN)?;
        if v.chars().count() > lease::MAX_METADATA_LEN || v.chars().any(is_control) {
            return Err(ApiError::BadRequest(format!(
                "metadata values must be at most {} characters, without control characters",
                lease::MAX_METADATA_LEN
            )));
        }
    }
    Ok(())
}

/// Checks a PEM CSR's size and characters (its content is checked when
/// it is parsed).
pub fn csr(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_CSR_LEN || !value.is_ascii() {
        return Err(ApiError::BadRequest(format!(
            "{field} must be a PEM CSR of at most {MAX_CSR_LEN} ASCII characters"
        )));
    }
    Ok(())
}

/// Checks the number of subject alternative names.
pub fn sans(field: &str, values: &[String]) -> Result<(), ApiError> {
    if values.len() > MAX_SANS {
        return Err(ApiError::BadRequest(format!(
            "{field} may hold at most {MAX_SANS} entries"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_and_controls_are_refused() {
        assert!(printable("f", "héllo", 5).is_ok());
        assert!(printable("f", "héllo!", 5).is_err());
        assert!(printable("f", "", 5).is_err());
        assert!(printable("f", "a\u{7}", 5).is_err());
        assert!(printable("f", "a\u{85}", 5).is_err());
        assert!(account_ref("account", "acme-1").is_ok());
        assert!(account_ref("account", "Acme").is_err());
        assert!(account_ref("account", &"a".repeat(64)).is_err());
        assert!(csr("csr", &"x".repeat(MAX_CSR_LEN + 1)).is_err());
    }
}
