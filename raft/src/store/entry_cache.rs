//! The tail of the Raft log kept in memory, decrypted and decoded.
//!
//! Every entry a node appends is read back soon after: by the state
//! machine worker to apply it, and on a leader by each follower's
//! replication task. Read from RocksDB, each of those reads costs an
//! iterator, a decryption and a decode; the cache answers them from the
//! entries the store just appended. It holds a contiguous run of the log's
//! last entries, bounded in count and stored bytes; a read it cannot answer
//! in full (a lagging follower's, or any before this store's first append)
//! goes to the database.
//!
//! It mirrors the log store's writes in their order (append, truncate,
//! purge), each made after the database write it mirrors, so it never
//! holds an entry the database does not. It claims to end where the log
//! ends only once an append has started exactly at the log's end; any
//! other append empties it until one does.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::types::Entry;

/// Most entries kept.
const MAX_ENTRIES: usize = 1024;
/// Most stored (encrypted) bytes kept; the memory it costs is of the same
/// order.
const MAX_BYTES: usize = 4 << 20;

/// Recent entries of one log store, shared with its readers.
#[derive(Debug, Default)]
pub(crate) struct EntryCache {
    tail: Mutex<Tail>,
}

#[derive(Debug, Default)]
struct Tail {
    /// Index of `entries[0]` (or where the next append would go, if empty).
    first: u64,
    /// Each entry with its stored size.
    entries: VecDeque<(Arc<Entry>, usize)>,
    bytes: usize,
    /// Whether the log holds nothing past the last cached entry, so the
    /// cache answers any read that starts at or after `first`.
    at_end: bool,
}

impl Tail {
    fn next(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn clear_at(&mut self, first: u64, at_end: bool) {
        self.entries.clear();
        self.bytes = 0;
        self.first = first;
        self.at_end = at_end;
    }

    fn evict(&mut self) {
        while self.entries.len() > MAX_ENTRIES || (self.bytes > MAX_BYTES && self.entries.len() > 1)
        {
            let (_, size) = self.entries.pop_front().expect("not empty");
            self.bytes -= size;
            self.first += 1;
        }
    }
}

impl EntryCache {
    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records entries just written, with their stored sizes, in index
    /// order and without gaps. `log_end` is where the log ended before
    /// this append (the index of its last entry, or its purge point).
    pub(crate) fn appended(&self, log_end: u64, entries: Vec<(Entry, usize)>) {
        let Some(start) = entries.first().map(|(e, _)| e.log_id.index) else {
            return;
        };
        let mut tail = self.tail();
        if !(tail.at_end && start == tail.next()) {
            if start == log_end.saturating_add(1) {
                tail.clear_at(start, true);
            } else {
                // Not where the log ended: what lies past it is unknown.
                tail.clear_at(0, false);
                return;
            }
        }
        for (entry, size) in entries {
            tail.bytes += size;
            tail.entries.push_back((Arc::new(entry), size));
        }
        tail.evict();
    }

    /// Mirrors a truncation: every entry from `from` on is gone.
    pub(crate) fn truncated_from(&self, from: u64) {
        let mut tail = self.tail();
        if from <= tail.first {
            let at_end = tail.at_end;
            tail.clear_at(from, at_end);
            return;
        }
        while tail.next() > from {
            let (_, size) = tail.entries.pop_back().expect("not empty");
            tail.bytes -= size;
        }
    }

    /// Mirrors a purge: every entry up to and including `through` is gone.
    pub(crate) fn purged_through(&self, through: u64) {
        let mut tail = self.tail();
        if through >= tail.next() {
            let at_end = tail.at_end;
            tail.clear_at(through.saturating_add(1), at_end);
            return;
        }
        while tail.first <= through {
            let (_, size) = tail.entries.pop_front().expect("not empty");
            tail.bytes -= size;
            tail.first += 1;
        }
    }

    /// The entries from `start` up to (excluding) `end`, stopping after
    /// the one that brings their stored size to `max_bytes`; `None` if the
    /// cache cannot answer for all of them.
    pub(crate) fn read(&self, start: u64, end: u64, max_bytes: usize) -> Option<Vec<Entry>> {
        let picked: Vec<Arc<Entry>> = {
            let tail = self.tail();
            if !tail.at_end || start < tail.first {
                return None;
            }
            let skip = usize::try_from(start - tail.first).ok()?;
            let mut bytes = 0usize;
            let mut picked = Vec::new();
            for (entry, size) in tail.entries.iter().skip(skip) {
                if entry.log_id.index >= end {
                    break;
                }
                picked.push(entry.clone());
                bytes = bytes.saturating_add(*size);
                if bytes >= max_bytes {
                    break;
                }
            }
            picked
        };
        // Cloned outside the lock: the store's appends do not wait on it.
        Some(picked.iter().map(|e| Entry::clone(e)).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::EntryPayload;
    use openraft::testing::log_id;
    use proptest::prelude::*;

    use super::*;
    use crate::types::TypeConfig;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id::<TypeConfig>(term, 1, index),
            payload: EntryPayload::Blank,
        }
    }

