//! Node certificates on the peer listener: the enrolment route a node
//! without one calls (`POST /raft/enrol`), and the check every other peer
//! route makes of the certificate the caller presented.
//!
//! With keel-run mutual TLS, a peer route other than the clock probe, the
//! seal configuration and enrolment needs a client certificate that chains
//! to a trusted peer CA (rustls checks that during the handshake), names
//! this cluster, and names the node the request says it comes from
//! (`x-keel-from`). The cluster secret then proves nothing on its own: it
//! is a bootstrap secret, good only for enrolling.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use keel_raft::pki::peer::node_cert_info;
use keel_raft::transport::FROM_HEADER;
use keel_raft::wire::PeerRpc;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::shared::Shared;

/// The route a node calls to get its certificate.
pub const ENROL_PATH: &str = "/raft/enrol";

/// The client certificate a connection presented (DER), if any: put on
/// every request of that connection by the listener.
#[derive(Clone, Debug)]
pub struct ClientCertificate(pub Arc<Vec<u8>>);

/// How a node proves it may have a certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EnrolProof {
    /// A join token's secret (sent over TLS to a server whose CA the
    /// token pins).
    JoinToken {
        /// The secret half of the token.
        secret: String,
    },
    /// An HMAC of the request under the bootstrap (cluster) secret.
    BootstrapMac {
        /// Hex HMAC-SHA256.
        mac: String,
    },
}

/// `POST /raft/enrol`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The node name asked for.
    pub node: u64,
    /// A CSR for the node's new key (PEM).
    pub csr_pem: String,
    /// Host names and addresses peers reach the node at.
    pub hosts: Vec<String>,
    /// Why the node may have it.
    pub proof: EnrolProof,
}

/// A node certificate as issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issued {
    /// The node certificate (PEM).
    pub cert_pem: String,
    /// The trusted peer CAs, the signer first (PEM).
    pub trust_pem: String,
    /// The cluster the certificate names.
    pub cluster: String,
    /// With a bootstrap-secret proof: an HMAC of this answer under the
    /// secret, so the node knows it came from its cluster.
    pub mac: Option<String>,
}

/// The answer to an enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolAnswer {
    /// Issued.
    Issued(Issued),
    /// This node holds no peer CA (it is pristine too): the bootstrap
    /// node counts such answers before it creates the cluster's.
    NoPeerCa,
}

/// One trusted peer CA, as `/v1/sys/peer-ca` shows it (never its key).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeerCaInfo {
    /// SHA-256 of the certificate (DER), hex: what a join token pins.
    pub fingerprint: String,
    /// Whether it signs node certificates now (exactly one does).
    pub signing: bool,
    /// End of its validity.
    pub not_after: String,
    /// The certificate (PEM): what `KEEL_CACERT` may point at.
    pub certificate: String,
}

/// A step of a peer-CA rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RotationStep {
    /// Create a new peer CA, trusted beside the current one.
    Add,
    /// Make the newest CA the signer: every node renews from it at once.
    Activate,
    /// Stop trusting every CA but the signer; refused while a member still
    /// presents a certificate from another.
    Drop,
}

/// The node's peer trust, as the web layer needs it.
pub trait PeerTrustHooks: Send + Sync + 'static {
    /// The cluster node certificates must name, once this node has one.
    fn cluster(&self) -> Option<String>;
    /// Answers an enrolment.
    fn enrol(&self, req: EnrolRequest) -> BoxFuture<'static, Result<EnrolAnswer, ApiError>>;
    /// This node's certificate: its serial and end (ms), once it has one.
    fn certificate(&self) -> Option<(String, u64)>;
    /// The trusted peer CAs, the signer first.
    fn peer_cas(&self) -> Result<Vec<PeerCaInfo>, ApiError>;
    /// Runs one step of a peer-CA rotation; the trusted CAs after it.
    fn rotate(&self, step: RotationStep) -> BoxFuture<'static, Result<Vec<PeerCaInfo>, ApiError>>;
    /// Makes a join token valid for `ttl_ms`: the token, the fingerprint
    /// of the peer CA it pins, and its expiry (ms).
    fn join_token(
        &self,
        ttl_ms: u64,
    ) -> BoxFuture<'static, Result<(String, String, u64), ApiError>>;
}

/// Routes a caller may use without a node certificate.
fn open_route(path: &str) -> bool {
    path == ENROL_PATH || path == PeerRpc::Time.path() || path == PeerRpc::SealConfig.path()
}

fn from_header(headers: &HeaderMap) -> Option<u64> {
    headers.get(FROM_HEADER)?.to_str().ok()?.parse().ok()
}

/// Authenticates a peer request: by node certificate under mutual TLS,
/// else by the cluster secret.
pub async fn require_peer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(hooks) = shared.peer_trust() else {
        if !shared.auth.peer_ok(req.headers()) {
            return ApiError::Unauthorized.into_response();
        }
        return next.run(req).await;
    };
    if open_route(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(cert) = req.extensions().get::<ClientCertificate>() else {
        return ApiError::Unauthorized.into_response();
    };
    let (Some(info), Some(cluster)) = (node_cert_info(&cert.0), hooks.cluster()) else {
        return ApiError::Forbidden("the client certificate names no node of this cluster".into())
            .into_response();
    };
    if info.identity.cluster != cluster {
        return ApiError::Forbidden(format!(
            "the client certificate belongs to cluster {}",
            info.identity.cluster
        ))
        .into_response();
    }
    match from_header(req.headers()) {
        Some(from) if from == info.identity.node => next.run(req).await,
        claimed => {
            tracing::warn!(
                certificate = info.identity.node,
                claimed = ?claimed,
                "refused a peer request whose certificate names another node than it claims"
            );
            ApiError::Forbidden(format!(
                "the client certificate is node {}'s, but the request claims node {}",
                info.identity.node,
                claimed.map_or_else(|| "none".to_string(), |c| c.to_string())
            ))
            .into_response()
        }
    }
}

/// `POST /raft/enrol`.
pub async fn enrol(
    State(shared): State<Arc<Shared>>,
    Json(req): Json<EnrolRequest>,
) -> Result<Json<EnrolAnswer>, ApiError> {
    let hooks = shared.peer_trust().ok_or_else(|| ApiError::NotFound {
        code: "not_found",
        message: "this node does not run keel's peer CA".into(),
    })?;
    hooks.enrol(req).await.map(Json)
}
