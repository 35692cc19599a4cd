//! Validation of the names a certificate may carry.

use super::PkiError;

/// Longest accepted common name (RFC 5280 upper bound).
const MAX_CN_LEN: usize = 64;

/// Checks a subject common name: 1 to 64 printable characters.
pub fn validate_common_name(cn: &str) -> Result<(), PkiError> {
    let chars = cn.chars().count();
    if chars == 0 || chars > MAX_CN_LEN || cn.chars().any(char::is_control) {
        return Err(PkiError::Invalid(format!(
            "common_name must be 1 to {MAX_CN_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Checks a DNS name: letters, digits and hyphens in dot-separated labels of
/// 1 to 63 bytes, 253 bytes in all, no wildcard; and, when `allowed` is not
/// empty, equal to or under one of those domains.
pub fn validate_dns_name(name: &str, allowed: &[String]) -> Result<(), PkiError> {
    let bad = |why: &str| PkiError::Invalid(format!("dns name `{name}` is not allowed: {why}"));
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must be 1 to 253 bytes"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(bad(
                "labels are letters, digits and inner hyphens (no wildcards)",
            ));
        }
    }
    if !allowed.is_empty() {
        let lower = name.to_ascii_lowercase();
        let under = allowed.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            lower == d || lower.ends_with(&format!(".{d}"))
        });
        if !under {
            return Err(bad("outside the allowed domains"));
        }
    }
    Ok(())
}

/// Checks an IP address.
pub fn validate_ip(ip: &str) -> Result<std::net::IpAddr, PkiError> {
    ip.parse()
        .map_err(|_| PkiError::Invalid(format!("`{ip}` is not an IP address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(validate_dns_name("node-1.keel.svc", &[]).is_ok());
        assert!(validate_dns_name("*.keel.svc", &[]).is_err());
        assert!(validate_dns_name("-bad.example", &[]).is_err());
        assert!(validate_dns_name("a..b", &[]).is_err());
        assert!(validate_dns_name("under_score.example", &[]).is_err());
        let allowed = vec!["example.com".to_string()];
        assert!(validate_dns_name("a.example.com", &allowed).is_ok());
        assert!(validate_dns_name("example.com", &allowed).is_ok());
        assert!(validate_dns_name("badexample.com", &allowed).is_err());
    }

    #[test]
    fn common_names_and_ips() {
        assert!(validate_common_name("router-7").is_ok());
        assert!(validate_common_name("").is_err());
        assert!(validate_common_name(&"x".repeat(65)).is_err());
        assert!(validate_ip("10.0.0.1").is_ok());
        assert!(validate_ip("::1").is_ok());
        assert!(validate_ip("10.0.0").is_err());
    }
}
