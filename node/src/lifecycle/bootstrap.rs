//! Start phase 6: bootstrap a pristine cluster, join an existing one, or
//! resume from disk.
//!
//! - A node with Raft state resumes; if a peer reports another cluster id
//!   than its data carries, it refuses to start.
//! - A pristine node with `--join` asks the cluster (through that peer) to
//!   add it: learner first, voter once caught up.
//! - A pristine node with `--peers` asks every peer who it is. If any
//!   already belongs to a cluster, it joins that cluster. Otherwise the
//!   node with the lowest id initializes the cluster, but only once
//!   `bootstrap_expect` nodes (itself included) answer as pristine. The
//!   others wait to be contacted by the new leader. A node that is not in
//!   its own peer list never initializes; it joins the cluster its peers
//!   form (a StatefulSet scaled beyond its initial peers).
//! - A node that finds itself a learner (its leader added it, then lost
//!   leadership or the answer before promoting it) asks the leader again;
//!   the leader promotes a caught-up learner that asks to be a voter.
//!   Without that, it stayed a learner for good and the cluster ran one
//!   voter short.
//! - Membership holds Raft ids (incarnations), learned from each peer's
//!   hello. A pristine node whose name is already a voter (its volume was
//!   lost) finds the cluster and joins like any new node: the leader adds
//!   the new incarnation as a learner and, once caught up, swaps it in for
//!   the old one. The empty directory never votes with the old identity.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_raft::transport::PeerCallError;
use keel_raft::wire::{Hello, MembershipReply, PeerRefusal};
use keel_raft::{ControlPlane, Member, MembershipChange, NodeId, NodeName};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

const RETRY: Duration = Duration::from_millis(300);
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
const JOIN_TIMEOUT: Duration = Duration::from_secs(150);
/// How often a joining node logs how far it has caught up.
const CATCH_UP_REPORT_EVERY: Duration = Duration::from_secs(2);

/// How this node came to be in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// It had data and resumed.
    Resumed,
    /// It initialized a new cluster.
    Bootstrapped,
    /// It asked an existing cluster to add it.
    Joined,
    /// It was added by the node that bootstrapped.
    Contacted,
}

/// Why phase 6 could not complete.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A stop signal arrived first.
    #[error("stopped before the node joined a cluster")]
    Stopped,
    /// The data belongs to another cluster than the peers'.
    #[error("{0}")]
    WrongCluster(String),
    /// Raft refused.
    #[error(transparent)]
    Raft(#[from] keel_raft::Error),
}

async fn hello(cp: &ControlPlane, addr: &str) -> Result<Hello, PeerCallError> {
    cp.hello_of(addr, HELLO_TIMEOUT).await
}

/// Whether a peer refused us for belonging to another cluster.
fn cluster_mismatch(e: &PeerCallError) -> bool {
    matches!(
        e,
        PeerCallError::Status {
            refusal: PeerRefusal::ClusterMismatch,
            ..
        }
    )
}

