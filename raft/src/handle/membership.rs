//! Membership changes: add (learner, catch up, promote), remove (refused if
//! it would leave the cluster without a reachable quorum) and leader
//! transfer. They run on the leader; any other node forwards them once.
//!
//! Changes name nodes by their *name*; the leader resolves names to Raft
//! ids. An added node is asked who it is at the address given (hello), so
//! a member is never added at an address where another node, another
//! incarnation or another cluster answers. When a new incarnation of a
//! named voter (the same node back with a new data directory) has caught
//! up, it *replaces* the old incarnation as voter in one joint change, and
//! the old one leaves the membership: no operator step, and the empty
//! directory never counted in a quorum before it held the log.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};

use super::{ControlPlane, RaftStatus, Role};
use crate::error::Error;
use crate::transport::PeerCallError;
use crate::types::{Member, NodeId, NodeName, name_of};
use crate::wire::Hello;
use crate::wire::{MembershipReply, PeerRefusal, PeerRpc, WireError};

/// How long a new member may take to catch up before promotion.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a handoff waits for a reachable successor.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(3);
/// How long a new member may take to answer the leader at all.
const FIRST_CONTACT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leader transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);
/// A voter that acknowledged within this window counts as reachable.
pub(super) const REACHABLE_WITHIN: Duration = Duration::from_secs(3);

/// A change to the cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a node as a learner, wait until it caught up, promote it if
    /// `voter` (replacing an older incarnation of the same name).
    Add {
        /// Its name (`--node-id`); the leader learns its Raft id from it.
        node_id: NodeName,
        /// Its API address.
        api_addr: String,
        /// Its peer address.
        peer_addr: String,
        /// Promote to voter once caught up.
        voter: bool,
    },
    /// Remove a node (every incarnation of that name).
    Remove {
        /// Its name.
        node_id: NodeName,
    },
    /// Hand leadership to `to`, or to the most caught-up voter.
    TransferLeader {
        /// The chosen voter's name, if any.
        to: Option<NodeName>,
    },
}

fn membership_error(e: impl std::fmt::Display) -> Error {
    Error::MembershipRefused(e.to_string())
}

/// How long a promotion waits for another membership change to finish.
const IN_PROGRESS_WAIT: Duration = Duration::from_secs(30);

