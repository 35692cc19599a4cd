//! openraft type configuration for keel: node ids, the per-node address
//! record kept in membership, and the aliases the rest of the crate uses.
//!
//! Node ids are plain `u64`s chosen by the operator (or derived from a
//! StatefulSet ordinal); they are stable for the life of a data directory.

use std::fmt;

use openraft::type_config::alias;
use serde::{Deserialize, Serialize};

use crate::command::{Proposal, Response};

/// A node's identity inside the cluster, stable across restarts.
pub type NodeId = u64;

/// What membership remembers about a node: where operators and peers reach it.
///
/// Addresses are `host:port` strings, never resolved IPs, so a node that comes
/// back with a new IP under the same name is found again on the next connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Address of the admin API listener, shown to operators and the CLI.
    pub api_addr: String,
    /// Address of the peer listener that serves `/raft/*`.
    pub peer_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api={} peer={}", self.api_addr, self.peer_addr)
    }
}

openraft::declare_raft_types!(
    /// keel's openraft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Response,
        NodeId = NodeId,
        Node = Member,
);

/// The Raft instance type used throughout keel.
pub type KeelRaft = openraft::Raft<TypeConfig, crate::store::StateMachineStore>;
/// A log id in keel's configuration.
pub type LogId = alias::LogIdOf<TypeConfig>;
/// A log entry in keel's configuration.
pub type Entry = alias::EntryOf<TypeConfig>;
/// The vote type in keel's configuration.
pub type Vote = alias::VoteOf<TypeConfig>;
/// Membership as stored with its log id.
pub type StoredMembership = alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata in keel's configuration.
pub type SnapshotMeta = alias::SnapshotMetaOf<TypeConfig>;
/// The bytes of a snapshot, as built, stored, sent and installed: a file,
/// never a buffer in memory.
pub type SnapshotData = crate::store::SnapshotFile;
/// A full snapshot: metadata plus its bytes.
pub type Snapshot = alias::SnapshotOf<TypeConfig, SnapshotData>;
