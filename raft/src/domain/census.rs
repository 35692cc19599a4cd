//! A census of the replicated state at a given time: how many leases,
//! accounts and certificates are in each derived state, the expiry debt
//! (leases past their deadline whose expiry has not been applied yet) and
//! the CRL's version. Pure: the caller passes `now`, so metrics, the status
//! API and tests all count the same way.

use serde::Serialize;

use super::State;
use super::account::AccountState;
use super::cert::{CertState, Pki};
use super::lease::{LeaseState, Leases};
use crate::clock::Millis;

/// Leases by derived state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LeaseCounts {
    /// Counting down, owner active.
    pub active: u64,
    /// Counting down, owner expired or disabled.
    pub suspended: u64,
    /// Past the deadline, expiry not applied yet (the expiry debt).
    pub expired: u64,
}

/// Accounts by derived state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountCounts {
    /// Active.
    pub active: u64,
    /// Past their `expires_at`.
    pub expired: u64,
    /// Switched off by an operator.
    pub disabled: u64,
}

/// Certificates by derived state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CertCounts {
    /// Valid and in force.
    pub active: u64,
    /// On hold because the owner is not active.
    pub suspended: u64,
    /// Replaced by a renewal that was activated.
    pub superseded: u64,
    /// Revoked.
    pub revoked: u64,
    /// Past `not_after`.
    pub expired: u64,
}

/// Leases whose deadline passed but whose expiry is not applied yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryDebt {
    /// How many.
    pub leases: u64,
    /// How long ago the oldest of them was due, in ms (0 when none).
    pub oldest_overdue_ms: u64,
}

/// The CRL's version, as replicated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CrlStatus {
    /// Whether the cluster CA exists yet.
    pub ca_initialized: bool,
    /// The CRL number.
    pub number: u64,
    /// Its thisUpdate, ms since the Unix epoch.
    pub this_update_ms: Millis,
    /// Serials it lists.
    pub entries: u64,
}

/// Counts of everything, at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Leases by state.
    pub leases: LeaseCounts,
    /// Accounts by state.
    pub accounts: AccountCounts,
    /// Certificates by state.
    pub certificates: CertCounts,
    /// The expiry debt.
    pub expiry_debt: ExpiryDebt,
    /// The CRL.
    pub crl: CrlStatus,
}

impl State {
    /// Counts everything as it stands at `now`. Walks every object: meant
    /// for status pages and metric scrapes, not for a request's hot path.
    pub fn census(&self, now: Millis) -> Census {
        let mut census = Census::default();
        for lease in self.leases.iter() {
            match Leases::state_of(lease, now, &self.accounts) {
                LeaseState::Active => census.leases.active += 1,
                LeaseState::Suspended => census.leases.suspended += 1,
                LeaseState::Expired => {
                    census.leases.expired += 1;
                    let overdue = now.saturating_sub(lease.expires_at);
                    census.expiry_debt.oldest_overdue_ms =
                        census.expiry_debt.oldest_overdue_ms.max(overdue);
                }
                // A revoked lease is gone from the table; the state only
                // appears in the answer to the revoke itself.
                LeaseState::Revoked => {}
            }
        }
        census.expiry_debt.leases = census.leases.expired;
        for account in self.accounts.iter_from(None) {
            match account.state_at(now) {
                AccountState::Active => census.accounts.active += 1,
                AccountState::Expired => census.accounts.expired += 1,
                AccountState::Disabled => census.accounts.disabled += 1,
            }
        }
        for cert in self.pki.iter_from(None) {
            match Pki::state_of(cert, now, &self.accounts) {
                CertState::Active => census.certificates.active += 1,
                CertState::Suspended => census.certificates.suspended += 1,
                CertState::Superseded => census.certificates.superseded += 1,
                CertState::Revoked => census.certificates.revoked += 1,
                CertState::Expired => census.certificates.expired += 1,
            }
        }
        let crl = self.pki.crl_version();
        census.crl = CrlStatus {
            ca_initialized: self.pki.ca().is_some(),
            number: crl.number,
            this_update_ms: crl.this_update,
            entries: self.pki.crl_entries().len() as u64,
        };
        census
    }
}
