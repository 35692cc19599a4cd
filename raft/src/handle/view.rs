//! Plain views of Raft's metrics: what the web layer, metrics and the node
//! lifecycle read, without naming openraft types.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::metrics::RaftServerMetrics;
use openraft::{RaftMetrics, ServerState};
use serde::Serialize;

use crate::types::{
    Member, NodeId, NodeName, StoredMembership, TypeConfig, incarnation_of, name_of,
};

/// A node's role in Raft right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Leader.
    Leader,
    /// Voter following a leader.
    Follower,
    /// Voter campaigning.
    Candidate,
    /// Non-voting member.
    Learner,
    /// Raft has stopped.
    Shutdown,
}

/// A copy of Raft's metrics in keel's terms.
#[derive(Debug, Clone)]
pub struct RaftStatus {
    /// This node.
    pub node_id: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it knows.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Last log index held.
    pub last_log_index: Option<u64>,
    /// Committed index as known locally.
    pub committed: Option<u64>,
    /// Applied index.
    pub applied: Option<u64>,
    /// Index covered by the last snapshot.
    pub snapshot: Option<u64>,
    /// Index of the last purged entry.
    pub purged: Option<u64>,
    /// Voter ids (of every config, during a joint change).
    pub voters: BTreeSet<NodeId>,
    /// Every member's addresses.
    pub nodes: BTreeMap<NodeId, Member>,
    /// Whether a joint (two-config) membership is in force.
    pub joint: bool,
    /// On the leader: each follower's matched index.
    pub matched: BTreeMap<NodeId, Option<u64>>,
    /// On the leader: time since each follower last acknowledged.
    pub acked_ago: BTreeMap<NodeId, Option<Duration>>,
    /// On the leader: time since a quorum last acknowledged it.
    pub quorum_acked_ago: Option<Duration>,
    /// Whether Raft has stopped with an error.
    pub failed: Option<String>,
}

fn role_of(state: ServerState) -> Role {
    match state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Shutdown,
    }
}

impl RaftStatus {
    pub(crate) fn from_metrics(m: &RaftMetrics<TypeConfig>) -> Self {
        use openraft::Instant as _;
        let mut status = RaftStatus {
            node_id: m.id,
            role: role_of(m.state),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed: m.local_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            voters: BTreeSet::new(),
            nodes: BTreeMap::new(),
            joint: false,
            matched: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
                .unwrap_or_default(),
            acked_ago: m
                .heartbeat
                .as_ref()
                .map(|h| {
                    h.iter()
                        .map(|(id, t)| (*id, t.as_ref().map(|t| t.elapsed())))
                        .collect()
                })
                .unwrap_or_default(),
            quorum_acked_ago: m.last_quorum_acked.as_ref().map(|t| t.elapsed()),
            failed: m.running_state.as_ref().err().map(|e| e.to_string()),
        };
        status.set_membership(&m.membership_config);
        status
    }

    /// This status with role, leader, term and membership as `server`
    /// has them. openraft publishes those before the rest of its metrics,
    /// so a waiter woken by them may find the rest not yet updated.
    pub(crate) fn with_server(mut self, server: &RaftServerMetrics<TypeConfig>) -> Self {
        self.role = role_of(server.state);
        self.leader = server.current_leader;
        self.term = server.vote.leader_id.term;
        self.set_membership(&server.membership_config);
        self
    }

    fn set_membership(&mut self, config: &StoredMembership) {
        let membership = config.membership();
        self.joint = membership.get_joint_config().len() > 1;
        self.voters = membership.voter_ids().collect();
        self.nodes = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Committed entries this node has not applied yet.
    pub fn apply_lag(&self) -> u64 {
        self.committed
            .unwrap_or(0)
            .saturating_sub(self.applied.unwrap_or(0))
    }
}

/// One member as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Node name (`--node-id`).
    pub id: NodeName,
    /// Raft id of this incarnation (one data directory of the node).
    pub raft_id: NodeId,
    /// The incarnation, in hex: changes when the node's data directory is
    /// replaced.
    pub incarnation: String,
    /// API address.
    pub api_addr: String,
    /// Peer address.
    pub peer_addr: String,
    /// `voter` or `learner`.
    pub role: &'static str,
    /// `leader`, `follower`, `candidate`, `learner` or `unreachable`.
    pub state: &'static str,
    /// Matched log index, as the leader sees it (null elsewhere).
    pub match_index: Option<u64>,
    /// Entries behind the leader's last log index (null elsewhere).
    pub lag: Option<u64>,
    /// Its clock minus the answering node's, in ms (see
    /// `ClusterView::with_clock`; null if not measured).
    pub clock_offset_ms: Option<i64>,
    /// Milliseconds since the answering node last heard from it.
    pub last_contact_ms: Option<u64>,
    /// Its keel version, when known.
    pub version: Option<String>,
}

/// The cluster as the API shows it (`GET /v1/cluster`).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// Cluster id, once bootstrapped.
    pub cluster_id: Option<String>,
    /// The answering node's name.
    pub node_id: NodeName,
    /// The answering node's Raft id (its incarnation).
    pub raft_id: NodeId,
    /// The leader's name, if known.
    pub leader: Option<NodeName>,
    /// Current term.
    pub term: u64,
    /// Committed index known to the answering node.
    pub commit_index: Option<u64>,
    /// Applied index of the answering node.
    pub applied_index: Option<u64>,
    /// Members in id order.
    pub members: Vec<MemberView>,
}

/// A follower that has not acknowledged for this long is shown unreachable.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(3);

impl ClusterView {
    /// Builds the view from a status and the applied cluster id.
    pub fn build(status: &RaftStatus, cluster_id: Option<String>) -> Self {
        let am_leader = status.role == Role::Leader;
        let members = status
            .nodes
            .iter()
            .map(|(id, node)| {
                let voter = status.is_voter(*id);
                let state = if Some(*id) == status.leader {
                    "leader"
                } else if *id == status.node_id {
                    match status.role {
                        Role::Candidate => "candidate",
                        Role::Learner => "learner",
                        Role::Shutdown => "unreachable",
                        _ if voter => "follower",
                        _ => "learner",
                    }
                } else if am_leader
                    && status
                        .acked_ago
                        .get(id)
                        .is_some_and(|ago| ago.is_none_or(|d| d > UNREACHABLE_AFTER))
                {
                    "unreachable"
                } else if voter {
                    "follower"
                } else {
                    "learner"
                };
                let match_index = if *id == status.node_id {
                    status.last_log_index
                } else {
                    status.matched.get(id).copied().flatten()
                };
                let lag = if am_leader {
                    Some(
                        status
                            .last_log_index
                            .unwrap_or(0)
                            .saturating_sub(match_index.unwrap_or(0)),
                    )
                } else {
                    None
                };
                MemberView {
                    id: name_of(*id),
                    raft_id: *id,
                    incarnation: format!("{:08x}", incarnation_of(*id)),
                    api_addr: node.api_addr.clone(),
                    peer_addr: node.peer_addr.clone(),
                    role: if voter { "voter" } else { "learner" },
                    state,
                    match_index: if am_leader { match_index } else { None },
                    lag,
                    clock_offset_ms: None,
                    last_contact_ms: None,
                    version: None,
                }
            })
            .collect();
        ClusterView {
            cluster_id,
            node_id: name_of(status.node_id),
            raft_id: status.node_id,
            leader: status.leader.map(name_of),
            term: status.term,
            commit_index: status.committed,
            applied_index: status.applied,
            members,
        }
    }
}
