//! What one audit line says: who (token accessor, role, account), what
//! (method, route and the ids it names), how it ended (status, error code,
//! the Raft log index a write became), or which node-side event happened.
//!
//! Nothing here can hold a secret: request bodies are never recorded, a
//! token appears by its public accessor, and a presented token nobody
//! knows appears only as an HMAC under the cluster's audit key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kind of an audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Written before an admitted request runs: if it cannot be written
    /// and audit is required, the request does not run.
    Request,
    /// Written when a request has been answered, or refused before running.
    Response,
    /// Something the node did or saw outside a request: membership, seal,
    /// unseal, reload, leadership, lifecycle, tidying of expired tokens.
    Event,
}

/// Who made a request, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// The token's public accessor (`root` for the admin token file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accessor: Option<String>,
    /// The token's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A tenant token's account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// For a presented token that matched nothing: its HMAC under the
    /// cluster's audit key, so repeated attempts with one value correlate
    /// without the value being written down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_hmac: Option<String>,
}

/// What was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// HTTP method.
    pub method: String,
    /// The matched route template, e.g. `/v1/leases/{id}/renew`.
    pub route: String,
    /// The ids the path names, by parameter name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// How it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    /// HTTP status.
    pub status: u16,
    /// The error code of a refusal (`forbidden`, `lease_not_found`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The Raft log index the request's write became.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// A node-side event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Happened {
    /// `membership`, `seal`, `unseal`, `reload`, `leader`, `lifecycle`,
    /// `decommission`, `tokens_expired`.
    pub kind: String,
    /// Where it came from: `api`, `signal`, `manager` or `node`.
    pub source: String,
    /// What happened, for a human.
    pub message: String,
}

/// One audit record, before the chain fields (`seq`, `prev`) are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Request, response or event.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// When it was written (RFC 3339, milliseconds, UTC).
    pub time: String,
    /// The node that wrote it.
    pub node: String,
    /// The request id (`X-Request-Id`), for requests and responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Who>,
    /// What was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Asked>,
    /// How it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Answered>,
    /// The event, for event lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Happened>,
}
