//! keel-raft: the replicated core of a keel node.
//!
//! This crate owns everything that must agree across replicas: the openraft
//! type configuration, the commands that travel through the log, the pure
//! domain state machine they are applied to, the RocksDB stores that make
//! the log and snapshots durable, and the peer client that carries Raft RPCs
//! between nodes. It knows nothing of HTTP routes: the web layer talks to the
//! [`ControlPlane`] handle and to the wire helpers in [`wire`].

pub mod backup;
mod batch;
pub mod clock;
pub mod codec;
pub mod command;
pub mod domain;
pub mod error;
pub mod handle;
pub mod network;
pub mod pki;
pub mod settings;
pub mod skew;
pub mod stamp;
pub mod store;
pub mod types;
pub mod wire;

pub use command::{Applied, Command, Outcome, Proposal, Request, Response};
pub use domain::{DomainError, State};
pub use error::Error;
pub use handle::{
    ClusterView, Consistency, ControlPlane, DecommissionReport, DecommissionRequest, MemberView,
    MembershipChange, RaftStatus, Role, trace_writes,
};
pub use settings::{Policy, RaftSettings};
pub use store::Storage;
pub use types::{Member, NodeId, NodeName, name_of};
