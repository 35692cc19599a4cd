//! The peer protocol: paths, headers and message types spoken between keel
//! nodes on the peer listener.
//!
//! Both sides live in this crate's vocabulary: the client is
//! [`crate::network`], the server is the web layer's peer router, which
//! hands bodies to [`crate::ControlPlane::serve_peer`] without naming an
//! openraft type. Bodies are [`crate::codec`] encodings; peers authenticate
//! with the cluster secret as a bearer token.

use serde::{Deserialize, Serialize};

use crate::command::{Request, WriteResult};
use crate::error::Error;
use crate::types::NodeId;

/// Raft AppendEntries.
pub const PATH_APPEND: &str = "/raft/append";
/// Raft RequestVote.
pub const PATH_VOTE: &str = "/raft/vote";
/// Raft pre-vote.
pub const PATH_PRE_VOTE: &str = "/raft/pre-vote";
/// Full snapshot install, streamed.
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";
/// Leader transfer notification.
pub const PATH_TRANSFER_LEADER: &str = "/raft/transfer-leader";
/// A write forwarded from a follower to the leader.
pub const PATH_FORWARD: &str = "/raft/forward";
/// A follower asking the leader for a read index.
pub const PATH_READ_INDEX: &str = "/raft/read-index";
/// Identity and cluster membership of a node (bootstrap, join, checks).
pub const PATH_HELLO: &str = "/raft/hello";
/// A membership change (join, remove, leader transfer) sent to the leader.
pub const PATH_MEMBERSHIP: &str = "/raft/membership";
/// A decommission sent to the leader.
pub const PATH_DECOMMISSION: &str = "/raft/decommission";
/// The leader telling a decommissioned member to mark its data directory
/// and stop.
pub const PATH_RETIRE: &str = "/raft/retire";
/// A node's wall clock, for offset measurement. Served from the moment the
/// peer listener is up (before Raft), so a fresh node learns its offset
/// before it could lead.
pub const PATH_TIME: &str = "/raft/time";
/// Content type of every peer body.
pub const CONTENT_TYPE: &str = "application/vnd.keel.peer";
/// Header naming the Raft id (the incarnation) a peer request is meant for.
/// A node that is not that incarnation refuses the request, so a wiped data
/// directory never answers for the log it no longer has.
pub const TO_HEADER: &str = "x-keel-to";
/// Header on AppendEntries: the highest index the receiver is known to have
/// acknowledged durably and that was committed. A receiver whose log ends
/// below it lost acknowledged entries (an old disk image) and must retire.
pub const ACKED_HEADER: &str = "x-keel-acked";

/// The peer RPCs a node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRpc {
    /// AppendEntries.
    Append,
    /// RequestVote.
    Vote,
    /// Pre-vote.
    PreVote,
    /// Leader transfer.
    TransferLeader,
    /// Forwarded write.
    Forward,
    /// Read index for a follower read.
    ReadIndex,
    /// Identity.
    Hello,
    /// Membership change.
    Membership,
    /// Decommission of a member, run by the leader.
    Decommission,
    /// The leader telling a decommissioned member to retire.
    Retire,
    /// Wall-clock probe (served without the control plane, separately).
    Time,
}

impl PeerRpc {
    /// Every RPC with a plain request/response body that the control plane
    /// serves (the snapshot route streams, and [`PeerRpc::Time`] answers
    /// before Raft starts; both are served separately).
    pub const ALL: [PeerRpc; 10] = [
        PeerRpc::Append,
        PeerRpc::Vote,
        PeerRpc::PreVote,
        PeerRpc::TransferLeader,
        PeerRpc::Forward,
        PeerRpc::ReadIndex,
        PeerRpc::Hello,
        PeerRpc::Membership,
        PeerRpc::Decommission,
        PeerRpc::Retire,
    ];

    /// The path it is served on.
    pub fn path(self) -> &'static str {
        match self {
            PeerRpc::Append => PATH_APPEND,
            PeerRpc::Vote => PATH_VOTE,
            PeerRpc::PreVote => PATH_PRE_VOTE,
            PeerRpc::TransferLeader => PATH_TRANSFER_LEADER,
            PeerRpc::Forward => PATH_FORWARD,
            PeerRpc::ReadIndex => PATH_READ_INDEX,
            PeerRpc::Hello => PATH_HELLO,
            PeerRpc::Membership => PATH_MEMBERSHIP,
            PeerRpc::Decommission => PATH_DECOMMISSION,
            PeerRpc::Retire => PATH_RETIRE,
            PeerRpc::Time => PATH_TIME,
        }
    }
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its name (`--node-id`).
    pub node_id: crate::types::NodeName,
    /// The Raft id of its current incarnation (its data directory).
    pub raft_id: NodeId,
    /// The cluster it belongs to, once known.
    pub cluster_id: Option<String>,
    /// Whether it holds any Raft state (vote, log, membership).
    pub initialized: bool,
    /// Its advertised API address.
    pub api_addr: String,
    /// Its advertised peer address.
    pub peer_addr: String,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The leader's peer address, so a joining node can ask the leader
    /// itself (membership changes run there).
    #[serde(default)]
    pub leader_addr: Option<String>,
    /// Whether the operator sealed it.
    #[serde(default)]
    pub sealed: bool,
    /// The Raft ids of the members in its membership (voters and
    /// learners), so a node resuming from an old copy of its data can
    /// learn that the cluster replaced that incarnation.
    #[serde(default)]
    pub members: Vec<NodeId>,
}

