//! Leases: TTL grants with renew, revoke and expiry.
//!
//! Deadlines are absolute proposal times stored in replicated state, so a
//! leader change never moves them. A lease is `expired` the moment its
//! `expires_at` has passed, whatever the expiry manager has or has not yet
//! applied; it is removed from the table when an `ExpireLeases` or a revoke
//! is applied. Invariants kept by every operation:
//! `issued_at <= expires_at <= hard_expires_at`, the deadline index holds
//! exactly one `(expires_at, id)` per lease, and the name index exactly one
//! `(name, id)` per named lease (sharing the lease's name, not copying it),
//! so listing or revoking by prefix costs what it finds, not the table.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::account::{Accounts, Resource};
use crate::clock::Millis;
use crate::text;

/// A lease id: 64 random bits chosen by the proposer, shown as 16 hex digits.
pub type LeaseId = u64;

/// Shortest accepted TTL.
pub const MIN_TTL_MS: u64 = 1_000;
/// Longest accepted TTL or max TTL (one year); anything longer is refused.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3_600_000;
/// Longest accepted lease name.
pub const MAX_NAME_LEN: usize = 256;
/// Most metadata entries per lease.
pub const MAX_METADATA_ENTRIES: usize = 32;
/// Longest metadata key or value.
pub const MAX_METADATA_LEN: usize = 1024;

/// Formats a lease id the way the API shows it.
pub fn format_id(id: LeaseId) -> String {
    format!("{id:016x}")
}

/// Parses a lease id as the API shows it (exactly 16 hex digits).
pub fn parse_id(s: &str) -> Result<LeaseId, DomainError> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::Invalid(format!(
            "`{s}` is not a lease id (expected 16 hex digits)"
        )));
    }
    u64::from_str_radix(s, 16).map_err(|_| DomainError::Invalid(format!("`{s}` is not a lease id")))
}

/// A lease as stored in replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique id.
    pub id: LeaseId,
    /// Optional name, for prefix listing and revocation (shared with the
    /// name index).
    pub name: Option<Arc<str>>,
    /// Owning account, if any.
    pub account: Option<Box<str>>,
    /// Time to live of the grant and of each renewal by default.
    pub ttl_ms: u64,
    /// Bound on the whole life of the lease.
    pub max_ttl_ms: u64,
    /// When it was granted.
    pub issued_at: Millis,
    /// When it expires unless renewed.
    pub expires_at: Millis,
    /// When it expires whatever happens: `issued_at + max_ttl_ms`.
    pub hard_expires_at: Millis,
    /// How many renewals were applied.
    pub renewals: u32,
    /// Free-form string metadata.
    pub metadata: Metadata,
}

/// A lease's string metadata. Most leases have none, so an empty map costs
/// one pointer rather than a map header (keel holds millions of leases).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
// The box is the point: 8 bytes per lease without metadata instead of 24.
#[allow(clippy::box_collection)]
pub struct Metadata(Option<Box<BTreeMap<String, String>>>);

static NO_METADATA: BTreeMap<String, String> = BTreeMap::new();

impl Metadata {
    /// Wraps a map (an empty one is stored as nothing).
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Metadata((!map.is_empty()).then(|| Box::new(map)))
    }

    /// The entries.
    pub fn map(&self) -> &BTreeMap<String, String> {
        self.0.as_deref().unwrap_or(&NO_METADATA)
    }
}

/// A lease's state, derived at a given time from the lease and its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Counting down, renewable.
    Active,
    /// Its account is expired or disabled: still counting down, not renewable.
    Suspended,
    /// The deadline passed; revocation not yet applied.
    Expired,
    /// Revoked (only ever seen in the answer to a revoke).
    Revoked,
}

impl LeaseState {
    /// Parses the API's name of a state.
    pub fn parse(s: &str) -> Option<LeaseState> {
        match s {
            "active" => Some(LeaseState::Active),
            "suspended" => Some(LeaseState::Suspended),
            "expired" => Some(LeaseState::Expired),
            "revoked" => Some(LeaseState::Revoked),
            _ => None,
        }
    }
}

/// A lease and its state at some time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The lease.
    pub lease: Lease,
    /// Its derived state.
    pub state: LeaseState,
}

/// What a grant asks for, stamped with its id; validated again at apply
/// time. Travels in the log inside a lease batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Proposer-generated id.
    pub id: LeaseId,
    /// TTL.
    pub ttl_ms: u64,
    /// Max TTL.
    pub max_ttl_ms: u64,
    /// Name.
    pub name: Option<String>,
    /// Owning account.
    pub account: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Checks a TTL-like duration.
