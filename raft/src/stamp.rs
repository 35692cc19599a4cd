//! Stamping: turning a client's [`Request`] into a replicated [`Proposal`]
//! on the leader.
//!
//! This is the one place where the wall clock, random ids, certificate
//! serials and signatures enter a command. It reads the state (for the CA
//! and the certificate being renewed) but never changes it.

use std::collections::BTreeSet;

use rand::Rng;

use crate::clock::Millis;
use crate::codec;
use crate::command::{Command, IdempotencyStamp, Proposal, Request};
use crate::domain::lease::{Grant, LeaseId};
use crate::domain::lease_batch::LeaseBatch;
use crate::domain::token::Token;
pub use crate::domain::token::token_digest;
use crate::domain::{DomainError, State};
use crate::error::Error;
use crate::pki::{self, PkiError, SecretPem};
use crate::settings::Policy;

/// A proposal ready for `client_write`, plus any secret that must go back to
/// the caller but never into the log.
#[derive(Debug)]
pub struct Stamped {
    /// What is replicated.
    pub proposal: Proposal,
    /// A private key generated for the caller, if any.
    pub secret: Option<SecretPem>,
}

/// Digest of a request, to recognise a reused idempotency key.
pub fn fingerprint(request: &Request) -> [u8; 16] {
    let bytes = codec::encode(request).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest.as_ref()[..16]);
    out
}

impl From<PkiError> for Error {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Invalid(m) => Error::Domain(DomainError::Invalid(m)),
            PkiError::NoCa => Error::Domain(DomainError::Conflict(
                "the cluster CA is not initialized".into(),
            )),
            PkiError::NotFound(s) => Error::Domain(DomainError::CertificateNotFound(s)),
            PkiError::Ca(m) => Error::Internal(format!("pki: {m}")),
        }
    }
}

/// A fresh lease id: not zero, not in the table, not already `taken` by
/// an earlier grant of the same batch.
fn new_lease_id(state: &State, taken: &BTreeSet<LeaseId>) -> LeaseId {
    loop {
        let id: u64 = rand::rng().random();
        if id != 0 && state.leases.get(id).is_none() && !taken.contains(&id) {
            return id;
        }
    }
}

/// A fresh token: an accessor not in use, and a secret of 32 random bytes
/// (as `keel.` and 64 hex digits) with its digest, the only part kept.
fn new_token(state: &State) -> (String, [u8; 32], SecretPem) {
    let accessor = loop {
        let id: u64 = rand::rng().random();
        let accessor = format!("{id:016x}");
        if state.tokens.get(&accessor).is_none() {
            break accessor;
        }
    };
    let bytes: [u8; 32] = rand::rng().random();
    let secret = format!(
        "keel.{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    (accessor, token_digest(&secret), SecretPem::new(secret))
}

/// Whether `s` has the shape of a secret keel generates (`keel.` and 64
/// lowercase hex digits): anything else cannot be a replicated token.
pub fn looks_like_token(s: &str) -> bool {
    s.strip_prefix("keel.").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A grant's hard bound: as asked, or the configured default (never
/// below its ttl).
fn default_max_ttl(asked: Option<u64>, ttl_ms: u64, policy: &Policy) -> u64 {
    asked.unwrap_or(policy.lease_default_max_ttl_ms.max(ttl_ms))
}

/// Stamps `request` against the current `state`, at the proposer's
/// `clock` raised to the latest time already applied (stamped time never
/// goes backwards, whichever node leads).
pub fn stamp(
    request: Request,
    idempotency_key: Option<String>,
    clock: Millis,
    state: &State,
    policy: &Policy,
) -> Result<Stamped, Error> {
    let now = state.stamp_time(clock);
    let idempotency = idempotency_key.map(|key| IdempotencyStamp {
        fingerprint: fingerprint(&request),
        key,
    });
    let (request, scope) = match request {
        Request::Scoped { scope, request } => (*request, Some(scope)),
        request => (request, None),
    };
    let (command, secret) = match request {
        Request::Apply(command) => (command, None),
        Request::GrantLease {
            ttl_ms,
            max_ttl_ms,
            name,
            account,
            metadata,
        } => {
            let command = Command::GrantLease {
                id: new_lease_id(state, &BTreeSet::new()),
                max_ttl_ms: default_max_ttl(max_ttl_ms, ttl_ms, policy),
                ttl_ms,
                name,
                account,
                metadata,
            };
            (command, None)
        }
        Request::LeaseBatch {
            grant,
            renew,
            revoke,
        } => {
            let mut taken = BTreeSet::new();
            let grant = grant
                .into_iter()
                .map(|g| {
                    let id = new_lease_id(state, &taken);
                    taken.insert(id);
                    Grant {
                        id,
                        max_ttl_ms: default_max_ttl(g.max_ttl_ms, g.ttl_ms, policy),
                        ttl_ms: g.ttl_ms,
                        name: g.name,
                        account: g.account,
                        metadata: g.metadata,
                    }
                })
                .collect();
            let batch = LeaseBatch {
                grant,
                renew,
                revoke,
            };
            (Command::ApplyLeaseBatch { batch }, None)
        }
        Request::CreateToken {
            role,
            account,
            name,
            ttl_ms,
            max_ttl_ms,
            created_by,
        } => {
            let (accessor, secret_sha256, secret) = new_token(state);
            let command = Command::CreateToken {
                token: Token {
                    accessor,
                    secret_sha256,
                    role,
                    account,
                    name,
                    created_by,
                    ttl_ms,
                    issued_at: now,
                    expires_at: now.saturating_add(ttl_ms),
                    hard_expires_at: now.saturating_add(max_ttl_ms.unwrap_or(ttl_ms).max(ttl_ms)),
                },
            };
            (command, Some(secret))
        }
        Request::Scoped { .. } => {
            return Err(Error::Domain(DomainError::Invalid(
                "a scoped request cannot hold another".into(),
            )));
        }
        Request::IssueCertificate(spec) => {
            let ca = state.pki.ca().ok_or(PkiError::NoCa)?;
            let (cert, key) = pki::issue(ca, &spec, &policy.pki, now)?;
            (Command::RecordCertificate { cert }, Some(key))
        }
        Request::SignCertificate(spec) => {
            let ca = state.pki.ca().ok_or(PkiError::NoCa)?;
            let cert = pki::sign_csr(ca, &spec, &policy.pki, now)?;
            (Command::RecordCertificate { cert }, None)
        }
        Request::RenewCertificate(spec) => {
            let ca = state.pki.ca().ok_or(PkiError::NoCa)?;
            let old = state
                .pki
                .get(&spec.serial)
                .ok_or_else(|| PkiError::NotFound(spec.serial.clone()))?;
            let (cert, key) = pki::renew(ca, old, &spec, &policy.pki, now)?;
            (Command::RecordCertificate { cert }, key)
        }
    };
    Ok(Stamped {
        proposal: Proposal {
            now,
            command,
            idempotency,
            quotas: policy.quotas,
            scope,
        },
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_secrets_of_keels_shape_look_like_tokens() {
        let state = State::default();
        let (_, digest, secret) = new_token(&state);
        assert!(looks_like_token(secret.expose()));
        assert_eq!(token_digest(secret.expose()), digest);
        for not in [
            "",
            "keel.",
            "test-admin-token-0123456789",
            &format!("keel.{}", "A".repeat(64)),
            &format!("keel.{}", "a".repeat(63)),
            &format!("keel.{}", "a".repeat(65)),
            &format!("vault.{}", "a".repeat(64)),
        ] {
            assert!(!looks_like_token(not), "{not}");
        }
    }
}
