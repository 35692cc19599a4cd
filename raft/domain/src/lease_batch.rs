//! Many lease operations in one log entry: grants, renewals and revokes.
//!
//! A batch is not all-or-nothing. Its items apply one by one, grants first,
//! then renewals, then revokes, each in the order given, and each gets its
//! own result: an item that is refused (a lease not found, an account at
//! its limit, the cluster at its quota) changes nothing, and the items
//! after it still apply. Every replica applies the same entry the same way,
//! so per-item results are as deterministic as single commands.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::lease::{self, LeaseId, LeaseView};
use crate::quota::{self, Quotas};
use crate::scope::check_grant_scope;
use crate::{DomainError, State};

/// Most items in each list of a batch (grants, renewals, revokes).
pub const MAX_BATCH_ITEMS: usize = 1000;

/// One grant as a client asks for it, before the leader picks its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// Time to live.
    pub ttl_ms: u64,
    /// Hard bound; defaults to the configured maximum.
    pub max_ttl_ms: Option<u64>,
    /// Optional name.
    pub name: Option<String>,
    /// Optional owning account.
    pub account: Option<String>,
    /// String metadata.
    pub metadata: BTreeMap<String, String>,
}

impl GrantRequest {
    /// A grant as a client asks for it, checked: `ttl` and `max_ttl` within
    /// bounds, the name, account reference and metadata well formed. As in
    /// Vault, a `ttl` above the grant's `max_ttl` is capped to it.
    pub fn new(
        ttl_ms: u64,
        max_ttl_ms: Option<u64>,
        name: Option<String>,
        account: Option<String>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Self, DomainError> {
        lease::validate_ttl("ttl", ttl_ms)?;
        if let Some(max) = max_ttl_ms {
            lease::validate_ttl("max_ttl", max)?;
        }
        if let Some(name) = &name {
            crate::text::lease_name("name", name)?;
        }
        crate::text::maybe_account_ref("account", account.as_deref())?;
        crate::text::metadata(&metadata)?;
        Ok(GrantRequest {
            ttl_ms: max_ttl_ms.map_or(ttl_ms, |max| ttl_ms.min(max)),
            max_ttl_ms,
            name,
            account,
            metadata,
        })
    }
}

/// One renewal of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRenewal {
    /// The lease.
    pub id: LeaseId,
    /// Extension from now; defaults to the lease's ttl.
    pub increment_ms: Option<u64>,
}

/// The items of a batch, as replicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBatch {
    /// Leases to grant, stamped with ids unique in the table and in the
    /// batch.
    pub grant: Vec<lease::Grant>,
    /// Leases to renew.
    pub renew: Vec<BatchRenewal>,
    /// Leases to revoke.
    pub revoke: Vec<LeaseId>,
}

impl LeaseBatch {
    /// Refuses a batch with a list longer than [`MAX_BATCH_ITEMS`].
    pub fn validate_sizes(grant: usize, renew: usize, revoke: usize) -> Result<(), DomainError> {
        for (what, n) in [("grant", grant), ("renew", renew), ("revoke", revoke)] {
            if n > MAX_BATCH_ITEMS {
                return Err(DomainError::Invalid(format!(
                    "`{what}` holds {n} items; a batch takes at most {MAX_BATCH_ITEMS} per list"
                )));
            }
        }
        Ok(())
    }

    /// How many items the batch holds in all.
    pub fn len(&self) -> usize {
        self.grant.len() + self.renew.len() + self.revoke.len()
    }

    /// `true` when the batch holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-item results of an applied batch, in the order of its lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResults {
    /// One per grant: the new lease, or why it was refused.
    pub grant: Vec<Result<LeaseView, DomainError>>,
    /// One per renewal: the renewed lease, or why it was refused.
    pub renew: Vec<Result<LeaseView, DomainError>>,
    /// One per revoke.
    pub revoke: Vec<Result<(), DomainError>>,
}

impl BatchResults {
    /// How many items took effect.
    pub fn succeeded(&self) -> usize {
        self.grant.iter().filter(|r| r.is_ok()).count()
            + self.renew.iter().filter(|r| r.is_ok()).count()
            + self.revoke.iter().filter(|r| r.is_ok()).count()
    }
}

impl State {
    /// Applies every item of `batch` at `now`, each on its own.
    pub(crate) fn apply_lease_batch(
        &mut self,
        now: Millis,
        batch: &LeaseBatch,
        quotas: &Quotas,
        scope: Option<&str>,
    ) -> BatchResults {
        let grant = batch
            .grant
            .iter()
            .map(|g| {
                if let Some(scope) = scope {
                    check_grant_scope(scope, g.account.as_deref())?;
                }
                quota::check("leases", self.leases.len(), quotas.max_leases)?;
                self.leases.grant(now, g.clone(), &mut self.accounts)
            })
            .collect();
        let renew = batch
            .renew
            .iter()
            .map(|r| {
                if let Some(scope) = scope {
                    self.check_lease_scope(scope, r.id)?;
                }
                self.leases.renew(now, r.id, r.increment_ms, &self.accounts)
            })
            .collect();
        let revoke = batch
            .revoke
            .iter()
            .map(|id| {
                if let Some(scope) = scope {
                    self.check_lease_scope(scope, *id)?;
                }
                self.leases.revoke(*id, &mut self.accounts)
            })
            .collect();
        BatchResults {
            grant,
            renew,
            revoke,
        }
    }
}