/// A node's answer to a clock probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReply {
    /// Its wall clock when it answered, ms since the Unix epoch.
    pub now_ms: crate::clock::Millis,
    /// Its keel version.
    pub version: String,
}

/// A write forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardWrite {
    /// The unstamped request.
    pub request: Request,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
}

/// A follower's request for a read index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// `true` for the leader-lease policy (`consistency=leader`), `false`
    /// for a quorum-confirmed read index (`linearizable`).
    pub lease: bool,
    /// The time the reader derives its answer at (its wall clock when the
    /// read began): the leader stamps nothing below it afterwards (see
    /// the stamp fence). 0: a barrier that derives nothing (or a node that
    /// predates the fence); no floor is raised.
    #[serde(default)]
    pub at_ms: crate::clock::Millis,
}

/// Snapshot stream header: the sender's vote and the snapshot metadata.
/// The body is a big-endian `u32` header length, the encoded header, then
/// the raw snapshot bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The leader's vote.
    pub vote: crate::types::Vote,
    /// The snapshot's metadata.
    pub meta: crate::types::SnapshotMeta,
    /// The snapshot's length in bytes: the receiver refuses a stream that
    /// ends early or runs long (absent from older senders).
    #[serde(default)]
    pub len: Option<u64>,
}

/// Largest encoded [`SnapshotHeader`] a receiver reads.
pub const MAX_SNAPSHOT_HEADER: usize = 1 << 20;

/// An error carried back over the peer link, so the far side can rebuild
/// the same [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// A domain refusal.
    Domain(crate::domain::DomainError),
    /// No leader.
    NoLeader,
    /// Timed out.
    Timeout(String),
    /// Sent, but whether it applied is unknown.
    OutcomeUnknown(String),
    /// The receiver's log reverted below what it acknowledged.
    LogReverted(String),
    /// Shutting down.
    ShuttingDown,
    /// Membership change refused.
    MembershipRefused(String),
    /// Unknown member.
    MemberNotFound(NodeId),
    /// Bad request.
    BadRequest(String),
    /// Anything else.
    Internal(String),
    /// The answering node's clock is beyond the max offset.
    ClockOffset(String),
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::Domain(d) => WireError::Domain(d.clone()),
            Error::NoLeader => WireError::NoLeader,
            Error::Timeout(m) => WireError::Timeout(m.clone()),
            Error::OutcomeUnknown(m) => WireError::OutcomeUnknown(m.clone()),
            Error::LogReverted(m) => WireError::LogReverted(m.clone()),
            Error::ShuttingDown => WireError::ShuttingDown,
            Error::MembershipRefused(m) => WireError::MembershipRefused(m.clone()),
            Error::MemberNotFound(id) => WireError::MemberNotFound(*id),
            Error::BadRequest(m) => WireError::BadRequest(m.clone()),
            Error::Peer { peer, message } => WireError::Internal(format!("peer {peer}: {message}")),
            Error::Decode(m) => WireError::BadRequest(m.clone()),
            Error::Storage(m) | Error::Internal(m) => WireError::Internal(m.clone()),
            Error::ClockOffset(m) => WireError::ClockOffset(m.clone()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Domain(d) => Error::Domain(d),
            WireError::NoLeader => Error::NoLeader,
            WireError::Timeout(m) => Error::Timeout(m),
            WireError::OutcomeUnknown(m) => Error::OutcomeUnknown(m),
            WireError::LogReverted(m) => Error::LogReverted(m),
            WireError::ShuttingDown => Error::ShuttingDown,
            WireError::MembershipRefused(m) => Error::MembershipRefused(m),
            WireError::MemberNotFound(id) => Error::MemberNotFound(id),
            WireError::BadRequest(m) => Error::BadRequest(m),
            WireError::Internal(m) => Error::Internal(m),
            WireError::ClockOffset(m) => Error::ClockOffset(m),
        }
    }
}

/// Reply to a forwarded write.
pub type ForwardReply = Result<WriteResult, WireError>;
/// Reply to a read-index request.
pub type ReadIndexReply = Result<u64, WireError>;
/// Reply to a membership change: the leader after it.
pub type MembershipReply = Result<Option<NodeId>, WireError>;
