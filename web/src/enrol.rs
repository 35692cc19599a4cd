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
    match check_certificate(hooks.as_ref(), &req) {
        Ok(()) => next.run(req).await,
        // The refusal closes the connection: what a connection presented
        // is fixed at its handshake, so the caller must open a new one
        // (one made before this node asked for certificates, say).
        Err(refusal) => {
            let mut response = refusal.into_response();
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// The connection's certificate names this cluster and the node the
/// request claims to come from.
fn check_certificate(hooks: &dyn PeerTrustHooks, req: &Request) -> Result<(), ApiError> {
    let cert = req
        .extensions()
        .get::<ClientCertificate>()
        .ok_or(ApiError::Unauthorized)?;
    let (Some(info), Some(cluster)) = (node_cert_info(&cert.0), hooks.cluster()) else {
        return Err(ApiError::Forbidden(
            "the client certificate names no node of this cluster".into(),
        ));
    };
    if info.identity.cluster != cluster {
        return Err(ApiError::Forbidden(format!(
            "the client certificate belongs to cluster {}",
            info.identity.cluster
        )));
    }
    match from_header(req.headers()) {
        Some(from) if from == info.identity.node => Ok(()),
        claimed => {
            tracing::warn!(
                certificate = info.identity.node,
                claimed = ?claimed,
                "refused a peer request whose certificate names another node than it claims"
            );
            Err(ApiError::Forbidden(format!(
                "the client certificate is node {}'s, but the request claims node {}",
                info.identity.node,
                claimed.map_or_else(|| "none".to_string(), |c| c.to_string())
            )))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, header};
    use futures::future::BoxFuture;
    use keel_raft::transport::ClusterSecret;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::Auth;
    use crate::shared::{ApiLimits, Shared};

    struct Hooks;

    impl PeerTrustHooks for Hooks {
        fn cluster(&self) -> Option<String> {
            Some("c1".into())
        }
        fn enrol(&self, _: EnrolRequest) -> BoxFuture<'static, Result<EnrolAnswer, ApiError>> {
            Box::pin(async { Ok(EnrolAnswer::NoPeerCa) })
        }
        fn certificate(&self) -> Option<(String, u64)> {
            None
        }
        fn peer_cas(&self) -> Result<Vec<PeerCaInfo>, ApiError> {
            Ok(Vec::new())
        }
        fn rotate(&self, _: RotationStep) -> BoxFuture<'static, Result<Vec<PeerCaInfo>, ApiError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn join_token(
            &self,
            _: u64,
        ) -> BoxFuture<'static, Result<(String, String, u64), ApiError>> {
            Box::pin(async { Err(ApiError::RaftNotReady) })
        }
    }

    /// A Raft route on a connection that presented no certificate is
    /// refused, even with the cluster secret, and the connection is closed:
    /// a connection made before this node asked for certificates must not
    /// be kept. Enrolment and the clock probe stay open.
    #[tokio::test]
    async fn without_a_certificate_a_raft_route_is_refused_and_the_connection_closed() {
        let shared = Arc::new(Shared::new(
            1,
            Auth::new(
                vec!["t".repeat(16)],
                ClusterSecret::new("s3cret-s3cret-s3cret"),
            ),
            ApiLimits::default(),
        ));
        shared.install_peer_trust(Arc::new(Hooks));
        let router = crate::peer::router(shared);
        let post = |path: &str| {
            Request::post(path)
                .header(header::AUTHORIZATION, "Bearer s3cret-s3cret-s3cret")
                .header(FROM_HEADER, "2")
                .body(Body::empty())
                .unwrap()
        };
        let r = router.clone().oneshot(post("/raft/hello")).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers().get(header::CONNECTION).unwrap(), "close");
        let r = router
            .clone()
            .oneshot(post(PeerRpc::Time.path()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = router
            .oneshot(
                Request::post(ENROL_PATH)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        r#"{"node":2,"csr_pem":"x","hosts":[],"proof":{"bootstrap_mac":{"mac":"00"}}}"#,
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