impl ControlPlane {
    /// Proposes a voter change, waiting out one already in progress:
    /// nodes that join at the same time (compose or a StatefulSet scaled
    /// 3 -> 5) each get promoted, and openraft takes one change at a time.
    /// Without the wait, the second promotion failed and its node stayed a
    /// learner.
    async fn promote(&self, change: ChangeMembers<NodeId, Member>) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
        loop {
            match self
                .inner
                .raft
                .change_membership(change.clone(), false)
                .await
            {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(membership_error(e)),
            }
        }
    }

    /// Applies a membership change through the leader. Returns the leader
    /// afterwards.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<Option<NodeId>, Error> {
        Box::pin(self.change_membership_hop(change, false)).await
    }

    async fn change_membership_hop(
        &self,
        change: MembershipChange,
        forwarded: bool,
    ) -> Result<Option<NodeId>, Error> {
        let status = self.status();
        match status.leader {
            Some(leader) if leader == self.node_id() => self.change_as_leader(change).await,
            Some(leader) if !forwarded => {
                let timeout = CATCH_UP_TIMEOUT + Duration::from_secs(10);
                let reply: MembershipReply = self
                    .call_leader(&status, leader, PeerRpc::Membership, &change, timeout)
                    .await?;
                reply.map_err(Error::from)
            }
            _ => Err(Error::NoLeader),
        }
    }

    /// Sends a request that must run on the leader to `leader` (once: the
    /// leader does not forward it again). A leader that cannot be reached
    /// or has none itself is [`Error::NoLeader`].
    pub(super) async fn call_leader<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        status: &RaftStatus,
        leader: NodeId,
        rpc: PeerRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, Error> {
        let addr = status
            .nodes
            .get(&leader)
            .map(|m| m.peer_addr.clone())
            .ok_or(Error::NoLeader)?;
        match self
            .inner
            .peers
            .call_node(leader, &addr, rpc, req, timeout)
            .await
        {
            Ok(r) => Ok(r),
            Err(PeerCallError::Connect(_)) => Err(Error::NoLeader),
            Err(PeerCallError::Status { refusal, .. }) if refusal.unavailable() => {
                Err(Error::NoLeader)
            }
            Err(e) => Err(Error::Peer {
                peer: format!("node {}", name_of(leader)),
                message: e.to_string(),
            }),
        }
    }

    /// Serves a forwarded membership change.
    pub(crate) async fn serve_membership(&self, change: MembershipChange) -> MembershipReply {
        Box::pin(self.change_membership_hop(change, true))
            .await
            .map_err(|e| WireError::from(&e))
    }

    async fn change_as_leader(&self, change: MembershipChange) -> Result<Option<NodeId>, Error> {
        match change {
            MembershipChange::Add {
                node_id,
                api_addr,
                peer_addr,
                voter,
            } => {
                self.add_member(
                    node_id,
                    Member {
                        api_addr,
                        peer_addr,
                    },
                    voter,
                )
                .await?;
                Ok(self.leader())
            }
            MembershipChange::Remove { node_id } => self.remove_named(node_id).await,
            MembershipChange::TransferLeader { to } => self.transfer_leader(to).await.map(Some),
        }
    }

    /// Asks the node at `peer_addr` who it is, and checks it is node
    /// `name` of this cluster (or of none yet). Returns its Raft id.
    async fn identify(&self, name: NodeName, peer_addr: &str) -> Result<NodeId, Error> {
        let hello: Hello = self
            .inner
            .peers
            .call(peer_addr, PeerRpc::Hello, &(), FIRST_CONTACT_TIMEOUT)
            .await
            .map_err(|e| match e {
                PeerCallError::Status {
                    refusal: PeerRefusal::ClusterMismatch,
                    ..
                } => Error::MembershipRefused(format!(
                    "the node at {peer_addr} belongs to another cluster"
                )),
                e if e.is_untrusted() => Error::MembershipRefused(format!(
                    "the node at {peer_addr} belongs to another cluster: its certificate is not from this cluster's peer CA ({e})"
                )),
                other => Error::MembershipRefused(format!(
                    "no keel node answers at {peer_addr} ({other}); start it first"
                )),
            })?;
        if hello.node_id != name {
            return Err(Error::MembershipRefused(format!(
                "the node at {peer_addr} is node {}, not node {name}",
                hello.node_id
            )));
        }
        if let (Some(theirs), Some(ours)) = (&hello.cluster_id, self.identity().get())
            && **theirs != *ours
        {
            return Err(Error::MembershipRefused(format!(
                "the node at {peer_addr} belongs to cluster {theirs}, not {ours}"
            )));
        }
        if hello.raft_id == self.node_id() {
            return Err(Error::MembershipRefused(format!(
                "{peer_addr} is this node's own address"
            )));
        }
        Ok(hello.raft_id)
    }

    async fn add_member(&self, name: NodeName, member: Member, voter: bool) -> Result<(), Error> {
        if member.api_addr.is_empty() || member.peer_addr.is_empty() {
            return Err(Error::BadRequest(
                "api_addr and peer_addr are required".into(),
            ));
        }
        let id = self.identify(name, &member.peer_addr).await?;
        let status = self.status();
        if let Some((other, _)) = status
            .nodes
            .iter()
            .find(|(other, m)| m.peer_addr == member.peer_addr && name_of(**other) != name)
        {
            return Err(Error::MembershipRefused(format!(
                "node {} is already a member at {}",
                name_of(*other),
                member.peer_addr
            )));
        }
        if let Some(existing) = status.nodes.get(&id) {
            if existing != &member {
                return Err(Error::MembershipRefused(format!(
                    "node {name} is already a member with other addresses ({existing}); remove it first"
                )));
            }
            if !voter || status.is_voter(id) {
                return Ok(());
            }
        } else {
            tracing::info!(node = name, raft_id = id, %member, "adding learner");
            let add = self.inner.raft.add_learner(id, member, true);
            tokio::time::timeout(CATCH_UP_TIMEOUT, add)
                .await
                .map_err(|_| Error::Timeout(format!("node {name} did not catch up in time")))?
                .map_err(membership_error)?;
        }
        if let Err(e) = self.wait_caught_up(id).await {
            // Never promote (or keep) a node that cannot replicate: it
            // would count in every quorum while contributing nothing.
            tracing::warn!(node = id, error = %e, "new member did not catch up; removing it again");
            let _ = self
                .inner
                .raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await;
            return Err(e);
        }
        let status = self.status();
        let older: BTreeSet<NodeId> = status
            .nodes
            .keys()
            .copied()
            .filter(|other| *other != id && name_of(*other) == name)
            .collect();
        if voter {
            let replaced: BTreeSet<NodeId> = older
                .iter()
                .copied()
                .filter(|o| status.is_voter(*o))
                .collect();
            if replaced.is_empty() {
                tracing::info!(node = name, raft_id = id, "promoting learner to voter");
                self.promote(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                    .await?;
            } else {
                // One joint change: the caught-up new incarnation in, the
                // old one out. Quorum never counts both.
                let voters: BTreeSet<NodeId> = status
                    .voters
                    .iter()
                    .copied()
                    .filter(|v| !replaced.contains(v))
                    .chain([id])
                    .collect();
                tracing::info!(node = name, new = id, old = ?replaced, "new incarnation replaces the old one as voter");
                self.promote(ChangeMembers::ReplaceAllVoters(voters))
                    .await?;
            }
        }
        let leftover: BTreeSet<NodeId> = self
            .status()
            .nodes
            .keys()
            .copied()
            .filter(|o| older.contains(o))
            .collect();
        if !leftover.is_empty() {
            tracing::info!(node = name, old = ?leftover, "removing the old incarnation");
            self.inner
                .raft
                .change_membership(ChangeMembers::RemoveNodes(leftover), false)
                .await
                .map_err(membership_error)?;
        }
        Ok(())
    }

    /// Finishes a joint membership change by proposing the voter set it
    /// was moving to. openraft changes voters in two steps (the joint
    /// configuration, then the new one); a leader that loses leadership
    /// between them leaves the joint configuration in force, and no later
    /// leader finishes it on its own. Every commit then needs a majority of
    /// the old set as well: an old set of two voters (after a removal) then
    /// stops the whole cluster once one of them is gone for good, though
    /// the new set would have lived on without it. Returns whether this
    /// leader proposed (`false`: not leading, or nothing to finish).
    pub async fn finish_joint_membership(&self) -> Result<bool, Error> {
        let status = self.status();
        if status.role != Role::Leader || !status.joint {
            return Ok(false);
        }
        tracing::info!(
            voters = ?status.voters,
            "finishing a joint membership change a former leader left half done"
        );
        // The change's target is the joint configuration's last set, so
        // adding no voter moves to exactly that set.
        self.inner
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::new()), false)
            .await
            .map_err(membership_error)?;
        Ok(true)
    }

    /// Proposes only the first step of a voter change (the joint
    /// configuration of the current voters and `voters`), as a leader that
    /// loses leadership between the two steps leaves it. For tests of
    /// [`ControlPlane::finish_joint_membership`]; nothing else calls it.
    #[doc(hidden)]
    pub async fn propose_joint_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), Error> {
        let status = self.status();
        let (old, nodes) = (status.voters, status.nodes);
        let joint =
            openraft::Membership::new(vec![old, voters], nodes).map_err(membership_error)?;
        self.inner
            .raft
            .append_membership(joint, openraft::EntryPayload::Blank, [])
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Removes every incarnation of node `name`.
    async fn remove_named(&self, name: NodeName) -> Result<Option<NodeId>, Error> {
        let ids: Vec<NodeId> = self
            .status()
            .nodes
            .keys()
            .copied()
            .filter(|id| name_of(*id) == name)
            .collect();
        if ids.is_empty() {
            return Err(Error::MemberNotFound(name));
        }
        let mut leader = self.leader();
        for id in ids {
            leader = self.remove_member(id).await?;
        }
        Ok(leader)
    }

    /// Waits until learner `id` has acknowledged the leader recently and
    /// matched its log as it was when the wait began. openraft's own
    /// "caught up" allows a lag of thousands of entries, and a node that
    /// never answered can pass it on a young log.
    async fn wait_caught_up(&self, id: NodeId) -> Result<(), Error> {
        let target = self.status().last_log_index.unwrap_or(0);
        let started = tokio::time::Instant::now();
        loop {
            let status = self.status();
            if status.role != Role::Leader {
                return Err(Error::NoLeader);
            }
            let matched = status.matched.get(&id).copied().flatten();
            let acked = status.acked_ago.get(&id).copied().flatten();
            let fresh = acked.is_some_and(|ago| ago <= REACHABLE_WITHIN);
            if fresh && matched.is_some_and(|m| m >= target) {
                return Ok(());
            }
            let elapsed = started.elapsed();
            if acked.is_none() && elapsed > FIRST_CONTACT_TIMEOUT {
                return Err(Error::Timeout(format!(
                    "node {} never answered the leader; it was not added",
                    name_of(id)
                )));
            }
            if elapsed > CATCH_UP_TIMEOUT {
                return Err(Error::Timeout(format!(
                    "node {} did not catch up in time; it was not added",
                    name_of(id)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn remove_member(&self, id: NodeId) -> Result<Option<NodeId>, Error> {
        let status = self.status();
        if !status.nodes.contains_key(&id) {
            return Err(Error::MemberNotFound(name_of(id)));
        }
        if status.joint {
            return Err(Error::MembershipRefused(
                "a membership change is already in progress; retry shortly".into(),
            ));
        }
        if status.is_voter(id) {
            check_quorum_after_removal(&status, id)?;
            if id == self.node_id() {
                // Step down first, then let the new leader remove this node.
                let new_leader = self.transfer_leader(None).await?;
                tracing::info!(new_leader, "leader handed off before its own removal");
                return Box::pin(self.change_membership(MembershipChange::Remove {
                    node_id: name_of(id),
                }))
                .await;
            }
            self.inner
                .raft
                .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
                .map_err(membership_error)?;
        } else {
            self.inner
                .raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await
                .map_err(membership_error)?;
        }
        tracing::info!(node = name_of(id), raft_id = id, "member removed");
        Ok(self.leader())
    }

    /// Hands leadership to the voter named `to` (or the most caught-up
    /// other voter) and waits until it leads. Returns the new leader's
    /// Raft id.
    pub async fn transfer_leader(&self, to: Option<NodeName>) -> Result<NodeId, Error> {
        let status = self.status();
        if status.role != Role::Leader {
            return match self
                .change_membership(MembershipChange::TransferLeader { to })
                .await?
            {
                Some(leader) => Ok(leader),
                None => Err(Error::NoLeader),
            };
        }
        // A name may have two incarnations for a moment (a replacement in
        // progress): the voter is the one that can lead.
        let named = |name: NodeName| {
            let ids: Vec<NodeId> = status
                .nodes
                .keys()
                .copied()
                .filter(|id| name_of(*id) == name)
                .collect();
            ids.iter()
                .copied()
                .find(|id| status.is_voter(*id))
                .or(ids.first().copied())
        };
        let target = match to {
            Some(name) => match named(name) {
                Some(t) if t == self.node_id() => return Ok(t),
                Some(t) if !status.is_voter(t) => {
                    return Err(Error::BadRequest(format!(
                        "node {name} is a learner and cannot lead"
                    )));
                }
                Some(t) => t,
                None => return Err(Error::MemberNotFound(name)),
            },
            None => self.await_successor().await?,
        };
        if let Some(why) = self.clock_refusal_for(target) {
            return Err(Error::MembershipRefused(why));
        }
        tracing::info!(
            to = name_of(target),
            raft_id = target,
            "transferring leadership"
        );
        self.inner
            .raft
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.wait_for(TRANSFER_TIMEOUT, |s| s.leader == Some(target))
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "node {} did not take over leadership in time",
                    name_of(target)
                ))
            })?;
        Ok(target)
    }
}

impl ControlPlane {
    /// Hands leadership away from this (sealed) leader to the most
    /// caught-up reachable voter that says it is unsealed and whose clock
    /// is trusted; returns the new leader. Used by seal: a sealed node must
    /// not lead, and neither may the node it hands over to.
    pub async fn hand_off_to_unsealed(&self) -> Result<NodeId, Error> {
        let status = self.status();
        if status.role != Role::Leader {
            return Err(Error::NoLeader);
        }
        for id in successors(&status, |id| self.clock_refusal_for(id).is_none()) {
            let Some(addr) = status.nodes.get(&id).map(|m| m.peer_addr.clone()) else {
                continue;
            };
            let hello: Result<Hello, _> = self
                .inner
                .peers
                .call_node(id, &addr, PeerRpc::Hello, &(), Duration::from_secs(2))
                .await;
            if !hello.is_ok_and(|h| !h.sealed) {
                continue;
            }
            match self.transfer_leader(Some(name_of(id))).await {
                Ok(to) => return Ok(to),
                Err(e) => tracing::warn!(to = id, error = %e, "leadership hand-off failed"),
            }
        }
        Err(Error::MembershipRefused(
            "no unsealed, reachable voter could take over leadership".into(),
        ))
    }

    /// The best successor, waiting briefly for a fresh leader to hear from
    /// its followers (its heartbeat records start empty).
    async fn await_successor(&self) -> Result<NodeId, Error> {
        let started = tokio::time::Instant::now();
        loop {
            let status = self.status();
            if let Some(id) = best_successor(&status, |id| self.clock_refusal_for(id).is_none()) {
                return Ok(id);
            }
            if status.voters.len() < 2 {
                return Err(Error::MembershipRefused(
                    "no other voter can take over leadership".into(),
                ));
            }
            if started.elapsed() > SUCCESSOR_WAIT {
                return Err(Error::Timeout(
                    "no other voter is reachable to take over leadership".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The other voter with the highest matched index that acknowledged
/// recently and that `may_lead` allows.
fn best_successor(status: &RaftStatus, may_lead: impl Fn(NodeId) -> bool) -> Option<NodeId> {
    successors(status, may_lead).into_iter().next()
}

/// The other voters that may lead and are reachable, most caught-up first.
fn successors(status: &RaftStatus, may_lead: impl Fn(NodeId) -> bool) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = status
        .voters
        .iter()
        .copied()
        .filter(|id| *id != status.node_id)
        .filter(|id| may_lead(*id))
        .filter(|id| reachable(status, *id))
        .collect();
    // Stable: among equals, the lowest id first, as before.
    ids.sort_by_key(|id| std::cmp::Reverse(status.matched.get(id).copied().flatten()));
    ids
}

/// Whether voter `id` acknowledged the leader recently (this node always is).
pub(super) fn reachable(status: &RaftStatus, id: NodeId) -> bool {
    id == status.node_id
        || status
            .acked_ago
            .get(&id)
            .copied()
            .flatten()
            .is_some_and(|ago| ago <= REACHABLE_WITHIN)
}

/// Refuses a voter removal that would leave fewer reachable voters than
/// the new configuration's quorum, or no voter at all. Otherwise returns
/// how many of the voters left could fail with the rest still a quorum.
pub(super) fn check_quorum_after_removal(status: &RaftStatus, id: NodeId) -> Result<usize, Error> {
    let remaining: Vec<NodeId> = status.voters.iter().copied().filter(|v| *v != id).collect();
    if remaining.is_empty() {
        return Err(Error::MembershipRefused(
            "cannot remove the last voter".into(),
        ));
    }
    let healthy = remaining.iter().filter(|v| reachable(status, **v)).count();
    let quorum = remaining.len() / 2 + 1;
    if healthy < quorum {
        return Err(Error::MembershipRefused(format!(
            "removing node {} would leave {healthy} reachable voter(s) of {}, below a quorum of {quorum}",
            name_of(id),
            remaining.len()
        )));
    }
    Ok(healthy - quorum)
}