    /// The log as the database holds it, with the store's `LogEnd`.
    #[derive(Default)]
    struct Model {
        log: BTreeMap<u64, u64>,
        purged: u64,
    }

    impl Model {
        fn end(&self) -> u64 {
            self.log
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
                .max(self.purged)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Append `n` entries at the log's end, plus `skew`: an append
        /// that overwrites without a truncation, or leaves a gap, which the
        /// cache must not trust.
        Append {
            n: u64,
            term: u64,
            skew: i8,
        },
        Truncate {
            back: u64,
        },
        Purge {
            ahead: u64,
        },
        Read {
            from_end: u64,
            len: u64,
            max_bytes: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Short appends and reads near the end, where the cache and
            // the log can disagree; long ones to pass the bounds.
            4 => (prop_oneof![3 => 1..8u64, 1 => 1..1200u64], 1..4u64,
                  prop_oneof![3 => Just(0i8), 1 => -3..3i8])
                .prop_map(|(n, term, skew)| Op::Append { n, term, skew }),
            1 => prop_oneof![0..8u64, 0..800u64].prop_map(|back| Op::Truncate { back }),
            1 => prop_oneof![0..8u64, 0..1500u64].prop_map(|ahead| Op::Purge { ahead }),
            6 => (prop_oneof![3 => 0..8u64, 1 => 0..1500u64], 0..1500u64, 1..4000usize)
                .prop_map(|(from_end, len, max_bytes)| Op::Read { from_end, len, max_bytes }),
        ]
    }

    proptest! {
        /// Whatever the cache answers is what the database would.
        #[test]
        fn answers_only_what_the_log_holds(ops in proptest::collection::vec(op(), 1..60)) {
            let cache = EntryCache::default();
            let mut model = Model::default();
            for op in ops {
                match op {
                    Op::Append { n, term, skew } => {
                        let end = model.end();
                        let start = (end as i64 + 1 + skew as i64).max(1) as u64;
                        let entries: Vec<(Entry, usize)> =
                            (start..start + n).map(|i| (entry(term, i), 1 + (i % 7) as usize)).collect();
                        for (e, _) in &entries {
                            model.log.insert(e.log_id.index, term);
                        }
                        cache.appended(end, entries);
                    }
                    Op::Truncate { back } => {
                        let from = model.end().saturating_sub(back).max(1);
                        model.log.split_off(&from);
                        cache.truncated_from(from);
                    }
                    Op::Purge { ahead } => {
                        let first = model.log.keys().next().copied().unwrap_or(model.purged + 1);
                        let through = first + ahead;
                        model.log = model.log.split_off(&(through + 1));
                        model.purged = model.purged.max(through);
                        cache.purged_through(through);
                    }
                    Op::Read { from_end, len, max_bytes } => {
                        let start = model.end().saturating_sub(from_end);
                        if let Some(got) = cache.read(start, start + len, max_bytes) {
                            let mut want = Vec::new();
                            let mut bytes = 0;
                            for (&i, &term) in model.log.range(start..start + len) {
                                want.push((i, term));
                                bytes += 1 + (i % 7) as usize;
                                if bytes >= max_bytes {
                                    break;
                                }
                            }
                            let got: Vec<(u64, u64)> =
                                got.iter().map(|e| (e.log_id.index, e.log_id.leader_id.term)).collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn answers_reads_of_the_tail_after_an_append_at_the_end() {
        let cache = EntryCache::default();
        assert!(
            cache.read(1, 10, usize::MAX).is_none(),
            "nothing appended yet"
        );
        cache.appended(4, (5..=9).map(|i| (entry(1, i), 10)).collect());
        let got = cache.read(6, 100, usize::MAX).expect("in the cache");
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [6, 7, 8, 9]
        );
        assert!(cache.read(4, 100, usize::MAX).is_none(), "before the cache");
        let got = cache.read(6, 100, 15).expect("in the cache");
        assert_eq!(
            got.len(),
            2,
            "stops after the entry that reaches the byte limit"
        );
    }
}
