//! The lease name index: `(name, id)` for every named lease, in name order,
//! so prefix lists and revokes visit only the leases they return.
//!
//! Removal is lazy. Taking one name out of a million-entry ordered set costs
//! some thirty string comparisons, each a cache miss on a name stored
//! elsewhere; in a storm of a million expiries that search was over half
//! of apply. So a removed lease's id goes into a `dropped` set (no string
//! compared) and readers skip it; once the dropped entries reach a quarter
//! of the set, one in-order pass (`retain`, a hash lookup per entry) takes
//! them all out, so a removal costs O(1) amortized. Dropped entries are at
//! most a quarter of the index (past a small floor): it holds at most a
//! third more than the named leases, and a prefix walk passes over at most
//! that many dropped names besides what it returns.
//!
//! The index is derived, never encoded or replicated, and readers see
//! exactly the live entries, so laziness changes no replica's answers.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use crate::lease::LeaseId;

/// Below this many dropped entries the index is never compacted: small
/// indexes are not worth a pass.
const COMPACT_MIN: usize = 4_096;

/// Names of the live leases, in name order, plus entries dropped but not
/// yet compacted away.
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    /// Every live `(name, id)`, and the dropped ones not yet compacted.
    entries: BTreeSet<(Arc<str>, LeaseId)>,
    /// Ids removed from the index but still in `entries`. An id is never
    /// both here and live in `entries`.
    dropped: HashSet<LeaseId>,
}

impl NameIndex {
    /// An index of `entries`, none dropped.
    pub fn from_entries(entries: impl IntoIterator<Item = (Arc<str>, LeaseId)>) -> Self {
        NameIndex {
            entries: entries.into_iter().collect(),
            dropped: HashSet::new(),
        }
    }

    /// How many live entries the index holds.
    pub fn len(&self) -> usize {
        self.entries.len() - self.dropped.len()
    }

    /// Whether no live entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many dropped entries wait for the next compaction.
    pub fn dropped(&self) -> usize {
        self.dropped.len()
    }

    /// Whether `(name, id)` is a live entry.
    pub fn contains(&self, name: &Arc<str>, id: LeaseId) -> bool {
        !self.dropped.contains(&id) && self.entries.contains(&(name.clone(), id))
    }

    /// Adds a live entry. If the id was dropped under some name (ids are
    /// drawn at random, so one can come back after its lease is gone,
    /// though all but never), the index is compacted first, so the id is
    /// live under `name` only.
    pub fn insert(&mut self, name: Arc<str>, id: LeaseId) {
        if self.dropped.contains(&id) {
            self.compact();
        }
        self.entries.insert((name, id));
    }

    /// Removes the live entry of `id`: marks it dropped, and compacts
    /// when a quarter of the entries are dropped.
    pub fn remove(&mut self, id: LeaseId) {
        self.dropped.insert(id);
        let dropped = self.dropped.len();
        if dropped >= COMPACT_MIN && dropped * 4 >= self.entries.len() {
            self.compact();
        }
    }

    /// The ids of the live entries whose name starts with `prefix`, in
    /// name order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = LeaseId> + 'a {
        let from: (Arc<str>, LeaseId) = (Arc::from(prefix), 0);
        self.entries
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(move |(name, _)| name.starts_with(prefix))
            .map(|(_, id)| *id)
            .filter(|id| !self.dropped.contains(id))
    }

    /// Takes every dropped entry out in one in-order pass. The dropped set
    /// keeps its room for the next round, up to what a quarter of the
    /// remaining entries needs.
    fn compact(&mut self) {
        let dropped = &self.dropped;
        self.entries.retain(|(_, id)| !dropped.contains(id));
        self.dropped.clear();
        self.dropped.shrink_to(self.entries.len() / 4);
    }
}
