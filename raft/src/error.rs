//! Errors of the replicated core, as the web layer sees them.
//!
//! Each variant maps to one HTTP answer in `keel-web`: domain refusals to
//! 4xx, the transient cluster conditions to 503 with `Retry-After`, and
//! everything else to a generic 500 whose detail only reaches the log.

use crate::domain::DomainError;
use crate::types::NodeId;

/// An error from the control plane handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A deterministic refusal from the domain.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No leader is known right now (election in progress, no quorum).
    #[error("no leader is available")]
    NoLeader,
    /// A read or write could not be confirmed by a quorum in time.
    #[error("timed out waiting for the cluster: {0}")]
    Timeout(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A membership change was refused to keep the cluster safe.
    #[error("{0}")]
    MembershipRefused(String),
    /// The named member does not exist.
    #[error("member {0} not found")]
    MemberNotFound(NodeId),
    /// A membership request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A write was sent but its fate is unknown (leadership moved or the
    /// commit timed out): it may or may not have applied. Retrying with the
    /// same idempotency key is safe.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// This node's log ends below what it acknowledged: its data directory
    /// is older than its Raft identity promised, and it must retire it.
    #[error("{0}")]
    LogReverted(String),
    /// A peer answered with something unexpected or could not be reached.
    #[error("peer {peer}: {message}")]
    Peer {
        /// Which peer.
        peer: String,
        /// What went wrong.
        message: String,
    },
    /// A peer message could not be decoded (malformed, or another format
    /// version).
    #[error("undecodable message: {0}")]
    Decode(String),
    /// This node's clock is beyond the max offset from a majority of the
    /// voters: it neither proposes nor serves reads derived from its clock
    /// until the offset is back within bounds.
    #[error("this node's clock cannot be trusted: {0}")]
    ClockOffset(String),
    /// A peer call refused at the door, before it reached Raft: another
    /// cluster, or another node (or incarnation) than the one addressed.
    #[error("{message}")]
    PeerRefused {
        /// Which refusal.
        refusal: crate::wire::PeerRefusal,
        /// Why.
        message: String,
    },
    /// Storage failed: the node cannot go on safely.
    #[error("storage: {0}")]
    Storage(String),
    /// Anything else; details stay in the log.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Whether the caller may retry the same request later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::NoLeader
                | Error::Timeout(_)
                | Error::OutcomeUnknown(_)
                | Error::ShuttingDown
                | Error::Peer { .. }
                | Error::ClockOffset(_)
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<crate::codec::CodecError> for Error {
    fn from(e: crate::codec::CodecError) -> Self {
        match e {
            crate::codec::CodecError::Encode(m) => Error::Internal(format!("encode: {m}")),
            other => Error::Decode(other.to_string()),
        }
    }
}
