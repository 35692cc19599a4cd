//! The control plane's side of the max-offset rule: the gates that keep a
//! node whose clock is not trusted from proposing, serving clock-derived
//! reads or leading, and the clock columns of the cluster view.
//!
//! The verdict itself comes from the [`ClockMonitor`], which the node's
//! clock prober updates every round; this file only reads it.

use super::ControlPlane;
use super::view::ClusterView;
use crate::clock::Millis;
use crate::error::Error;
use crate::skew::{ClockMonitor, ClockPeers};
use crate::types::NodeId;

impl ControlPlane {
    /// The clock offsets and this node's clock health.
    pub fn clock(&self) -> &ClockMonitor {
        &self.inner.clock
    }

    /// `Ok` while this node's clock is trusted; else the refusal every
    /// proposal and clock-derived read gets.
    pub(crate) fn check_clock(&self) -> Result<(), Error> {
        if self.inner.clock.is_healthy() {
            Ok(())
        } else {
            Err(Error::ClockOffset(self.inner.clock.health().reason))
        }
    }

    /// This node's wall clock, read once and judged on that reading:
    /// refused (`ClockOffset`) unless trusted. Everything a write is
    /// stamped with and every time a read derives states at comes from it.
    pub(crate) fn trusted_now(&self) -> Result<Millis, Error> {
        self.inner
            .clock
            .trusted_now()
            .ok_or_else(|| Error::ClockOffset(self.inner.clock.health().reason))
    }

    /// Lets this node stand for election only while its clock is trusted.
    /// Idempotent; the prober calls it after every verdict. (Stepping down
    /// if it leads is the prober's job: it needs a successor.)
    pub fn follow_clock_health(&self, healthy: bool) {
        self.inner.raft.runtime_config().elect(healthy);
    }

    /// Whom this node measures its clock against, from the membership in
    /// force. `None` while no membership is known (the prober then uses
    /// the configured peers).
    pub fn clock_peers(&self) -> Option<ClockPeers> {
        let status = self.status();
        if status.nodes.is_empty() {
            return None;
        }
        let others = || status.nodes.iter().filter(|(id, _)| **id != status.node_id);
        Some(ClockPeers {
            probed: others().map(|(_, m)| m.peer_addr.clone()).collect(),
            other_voters: others()
                .filter(|(id, _)| status.is_voter(**id))
                .map(|(_, m)| m.peer_addr.clone())
                .collect(),
            self_votes: status.is_voter(status.node_id),
        })
    }

    /// Why `id` must not be handed leadership, if its clock, as measured
    /// here, is beyond the bound from the majority's. (Its offset from
    /// this node, corrected by this node's own offset from the majority:
    /// a node whose own clock is off still picks a good successor.) A
    /// member not measured yet is not refused here: it refuses a transfer
    /// itself while its clock is not trusted.
    pub fn clock_refusal_for(&self, id: NodeId) -> Option<String> {
        let addr = self.peer_addr_of(id)?;
        let peer = self.inner.clock.peer(&addr)?;
        let ours = self
            .inner
            .clock
            .health()
            .offset_from_majority_ms
            .unwrap_or(0);
        let offset = peer.offset_ms?.saturating_add(ours);
        let doubt = peer.uncertainty_ms.unwrap_or(0);
        let max = self.inner.clock.max_offset().as_millis() as u64;
        (offset.unsigned_abs().saturating_sub(doubt) > max).then(|| {
            format!(
                "node {id}'s clock is {offset:+} ms off the majority's, beyond the max clock offset of {max} ms"
            )
        })
    }
}

impl ClusterView {
    /// Fills each member's clock offset, last contact and version from what
    /// this node measured (looked up by peer address; the answering node
    /// shows itself at offset 0).
    pub fn with_clock(mut self, clock: &ClockMonitor) -> Self {
        let own = env!("CARGO_PKG_VERSION");
        for member in &mut self.members {
            if member.id == self.node_id {
                member.clock_offset_ms = Some(0);
                member.last_contact_ms = Some(0);
                member.version = Some(own.to_string());
            } else if let Some(peer) = clock.peer(&member.peer_addr) {
                member.clock_offset_ms = peer.offset_ms;
                member.last_contact_ms = peer.last_contact_ms;
                member.version = peer.version;
            }
        }
        self
    }
}
