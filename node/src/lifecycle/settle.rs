//! Phase 7's waits: for a known leader and local catch-up, then for the
//! cluster id to be applied here.

use std::time::Duration;

use keel_raft::{Consistency, ControlPlane};
use tokio_util::sync::CancellationToken;

/// Waits for a known leader and for this node to have applied everything
/// the leader had committed (a read index from the leader, not this node's
/// possibly stale commit index). `false` if a stop arrived first.
pub async fn wait_until_settled(cp: &ControlPlane, stop: &CancellationToken) -> bool {
    loop {
        let settled = async {
            cp.wait_for(Duration::from_secs(10), |s| {
                s.leader.is_some() && s.nodes.contains_key(&s.node_id)
            })
            .await?;
            // The barrier alone: it derives nothing from the clock, so a
            // node whose clock is not trusted still settles (and reports
            // why it is not ready).
            cp.barrier(Consistency::Linearizable).await
        };
        tokio::select! {
            _ = stop.cancelled() => return false,
            r = settled => match r {
                Ok(()) => return true,
                Err(e) => {
                    let st = cp.status();
                    tracing::info!(leader = ?st.leader, applied = ?st.applied, error = %e, "waiting for a leader and catch-up");
                    tokio::select! {
                        _ = stop.cancelled() => return false,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }
}

/// Waits until the cluster id is applied locally (the leader's
/// housekeeping records it once). `None` if a stop arrived first.
pub async fn wait_for_cluster_id(cp: &ControlPlane, stop: &CancellationToken) -> Option<String> {
    let mut applied = cp.applied_index();
    loop {
        if let Some(id) = cp.local(|s| s.cluster.cluster_id.clone()) {
            return Some(id);
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = applied.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// With mutual TLS, waits until the cluster's peer CA is applied locally
/// (the bootstrap node publishes it once Raft runs), so a ready node can
/// make join tokens and renew its certificate. `false` if a stop arrived
/// first.
pub async fn wait_for_peer_ca(cp: &ControlPlane, stop: &CancellationToken) -> bool {
    let mut applied = cp.applied_index();
    let mut last_note = tokio::time::Instant::now();
    loop {
        if cp.local(|s| !s.peer.cas.is_empty()) {
            return true;
        }
        if last_note.elapsed() > Duration::from_secs(10) {
            tracing::info!("waiting for the cluster's peer CA to be replicated");
            last_note = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = applied.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
