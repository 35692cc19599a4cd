//! The peer protocol: paths, headers and message types spoken between keel
//! nodes on the peer listener.
//!
//! Both halves live in this crate: calls go out through
//! [`crate::transport`] (HTTP between nodes, in memory in tests), and come
//! in through [`crate::ControlPlane::admit`] and
//! [`crate::ControlPlane::serve_peer`]; the web layer's peer router only
//! reads headers into them. Bodies are [`crate::codec`] encodings; over
//! HTTP peers authenticate with the cluster secret as a bearer token.

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
/// Path of the seal-configuration query (served while sealed).
pub const PATH_SEAL_CONFIG: &str = "/raft/seal-config";
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
    /// Full snapshot install: a framed stream (served separately).
    Snapshot,
    /// The cluster's seal configuration, asked by a node that has none
    /// (served without the control plane, separately).
    SealConfig,
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
            PeerRpc::Snapshot => PATH_SNAPSHOT,
            PeerRpc::SealConfig => PATH_SEAL_CONFIG,
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
    /// Where the membership it lists was decided, so a node believes a
    /// peer's claim that it was replaced only if that membership is newer
    /// than its own (a peer restored from an old image lists old members).
    #[serde(default)]
    pub membership_at: Option<MembershipAt>,
}

/// The position of the log entry that decided a membership. Later
/// memberships sort higher: a newer leader's entries have a higher term,
/// and one leader's entries rise in index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MembershipAt {
    /// The term of the leader that wrote the entry.
    pub term: u64,
    /// Its log index.
    pub index: u64,
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

impl SnapshotHeader {
    /// The frame that starts a snapshot stream: the header's length as a
    /// big-endian `u32`, then the header.
    pub fn frame(&self) -> Result<Vec<u8>, crate::codec::CodecError> {
        let head = crate::codec::encode(self)?;
        let mut frame = Vec::with_capacity(4 + head.len());
        frame.extend_from_slice(&(head.len() as u32).to_be_bytes());
        frame.extend_from_slice(&head);
        Ok(frame)
    }
}

/// Largest encoded [`SnapshotHeader`] a receiver reads.
pub const MAX_SNAPSHOT_HEADER: usize = 1 << 20;

/// Why a peer listener refused a call, as both halves of the peer protocol
/// name it: the server answers with [`PeerRefusal::code`] in keel's JSON
/// error body, and the client reads it back with [`PeerRefusal::read`], so
/// no caller matches status codes or bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// 503 `raft_not_ready`: the peer's Raft is not started yet.
    NotReady,
    /// 503 `shutting_down`: the peer is stopping.
    ShuttingDown,
    /// 503 `clock_offset`: the peer's clock is beyond the max offset.
    ClockOffset,
    /// 409 `cluster_mismatch`: the peer belongs to another cluster.
    ClusterMismatch,
    /// 409 `not_this_node`: another node, or another incarnation of the
    /// addressed one, answers at that address.
    NotThisNode,
    /// 409 `log_reverted`: the peer's log ends below what it acknowledged.
    LogReverted,
    /// 413 `payload_too_large`: the message is over the peer's limit.
    TooLarge,
    /// 401 `unauthorized`: the peer does not accept this node's credential.
    Unauthorized,
    /// 400 `bad_request`: the peer could not read the message.
    BadRequest,
    /// Any other answer (its status says more).
    Other,
}

impl PeerRefusal {
    const ALL: [PeerRefusal; 9] = [
        PeerRefusal::NotReady,
        PeerRefusal::ShuttingDown,
        PeerRefusal::ClockOffset,
        PeerRefusal::ClusterMismatch,
        PeerRefusal::NotThisNode,
        PeerRefusal::LogReverted,
        PeerRefusal::TooLarge,
        PeerRefusal::Unauthorized,
        PeerRefusal::BadRequest,
    ];

    /// The error code the peer listener answers with.
    pub const fn code(self) -> &'static str {
        match self {
            PeerRefusal::NotReady => "raft_not_ready",
            PeerRefusal::ShuttingDown => "shutting_down",
            PeerRefusal::ClockOffset => "clock_offset",
            PeerRefusal::ClusterMismatch => "cluster_mismatch",
            PeerRefusal::NotThisNode => "not_this_node",
            PeerRefusal::LogReverted => "log_reverted",
            PeerRefusal::TooLarge => "payload_too_large",
            PeerRefusal::Unauthorized => "unauthorized",
            PeerRefusal::BadRequest => "bad_request",
            PeerRefusal::Other => "other",
        }
    }

    /// The HTTP status it is answered with.
    pub const fn status(self) -> u16 {
        match self {
            PeerRefusal::NotReady | PeerRefusal::ShuttingDown | PeerRefusal::ClockOffset => 503,
            PeerRefusal::ClusterMismatch | PeerRefusal::NotThisNode | PeerRefusal::LogReverted => {
                409
            }
            PeerRefusal::TooLarge => 413,
            PeerRefusal::Unauthorized => 401,
            PeerRefusal::BadRequest => 400,
            PeerRefusal::Other => 500,
        }
    }

    /// The refusal a peer answers a failed call with: the same mapping the
    /// peer listener's error bodies carry (a unit test in `keel-web` holds
    /// the two together), so the in-memory transport refuses as HTTP does.
    pub fn answering(e: &Error) -> PeerRefusal {
        match e {
            Error::ShuttingDown => PeerRefusal::ShuttingDown,
            Error::ClockOffset(_) => PeerRefusal::ClockOffset,
            Error::Decode(_) | Error::BadRequest(_) => PeerRefusal::BadRequest,
            Error::LogReverted(_) => PeerRefusal::LogReverted,
            Error::PeerRefused { refusal, .. } => *refusal,
            _ => PeerRefusal::Other,
        }
    }

    /// Reads a refusal back from a non-success answer's body (keel's
    /// `{"error": {"code", ...}}`).
    pub fn read(body: &[u8]) -> PeerRefusal {
        let code = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        code.and_then(|c| Self::ALL.into_iter().find(|r| r.code() == c))
            .unwrap_or(PeerRefusal::Other)
    }

    /// The peer is there but cannot serve Raft now; another node (or this
    /// one later) may.
    pub fn unavailable(self) -> bool {
        matches!(
            self,
            PeerRefusal::NotReady | PeerRefusal::ShuttingDown | PeerRefusal::ClockOffset
        )
    }

    /// Refused before the call reached Raft: certainly not applied, so a
    /// write may be sent again.
    pub fn before_raft(self) -> bool {
        self.unavailable()
            || matches!(
                self,
                PeerRefusal::ClusterMismatch | PeerRefusal::NotThisNode | PeerRefusal::LogReverted
            )
    }
}

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
            Error::PeerRefused { message, .. } => WireError::Internal(message.clone()),
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

#[cfg(test)]
mod tests {
    use super::PeerRefusal;

    #[test]
    fn every_refusal_reads_back_from_its_code_and_anything_else_is_other() {
        for refusal in PeerRefusal::ALL {
            let body = serde_json::json!({"error": {"code": refusal.code(), "message": "m"}});
            assert_eq!(PeerRefusal::read(body.to_string().as_bytes()), refusal);
        }
        for body in [&b"not json"[..], b"{}", br#"{"error":{"code":"conflict"}}"#] {
            assert_eq!(PeerRefusal::read(body), PeerRefusal::Other);
        }
    }
}
