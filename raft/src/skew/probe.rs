//! One clock probe: ask a peer for its wall clock over the peer link and
//! turn the answer into a round-trip corrected [`Sample`]; and the answer
//! this node gives to such a probe.

use std::time::{Duration, Instant};

use super::Sample;
use crate::clock::now_ms;
use crate::codec::{self, CodecError};
use crate::transport::{PeerCallError, PeerClient};
use crate::wire::{PeerRpc, TimeReply};

/// This node's answer to a clock probe: its wall clock and version.
pub fn time_reply() -> TimeReply {
    TimeReply {
        now_ms: now_ms(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// [`time_reply`], encoded for the peer link.
pub fn encoded_time_reply() -> Result<Vec<u8>, CodecError> {
    codec::encode(&time_reply())
}

/// Probes the peer listening at `addr`: its offset from this node's clock
/// (the round trip is measured on the monotonic clock) and its version.
pub async fn probe(
    client: &PeerClient,
    addr: &str,
    timeout: Duration,
) -> Result<(Sample, String), PeerCallError> {
    let started = Instant::now();
    let sent_wall = now_ms();
    let reply: TimeReply = client.call(addr, PeerRpc::Time, &(), timeout).await?;
    let answered = Instant::now();
    let sample = Sample::from_probe(
        sent_wall,
        reply.now_ms,
        answered.saturating_duration_since(started),
        answered,
    );
    Ok((sample, reply.version))
}
