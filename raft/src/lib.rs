//! keel-raft: the replicated core of a keel node.
//!
//! This crate runs what must agree across replicas: the openraft type
//! configuration, the RocksDB stores that make the log and snapshots
//! durable, the peer transport that carries Raft RPCs between nodes (over
//! HTTP, or in memory for in-process clusters), and the
//! handle that proposes commands to the pure domain (the `keel-domain`
//! crate, re-exported here as [`domain`]). It knows nothing of HTTP routes: the web layer talks to the
//! [`ControlPlane`] handle and to the wire helpers in [`wire`].

/// The pure domain (its own crate, `raft/domain`), under the names the rest
/// of keel has always used.
pub use keel_domain as domain;
pub use keel_domain::{clock, codec, command, pki};

pub mod backup;
mod batch;
pub mod error;
pub mod handle;
pub mod network;
pub mod seal;
pub mod settings;
pub mod skew;
pub mod stamp;
pub mod store;
pub mod transport;
pub mod types;
pub mod wire;

pub use command::{Applied, Command, Outcome, Proposal, Request, Response};
pub use domain::{DomainError, State};
pub use error::Error;
pub use handle::{
    Caller, ClusterView, Consistency, ControlPlane, DecommissionReport, DecommissionRequest,
    MemberView, MembershipChange, RaftStatus, Role, Written, trace_writes,
};
pub use settings::{Policy, RaftSettings};
pub use store::Storage;
pub use types::{Member, NodeId, NodeName, name_of};
