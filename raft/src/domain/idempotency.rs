//! The idempotency table: recent `Idempotency-Key`s and the first result
//! each produced, so a retried write returns that result instead of applying
//! twice.
//!
//! Entries are kept for [`RETENTION_MS`] of proposal time and at most
//! [`MAX_ENTRIES`] at once; both bounds are applied deterministically in
//! `apply`, so every replica forgets the same keys at the same entry.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::command::{IdempotencyStamp, Response};
use crate::domain::DomainError;

/// How long a key is remembered, in proposal time.
pub const RETENTION_MS: Millis = 60 * 60 * 1000;
/// How many keys are remembered at most; the oldest are forgotten first.
pub const MAX_ENTRIES: usize = 100_000;

/// One remembered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// When the key was first applied.
    pub at: Millis,
    /// The digest of the request it was first used with.
    pub fingerprint: [u8; 16],
    /// The first result.
    pub response: Response,
}

/// Keys to first results, bounded in time and size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdempotencyTable {
    entries: BTreeMap<String, Remembered>,
    #[serde(skip)]
    by_time: BTreeSet<(Millis, String)>,
}

impl PartialEq for IdempotencyTable {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}
impl Eq for IdempotencyTable {}

impl IdempotencyTable {
    /// The first result for this key, or a conflict if the key was used with
    /// another request; `None` if the key is new.
    pub fn lookup(&self, stamp: &IdempotencyStamp) -> Option<Response> {
        let entry = self.entries.get(&stamp.key)?;
        if entry.fingerprint == stamp.fingerprint {
            Some(entry.response.clone())
        } else {
            Some(Err(DomainError::IdempotencyConflict))
        }
    }

    /// Remembers the first result of a key.
    pub fn record(&mut self, stamp: &IdempotencyStamp, now: Millis, response: &Response) {
        self.ensure_index();
        let entry = Remembered {
            at: now,
            fingerprint: stamp.fingerprint,
            response: response.clone(),
        };
        if let Some(old) = self.entries.insert(stamp.key.clone(), entry) {
            self.by_time.remove(&(old.at, stamp.key.clone()));
        }
        self.by_time.insert((now, stamp.key.clone()));
    }

    /// Forgets keys older than the retention period and beyond the size cap.
    pub fn prune(&mut self, now: Millis) {
        if self.entries.is_empty() {
            return;
        }
        self.ensure_index();
        let horizon = now.saturating_sub(RETENTION_MS);
        while let Some((at, key)) = self.by_time.first().cloned() {
            if at >= horizon && self.entries.len() <= MAX_ENTRIES {
                break;
            }
            self.by_time.pop_first();
            self.entries.remove(&key);
        }
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The time index is not stored in snapshots; rebuild it lazily.
    fn ensure_index(&mut self) {
        if self.by_time.len() != self.entries.len() {
            self.by_time = self
                .entries
                .iter()
                .map(|(k, e)| (e.at, k.clone()))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Outcome;

    fn stamp(key: &str, fp: u8) -> IdempotencyStamp {
        IdempotencyStamp {
            key: key.into(),
            fingerprint: [fp; 16],
        }
    }

    #[test]
    fn remembers_first_result_and_detects_reuse() {
        let mut t = IdempotencyTable::default();
        assert_eq!(t.lookup(&stamp("a", 1)), None);
        t.record(&stamp("a", 1), 10, &Ok(Outcome::Count(3)));
        assert_eq!(t.lookup(&stamp("a", 1)), Some(Ok(Outcome::Count(3))));
        assert_eq!(
            t.lookup(&stamp("a", 2)),
            Some(Err(DomainError::IdempotencyConflict))
        );
    }

    #[test]
    fn forgets_after_retention() {
        let mut t = IdempotencyTable::default();
        t.record(&stamp("a", 1), 10, &Ok(Outcome::Done));
        t.prune(10 + RETENTION_MS);
        assert_eq!(t.len(), 1);
        t.prune(11 + RETENTION_MS);
        assert!(t.is_empty());
    }
}
