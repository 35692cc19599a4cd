//! Tenant scope: a proposal made for a tenant credential carries the
//! account it acts for, and apply refuses anything outside it. The check
//! runs where the state is exact (in apply, on every replica alike), so a
//! tenant can never touch another account's lease or certificate, however
//! its request raced with others.
//!
//! Under a scope: a grant or a certificate must name the account; a
//! renewal, revoke, activation or revocation must find an object the
//! account owns (an object that does not exist is answered as not found,
//! as without a scope); a prefix revoke takes only the account's leases;
//! anything else (accounts, tokens, restores, the CA) is refused.

use crate::command::Command;
use crate::lease::LeaseId;
use crate::{DomainError, State};

fn outside(scope: &str, what: &str) -> DomainError {
    DomainError::Forbidden(format!(
        "a tenant token of account `{scope}` may not {what}"
    ))
}

fn owned_by(scope: &str, account: Option<&str>, what: &str) -> Result<(), DomainError> {
    if account == Some(scope) {
        Ok(())
    } else {
        Err(outside(scope, what))
    }
}

/// Refuses a grant under `scope` for any other account (or none).
pub(crate) fn check_grant_scope(scope: &str, account: Option<&str>) -> Result<(), DomainError> {
    owned_by(scope, account, "grant a lease for another account")
}

impl State {
    /// Refuses `command` when a tenant `scope` may not apply it.
    pub fn check_scope(&self, scope: Option<&str>, command: &Command) -> Result<(), DomainError> {
        let Some(scope) = scope else {
            return Ok(());
        };
        match command {
            Command::GrantLease { account, .. } => check_grant_scope(scope, account.as_deref()),
            Command::RenewLease { id, .. } | Command::RevokeLease { id } => {
                self.check_lease_scope(scope, *id)
            }
            // Checked item by item, and by owner, when they apply.
            Command::ApplyLeaseBatch { .. } | Command::RevokeLeasePrefix { .. } => Ok(()),
            Command::RecordCertificate { cert } => owned_by(
                scope,
                cert.account.as_deref(),
                "record a certificate for another account",
            ),
            Command::ActivateCertificate { serial } | Command::RevokeCertificate { serial, .. } => {
                match self.pki.get(serial) {
                    Some(cert) => owned_by(
                        scope,
                        cert.account.as_deref(),
                        "change another account's certificate",
                    ),
                    None => Ok(()),
                }
            }
            other => Err(outside(scope, &format!("apply {}", other.verb()))),
        }
    }

    /// Refuses a lease another account owns; a missing lease passes (its
    /// command answers not found).
    pub(crate) fn check_lease_scope(&self, scope: &str, id: LeaseId) -> Result<(), DomainError> {
        match self.leases.get(id) {
            Some(lease) => owned_by(
                scope,
                lease.account.as_deref(),
                "touch another account's lease",
            ),
            None => Ok(()),
        }
    }
}