pub fn validate_ttl(what: &str, ms: u64) -> Result<(), DomainError> {
    if ms < MIN_TTL_MS {
        return Err(DomainError::Invalid(format!("{what} must be at least 1s")));
    }
    if ms > MAX_TTL_MS {
        return Err(DomainError::Invalid(format!(
            "{what} must be at most 8760h (one year)"
        )));
    }
    Ok(())
}

/// Checks a grant as apply sees it: the same checks the web layer made
/// before proposing it (see [`crate::text`]), plus the stamped bound.
fn validate_grant(g: &Grant) -> Result<(), DomainError> {
    validate_ttl("ttl", g.ttl_ms)?;
    validate_ttl("max_ttl", g.max_ttl_ms)?;
    if g.max_ttl_ms < g.ttl_ms {
        return Err(DomainError::Invalid("max_ttl must not be below ttl".into()));
    }
    if let Some(name) = &g.name {
        text::lease_name("name", name)?;
    }
    text::metadata(&g.metadata)?;
    text::maybe_account_ref("account", g.account.as_deref())
}

/// The deadline a renewal at `now` by `increment_ms` gives `lease`: later
/// by up to the increment, capped by the hard deadline, never earlier
/// than the deadline it has.
pub fn renewed_deadline(lease: &Lease, now: Millis, increment_ms: u64) -> Millis {
    let asked = now.saturating_add(increment_ms).min(lease.hard_expires_at);
    lease.expires_at.max(asked)
}

/// The lease table and its derived indexes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Leases {
    by_id: imbl::OrdMap<LeaseId, Lease>,
    /// `(expires_at, id)` for every lease; derived, rebuilt after load.
    #[serde(skip)]
    by_deadline: BTreeSet<(Millis, LeaseId)>,
    /// `(name, id)` for every named lease; derived, rebuilt after load.
    #[serde(skip)]
    by_name: BTreeSet<(Arc<str>, LeaseId)>,
}

impl PartialEq for Leases {
    fn eq(&self, other: &Self) -> bool {
        self.by_id == other.by_id
    }
}
impl Eq for Leases {}

impl Leases {
    /// A copy for encoding: the table shares its storage with this one
    /// (O(1)); derived indexes are left empty.
    pub fn frozen(&self) -> Self {
        Leases {
            by_id: self.by_id.clone(),
            by_deadline: BTreeSet::new(),
            by_name: BTreeSet::new(),
        }
    }

    /// Derives a lease's state at `now`.
    pub fn state_of(lease: &Lease, now: Millis, accounts: &Accounts) -> LeaseState {
        if lease.expires_at <= now {
            LeaseState::Expired
        } else if !accounts.owner_active(lease.account.as_deref(), now) {
            LeaseState::Suspended
        } else {
            LeaseState::Active
        }
    }

    /// A lease with its state at `now`.
    pub fn view(lease: &Lease, now: Millis, accounts: &Accounts) -> LeaseView {
        LeaseView {
            lease: lease.clone(),
            state: Self::state_of(lease, now, accounts),
        }
    }

