//! What every node holds once the run is over and healed: its leases,
//! accounts and certificates, read with `consistency=local` after every
//! node has applied the leader's commit index.

use serde::{Deserialize, Serialize};

/// One node's view.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeState {
    /// Node name.
    pub node: usize,
    /// Harness wall clock (ms) when the reads began.
    pub read_wall_ms: i64,
    /// Leases.
    pub leases: Vec<LeaseRecord>,
    /// Accounts.
    pub accounts: Vec<AccountRecord>,
    /// Certificates.
    pub certs: Vec<CertRecord>,
}

/// A lease as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Account.
    pub account: Option<String>,
    /// Deadline, ms.
    pub expires_at_ms: i64,
    /// Derived state.
    pub state: String,
}

/// An account as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Name.
    pub name: String,
    /// `expires_at`, ms.
    pub expires_at_ms: Option<i64>,
    /// Derived state.
    pub state: String,
}

/// A certificate as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CertRecord {
    /// Serial.
    pub serial: String,
    /// Common name.
    pub common_name: String,
    /// Account.
    pub account: Option<String>,
    /// Derived state.
    pub state: String,
}
