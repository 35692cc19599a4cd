//! Cluster-wide quotas: upper bounds on how many accounts, leases and
//! certificate records the whole cluster holds, so no client can grow the
//! replicated state (and every node's memory and snapshots) without bound.
//!
//! The quotas in force are the proposing leader's (`--max-accounts`,
//! `--max-leases`, `--max-certificates`), stamped into every proposal, and
//! apply checks them against the replicated counts: every replica refuses
//! the same entry, and two concurrent requests can never both take the
//! last slot. Removing objects (revoke, expiry, pruning) frees room.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::{DomainError, State};

/// Cluster-wide upper bounds; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Most accounts the cluster holds.
    #[serde(default)]
    pub max_accounts: Option<u64>,
    /// Most leases the cluster holds (expired ones count until removed).
    #[serde(default)]
    pub max_leases: Option<u64>,
    /// Most certificate records the cluster holds (revoked and expired ones
    /// count until pruned, see `--pki-retention`).
    #[serde(default)]
    pub max_certificates: Option<u64>,
}

pub(crate) fn check(
    resource: &'static str,
    held: usize,
    limit: Option<u64>,
) -> Result<(), DomainError> {
    match limit {
        Some(limit) if held as u64 >= limit => Err(DomainError::QuotaExceeded {
            resource: resource.to_string(),
            limit,
        }),
        _ => Ok(()),
    }
}

impl State {
    /// Refuses a command that would create an object beyond a quota.
    pub fn check_quotas(&self, quotas: &Quotas, command: &Command) -> Result<(), DomainError> {
        match command {
            Command::CreateAccount { name, .. } if self.accounts.find(name).is_none() => {
                check("accounts", self.accounts.len(), quotas.max_accounts)
            }
            Command::GrantLease { .. } => check("leases", self.leases.len(), quotas.max_leases),
            Command::RecordCertificate { .. } => {
                check("certificates", self.pki.len(), quotas.max_certificates)
            }
            _ => Ok(()),
        }
    }
}