/// Runs phase 6 until the node is part of a cluster (or `stop`).
pub async fn run(
    config: &Config,
    cp: &ControlPlane,
    stop: &CancellationToken,
) -> Result<Membership, BootstrapError> {
    if cp.is_initialized().await? {
        check_peers_cluster(config, cp).await?;
        tracing::info!("resuming from disk");
        return Ok(Membership::Resumed);
    }
    let mut last_note = tokio::time::Instant::now();
    loop {
        if stop.is_cancelled() {
            return Err(BootstrapError::Stopped);
        }
        let note = last_note.elapsed() > Duration::from_secs(10);
        if cp.is_initialized().await? {
            let status = cp.status();
            if status.is_voter(cp.node_id()) {
                tracing::info!("added to the cluster by its leader");
                return Ok(Membership::Contacted);
            }
            // A learner: a leader added it, then lost leadership (or its
            // answer was lost) before promoting it. No leader finishes
            // that on its own, so ask again; the leader promotes a learner
            // that asks to be a voter once it has caught up.
            if let Some(target) = leader_or_join(config, &status)
                && try_join(config, cp, &target).await
            {
                return Ok(Membership::Joined);
            }
        } else if let Some(target) = &config.join {
            if try_join(config, cp, target).await {
                return Ok(Membership::Joined);
            }
        } else if let Some(outcome) = try_bootstrap(config, cp, note).await? {
            return Ok(outcome);
        }
        if note {
            tracing::info!("still waiting to form or join a cluster");
            last_note = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = stop.cancelled() => return Err(BootstrapError::Stopped),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Where a learner asks to be promoted: the leader it follows, else its
/// `--join` peer (a learner hears from the leader, so that is rare).
fn leader_or_join(config: &Config, status: &keel_raft::RaftStatus) -> Option<String> {
    status
        .leader
        .and_then(|l| status.nodes.get(&l))
        .map(|m| m.peer_addr.clone())
        .or_else(|| config.join.clone())
}

/// One bootstrap round for a pristine node with `--peers`.
/// With `note`, says which peers did not answer and why (every few
/// seconds, so a bootstrap that waits long shows what it waits for).
async fn try_bootstrap(
    config: &Config,
    cp: &ControlPlane,
    note: bool,
) -> Result<Option<Membership>, BootstrapError> {
    let mut answered: BTreeMap<NodeName, Hello> = BTreeMap::new();
    for (id, addr) in config.peers.iter().filter(|(id, _)| **id != config.node_id) {
        let h = hello(cp, addr).await;
        if note && let Err(e) = &h {
            tracing::info!(peer = id, addr = %addr, error = %e, "bootstrap: peer did not answer");
        }
        if let Ok(h) = h {
            if h.node_id != *id {
                tracing::warn!(
                    peer = addr,
                    expected = id,
                    got = h.node_id,
                    "peer answered with another node id"
                );
                continue;
            }
            answered.insert(*id, h);
        }
    }
    // A cluster already exists among the peers: join it.
    if let Some((id, existing)) = answered
        .iter()
        .find(|(_, h)| h.initialized && h.leader.is_some())
    {
        if let (Some(expected), Some(theirs)) = (&config.cluster_id, &existing.cluster_id)
            && expected != theirs
        {
            return Err(BootstrapError::WrongCluster(format!(
                "peer {id} belongs to cluster {theirs}, but this node is configured for cluster {expected}"
            )));
        }
        let addr = &config.peers[id];
        tracing::info!(peer = id, "a cluster already exists; asking to join it");
        return Ok(try_join(config, cp, addr)
            .await
            .then_some(Membership::Joined));
    }
    let lowest = config.peers.keys().next().copied();
    if lowest != Some(config.node_id) {
        return Ok(None);
    }
    let pristine = answered.values().filter(|h| !h.initialized).count() + 1;
    if pristine < config.bootstrap_expect {
        tracing::debug!(
            pristine,
            expect = config.bootstrap_expect,
            "waiting for peers before bootstrap"
        );
        return Ok(None);
    }
    let members: BTreeMap<NodeId, Member> = config
        .peers
        .iter()
        .filter_map(|(id, peer_addr)| {
            let raft_id = if *id == config.node_id {
                cp.node_id()
            } else {
                answered.get(id)?.raft_id
            };
            let api_addr = if *id == config.node_id {
                config.advertise_api.clone()
            } else {
                answered
                    .get(id)
                    .map_or_else(String::new, |h| h.api_addr.clone())
            };
            let peer_addr = if *id == config.node_id {
                config.advertise_peer.clone()
            } else {
                peer_addr.clone()
            };
            Some((
                raft_id,
                Member {
                    api_addr,
                    peer_addr,
                },
            ))
        })
        .collect();
    tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "bootstrapping a new cluster");
    cp.initialize(members).await?;
    Ok(Some(Membership::Bootstrapped))
}

/// Asks the cluster reachable at `target` to add this node (through its
/// leader, which `target` names in its hello). `true` once it is a member.
async fn try_join(config: &Config, cp: &ControlPlane, target: &str) -> bool {
    let leader_addr = hello(cp, target).await.ok().and_then(|h| h.leader_addr);
    let target = leader_addr.as_deref().unwrap_or(target);
    let change = MembershipChange::Add {
        node_id: config.node_id,
        api_addr: config.advertise_api.clone(),
        peer_addr: config.advertise_peer.clone(),
        voter: true,
    };
    let call = cp.ask_membership(target, &change, JOIN_TIMEOUT);
    let reply: Result<MembershipReply, PeerCallError> = reporting_catch_up(cp, call).await;
    match reply {
        Ok(Ok(_)) => {
            tracing::info!(via = target, "joined the cluster");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(via = target, error = ?e, "join refused; retrying");
            false
        }
        Err(e) => {
            tracing::info!(via = target, error = %e, "cluster not reachable yet; retrying");
            false
        }
    }
}

/// Runs the join call, logging every few seconds how far this node has
/// caught up while the leader waits for it (a large state takes a while to
/// arrive, and the operator should see it move).
async fn reporting_catch_up<T>(cp: &ControlPlane, call: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(call);
    let mut every = tokio::time::interval(CATCH_UP_REPORT_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            out = &mut call => return out,
            _ = every.tick() => {
                let status = cp.status();
                let applied = status.applied.unwrap_or(0);
                match (status.leader, status.committed) {
                    (Some(_), Some(commit)) => tracing::info!(
                        applied,
                        leader_commit = commit,
                        behind = commit.saturating_sub(applied),
                        "joining: catching up with the leader"
                    ),
                    _ => tracing::info!("joining: waiting for the leader to replicate to this node"),
                }
            }
        }
    }
}

/// A resuming node refuses to start if a peer belongs to another cluster
/// than the one its data carries, and retires its data directory (to
/// rejoin as a new incarnation) if a peer that knows a leader says the
/// cluster replaced this incarnation: the data is an old copy.
async fn check_peers_cluster(config: &Config, cp: &ControlPlane) -> Result<(), BootstrapError> {
    let Some(ours) = cp.identity().get() else {
        return Ok(());
    };
    for (id, addr) in config.peers.iter().filter(|(id, _)| **id != config.node_id) {
        let theirs = match hello(cp, addr).await {
            Ok(h) if cp.check_superseded(&h) => return Ok(()),
            Ok(h) => h
                .cluster_id
                .filter(|theirs| **theirs != *ours)
                .map(|t| format!("cluster {t}")),
            Err(e) if cluster_mismatch(&e) => Some("another cluster".to_string()),
            Err(_) => None,
        };
        if let Some(theirs) = theirs {
            return Err(BootstrapError::WrongCluster(format!(
                "this node's data belongs to cluster {ours}, but peer {id} ({addr}) belongs to {theirs}; \
                 refusing to start (point --data-dir at this cluster's data, or at an empty directory to join)"
            )));
        }
    }
    Ok(())
}
