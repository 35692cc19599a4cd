//! The idempotency table: recent `Idempotency-Key`s and the first result
//! each produced, so a retried write returns that result instead of applying
//! twice.
//!
//! At most [`MAX_ENTRIES`] are kept at once (the oldest forgotten first, on
//! every apply), and an entry older than the retention period (default
//! [`RETENTION_MS`], `--idempotency-retention`) is forgotten by the next
//! `TidyRecords` the leader proposes. Both run inside `apply`, on proposal
//! time, so every replica forgets the same keys at the same entry.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::clock::Millis;
use crate::command::{IdempotencyStamp, Response};

/// How long a key is remembered by default, in proposal time.
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
    entries: imbl::OrdMap<String, Remembered>,
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
    /// A copy for encoding: the table shares its storage with this one
    /// (O(1)); derived indexes are left empty.
    pub fn frozen(&self) -> Self {
        IdempotencyTable {
            entries: self.entries.clone(),
            by_time: BTreeSet::new(),
        }
    }

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

    /// Forgets keys older than `retention_ms` before `now`, and the oldest
    /// beyond the size cap. Returns how many were forgotten.
    pub fn prune(&mut self, now: Millis, retention_ms: Millis) -> u64 {
        if self.entries.is_empty() {
            return 0;
        }
        self.ensure_index();
        let horizon = now.saturating_sub(retention_ms);
        let mut forgotten = 0;
        while let Some((at, key)) = self.by_time.first().cloned() {
            if at >= horizon && self.entries.len() <= MAX_ENTRIES {
                break;
            }
            self.by_time.pop_first();
            self.entries.remove(&key);
            forgotten += 1;
        }
        forgotten
    }

    /// Forgets the oldest keys beyond the size cap (on every apply).
    pub fn cap(&mut self) {
        self.prune(0, Millis::MAX);
    }

    /// When the oldest remembered key was applied.
    pub fn oldest(&self) -> Option<Millis> {
        if self.by_time.len() == self.entries.len() {
            self.by_time.first().map(|(t, _)| *t)
        } else {
            self.entries.values().map(|e| e.at).min()
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
        t.cap();
        t.prune(10 + RETENTION_MS, RETENTION_MS);
        assert_eq!(t.len(), 1);
        assert_eq!(t.oldest(), Some(10));
        assert_eq!(t.prune(11 + RETENTION_MS, RETENTION_MS), 1);
        assert!(t.is_empty());
    }
}
