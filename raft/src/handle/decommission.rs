//! Decommissioning a member for good: the safe way to shrink a cluster.
//!
//! On the leader (any other node forwards the request once):
//! 1. Refuse if the voters left afterwards could not tolerate the failure
//!    of one more of them (unless forced), and always if they could not
//!    even form a quorum.
//! 2. If the member leads, hand leadership to another voter first; the new
//!    leader runs the rest.
//! 3. Demote it to learner, and wait until the cluster has committed the
//!    configuration without it (its vote no longer counts anywhere).
//! 4. Tell it to retire: it marks its data directory decommissioned (so
//!    that directory can never rejoin) and stops. A member that cannot be
//!    reached is removed anyway; the report says it was not told.
//! 5. Remove it from the membership.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::membership::{REACHABLE_WITHIN, check_quorum_after_removal};
use super::{ControlPlane, RaftStatus, Role};
use crate::error::Error;
use crate::transport::PeerCallError;
use crate::types::{NodeId, NodeName, name_of};
use crate::wire::{PeerRpc, WireError};

/// How long the cluster may take to commit the configuration without it.
const COMMIT_WITHOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the member may take to mark its data directory and confirm.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a retiring node waits to see itself demoted in its own view.
const SEE_DEMOTION_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /v1/cluster/members/{id}/decommission`, as sent to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecommissionRequest {
    /// The member's name.
    pub node_id: NodeName,
    /// Proceed even if the remaining voters could not tolerate a failure.
    pub force: bool,
}

/// What a decommission did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecommissionReport {
    /// The member's name.
    pub node_id: NodeName,
    /// It led, and leadership was handed to another voter first.
    pub leadership_transferred: bool,
    /// It was a voter and was demoted to learner before removal.
    pub demoted: bool,
    /// It confirmed that its data directory is marked decommissioned and
    /// that it is stopping.
    pub retired: bool,
    /// Why it could not be told to retire, if it could not.
    pub retire_error: Option<String>,
    /// Set when `force` overrode the failure-tolerance check: what it
    /// would have refused.
    pub forced_past: Option<String>,
    /// The leader afterwards.
    pub leader: Option<NodeName>,
    /// Voters afterwards.
    pub voters: Vec<NodeName>,
}

/// Reply to a forwarded decommission.
pub type DecommissionReply = Result<DecommissionReport, WireError>;

/// Sent by the leader to the member being decommissioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireNotice {
    /// Why, for the member's log and its marker.
    pub reason: String,
}

/// Reply to a retire notice: `Ok` once the data directory is marked.
pub type RetireReply = Result<(), WireError>;

impl ControlPlane {
    /// Decommissions a member (see the module docs). Runs on the leader;
    /// forwarded there from any other node.
    pub async fn decommission(
        &self,
        req: DecommissionRequest,
    ) -> Result<DecommissionReport, Error> {
        Box::pin(self.decommission_hop(req, false)).await
    }

    pub(crate) async fn serve_decommission(&self, req: DecommissionRequest) -> DecommissionReply {
        Box::pin(self.decommission_hop(req, true))
            .await
            .map_err(|e| WireError::from(&e))
    }

    async fn decommission_hop(
        &self,
        req: DecommissionRequest,
        forwarded: bool,
    ) -> Result<DecommissionReport, Error> {
        let status = self.status();
        match status.leader {
            Some(leader) if leader == self.node_id() => self.decommission_as_leader(req).await,
            Some(leader) if !forwarded => {
                let timeout = COMMIT_WITHOUT_TIMEOUT + RETIRE_TIMEOUT + Duration::from_secs(30);
                let reply: DecommissionReply = self
                    .call_leader(&status, leader, PeerRpc::Decommission, &req, timeout)
                    .await?;
                reply.map_err(Error::from)
            }
            _ => Err(Error::NoLeader),
        }
    }

    async fn decommission_as_leader(
        &self,
        req: DecommissionRequest,
    ) -> Result<DecommissionReport, Error> {
        let name = req.node_id;
        let status = self.status();
        let ids: Vec<NodeId> = status
            .nodes
            .keys()
            .copied()
            .filter(|id| name_of(*id) == name)
            .collect();
        let id = match ids.as_slice() {
            [] => return Err(Error::MemberNotFound(name)),
            [id] => *id,
            _ => {
                return Err(Error::MembershipRefused(format!(
                    "node {name} is being replaced by a new incarnation; retry once that finished"
                )));
            }
        };
        if status.joint {
            return Err(Error::MembershipRefused(
                "a membership change is already in progress; retry shortly".into(),
            ));
        }
        let voter = status.is_voter(id);
        let mut forced_past = None;
        if voter && let Some(why) = self.settled_tolerance(id).await? {
            if !req.force {
                return Err(Error::MembershipRefused(format!(
                    "{why}; add a node first, or force it (--force, ?force=true)"
                )));
            }
            tracing::warn!(node = name, %why, "decommission forced past the failure-tolerance check");
            forced_past = Some(why);
        }
        if id == self.node_id() {
            // Hand leadership away; the new leader runs the rest.
            let new_leader = self.transfer_leader(None).await?;
            tracing::info!(
                new_leader = name_of(new_leader),
                "leadership handed off before this node's decommission"
            );
            let mut report = Box::pin(self.decommission_hop(req, false)).await?;
            report.leadership_transferred = true;
            if report.forced_past.is_none() {
                report.forced_past = forced_past;
            }
            return Ok(report);
        }
        if voter {
            tracing::info!(
                node = name,
                raft_id = id,
                "decommission: demoting to learner"
            );
            self.inner
                .raft
                .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                .await
                .map_err(|e| Error::MembershipRefused(e.to_string()))?;
            let demoted_at = self.status().last_log_index.unwrap_or(0);
            self.wait_for(COMMIT_WITHOUT_TIMEOUT, |s| {
                !s.voters.contains(&id) && !s.joint && s.committed.unwrap_or(0) >= demoted_at
            })
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "the cluster did not commit its configuration without node {name} in time; \
                     node {name} is a learner now, retry to finish"
                ))
            })?;
            tracing::info!(
                node = name,
                index = demoted_at,
                "decommission: the cluster commits without it"
            );
        }
        let retire_error = self.tell_to_retire(id).await.err();
        match &retire_error {
            None => tracing::info!(
                node = name,
                "decommission: it marked its data directory and is stopping"
            ),
            Some(e) => {
                tracing::warn!(node = name, error = %e, "decommission: it could not be told to retire; removing it anyway")
            }
        }
        self.inner
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(|e| Error::MembershipRefused(e.to_string()))?;
        tracing::info!(node = name, raft_id = id, "decommission: removed");
        let after = self.status();
        Ok(DecommissionReport {
            node_id: name,
            leadership_transferred: false,
            demoted: voter,
            retired: retire_error.is_none(),
            retire_error,
            forced_past,
            leader: after.leader.map(name_of),
            voters: after.voters.iter().map(|v| name_of(*v)).collect(),
        })
    }

    /// [`tolerance_refusal`], asked again for a moment while it refuses:
    /// right after a membership or leader change the leader has not heard
    /// from every follower yet, and a healthy voter must not count as
    /// unreachable for that.
    async fn settled_tolerance(&self, id: NodeId) -> Result<Option<String>, Error> {
        let started = tokio::time::Instant::now();
        loop {
            let verdict = tolerance_refusal(&self.status(), id);
            if matches!(verdict, Ok(None)) || started.elapsed() > REACHABLE_WITHIN {
                return verdict;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn tell_to_retire(&self, id: NodeId) -> Result<(), String> {
        let addr = self
            .peer_addr_of(id)
            .ok_or_else(|| "its address is not known".to_string())?;
        let notice = RetireNotice {
            reason: format!(
                "decommissioned by node {} of cluster {}",
                self.name(),
                self.identity()
                    .get()
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            ),
        };
        let reply: Result<RetireReply, PeerCallError> = self
            .inner
            .peers
            .call_node(id, &addr, PeerRpc::Retire, &notice, RETIRE_TIMEOUT)
            .await;
        match reply {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e).to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Serves a retire notice: once this node sees itself demoted, asks
    /// the node to mark its data directory and stop, and answers when the
    /// mark is written.
    pub(crate) async fn serve_retire(&self, notice: RetireNotice) -> RetireReply {
        let me = self.node_id();
        let demoted = self
            .wait_for(SEE_DEMOTION_TIMEOUT, |s| !s.voters.contains(&me))
            .await;
        if demoted.is_err() {
            return Err(WireError::MembershipRefused(
                "this node is still a voter in its own view; refusing to retire".into(),
            ));
        }
        tracing::warn!(reason = %notice.reason, "this node is being decommissioned");
        let mut marked = self.inner.decommission.marked_tx.subscribe();
        self.inner.decommission.requested_tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(notice.reason.clone());
                true
            } else {
                false
            }
        });
        let wait = async {
            loop {
                if let Some(result) = marked.borrow_and_update().clone() {
                    return result;
                }
                if marked.changed().await.is_err() {
                    return Err("the node stopped before marking its data directory".into());
                }
            }
        };
        match tokio::time::timeout(RETIRE_TIMEOUT, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WireError::Internal(e)),
            Err(_) => Err(WireError::Timeout(
                "the data directory was not marked in time".into(),
            )),
        }
    }

    /// Resolves with the reason once the cluster decommissioned this node:
    /// the node must then mark its data directory
    /// ([`ControlPlane::confirm_decommission_marked`]) and stop for good.
    pub async fn decommissioned(&self) -> String {
        let mut rx = self.inner.decommission.requested_tx.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The node reports whether it marked its data directory decommissioned;
    /// the leader waiting on the retire notice hears it.
    pub fn confirm_decommission_marked(&self, result: Result<(), String>) {
        self.inner.decommission.marked_tx.send_replace(Some(result));
    }
}

/// The two signals between the retire notice and the node that marks its
/// data directory.
pub(crate) struct DecommissionSignals {
    requested_tx: tokio::sync::watch::Sender<Option<String>>,
    marked_tx: tokio::sync::watch::Sender<Option<Result<(), String>>>,
}

impl Default for DecommissionSignals {
    fn default() -> Self {
        DecommissionSignals {
            requested_tx: tokio::sync::watch::channel(None).0,
            marked_tx: tokio::sync::watch::channel(None).0,
        }
    }
}

/// `Err` if removing voter `id` would leave no quorum of reachable voters
/// (never allowed); `Ok(Some(why))` if the voters left could form a quorum
/// but not survive one more failure (allowed only when forced).
fn tolerance_refusal(status: &RaftStatus, id: NodeId) -> Result<Option<String>, Error> {
    if status.role != Role::Leader {
        return Err(Error::NoLeader);
    }
    let tolerates = check_quorum_after_removal(status, id)?;
    let remaining = status.voters.iter().filter(|v| **v != id).count();
    let quorum = remaining / 2 + 1;
    Ok((tolerates == 0).then(|| {
        format!(
            "decommissioning node {} would leave {} voter(s) ({quorum} reachable) with a quorum of {quorum}: \
             the cluster could not tolerate the failure of any of them",
            name_of(id),
            remaining
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::types::raft_id;

    fn leader_of(voters: &[u64], reachable: &[u64]) -> RaftStatus {
        let ids: Vec<NodeId> = voters.iter().map(|n| raft_id(*n, 1)).collect();
        RaftStatus {
            node_id: ids[0],
            role: Role::Leader,
            leader: Some(ids[0]),
            term: 1,
            last_log_index: Some(10),
            committed: Some(10),
            applied: Some(10),
            snapshot: None,
            purged: None,
            voters: ids.iter().copied().collect(),
            nodes: BTreeMap::new(),
            joint: false,
            matched: BTreeMap::new(),
            acked_ago: ids
                .iter()
                .map(|id| {
                    let up = reachable.contains(&name_of(*id));
                    (*id, up.then(|| Duration::from_millis(50)))
                })
                .collect(),
            quorum_acked_ago: None,
            failed: None,
        }
    }

    #[test]
    fn three_voters_cannot_lose_one_without_force() {
        let s = leader_of(&[0, 1, 2], &[0, 1, 2]);
        let why = tolerance_refusal(&s, raft_id(2, 1)).unwrap();
        assert!(why.unwrap().contains("could not tolerate"));
    }

    #[test]
    fn five_voters_can_lose_one() {
        let s = leader_of(&[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4]);
        assert_eq!(tolerance_refusal(&s, raft_id(4, 1)).unwrap(), None);
    }

    #[test]
    fn five_voters_with_one_down_cannot_lose_another_without_force() {
        let s = leader_of(&[0, 1, 2, 3, 4], &[0, 1, 2, 3]);
        assert!(tolerance_refusal(&s, raft_id(3, 1)).unwrap().is_some());
        // Decommissioning the one that is down leaves four healthy voters.
        assert_eq!(tolerance_refusal(&s, raft_id(4, 1)).unwrap(), None);
    }

    #[test]
    fn no_quorum_is_refused_even_when_forced() {
        let s = leader_of(&[0, 1, 2], &[0]);
        assert!(tolerance_refusal(&s, raft_id(1, 1)).is_err());
        let s = leader_of(&[0], &[0]);
        assert!(tolerance_refusal(&s, raft_id(0, 1)).is_err());
    }
}
