//! The peer network: a reqwest client speaking [`crate::wire`] to other
//! nodes' peer listeners, and openraft's network factory on top of it.
//!
//! Peer addresses are `host:port` names resolved on every new connection,
//! so a peer that returns under the same name with a new IP is found again.
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
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
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
use crate::codec;
use crate::types::{Member, NodeId, Snapshot, SnapshotData, TypeConfig, Vote, name_of};
use crate::wire::{self, PeerRpc, SnapshotHeader};

/// The cluster secret, shared by the peer client and the peer router and
/// replaced in place on reload.
#[derive(Clone, Default)]
pub struct ClusterSecret(Arc<RwLock<Arc<str>>>);

impl ClusterSecret {
    /// Wraps a secret.
    pub fn new(secret: &str) -> Self {
        ClusterSecret(Arc::new(RwLock::new(Arc::from(secret))))
    }

    /// The current secret.
    pub fn get(&self) -> Arc<str> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the secret.
    pub fn set(&self, secret: &str) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(secret);
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// The cluster id this node belongs to, once known: sent with every peer
/// request and checked on every peer request received, so nodes of two
/// different clusters never exchange Raft messages (and never overwrite
/// each other's logs).
#[derive(Clone, Default, Debug)]
pub struct ClusterIdentity(Arc<RwLock<Option<Arc<str>>>>);

impl ClusterIdentity {
    /// An identity, known or not yet.
    pub fn new(cluster_id: Option<&str>) -> Self {
        ClusterIdentity(Arc::new(RwLock::new(cluster_id.map(Arc::from))))
    }

    /// The cluster id, if known.
    pub fn get(&self) -> Option<Arc<str>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the cluster id once it is applied.
    pub fn set(&self, cluster_id: &str) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::from(cluster_id));
    }

    /// Whether a peer presenting `theirs` may talk to this node: both known
    /// and different is the only refusal.
    pub fn accepts(&self, theirs: Option<&str>) -> bool {
        match (self.get(), theirs) {
            (Some(ours), Some(theirs)) => &*ours == theirs,
            _ => true,
        }
    }
}

/// Header carrying the sender's cluster id on peer requests.
pub const CLUSTER_HEADER: &str = "x-keel-cluster";

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    /// The connection could not be made: the request was certainly not
    /// delivered.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The request may have been delivered, but no answer came (reset,
    /// timeout).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with a non-success status (e.g. 503 before its
    /// readiness barrier, 401 with a wrong secret).
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// Why, as the peer named it.
        refusal: wire::PeerRefusal,
        /// The start of the body.
        body: String,
    },
    /// The peer's answer could not be decoded.
    #[error("bad answer: {0}")]
    Decode(String),
    /// What was to be sent could not be read or encoded locally.
    #[error("local: {0}")]
    Local(String),
}

/// A client for other nodes' peer listeners.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    scheme: &'static str,
    secret: ClusterSecret,
    identity: ClusterIdentity,
}

impl PeerClient {
    /// Builds a peer client over an HTTP client configured by the node
    /// (TLS roots, pool); `tls` selects `https`.
    pub fn new(
        http: reqwest::Client,
        tls: bool,
        secret: ClusterSecret,
        identity: ClusterIdentity,
    ) -> Self {
        PeerClient {
            http,
            scheme: if tls { "https" } else { "http" },
            secret,
            identity,
        }
    }

    /// A POST to a peer with the secret, (once known) the cluster id, and
    /// the Raft node it is meant for, if the caller knows it.
    fn post(
        &self,
        addr: &str,
        path: &str,
        to: Option<NodeId>,
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .post(self.url(addr, path))
            .bearer_auth(&*self.secret.get())
            .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .timeout(timeout);
        if let Some(id) = self.identity.get() {
            builder = builder.header(CLUSTER_HEADER, &*id);
        }
        if let Some(to) = to {
            builder = builder.header(wire::TO_HEADER, to);
        }
        builder
    }

    fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{}{}", self.scheme, addr, path)
    }

    /// Calls a plain peer RPC on whatever node answers at `addr` (hello,
    /// join: the caller does not know its Raft id yet).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        rpc: PeerRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        self.call_to(None, addr, rpc, req, timeout).await
    }

    /// Calls a plain peer RPC on Raft node `to` at `addr`; another node (or
    /// another incarnation of it) answering there refuses.
    pub async fn call_node<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        rpc: PeerRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        self.call_to(Some(to), addr, rpc, req, timeout).await
    }

    async fn call_to<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: Option<NodeId>,
        addr: &str,
        rpc: PeerRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        let body = codec::encode(req).map_err(|e| PeerCallError::Local(e.to_string()))?;
        self.send(self.post(addr, rpc.path(), to, timeout), body)
            .await
    }

    /// Sends an already encoded request and decodes the answer.
    async fn send<Resp: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
        body: Vec<u8>,
    ) -> Result<Resp, PeerCallError> {
        let response = builder.body(body).send().await.map_err(send_error)?;
        Self::decode_response(response).await
    }

    async fn decode_response<Resp: DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<Resp, PeerCallError> {
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PeerCallError::Unreachable(describe(&e)))?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
            return Err(PeerCallError::Status {
                status: status.as_u16(),
                refusal: wire::PeerRefusal::read(&bytes),
                body,
            });
        }
        codec::decode(&bytes).map_err(|e| PeerCallError::Decode(e.to_string()))
    }

    /// Streams a full snapshot to a peer from its file, in chunks.
    pub async fn send_snapshot(
        &self,
        to: NodeId,
        addr: &str,
        header: &SnapshotHeader,
        data: SnapshotData,
        timeout: Duration,
    ) -> Result<Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>>, PeerCallError> {
        let head = codec::encode(header).map_err(|e| PeerCallError::Local(e.to_string()))?;
        let mut frame = Vec::with_capacity(4 + head.len());
        frame.extend_from_slice(&(head.len() as u32).to_be_bytes());
        frame.extend_from_slice(&head);
        let chunks = data
            .into_stream()
            .map_err(|e| PeerCallError::Local(format!("reading the snapshot: {e}")))?;
        let stream = futures::stream::once(async move { Ok(Bytes::from(frame)) }).chain(chunks);
        let response = self
            .post(addr, wire::PATH_SNAPSHOT, Some(to), timeout)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(send_error)?;
        Self::decode_response(response).await
    }
}

fn send_error(e: reqwest::Error) -> PeerCallError {
    if e.is_connect() {
        PeerCallError::Connect(describe(&e))
    } else {
        PeerCallError::Unreachable(describe(&e))
    }
}

/// A reqwest error with its causes, for logs.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

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
            let request = self
                .client
                .post(
                    &self.addr,
                    PeerRpc::Append.path(),
                    Some(self.target),
                    timeout,
                )
                .header(wire::ACKED_HEADER, watermark);
            let reply: Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> =
                match self.client.send(request, body).await {
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
