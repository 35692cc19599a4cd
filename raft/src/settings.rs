//! Settings of the replicated core, derived from node configuration.
//!
//! Everything here is validated by the node before storage is opened; the
//! core trusts it. Raft timing is fixed for the life of the process; the
//! stamping [`Policy`] can be replaced at runtime.

use std::time::Duration;

use crate::domain::quota::Quotas;
use crate::domain::tidy::Retention;
use crate::pki::PkiSettings;
use crate::types::NodeId;

/// What the replicated core needs from configuration.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// This node's id.
    pub node_id: NodeId,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Applied entries between snapshots.
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot, so briefly lagging
    /// followers catch up from the log rather than a snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Timeout of one peer RPC (append, vote).
    pub rpc_timeout: Duration,
    /// Largest peer message (one batch of log entries) this node accepts
    /// and sends. Replication splits larger backlogs into batches below
    /// it; the API body limit is validated against it, so one accepted
    /// request always fits in one message.
    pub max_peer_message_bytes: usize,
    /// What the leader applies when stamping; reloadable.
    pub policy: Policy,
}

/// Default of [`RaftSettings::max_peer_message_bytes`].
pub const DEFAULT_MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;

/// The rules the leader applies when it stamps requests. Unlike Raft
/// timing, they may change at runtime (reload): the control plane holds
/// the policy in force and stamps every request against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `max_ttl` of a lease granted without one (raised to `ttl` if lower).
    pub lease_default_max_ttl_ms: u64,
    /// CA settings.
    pub pki: PkiSettings,
    /// Cluster-wide quotas, stamped into every proposal.
    pub quotas: Quotas,
    /// How long expired certificates and idempotency keys are kept.
    pub retention: Retention,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lease_default_max_ttl_ms: 24 * 3_600_000,
            pki: PkiSettings::default(),
            quotas: Quotas::default(),
            retention: Retention::default(),
        }
    }
}

impl RaftSettings {
    /// Settings suited to a node with the given id, for tests and dev mode.
    pub fn for_node(node_id: NodeId) -> Self {
        RaftSettings {
            node_id,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            snapshot_threshold: 50_000,
            logs_kept_after_snapshot: 5_000,
            rpc_timeout: Duration::from_secs(2),
            max_peer_message_bytes: DEFAULT_MAX_PEER_MESSAGE_BYTES,
            policy: Policy::default(),
        }
    }
}
