//! Fitting log batches into peer messages, so replication never wedges on
//! a backlog larger than a peer accepts.
//!
//! The log reader already hands replication batches of at most
//! [`REPLICATION_BATCH_BYTES`] of stored entries. The network then encodes
//! each AppendEntries request within the peer message limit, dropping
//! trailing entries (never the first) when it does not fit; the caller
//! reports what it sent as a partial success, and openraft sends the rest
//! in the next request. A single entry always fits, because the API body
//! limit is validated against the peer message limit at config load.

use std::time::Duration;

use openraft::raft::AppendEntriesRequest;

use crate::codec::{self, CodecError};
use crate::types::TypeConfig;

/// Target size of one replication batch, in stored entry bytes: large
/// enough for catch-up throughput, small enough to send well within an
/// RPC timeout.
pub const REPLICATION_BATCH_BYTES: usize = 4 << 20;

/// The smallest budget a peer's "too large" answer shrinks the batch to.
pub(crate) const MIN_BUDGET: usize = 64 << 10;

/// Throughput assumed when giving a large append time to arrive.
const ASSUMED_BYTES_PER_SEC: u64 = 8 << 20;

/// Encodes `rpc`, first dropping trailing entries until the encoding is at
/// most `budget` bytes or one entry is left. `rpc.entries` is left holding
/// exactly what the returned body carries.
pub(crate) fn encode_within(
    rpc: &mut AppendEntriesRequest<TypeConfig>,
    budget: usize,
) -> Result<Vec<u8>, CodecError> {
    let body = codec::encode(&*rpc)?;
    if body.len() <= budget || rpc.entries.len() <= 1 {
        return Ok(body);
    }
    // The longest prefix whose entries' encodings fit beside the rest of
    // the message; an entry inside the request encodes as it does alone,
    // less the version byte.
    let sizes = rpc
        .entries
        .iter()
        .map(|e| codec::encode(e).map(|b| b.len() - 1))
        .collect::<Result<Vec<_>, _>>()?;
    let overhead = body.len() - sizes.iter().sum::<usize>();
    let mut total = overhead;
    let mut keep = 0;
    for size in sizes {
        if keep > 0 && total + size > budget {
            break;
        }
        total += size;
        keep += 1;
    }
    rpc.entries.truncate(keep.max(1));
    loop {
        let body = codec::encode(&*rpc)?;
        if body.len() <= budget || rpc.entries.len() <= 1 {
            return Ok(body);
        }
        let half = (rpc.entries.len() / 2).max(1);
        rpc.entries.truncate(half);
    }
}

/// How long an append of `bytes` may take: an empty one (a heartbeat or a
/// commit update) keeps openraft's deadline; one carrying entries gets at
/// least `floor`, plus time for its bytes, so a large batch to a slow peer
/// is not timed out and resent forever.
pub(crate) fn append_timeout(
    hard_ttl: Duration,
    floor: Duration,
    bytes: usize,
    empty: bool,
) -> Duration {
    if empty {
        return hard_ttl;
    }
    let transfer = Duration::from_millis(bytes as u64 * 1000 / ASSUMED_BYTES_PER_SEC);
    hard_ttl.max(floor + transfer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Proposal};
    use crate::types::{Entry, Vote};

    fn request(entries: usize, payload: usize) -> AppendEntriesRequest<TypeConfig> {
        let entries = (1..=entries as u64)
            .map(|i| Entry {
                log_id: openraft::testing::log_id::<TypeConfig>(1, 1, i),
                payload: openraft::EntryPayload::Normal(Proposal {
                    now: 0,
                    command: Command::InitCluster {
                        cluster_id: "x".repeat(payload),
                    },
                    quotas: Default::default(),
                    scope: None,
                    idempotency: None,
                }),
            })
            .collect();
        AppendEntriesRequest {
            vote: Vote::new(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        }
    }

    #[test]
    fn a_batch_that_fits_is_sent_whole() {
        let mut rpc = request(10, 1000);
        let body = encode_within(&mut rpc, 1 << 20).unwrap();
        assert_eq!(rpc.entries.len(), 10);
        assert!(body.len() < 1 << 20);
    }

    #[test]
    fn a_batch_too_large_is_cut_to_a_prefix_that_fits() {
        let mut rpc = request(100, 10_000);
        let body = encode_within(&mut rpc, 64 << 10).unwrap();
        assert!(body.len() <= 64 << 10, "{} bytes", body.len());
        assert!(
            rpc.entries.len() >= 5 && rpc.entries.len() < 7,
            "{}",
            rpc.entries.len()
        );
        assert_eq!(rpc.entries[0].log_id.index, 1);
    }

    #[test]
    fn one_entry_is_always_sent() {
        let mut rpc = request(3, 100_000);
        let body = encode_within(&mut rpc, 1000).unwrap();
        assert_eq!(rpc.entries.len(), 1);
        assert!(body.len() > 1000);
    }

    #[test]
    fn large_appends_get_time_for_their_bytes() {
        let hb = Duration::from_millis(100);
        let floor = Duration::from_secs(2);
        assert_eq!(append_timeout(hb, floor, 0, true), hb);
        assert_eq!(append_timeout(hb, floor, 1000, false), floor);
        assert_eq!(
            append_timeout(hb, floor, 80 << 20, false),
            floor + Duration::from_secs(10)
        );
    }
}
