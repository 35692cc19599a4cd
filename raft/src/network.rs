//! openraft's network: its factory and per-peer connections, over a
//! [`PeerClient`] (whatever [`crate::transport`] carries it).
//!
//! Every call has a timeout; connection failures and timeouts are reported
//! to openraft as `Unreachable`, which backs off before retrying.
//!
//! Log batches are bounded in bytes (see [`crate::batch`]): a batch that
//! does not fit the peer message limit is cut to a prefix and reported as
//! a partial success, and a peer's 413 shrinks the batch instead of
//! resending it. Snapshots stream from their file, never copied in memory.
//!
//! Every RPC meant for a Raft node names it ([`wire::TO_HEADER`]); the far
//! side refuses if it is another incarnation. AppendEntries also carries
//! the receiver's acknowledged-and-committed watermark
//! ([`wire::ACKED_HEADER`]), and an answer that contradicts it (a conflict
//! at or below it: the follower lost acknowledged entries) is never handed
//! to openraft: log reversion is not allowed, so it must not happen.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::OptionalSend;
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch;
use crate::transport::{PeerCallError, PeerClient};
use crate::types::{Member, NodeId, Snapshot, SnapshotData, TypeConfig, Vote, name_of};
use crate::wire::{self, PeerRpc, SnapshotHeader};

/// What this node, as leader, has seen each follower acknowledge: the
/// highest matched index and the highest commit index it told the
/// follower. Their minimum is an index the follower durably held *and* that
/// was committed, so it can never legitimately lose it.
#[derive(Debug, Clone, Copy, Default)]
struct Acked {
    matched: u64,
    commit_told: u64,
}

impl Acked {
    fn watermark(self) -> u64 {
        self.matched.min(self.commit_told)
    }
}

/// Acknowledgement watermarks per follower, shared by all connections of
/// this process (openraft rebuilds connections on every leadership).
#[derive(Clone, Default)]
pub struct AckedWatermarks(Arc<Mutex<HashMap<NodeId, Acked>>>);

impl AckedWatermarks {
    fn record(&self, id: NodeId, matched: Option<u64>, commit_told: Option<u64>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(id).or_default();
        if let Some(m) = matched {
            entry.matched = entry.matched.max(m);
        }
        if let Some(c) = commit_told {
            entry.commit_told = entry.commit_told.max(c);
        }
    }

    /// The watermark of follower `id`: an index it acknowledged and that
    /// was committed (0 if none is known).
    pub fn watermark(&self, id: NodeId) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .unwrap_or_default()
            .watermark()
    }
}

/// Builds openraft connections to peers.
pub struct NetworkFactory {
    client: PeerClient,
    acked: AckedWatermarks,
    max_message: usize,
    rpc_timeout: Duration,
}

impl NetworkFactory {
    /// A factory over `client`, sending peer messages of at most
    /// `max_message` bytes; appends that carry entries get at least
    /// `rpc_timeout`. `acked` records what followers acknowledged.
    pub fn new(
        client: PeerClient,
        acked: AckedWatermarks,
        max_message: usize,
        rpc_timeout: Duration,
    ) -> Self {
        NetworkFactory {
            client,
            acked,
            max_message,
            rpc_timeout,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            target,
            addr: node.peer_addr.clone(),
            acked: self.acked.clone(),
            max_message: self.max_message,
            rpc_timeout: self.rpc_timeout,
        }
    }
}

/// openraft's view of one peer.
pub struct PeerConnection {
    client: PeerClient,
    target: NodeId,
    addr: String,
    acked: AckedWatermarks,
    /// Budget of one append message: the peer message limit, lowered for
    /// this connection when the peer answers 413.
    max_message: usize,
    /// Least time an append carrying entries is given.
    rpc_timeout: Duration,
}

fn rpc_error(target: NodeId, e: PeerCallError) -> RPCError<TypeConfig> {
    match e {
        PeerCallError::Decode(m) | PeerCallError::Local(m) => {
            RPCError::Network(NetworkError::from_string(format!("node {target}: {m}")))
        }
        other => RPCError::Unreachable(Unreachable::from_string(format!("node {target}: {other}"))),
    }
}

impl PeerConnection {
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        rpc: PeerRpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let reply: Result<Resp, RaftError<TypeConfig>> = self
            .client
            .call_node(self.target, &self.addr, rpc, req, option.hard_ttl())
            .await
            .map_err(|e| rpc_error(self.target, e))?;
        reply.map_err(|e| {
            RPCError::Unreachable(Unreachable::from_string(format!(
                "node {}: {e}",
                self.target
            )))
        })
    }
}

