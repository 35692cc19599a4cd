//! keel-node: the `keel` binary's library. It wires configuration,
//! lifecycle and background managers around the replicated core
//! (`keel-raft`) and its HTTP surface (`keel-web`), and holds the operator
//! CLI. It holds no domain logic.

pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod lifecycle;
pub mod logging;
pub mod managers;
pub mod peer_tls;
pub mod signals;
pub mod tls;
