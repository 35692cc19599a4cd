//! The clock prober, on every node (not only the leader): measures the
//! wall-clock offset to every peer, judges this node's clock by the
//! max-offset rule, and acts on the verdict.
//!
//! It starts as soon as the peer listener serves (before Raft, so a fresh
//! node knows its offset before it could lead) and is stopped and awaited
//! with the managers. Every [`PROBE_INTERVAL`] it probes all peers at
//! once, records the samples, and asks the [`ClockMonitor`] for a verdict.
//! Then, once Raft runs, it enables elections only while the clock is
//! trusted and hands leadership away if it leads with a clock that is not.
//! Each change of verdict is logged once, with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use keel_raft::skew::{ClockHealth, ClockMonitor, ClockPeers, probe};
use keel_raft::transport::PeerClient;
use keel_web::Shared;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Time between probe rounds.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait for one probe's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Least time between two attempts to hand leadership away.
const HANDOFF_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for one hand-off.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

/// Whom to probe before Raft knows a membership: the configured peers.
#[derive(Debug, Clone)]
pub struct ConfiguredPeers {
    /// This node's id.
    pub node_id: u64,
    /// Bootstrap peers, id to peer address (this node included).
    pub peers: BTreeMap<u64, String>,
    /// The member a joining node joins through.
    pub join: Option<String>,
}

impl ConfiguredPeers {
    /// The peers configuration names, all taken for voters: the other
    /// bootstrap peers, or the member a joining node joins through.
    fn clock_peers(&self) -> ClockPeers {
        let mut probed: BTreeSet<String> = self
            .peers
            .iter()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(_, addr)| addr.clone())
            .collect();
        probed.extend(self.join.iter().cloned());
        ClockPeers {
            other_voters: probed.iter().cloned().collect(),
            probed,
            self_votes: self.peers.contains_key(&self.node_id),
        }
    }
}

/// A running prober.
pub struct ClockProber {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ClockProber {
    /// Starts probing. `shared` gives the control plane once installed.
    pub fn start(
        monitor: ClockMonitor,
        client: PeerClient,
        shared: Arc<Shared>,
        configured: ConfiguredPeers,
    ) -> Self {
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let task = tokio::spawn(async move {
            let mut prober = Prober {
                monitor,
                client,
                shared,
                configured,
                last_healthy: None,
                last_handoff: None,
            };
            loop {
                // A round (probes, maybe a hand-off) is abandoned at stop:
                // nothing it does is needed once the node is stopping.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = prober.round() => {}
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(PROBE_INTERVAL) => {}
                }
            }
        });
        ClockProber { stop, task }
    }

    /// Stops probing and waits for the task to end.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "clock prober failed");
        }
    }
}

struct Prober {
    monitor: ClockMonitor,
    client: PeerClient,
    shared: Arc<Shared>,
    configured: ConfiguredPeers,
    last_healthy: Option<bool>,
    last_handoff: Option<tokio::time::Instant>,
}

impl Prober {
    async fn round(&mut self) {
        let cp = self.shared.control_plane();
        let peers = cp
            .as_ref()
            .and_then(|cp| cp.clock_peers())
            .unwrap_or_else(|| self.configured.clock_peers());
        let client = &self.client;
        let probes = peers
            .probed
            .iter()
            .map(|addr| async move { (addr, probe::probe(client, addr, PROBE_TIMEOUT).await) });
        for (addr, result) in futures::future::join_all(probes).await {
            match result {
                Ok((sample, version)) => self.monitor.record(addr, sample, version),
                Err(e) => tracing::debug!(peer = %addr, error = %e, "clock probe failed"),
            }
        }
        self.monitor.retain(&peers.probed);
        let health = self.monitor.assess(&peers.other_voters, peers.self_votes);
        self.log_transition(&health);
        if let Some(cp) = cp {
            cp.follow_clock_health(health.healthy);
            if !health.healthy && cp.is_leader() && cp.status().voters.len() > 1 {
                self.hand_off(&cp).await;
            }
        }
    }

    fn log_transition(&mut self, health: &ClockHealth) {
        if self.last_healthy == Some(health.healthy) {
            return;
        }
        let first = self.last_healthy.is_none();
        self.last_healthy = Some(health.healthy);
        let offset = health.offset_from_majority_ms;
        if health.healthy {
            tracing::info!(
                offset_from_majority_ms = offset,
                reason = %health.reason,
                "clock trusted: this node may lead, take writes and serve reads"
            );
        } else if first {
            tracing::info!(
                offset_from_majority_ms = offset,
                reason = %health.reason,
                "clock not trusted yet: this node will not lead, take writes or serve clock-derived reads until it is"
            );
        } else {
            tracing::warn!(
                offset_from_majority_ms = offset,
                max_offset_ms = health.max_offset_ms,
                reason = %health.reason,
                "clock no longer trusted: this node stops leading, taking writes and serving clock-derived reads until its clock is corrected"
            );
        }
    }

    /// Hands leadership to another voter (at most every [`HANDOFF_EVERY`]).
    async fn hand_off(&mut self, cp: &keel_raft::ControlPlane) {
        if self
            .last_handoff
            .is_some_and(|t| t.elapsed() < HANDOFF_EVERY)
        {
            return;
        }
        self.last_handoff = Some(tokio::time::Instant::now());
        match tokio::time::timeout(HANDOFF_TIMEOUT, cp.transfer_leader(None)).await {
            Ok(Ok(to)) => tracing::warn!(to, "clock not trusted: handed leadership away"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "clock not trusted, but leadership hand-off failed; will retry")
            }
            Err(_) => {
                tracing::warn!("clock not trusted, but leadership hand-off timed out; will retry")
            }
        }
    }
}
