//! Membership changes: add (learner, catch up, promote), remove (refused if
//! it would leave the cluster without a reachable quorum) and leader
//! transfer. They run on the leader; any other node forwards them once.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::{ControlPlane, RaftStatus, Role};
use crate::error::Error;
use crate::network::PeerCallError;
use crate::types::{Member, NodeId};
use crate::wire::{MembershipReply, PeerRpc, WireError};

/// How long a new member may take to catch up before promotion.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a handoff waits for a reachable successor.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(3);
/// How long a new member may take to answer the leader at all.
const FIRST_CONTACT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leader transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);
/// A voter that acknowledged within this window counts as reachable.
const REACHABLE_WITHIN: Duration = Duration::from_secs(3);

/// A change to the cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a node as a learner, wait until it caught up, promote it if
    /// `voter`.
    Add {
        /// Its id.
        node_id: NodeId,
        /// Its API address.
        api_addr: String,
        /// Its peer address.
        peer_addr: String,
        /// Promote to voter once caught up.
        voter: bool,
    },
    /// Remove a node.
    Remove {
        /// Its id.
        node_id: NodeId,
    },
    /// Hand leadership to `to`, or to the most caught-up voter.
    TransferLeader {
        /// The chosen voter, if any.
        to: Option<NodeId>,
    },
}

fn membership_error(e: impl std::fmt::Display) -> Error {
    Error::MembershipRefused(e.to_string())
}

impl ControlPlane {
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
                let addr = status
                    .nodes
                    .get(&leader)
                    .map(|m| m.peer_addr.clone())
                    .ok_or(Error::NoLeader)?;
                let timeout = CATCH_UP_TIMEOUT + Duration::from_secs(10);
                let reply: Result<MembershipReply, PeerCallError> = self
                    .inner
                    .peers
                    .call(&addr, PeerRpc::Membership, &change, timeout)
                    .await;
                match reply {
                    Ok(r) => r.map_err(Error::from),
                    Err(PeerCallError::Connect(_))
                    | Err(PeerCallError::Status { status: 503, .. }) => Err(Error::NoLeader),
                    Err(e) => Err(Error::Peer {
                        peer: format!("node {leader}"),
                        message: e.to_string(),
                    }),
                }
            }
            _ => Err(Error::NoLeader),
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
            MembershipChange::Remove { node_id } => self.remove_member(node_id).await,
            MembershipChange::TransferLeader { to } => self.transfer_leader(to).await.map(Some),
        }
    }

    async fn add_member(&self, id: NodeId, member: Member, voter: bool) -> Result<(), Error> {
        if member.api_addr.is_empty() || member.peer_addr.is_empty() {
            return Err(Error::BadRequest(
                "api_addr and peer_addr are required".into(),
            ));
        }
        let status = self.status();
        if let Some(existing) = status.nodes.get(&id) {
            if existing != &member {
                return Err(Error::MembershipRefused(format!(
                    "node {id} is already a member with other addresses ({existing}); remove it first"
                )));
            }
            if !voter || status.is_voter(id) {
                return Ok(());
            }
        } else {
            tracing::info!(node = id, %member, "adding learner");
            let add = self.inner.raft.add_learner(id, member, true);
            tokio::time::timeout(CATCH_UP_TIMEOUT, add)
                .await
                .map_err(|_| Error::Timeout(format!("node {id} did not catch up in time")))?
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
        if voter {
            tracing::info!(node = id, "promoting learner to voter");
            self.inner
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(membership_error)?;
        }
        Ok(())
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
                    "node {id} never answered the leader; it was not added"
                )));
            }
            if elapsed > CATCH_UP_TIMEOUT {
                return Err(Error::Timeout(format!(
                    "node {id} did not catch up in time; it was not added"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn remove_member(&self, id: NodeId) -> Result<Option<NodeId>, Error> {
        let status = self.status();
        if !status.nodes.contains_key(&id) {
            return Err(Error::MemberNotFound(id));
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
                return Box::pin(self.change_membership(MembershipChange::Remove { node_id: id }))
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
        tracing::info!(node = id, "member removed");
        Ok(self.leader())
    }

    /// Hands leadership to `to` (or the most caught-up other voter) and
    /// waits until it leads. Returns the new leader.
    pub async fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, Error> {
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
        let target = match to {
            Some(t) if t == self.node_id() => return Ok(t),
            Some(t) if !status.is_voter(t) => {
                return Err(if status.nodes.contains_key(&t) {
                    Error::BadRequest(format!("node {t} is a learner and cannot lead"))
                } else {
                    Error::MemberNotFound(t)
                });
            }
            Some(t) => t,
            None => self.await_successor().await?,
        };
        if let Some(why) = self.clock_refusal_for(target) {
            return Err(Error::MembershipRefused(why));
        }
        tracing::info!(to = target, "transferring leadership");
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
                    "node {target} did not take over leadership in time"
                ))
            })?;
        Ok(target)
    }
}

impl ControlPlane {
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
    status
        .voters
        .iter()
        .filter(|id| **id != status.node_id)
        .filter(|id| may_lead(**id))
        .filter(|id| reachable(status, **id))
        .max_by_key(|id| status.matched.get(id).copied().flatten())
        .copied()
}

fn reachable(status: &RaftStatus, id: NodeId) -> bool {
    id == status.node_id
        || status
            .acked_ago
            .get(&id)
            .copied()
            .flatten()
            .is_some_and(|ago| ago <= REACHABLE_WITHIN)
}

/// Refuses a voter removal that would leave fewer reachable voters than
/// the new configuration's quorum, or no voter at all.
fn check_quorum_after_removal(status: &RaftStatus, id: NodeId) -> Result<(), Error> {
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
            "removing node {id} would leave {healthy} reachable voter(s) of {}, below a quorum of {quorum}",
            remaining.len()
        )));
    }
    Ok(())
}
