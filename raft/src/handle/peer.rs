//! Serving the peer protocol: decode a body, hand it to Raft (or to the
//! write/read/membership paths), encode the answer; and the calls a node
//! makes before it is a member (hello, join), so nothing outside this
//! crate builds a peer RPC by hand.

use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};

use std::time::Duration;

use super::{ControlPlane, MembershipChange};
use crate::codec;
use crate::error::Error;
use crate::transport::PeerCallError;
use crate::types::{NodeId, NodeName, TypeConfig, incarnation_of, name_of};
use crate::wire::{Hello, MembershipReply, PeerRefusal, PeerRpc};

fn fatal_to_raft<T>(
    r: Result<T, openraft::errors::Fatal<TypeConfig>>,
) -> Result<T, RaftError<TypeConfig>> {
    r.map_err(RaftError::Fatal)
}

impl ControlPlane {
    /// What this node says about itself to peers.
    pub async fn hello(&self) -> Hello {
        let status = self.status();
        let initialized = self.is_initialized().await.unwrap_or(true);
        Hello {
            node_id: self.name(),
            raft_id: self.node_id(),
            cluster_id: self.local(|s| s.cluster.cluster_id.clone()),
            initialized,
            api_addr: self.advertise().api_addr.clone(),
            peer_addr: self.advertise().peer_addr.clone(),
            leader: status.leader,
            leader_addr: status
                .leader
                .and_then(|l| status.nodes.get(&l))
                .map(|m| m.peer_addr.clone()),
            sealed: self.node_meta().sealed().unwrap_or(false),
            members: status.nodes.keys().copied().collect(),
            membership_at: self.membership_at(),
        }
    }

    /// Asks the node at `addr` who it is.
    pub async fn hello_of(&self, addr: &str, timeout: Duration) -> Result<Hello, PeerCallError> {
        self.inner
            .peers
            .call(addr, PeerRpc::Hello, &(), timeout)
            .await
    }

    /// Asks the node at `addr` (best: the leader its hello names) to make
    /// this membership change; for a node joining a cluster it is not yet
    /// a member of. The answer may take as long as the leader waits for
    /// this node to catch up.
    pub async fn ask_membership(
        &self,
        addr: &str,
        change: &MembershipChange,
        timeout: Duration,
    ) -> Result<MembershipReply, PeerCallError> {
        self.inner
            .peers
            .call(addr, PeerRpc::Membership, change, timeout)
            .await
    }

    /// Admits a peer call before anything reaches Raft: the sender must
    /// belong to this cluster (`cluster`), the call must be meant for this
    /// incarnation of this node (`to`), and an AppendEntries' watermark
    /// (`acked`) must not lie above this node's log (if it does, the node
    /// lost acknowledged entries and retires this data directory). Every
    /// transport's receiving half calls this first.
    pub fn admit(
        &self,
        cluster: Option<&str>,
        to: Option<NodeId>,
        acked: Option<u64>,
    ) -> Result<(), Error> {
        if !self.identity().accepts(cluster) {
            tracing::warn!(
                theirs = cluster,
                "refused a peer request from another cluster"
            );
            return Err(Error::PeerRefused {
                refusal: PeerRefusal::ClusterMismatch,
                message: "the sender belongs to another cluster".into(),
            });
        }
        if let Some(to) = to
            && to != self.node_id()
        {
            tracing::debug!(
                to,
                this = self.node_id(),
                "refused a peer request meant for another incarnation"
            );
            return Err(Error::PeerRefused {
                refusal: PeerRefusal::NotThisNode,
                message: format!(
                    "this is node {} incarnation {:08x}, not the addressed raft id {to}",
                    self.name(),
                    incarnation_of(self.node_id())
                ),
            });
        }
        if let Some(acked) = acked {
            self.check_acknowledged(acked)?;
        }
        Ok(())
    }

    /// Serves one peer RPC: `body` is the encoded request, the result the
    /// encoded answer. `from` is the sending node as its transport
    /// authenticated it (its certificate under mutual TLS), if known: an
    /// AppendEntries, vote or pre-vote must then be that node's own.
    pub async fn serve_peer(
        &self,
        rpc: PeerRpc,
        body: &[u8],
        from: Option<NodeName>,
    ) -> Result<Vec<u8>, Error> {
        let raft = &self.inner.raft;
        let out = match rpc {
            PeerRpc::Append => {
                let req: AppendEntriesRequest<TypeConfig> = codec::decode(body)?;
                check_sender(from, &req.vote)?;
                codec::encode(&raft.append_entries(req).await)?
            }
            PeerRpc::Vote => {
                let req: VoteRequest<TypeConfig> = codec::decode(body)?;
                check_sender(from, &req.vote)?;
                codec::encode(&raft.vote(req).await)?
            }
            PeerRpc::PreVote => {
                let req: VoteRequest<TypeConfig> = codec::decode(body)?;
                check_sender(from, &req.vote)?;
                codec::encode(&raft.pre_vote(req).await)?
            }
            PeerRpc::TransferLeader => {
                let req: TransferLeaderRequest<TypeConfig> = codec::decode(body)?;
                // Leadership handed to a node whose clock is not trusted
                // would bypass its disabled elections: refuse it.
                if *req.to_node_id() == self.node_id() {
                    self.check_clock()?;
                }
                codec::encode(&fatal_to_raft(raft.handle_transfer_leader(req).await))?
            }
            PeerRpc::Forward => codec::encode(&self.serve_forward(codec::decode(body)?).await)?,
            PeerRpc::ReadIndex => {
                codec::encode(&self.serve_read_index(codec::decode(body)?).await)?
            }
            PeerRpc::Hello => codec::encode(&self.hello().await)?,
            PeerRpc::Membership => {
                codec::encode(&self.serve_membership(codec::decode(body)?).await)?
            }
            PeerRpc::Decommission => {
                codec::encode(&self.serve_decommission(codec::decode(body)?).await)?
            }
            PeerRpc::Retire => codec::encode(&self.serve_retire(codec::decode(body)?).await)?,
            PeerRpc::Time => crate::skew::probe::encoded_time_reply()?,
            PeerRpc::Snapshot => {
                return Err(Error::BadRequest(
                    "a snapshot is streamed, not sent as one message".into(),
                ));
            }
            PeerRpc::SealConfig => {
                return Err(Error::BadRequest(
                    "the seal configuration is served by the listener, not by Raft".into(),
                ));
            }
        };
        Ok(out)
    }
}

/// Refuses a Raft message whose vote names another node than the one that
/// sent it (node 2's certificate carrying node 3's vote or entries).
pub(crate) fn check_sender(from: Option<NodeName>, vote: &crate::types::Vote) -> Result<(), Error> {
    let claimed = name_of(vote.leader_id().node_id);
    match from {
        Some(from) if from != claimed => {
            tracing::warn!(
                from,
                claimed,
                "refused a Raft message sent for another node"
            );
            Err(Error::BadRequest(format!(
                "the message speaks for node {claimed}, but node {from} sent it"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod sender_tests {
    use super::check_sender;
    use crate::types::{Vote, raft_id};

    /// A message whose vote is node 3's, sent by node 2 (node 2's
    /// certificate), is refused; node 3's own, or an unauthenticated
    /// sender, passes to Raft.
    #[test]
    fn a_raft_message_must_speak_for_the_node_that_sent_it() {
        let vote = Vote::new(7, raft_id(3, 0x1234));
        assert!(check_sender(Some(2), &vote).is_err());
        assert!(check_sender(Some(3), &vote).is_ok());
        assert!(check_sender(None, &vote).is_ok());
    }
}
