//! Free text in requests: every string a client sends (names, account
//! references, metadata, certificate names, CSRs, filters) is checked for
//! length and characters here, and only here. The web layer calls these
//! before a request reaches the Raft log or a log line and maps the
//! [`DomainError::Invalid`] to a 400; apply runs the same checks again, so
//! a request that slipped past an older node is refused alike on every
//! replica. The limits are the ones `/openapi.json` states (the `pattern`,
//! `maxLength` and `maxItems` of each field, built from these constants),
//! so a request the document allows is never refused for its text, and
//! one it forbids is always refused.

use std::collections::BTreeMap;

use crate::DomainError;
use crate::{account, lease};

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

fn invalid(message: String) -> DomainError {
    DomainError::Invalid(message)
}

/// Checks printable text of 1 to `max` characters (not bytes: the
/// OpenAPI `maxLength` counts characters); C0 and C1 controls and DEL are
/// refused.
pub fn printable(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(invalid(format!("{field} must be 1 to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a reference to an account (`account` of a lease, token or
/// certificate, `?account=` filters).
pub fn account_ref(field: &str, value: &str) -> Result<(), DomainError> {
    account::validate_name(value).map_err(|_| {
        invalid(format!(
            "{field} is not an account name ([a-z0-9][a-z0-9._-]{{0,62}})"
        ))
    })
}

/// Checks an optional account reference.
pub fn maybe_account_ref(field: &str, value: Option<&str>) -> Result<(), DomainError> {
    value.map_or(Ok(()), |v| account_ref(field, v))
}

/// Checks a lease name or name prefix.
pub fn lease_name(field: &str, value: &str) -> Result<(), DomainError> {
    printable(field, value, lease::MAX_NAME_LEN)
}

/// Checks a lease's metadata: at most 32 entries, keys and values printable,
/// keys 1 to 1024 characters, values at most 1024.
pub fn metadata(map: &BTreeMap<String, String>) -> Result<(), DomainError> {
    if map.len() > lease::MAX_METADATA_ENTRIES {
        return Err(invalid(format!(
            "metadata may hold at most {} entries",
            lease::MAX_METADATA_ENTRIES
        )));
    }
    for (k, v) in map {
        printable("metadata key", k, lease::MAX_METADATA_LEN)?;
        if v.chars().count() > lease::MAX_METADATA_LEN || v.chars().any(char::is_control) {
            return Err(invalid(format!(
                "metadata values must be at most {} characters, without control characters",
                lease::MAX_METADATA_LEN
            )));
        }
    }
    Ok(())
}

/// Checks a PEM CSR's size and characters (its content is checked when
/// it is parsed).
pub fn csr(field: &str, value: &str) -> Result<(), DomainError> {
    if value.is_empty() || value.len() > MAX_CSR_LEN || !value.is_ascii() {
        return Err(invalid(format!(
            "{field} must be a PEM CSR of at most {MAX_CSR_LEN} ASCII characters"
        )));
    }
    Ok(())
}

/// Checks the number of subject alternative names.
pub fn sans(field: &str, values: &[String]) -> Result<(), DomainError> {
    if values.len() > MAX_SANS {
        return Err(invalid(format!(
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
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), "v\u{0}".to_string());
        assert!(metadata(&map).is_err());
    }
}
