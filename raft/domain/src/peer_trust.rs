//! What the cluster's nodes trust each other with: the peer CAs (the first
//! signs node certificates; all are trusted, so a rotation can run old and
//! new side by side) and the join tokens a new node proves itself with.
//! A token is stored as a digest, used once, and refused after its expiry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::cert::CaRecord;
use crate::clock::Millis;

/// Most join tokens outstanding at once.
pub const MAX_JOIN_TOKENS: usize = 1000;

/// One join token, by the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// After this the token is refused.
    pub expires_at: Millis,
    /// The node that used it, once used.
    pub used_by: Option<u64>,
}

/// The peer trust replicated to every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTrust {
    /// Trusted peer CAs; the first signs.
    pub cas: Vec<CaRecord>,
    /// Outstanding and used join tokens, by digest (hex).
    pub join_tokens: BTreeMap<String, JoinToken>,
}

fn same_cert(a: &CaRecord, b: &CaRecord) -> bool {
    a.certificate_pem == b.certificate_pem
}

impl PeerTrust {
    /// The CA that signs node certificates.
    pub fn signer(&self) -> Option<&CaRecord> {
        self.cas.first()
    }

    /// Installs the first peer CA (the bootstrap node's). Repeating the
    /// same CA is accepted; another one is a conflict.
    pub fn init(&mut self, ca: &CaRecord) -> Result<(), DomainError> {
        match self.cas.first() {
            None => {
                self.cas.push(ca.clone());
                Ok(())
            }
            Some(first) if same_cert(first, ca) => Ok(()),
            Some(_) => Err(DomainError::Conflict(
                "the cluster already has a peer CA".into(),
            )),
        }
    }

    /// Adds a CA to the trusted set (rotation step 1), not yet signing.
    pub fn add(&mut self, ca: &CaRecord) -> Result<(), DomainError> {
        if self.cas.is_empty() {
            return Err(DomainError::Conflict(
                "the cluster has no peer CA yet".into(),
            ));
        }
        if self.cas.iter().any(|c| same_cert(c, ca)) {
            return Err(DomainError::AlreadyExists(
                "this peer CA is already trusted".into(),
            ));
        }
        if self.cas.len() >= 4 {
            return Err(DomainError::Conflict(
                "four peer CAs are trusted already: drop one first".into(),
            ));
        }
        self.cas.push(ca.clone());
        Ok(())
    }

    /// Makes the trusted CA at `index` the signer (rotation step 2).
    pub fn activate(&mut self, index: usize) -> Result<(), DomainError> {
        if index >= self.cas.len() {
            return Err(DomainError::Invalid(format!(
                "no trusted peer CA number {index}"
            )));
        }
        let ca = self.cas.remove(index);
        self.cas.insert(0, ca);
        Ok(())
    }

    /// Stops trusting the CA at `index` (rotation step 3); the signer
    /// cannot be dropped.
    pub fn drop_ca(&mut self, index: usize) -> Result<(), DomainError> {
        if index == 0 {
            return Err(DomainError::Conflict(
                "the signing peer CA cannot be dropped: activate another first".into(),
            ));
        }
        if index >= self.cas.len() {
            return Err(DomainError::Invalid(format!(
                "no trusted peer CA number {index}"
            )));
        }
        self.cas.remove(index);
        Ok(())
    }

    /// Records a new join token valid until `now + ttl_ms`; tokens expired
    /// for a day are forgotten.
    pub fn create_token(
        &mut self,
        now: Millis,
        digest: &str,
        ttl_ms: u64,
    ) -> Result<(), DomainError> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::Invalid(
                "a join token digest is 64 hex digits".into(),
            ));
        }
        self.join_tokens
            .retain(|_, t| t.expires_at.saturating_add(86_400_000) > now);
        if self.join_tokens.len() >= MAX_JOIN_TOKENS {
            return Err(DomainError::Conflict(format!(
                "{MAX_JOIN_TOKENS} join tokens are outstanding"
            )));
        }
        if self.join_tokens.contains_key(digest) {
            return Err(DomainError::AlreadyExists("this join token exists".into()));
        }
        self.join_tokens.insert(
            digest.to_string(),
            JoinToken {
                expires_at: now.saturating_add(ttl_ms),
                used_by: None,
            },
        );
        Ok(())
    }

    /// Uses a join token for `node`: unknown, expired and used tokens are
    /// refused.
    pub fn consume_token(
        &mut self,
        now: Millis,
        digest: &str,
        node: u64,
    ) -> Result<(), DomainError> {
        let token = self
            .join_tokens
            .get_mut(digest)
            .ok_or_else(|| DomainError::Forbidden("unknown join token".into()))?;
        if token.used_by.is_some() {
            return Err(DomainError::Forbidden(
                "this join token was already used".into(),
            ));
        }
        if now >= token.expires_at {
            return Err(DomainError::Forbidden("this join token has expired".into()));
        }
        token.used_by = Some(node);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::SecretPem;

    fn ca(n: u8) -> CaRecord {
        CaRecord {
            certificate_pem: format!("cert{n}"),
            key_pem: SecretPem::new("k".into()),
            not_after: 10,
        }
    }

    #[test]
    fn a_join_token_is_used_once_and_not_after_its_expiry() {
        let mut t = PeerTrust::default();
        let d = "a".repeat(64);
        t.create_token(1_000, &d, 500).unwrap();
        assert!(t.create_token(1_000, "zz", 5).is_err());
        t.consume_token(1_499, &d, 4).unwrap();
        assert!(t.consume_token(1_499, &d, 5).is_err(), "reused");
        let e = "b".repeat(64);
        t.create_token(2_000, &e, 500).unwrap();
        assert!(t.consume_token(2_500, &e, 4).is_err(), "expired");
        assert!(
            t.consume_token(2_000, &"c".repeat(64), 4).is_err(),
            "unknown"
        );
    }

    #[test]
    fn rotation_trusts_both_then_signs_with_the_new_and_drops_the_old() {
        let mut t = PeerTrust::default();
        t.init(&ca(1)).unwrap();
        t.init(&ca(1)).unwrap();
        assert!(t.init(&ca(2)).is_err());
        t.add(&ca(2)).unwrap();
        assert_eq!(t.signer(), Some(&ca(1)));
        t.activate(1).unwrap();
        assert_eq!(t.signer(), Some(&ca(2)));
        assert!(t.drop_ca(0).is_err());
        t.drop_ca(1).unwrap();
        assert_eq!(t.cas, vec![ca(2)]);
    }
}
