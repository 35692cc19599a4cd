//! Serving the peer protocol: decode a body, hand it to Raft (or to the
//! write/read/membership paths), encode the answer.

use openraft::errors::RaftError;
use openraft::raft::TransferLeaderRequest;

use super::ControlPlane;
use crate::codec;
use crate::error::Error;
use crate::types::TypeConfig;
use crate::wire::{Hello, PeerRpc};

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
        }
    }

    /// Serves one peer RPC: `body` is the encoded request, the result the
    /// encoded answer.
    pub async fn serve_peer(&self, rpc: PeerRpc, body: &[u8]) -> Result<Vec<u8>, Error> {
        let raft = &self.inner.raft;
        let out = match rpc {
            PeerRpc::Append => codec::encode(&raft.append_entries(codec::decode(body)?).await)?,
            PeerRpc::Vote => codec::encode(&raft.vote(codec::decode(body)?).await)?,
            PeerRpc::PreVote => codec::encode(&raft.pre_vote(codec::decode(body)?).await)?,
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
        };
        Ok(out)
    }
}
