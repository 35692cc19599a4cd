//! keel-web: the HTTP surface of a keel node.
//!
//! Two routers over one [`Shared`] state: the API router (health, metrics,
//! OpenAPI, and `/v1/*` behind bearer tokens) and the peer router
//! (`/raft/*` behind the cluster secret). [`serve::serve`] runs either on a
//! listener the caller bound, with drain-then-force shutdown. Handlers talk
//! to the replicated core only through `keel_raft::ControlPlane`.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod contract;
pub mod crl_cache;
pub mod enrol;
pub mod error;
pub mod events;
pub mod extract;
pub mod lifecycle;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod peer;
pub mod rate_limit;
pub mod router;
pub mod routes;
pub mod serve;
pub mod shared;
pub mod views;

pub use error::ApiError;
pub use lifecycle::{Component, ComponentState, LifecycleBoard, Phase};
pub use router::api_router;
pub use serve::{DrainDeadline, DrainReport, TlsSlot, serve};
pub use shared::{ApiLimits, NodeControl, Shared};
