//! A census of the replicated state at a given time: how many leases,
//! accounts and certificates are in each derived state, the expiry debt
//! (leases past their deadline whose expiry has not been applied yet) and
//! the CRL's version. Pure: the caller passes `now`, so metrics, the status
//! API and tests all count the same way.

use serde::Serialize;

use super::State;
use super::account::AccountState;
use super::cert::{CertState, Pki};

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
    /// Counts everything as it stands at `now`. Leases are counted from
    /// indexes (the cost grows with accounts and overdue leases, not with
    /// leases held); accounts and certificates are walked. Meant for
    /// status pages and metric scrapes, not for a request's hot path.
    pub fn census(&self, now: Millis) -> Census {
        self.census_with(now, self.lease_census(now))
    }

    /// The lease counts and the expiry debt at `now`. Needs the deadline
    /// index, which only the live state has (a [`State::frozen`] copy
    /// leaves it empty): take these under the state lock, the rest of the
    /// census from a frozen copy with [`State::census_with`].
    pub fn lease_census(&self, now: Millis) -> (LeaseCounts, ExpiryDebt) {
        let leases = self.lease_counts(now);
        let debt = ExpiryDebt {
            leases: leases.expired,
            oldest_overdue_ms: self
                .leases
                .next_deadline()
                .map_or(0, |d| now.saturating_sub(d)),
        };
        (leases, debt)
    }

    /// A copy of what [`State::census_with`] walks (accounts and
    /// certificates), to count on off the state lock. Unlike
    /// [`State::frozen`] it leaves the lease table out: while a copy shares
    /// the table's nodes, every apply that removes or changes a lease
    /// copies the node it touches (copy-on-write), and a refresher that
    /// froze the table every quarter second made a storm of expiries copy
    /// most of a million leases again and again.
    pub fn frozen_for_census(&self) -> State {
        State {
            accounts: self.accounts.clone(),
            pki: self.pki.frozen(),
            ..State::default()
        }
    }

    /// The census at `now`, given its lease part (see
    /// [`State::lease_census`]); walks accounts and certificates, so it
    /// may run on a frozen copy, off the state lock.
    pub fn census_with(
        &self,
        now: Millis,
        (leases, expiry_debt): (LeaseCounts, ExpiryDebt),
    ) -> Census {
        let mut census = Census {
            leases,
            expiry_debt,
            ..Census::default()
        };
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

impl State {
    /// Leases by state at `now`, without visiting every lease: expired ones
    /// come from the deadline index (only those past their deadline, the
    /// expiry debt, are visited), suspended ones from the per-account
    /// lease counts of accounts that are not active, less those among
    /// them already expired; the rest are active.
    fn lease_counts(&self, now: Millis) -> LeaseCounts {
        let expired = self.leases.count_due(now) as u64;
        let mut suspended: u64 = self
            .accounts
            .iter_from(None)
            .filter(|a| a.state_at(now) != AccountState::Active)
            .map(|a| a.lease_count)
            .sum();
        // Overdue leases of inactive owners count as expired, not
        // suspended; only looked for when some owner is inactive.
        if suspended > 0 {
            let due_suspended = self
                .leases
                .due_iter(now)
                .filter_map(|(id, _)| self.leases.get(id))
                .filter(|l| {
                    l.account.is_some() && !self.accounts.owner_active(l.account.as_deref(), now)
                })
                .count() as u64;
            suspended = suspended.saturating_sub(due_suspended);
        }
        let total = self.leases.len() as u64;
        LeaseCounts {
            active: total.saturating_sub(expired + suspended),
            suspended,
            expired,
        }
    }
}
