//! The peer transport: what a peer call is, whatever carries it.
//!
//! Every message between keel nodes is a [`PeerCall`]: the route
//! ([`PeerRpc`]), the address it goes to, the Raft node it is meant for,
//! the sender's cluster id, an AppendEntries watermark, and an encoded
//! body (or a stream, for a snapshot). A [`Transport`] carries it and
//! brings back the encoded answer or a [`PeerCallError`] naming the
//! [`PeerRefusal`]. Two transports exist: [`http`] (reqwest to the peer
//! listener, what nodes use) and [`memory`] (calls straight into another
//! in-process [`crate::ControlPlane`], with seeded faults, for tests).
//!
//! The receiving half is the same for both: [`crate::ControlPlane::admit`]
//! checks the call's cluster, addressee and watermark, then
//! [`crate::ControlPlane::serve_peer`] or `serve_snapshot` answers it. No
//! caller above this module builds a request, reads a status code or
//! matches a body.

pub mod http;
pub mod memory;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesResponse, SnapshotResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::types::{NodeId, SnapshotData, TypeConfig};
use crate::wire::{PeerRefusal, PeerRpc, SnapshotHeader};

pub use http::{HttpTransport, OneClient, PeerHttp};
pub use memory::{Faults, MemoryNet};

/// Header carrying the sender's cluster id on peer requests.
pub const CLUSTER_HEADER: &str = "x-keel-cluster";

/// Header carrying the sender's node name on peer requests; with mutual
/// TLS, the name its certificate gives must be this one.
pub const FROM_HEADER: &str = "x-keel-from";

/// The body of a peer call.
pub enum PeerBody {
    /// An encoded request.
    Bytes(Vec<u8>),
    /// A stream of chunks (a snapshot: its frame, then the file).
    Stream(BoxStream<'static, Result<Bytes, String>>),
}

/// One message to a peer, as every transport carries it.
pub struct PeerCall {
    /// The peer's address (`host:port`).
    pub addr: String,
    /// What is asked.
    pub rpc: PeerRpc,
    /// The Raft node (incarnation) it is meant for, if the caller knows it.
    pub to: Option<NodeId>,
    /// The sender's cluster id, once known.
    pub cluster: Option<Arc<str>>,
    /// On AppendEntries: what the receiver acknowledged and was committed.
    pub acked: Option<u64>,
    /// The request.
    pub body: PeerBody,
    /// How long the caller waits for the answer.
    pub timeout: Duration,
}

/// Carries [`PeerCall`]s to peers and brings back their encoded answers.
pub trait Transport: Send + Sync + 'static {
    /// Sends `call`; the answer's bytes on success.
    fn send(&self, call: PeerCall) -> BoxFuture<'static, Result<Bytes, PeerCallError>>;
}

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
        refusal: PeerRefusal,
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

impl PeerCallError {
    /// Whether the connection failed because the other end's certificate
    /// is not one this node trusts (another cluster's peer CA, another
    /// node than the one called, not keel at all).
    pub fn is_untrusted(&self) -> bool {
        match self {
            PeerCallError::Connect(m) | PeerCallError::Unreachable(m) => {
                m.contains("invalid peer certificate")
                    || m.contains("the peer certificate")
                    || m.contains("the peer presented node")
            }
            _ => false,
        }
    }
}

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

/// A client for other nodes: typed calls over a [`Transport`].
#[derive(Clone)]
pub struct PeerClient {
    transport: Arc<dyn Transport>,
    identity: ClusterIdentity,
}

impl PeerClient {
    /// A client speaking HTTP to peer listeners over the node's peer
    /// clients, as node `from`.
    pub fn new(
        http: Arc<dyn PeerHttp>,
        secret: ClusterSecret,
        identity: ClusterIdentity,
        from: crate::types::NodeName,
    ) -> Self {
        Self::over(Arc::new(HttpTransport::new(http, secret, from)), identity)
    }

    /// A client over any transport.
    pub fn over(transport: Arc<dyn Transport>, identity: ClusterIdentity) -> Self {
        PeerClient {
            transport,
            identity,
        }
    }

    fn call_of(
        &self,
        addr: &str,
        rpc: PeerRpc,
        to: Option<NodeId>,
        body: PeerBody,
        timeout: Duration,
    ) -> PeerCall {
        PeerCall {
            addr: addr.to_string(),
            rpc,
            to,
            cluster: self.identity.get(),
            acked: None,
            body,
            timeout,
        }
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
        let call = self.call_of(addr, rpc, to, PeerBody::Bytes(body), timeout);
        decode(self.transport.send(call).await?)
    }

    /// Sends an AppendEntries already encoded (and cut to the peer's
    /// message limit) to node `to`, with the watermark it acknowledged.
    pub async fn append(
        &self,
        to: NodeId,
        addr: &str,
        body: Vec<u8>,
        acked: u64,
        timeout: Duration,
    ) -> Result<Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>, PeerCallError>
    {
        let mut call = self.call_of(
            addr,
            PeerRpc::Append,
            Some(to),
            PeerBody::Bytes(body),
            timeout,
        );
        call.acked = Some(acked);
        decode(self.transport.send(call).await?)
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
        let frame = header
            .frame()
            .map_err(|e| PeerCallError::Local(e.to_string()))?;
        let chunks = data
            .into_stream()
            .map_err(|e| PeerCallError::Local(format!("reading the snapshot: {e}")))?
            .map_err(|e| e.to_string());
        let stream = futures::stream::once(async move { Ok(Bytes::from(frame)) }).chain(chunks);
        let call = self.call_of(
            addr,
            PeerRpc::Snapshot,
            Some(to),
            PeerBody::Stream(stream.boxed()),
            timeout,
        );
        decode(self.transport.send(call).await?)
    }
}

fn decode<Resp: DeserializeOwned>(bytes: Bytes) -> Result<Resp, PeerCallError> {
    codec::decode(&bytes).map_err(|e| PeerCallError::Decode(e.to_string()))
}
