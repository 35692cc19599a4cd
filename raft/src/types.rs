//! openraft type configuration for keel: node ids, the per-node address
//! record kept in membership, and the aliases the rest of the crate uses.
//!
//! Two identities meet here. A node's **name** is the stable, human number
//! an operator gives it (`--node-id`, a StatefulSet ordinal). Its Raft
//! [`NodeId`] names one *incarnation* of that node: one data directory. A
//! wiped or replaced data directory gets a new incarnation, so an empty log
//! never speaks (votes, acknowledges) with the identity of a log that held
//! more. The Raft id packs both: `(name + 1) << 32 | incarnation`, so every
//! layer can show the name without a lookup (names start at 0, a
//! StatefulSet ordinal). Ids below 2^32 are incarnations of data
//! directories made before incarnations existed; their name is the id.

use std::fmt;

use openraft::type_config::alias;
use serde::{Deserialize, Serialize};

use crate::command::{Applied, Proposal};

/// A node's Raft identity: one incarnation (one data directory) of a named
/// node, stable across restarts of that data directory.
pub type NodeId = u64;

/// The operator's name of a node: `--node-id`, kept across data directories.
pub type NodeName = u64;

/// Largest node name: names share the Raft id with a 32-bit incarnation.
pub const MAX_NODE_NAME: NodeName = u32::MAX as u64 - 1;

/// Raft ids at or below this are pre-incarnation ids (the id is the name).
const LEGACY_MAX: NodeId = u32::MAX as u64;

/// The Raft id of incarnation `incarnation` (never 0) of node `name`.
pub fn raft_id(name: NodeName, incarnation: u32) -> NodeId {
    ((name + 1) << 32) | u64::from(incarnation)
}

/// The name of the node a Raft id belongs to.
pub fn name_of(id: NodeId) -> NodeName {
    if id > LEGACY_MAX { (id >> 32) - 1 } else { id }
}

/// The incarnation part of a Raft id (0 for a pre-incarnation id).
pub fn incarnation_of(id: NodeId) -> u32 {
    if id > LEGACY_MAX { id as u32 } else { 0 }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_ids_carry_their_name() {
        let id = raft_id(3, 0xdead_beef);
        assert_eq!(name_of(id), 3);
        assert_eq!(incarnation_of(id), 0xdead_beef);
        assert_ne!(raft_id(3, 1), raft_id(3, 2));
        assert_eq!(name_of(raft_id(0, 9)), 0, "a StatefulSet ordinal 0");
        assert_eq!(incarnation_of(raft_id(0, 9)), 9);
        assert_eq!(name_of(7), 7, "a pre-incarnation id is its own name");
        assert_eq!(incarnation_of(7), 0);
        assert_eq!(name_of(raft_id(MAX_NODE_NAME, 1)), MAX_NODE_NAME);
    }
}

openraft::declare_raft_types!(
    /// keel's openraft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
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