    /// Looks a lease up.
    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.by_id.get(&id)
    }

    /// How many leases are held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Leases in id order starting after `after`.
    pub fn iter_from(&self, after: Option<LeaseId>) -> impl Iterator<Item = &Lease> {
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        self.by_id.range((start, Bound::Unbounded)).map(|(_, l)| l)
    }

    /// Every lease, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_id.values()
    }

    /// The earliest deadline held, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.by_deadline.first().map(|(t, _)| *t)
    }

    /// Up to `limit` leases whose deadline is at or before `now`, earliest first.
    pub fn due(&self, now: Millis, limit: usize) -> Vec<(LeaseId, Millis)> {
        self.due_after(now, None, limit)
    }

    /// Like [`Leases::due`], but only leases that come after `after`, a
    /// `(deadline, id)` position in deadline order: the expiration manager
    /// passes the last lease it has proposed, so batches in flight are not
    /// proposed again.
    pub fn due_after(
        &self,
        now: Millis,
        after: Option<(Millis, LeaseId)>,
        limit: usize,
    ) -> Vec<(LeaseId, Millis)> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let to = Bound::Included((now, LeaseId::MAX));
        if after.is_some_and(|a| a > (now, LeaseId::MAX)) {
            return Vec::new();
        }
        self.by_deadline
            .range((from, to))
            .take(limit)
            .map(|(t, id)| (*id, *t))
            .collect()
    }

    /// How many leases are past their deadline at `now` but not yet removed.
    ///
    /// Walks the deadline index from both ends at once and stops when one
    /// side is done, so it costs the smaller of the due and the not-yet-due
    /// leases: in a storm of a million expiries, the few that are not due.
    pub fn count_due(&self, now: Millis) -> usize {
        let split = (now, LeaseId::MAX);
        let mut due = self.by_deadline.range(..=split);
        let mut later = self
            .by_deadline
            .range((Bound::Excluded(split), Bound::Unbounded));
        // After `n` steps that found a lease on both sides, the side that
        // runs out first holds exactly `n`.
        let mut n = 0;
        loop {
            match (due.next(), later.next()) {
                (Some(_), Some(_)) => n += 1,
                (None, _) => return n,
                (Some(_), None) => return self.by_deadline.len() - n,
            }
        }
    }

    /// The leases past their deadline at `now`, earliest first, as
    /// `(id, deadline)`.
    pub fn due_iter(&self, now: Millis) -> impl Iterator<Item = (LeaseId, Millis)> + '_ {
        self.by_deadline
            .range(..=(now, LeaseId::MAX))
            .map(|(t, id)| (*id, *t))
    }

    /// Applies a grant.
    pub fn grant(
        &mut self,
        now: Millis,
        g: Grant,
        accounts: &mut Accounts,
    ) -> Result<LeaseView, DomainError> {
        validate_grant(&g)?;
        if self.by_id.contains_key(&g.id) {
            return Err(DomainError::Conflict(format!(
                "lease id {} is taken",
                format_id(g.id)
            )));
        }
        if let Some(name) = &g.account {
            accounts.admit(now, name, Resource::Lease, 0)?;
        }
        let hard = now.saturating_add(g.max_ttl_ms);
        let lease = Lease {
            id: g.id,
            name: g.name.map(Arc::from),
            account: g.account.map(String::into_boxed_str),
            ttl_ms: g.ttl_ms,
            max_ttl_ms: g.max_ttl_ms,
            issued_at: now,
            expires_at: now.saturating_add(g.ttl_ms).min(hard),
            hard_expires_at: hard,
            renewals: 0,
            metadata: Metadata::new(g.metadata),
        };
        if let Some(account) = &lease.account {
            accounts.adjust_usage(account, Resource::Lease, 1);
        }
        let view = Self::view(&lease, now, accounts);
        self.insert(lease);
        Ok(view)
    }

    /// Applies a renewal:
    /// `expires_at = max(expires_at, min(now + increment, hard_expires_at))`.
    ///
    /// A renewal never shortens a lease: a holder that asked for a short
    /// increment (or a proposer whose clock is behind the grant's) keeps the
    /// deadline it already had.
    pub fn renew(
        &mut self,
        now: Millis,
        id: LeaseId,
        increment_ms: Option<u64>,
        accounts: &Accounts,
    ) -> Result<LeaseView, DomainError> {
        if let Some(inc) = increment_ms {
            validate_ttl("increment", inc)?;
        }
        let lease = self
            .by_id
            .get(&id)
            .ok_or_else(|| DomainError::LeaseNotFound(format_id(id)))?;
        match Self::state_of(lease, now, accounts) {
            LeaseState::Expired | LeaseState::Revoked => {
                return Err(DomainError::LeaseNotFound(format_id(id)));
            }
            LeaseState::Suspended => return Err(DomainError::LeaseSuspended(format_id(id))),
            LeaseState::Active => {}
        }
        // The name does not change: only the deadline index moves.
        let mut lease = lease.clone();
        let increment = increment_ms.unwrap_or(lease.ttl_ms);
        self.by_deadline.remove(&(lease.expires_at, id));
        lease.expires_at = renewed_deadline(&lease, now, increment);
        lease.renewals = lease.renewals.saturating_add(1);
        self.by_deadline.insert((lease.expires_at, id));
        let view = Self::view(&lease, now, accounts);
        self.by_id.insert(id, lease);
        Ok(view)
    }

    /// Revokes one lease.
    pub fn revoke(&mut self, id: LeaseId, accounts: &mut Accounts) -> Result<(), DomainError> {
        let lease = self
            .remove_entry(id)
            .ok_or_else(|| DomainError::LeaseNotFound(format_id(id)))?;
        Self::release(&lease, accounts);
        Ok(())
    }

    /// Revokes every lease whose name starts with `prefix`.
    /// Under a tenant `scope`, only that account's leases are revoked.
    pub fn revoke_prefix(
        &mut self,
        prefix: &str,
        scope: Option<&str>,
        accounts: &mut Accounts,
    ) -> Result<u64, DomainError> {
        text::lease_name("prefix", prefix)?;
        let ids: Vec<LeaseId> = self
            .named_with_prefix(prefix)
            .filter(|id| {
                scope.is_none_or(|s| {
                    self.by_id
                        .get(id)
                        .is_some_and(|l| l.account.as_deref() == Some(s))
                })
            })
            .collect();
        Ok(self.remove_all(&ids, accounts))
    }

    /// The ids of the leases whose name starts with `prefix`, in name
    /// order; visits only those (the name index).
    fn named_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = LeaseId> + 'a {
        let from: (Arc<str>, LeaseId) = (Arc::from(prefix), 0);
        self.by_name
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(move |(name, _)| name.starts_with(prefix))
            .map(|(_, id)| *id)
    }

    /// The leases whose name starts with `prefix` and whose id is above
    /// `after`, in id order (the order of every lease list), found through
    /// the name index: the cost follows how many leases have the prefix,
    /// not how many there are.
    pub fn with_prefix(&self, prefix: &str, after: Option<LeaseId>) -> Vec<&Lease> {
        let mut ids: Vec<LeaseId> = self
            .named_with_prefix(prefix)
            .filter(|id| after.is_none_or(|a| *id > a))
            .collect();
        ids.sort_unstable();
        ids.iter().filter_map(|id| self.by_id.get(id)).collect()
    }

    /// Removes the listed leases whose deadline is at or before `now`.
    /// Leases that are gone or not yet due are skipped, so a stale or
    /// repeated batch changes nothing.
    pub fn expire(&mut self, now: Millis, ids: &[LeaseId], accounts: &mut Accounts) -> u64 {
        let mut n = 0;
        for id in ids {
            // One walk of the table for a due lease (nearly every one):
            // take it out, and put back the rare one renewed since the
            // batch was proposed.
            let Some(lease) = self.by_id.remove(id) else {
                continue;
            };
            if lease.expires_at > now {
                self.by_id.insert(*id, lease);
                continue;
            }
            self.unindex(&lease);
            Self::release(&lease, accounts);
            n += 1;
        }
        n
    }

    /// Revokes every lease an account owns.
    pub fn revoke_owned_by(&mut self, account: &str, accounts: &mut Accounts) -> u64 {
        let ids: Vec<LeaseId> = self
            .by_id
            .values()
            .filter(|l| l.account.as_deref() == Some(account))
            .map(|l| l.id)
            .collect();
        self.remove_all(&ids, accounts)
    }

    /// Rebuilds the derived indexes after a snapshot was decoded.
    pub fn rebuild_indexes(&mut self) {
        self.by_deadline = self.by_id.values().map(|l| (l.expires_at, l.id)).collect();
        self.by_name = self
            .by_id
            .values()
            .filter_map(|l| Some((l.name.clone()?, l.id)))
            .collect();
    }

    fn remove_all(&mut self, ids: &[LeaseId], accounts: &mut Accounts) -> u64 {
        let mut n = 0;
        for id in ids {
            if let Some(lease) = self.remove_entry(*id) {
                Self::release(&lease, accounts);
                n += 1;
            }
        }
        n
    }

    fn release(lease: &Lease, accounts: &mut Accounts) {
        if let Some(account) = &lease.account {
            accounts.adjust_usage(account, Resource::Lease, -1);
        }
    }

    fn insert(&mut self, lease: Lease) {
        self.by_deadline.insert((lease.expires_at, lease.id));
        if let Some(name) = &lease.name {
            self.by_name.insert((name.clone(), lease.id));
        }
        self.by_id.insert(lease.id, lease);
    }

    fn remove_entry(&mut self, id: LeaseId) -> Option<Lease> {
        let lease = self.by_id.remove(&id)?;
        self.unindex(&lease);
        Some(lease)
    }

    /// Drops a lease taken out of the table from the derived indexes.
    fn unindex(&mut self, lease: &Lease) {
        self.by_deadline.remove(&(lease.expires_at, lease.id));
        if let Some(name) = &lease.name {
            self.by_name.remove(&(name.clone(), lease.id));
        }
    }

    /// Checks the structural invariants; used by tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.by_deadline.len() != self.by_id.len() {
            return Err("deadline index size differs from the table".into());
        }
        let named = self.by_id.values().filter(|l| l.name.is_some()).count();
        if self.by_name.len() != named {
            return Err("name index size differs from the named leases".into());
        }
        for l in self.by_id.values() {
            if !(l.issued_at <= l.expires_at && l.expires_at <= l.hard_expires_at) {
                return Err(format!(
                    "lease {} breaks issued <= expires <= hard",
                    format_id(l.id)
                ));
            }
            if let Some(name) = &l.name
                && !self.by_name.contains(&(name.clone(), l.id))
            {
                return Err(format!(
                    "lease {} missing from the name index",
                    format_id(l.id)
                ));
            }
            if !self.by_deadline.contains(&(l.expires_at, l.id)) {
                return Err(format!(
                    "lease {} missing from the deadline index",
                    format_id(l.id)
                ));
            }
        }
        Ok(())
    }
}