impl PeerConnection {
    /// Records what a follower acknowledged, and keeps a reply that
    /// contradicts an earlier acknowledgement (a conflict at or below the
    /// watermark) from ever reaching openraft.
    fn check_acknowledged(
        &self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        watermark: u64,
        response: AppendEntriesResponse<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let commit_told = rpc.leader_commit.map(|l| l.index);
        match &response {
            AppendEntriesResponse::Success => {
                let last = rpc
                    .entries
                    .last()
                    .map(|e| e.log_id.index)
                    .or(rpc.prev_log_id.map(|l| l.index));
                self.acked.record(self.target, last, commit_told);
            }
            AppendEntriesResponse::PartialSuccess(matched) => {
                self.acked
                    .record(self.target, matched.map(|l| l.index), commit_told);
            }
            AppendEntriesResponse::Conflict => {
                let at = rpc.prev_log_id.map_or(0, |l| l.index);
                if at > 0 && at <= watermark {
                    tracing::error!(
                        target_node = self.target,
                        conflict = at,
                        acknowledged = watermark,
                        "follower lost entries it had acknowledged (old or damaged data directory); \
                         not replicating to it until it retires that data"
                    );
                    return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                        "node {}: its log reverted below acknowledged index {watermark}",
                        self.target
                    ))));
                }
            }
            AppendEntriesResponse::HigherVote(_) => {}
        }
        Ok(response)
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let offered = rpc.entries.last().map(|e| e.log_id);
        let watermark = self.acked.watermark(self.target);
        loop {
            let body = batch::encode_within(&mut rpc, self.max_message)
                .map_err(|e| rpc_error(self.target, PeerCallError::Local(e.to_string())))?;
            let sent = rpc.entries.last().map(|e| e.log_id);
            let bytes = body.len();
            let timeout = batch::append_timeout(
                option.hard_ttl(),
                self.rpc_timeout,
                bytes,
                rpc.entries.is_empty(),
            );
            let reply = self
                .client
                .append(self.target, &self.addr, body, watermark, timeout)
                .await;
            let reply: Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> =
                match reply {
                    Err(PeerCallError::Status {
                        refusal: wire::PeerRefusal::TooLarge,
                        ..
                    }) if rpc.entries.len() > 1 => {
                        self.max_message = (bytes / 2).max(batch::MIN_BUDGET);
                        tracing::warn!(
                            target = self.target,
                            bytes,
                            budget = self.max_message,
                            "peer refused a log batch as too large; sending smaller batches"
                        );
                        continue;
                    }
                    Err(e) => return Err(rpc_error(self.target, e)),
                    Ok(reply) => reply,
                };
            let response = match reply {
                // Only a prefix went: openraft sends the rest next.
                Ok(AppendEntriesResponse::Success) if sent != offered => {
                    AppendEntriesResponse::PartialSuccess(sent)
                }
                Ok(resp) => resp,
                Err(e) => {
                    return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                        "node {}: {e}",
                        self.target
                    ))));
                }
            };
            return self.check_acknowledged(&rpc, watermark, response);
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRpc::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRpc::PreVote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let bytes = snapshot.snapshot.len();
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta,
            len: Some(bytes),
        };
        tracing::info!(
            target = name_of(self.target),
            raft_id = self.target,
            bytes,
            "sending snapshot"
        );
        // A snapshot of many MB needs more than one RPC's soft deadline,
        // and a large one time for its bytes.
        let timeout = batch::append_timeout(
            option.hard_ttl(),
            Duration::from_secs(120),
            bytes as usize,
            false,
        );
        let send =
            self.client
                .send_snapshot(self.target, &self.addr, &header, snapshot.snapshot, timeout);
        tokio::pin!(cancel);
        let reply = tokio::select! {
            closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            reply = send => reply,
        };
        match reply {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(StreamingError::Unreachable(Unreachable::from_string(
                format!("node {}: {e}", self.target),
            ))),
            Err(PeerCallError::Decode(m) | PeerCallError::Local(m)) => {
                Err(StreamingError::Network(NetworkError::from_string(m)))
            }
            Err(e) => Err(StreamingError::Unreachable(Unreachable::from_string(
                format!("node {}: {e}", self.target),
            ))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc(PeerRpc::TransferLeader, &req, &option).await
    }
}
