//! Answering other nodes' enrolments, and making join tokens.
//!
//! A node may have a certificate for the name it asks for when it proves
//! one of:
//! - a join token: the digest of its secret is consumed through Raft
//!   (once, before its expiry, on every replica alike);
//! - the bootstrap secret: an HMAC of its request under the cluster
//!   secret. The answer then carries an HMAC too, since the new node has
//!   no CA to check the server against yet.
//!
//! The signer is the cluster's peer CA from the replicated state, or,
//! before the cluster has formed, the peer CA the bootstrap node created
//! (kept sealed in its data directory until it is replicated).

use std::sync::{Arc, Weak};

use futures::future::BoxFuture;
use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Request};
use keel_raft::domain::cert::CaRecord;
use keel_raft::pki::peer::{NodeIdentity, create_peer_ca, fingerprint, sign_node_csr};
use keel_web::enrol::{
    EnrolAnswer, EnrolProof, EnrolRequest, Issued, PeerCaInfo, PeerTrustHooks, RotationStep,
};
use keel_web::events::{EventKind, Source};
use keel_web::{ApiError, Shared};
use rand::RngCore;
use ring::hmac;

use super::files::{self, BOOTSTRAP_CA};
use super::{PeerTls, hex};

const REQUEST_LABEL: &[u8] = b"keel/enrol/v1\n";
const REPLY_LABEL: &[u8] = b"keel/enrol-reply/v1\n";
const SEAL_AAD: &[u8] = b"keel/bootstrap-peer-ca/v1";

fn mac(secret: &str, parts: &[&[u8]]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ctx.sign()
}

fn check_mac(secret: &str, parts: &[&[u8]], given_hex: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = Vec::new();
    for p in parts {
        msg.extend_from_slice(&(p.len() as u64).to_be_bytes());
        msg.extend_from_slice(p);
    }
    let Some(given) = unhex(given_hex) else {
        return false;
    };
    hmac::verify(&key, &msg, &given).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The HMAC a node sends with a bootstrap-secret enrolment.
pub fn request_mac(secret: &str, node: u64, csr_pem: &str) -> String {
    hex(mac(
        secret,
        &[REQUEST_LABEL, &node.to_be_bytes(), csr_pem.as_bytes()],
    )
    .as_ref())
}

fn reply_parts(issued: &Issued) -> [&[u8]; 4] {
    [
        REPLY_LABEL,
        issued.cert_pem.as_bytes(),
        issued.trust_pem.as_bytes(),
        issued.cluster.as_bytes(),
    ]
}

/// Whether an answer to a bootstrap-secret enrolment came from a holder
/// of the secret.
pub fn reply_is_genuine(secret: &str, issued: &Issued) -> bool {
    issued
        .mac
        .as_deref()
        .is_some_and(|m| check_mac(secret, &reply_parts(issued), m))
}

/// SHA-256 of a join token's secret, hex: what the cluster stores.
pub fn token_digest(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Seals the bootstrap CA into the node's peer directory.
pub fn keep_bootstrap_ca(tls: &PeerTls, ca: &CaRecord) -> Result<(), String> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(ca).map_err(|e| e.to_string())?);
    let sealed = tls
        .keeper
        .seal_record(SEAL_AAD, &plain)
        .map_err(|e| format!("sealing the peer CA: {e}"))?;
    files::write_atomic(&tls.dir, BOOTSTRAP_CA, &sealed)
}

/// The bootstrap CA this node created, if it still keeps it (and is
/// unsealed).
pub fn bootstrap_ca(tls: &PeerTls) -> Option<CaRecord> {
    let sealed = std::fs::read(tls.dir.join(BOOTSTRAP_CA)).ok()?;
    let plain = zeroize::Zeroizing::new(tls.keeper.open_record(SEAL_AAD, &sealed).ok()?);
    serde_json::from_slice(&plain).ok()
}

/// The trusted CAs as one PEM bundle, the signer first.
pub fn bundle(cas: &[CaRecord]) -> String {
    cas.iter().map(|c| c.certificate_pem.as_str()).collect()
}

/// The peer router's hooks: enrolment and join tokens.
pub struct Issuer {
    /// The node's mutual-TLS state.
    pub tls: Arc<PeerTls>,
    /// The web state (for the control plane); weak, as it holds this.
    pub shared: Weak<Shared>,
}

fn domain_error(e: keel_raft::Error) -> ApiError {
    ApiError::from(e)
}

impl Issuer {
    /// The signing CA and the trusted bundle: the replicated ones, else
    /// the bootstrap CA (only for a bootstrap-secret proof).
    fn signer(&self, bootstrap_proof: bool) -> Option<(CaRecord, String)> {
        let shared = self.shared.upgrade()?;
        if let Some(cp) = shared.control_plane() {
            let cas = cp.local(|s| s.peer.cas.clone());
            if let Some(first) = cas.first() {
                return Some((first.clone(), bundle(&cas)));
            }
        }
        if bootstrap_proof && let Some(ca) = bootstrap_ca(&self.tls) {
            let pem = ca.certificate_pem.clone();
            return Some((ca, pem));
        }
        None
    }

    async fn enrol_inner(&self, req: EnrolRequest) -> Result<EnrolAnswer, ApiError> {
        if req.node > keel_raft::types::MAX_NODE_NAME {
            return Err(ApiError::BadRequest("no such node name".into()));
        }
        if req.hosts.len() > 8 || req.hosts.iter().any(|h| h.is_empty() || h.len() > 253) {
            return Err(ApiError::BadRequest(
                "at most 8 host names of 1 to 253 characters".into(),
            ));
        }
        let Some(cluster) = self.tls.cluster() else {
            return Ok(EnrolAnswer::NoPeerCa);
        };
        let secret = self.tls.secret.get();
        let by_secret = match &req.proof {
            EnrolProof::BootstrapMac { mac } => {
                let parts: [&[u8]; 3] = [
                    REQUEST_LABEL,
                    &req.node.to_be_bytes(),
                    req.csr_pem.as_bytes(),
                ];
                if !check_mac(&secret, &parts, mac) {
                    tracing::warn!(
                        node = req.node,
                        "refused an enrolment: the bootstrap secret does not match"
                    );
                    return Err(ApiError::Forbidden(
                        "the enrolment is not signed with this cluster's bootstrap secret".into(),
                    ));
                }
                true
            }
            EnrolProof::JoinToken { .. } => false,
        };
        if let EnrolProof::JoinToken { secret: token } = &req.proof {
            self.check_token_locally(&token_digest(token))?;
        }
        let (ca, trust_pem) = self.signer(by_secret).ok_or_else(|| {
            ApiError::NotReady("this node cannot sign node certificates yet".into())
        })?;
        // Check the CSR before a join token is spent on it.
        let now = now_ms();
        let identity = NodeIdentity {
            cluster: cluster.clone(),
            node: req.node,
        };
        let cert_pem = sign_node_csr(
            &ca,
            &req.csr_pem,
            &identity,
            &req.hosts,
            now,
            self.tls.ttl_ms,
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if let EnrolProof::JoinToken { secret: token } = &req.proof {
            let cp = self
                .shared
                .upgrade()
                .and_then(|s| s.control_plane())
                .ok_or(ApiError::RaftNotReady)?;
            cp.write(
                Request::Apply(Command::ConsumeJoinToken {
                    digest: token_digest(token),
                    node: req.node,
                }),
                None,
            )
            .await
            .map_err(domain_error)?;
        }
        let mut issued = Issued {
            cert_pem,
            trust_pem,
            cluster,
            mac: None,
        };
        if by_secret {
            issued.mac = Some(hex(mac(&secret, &reply_parts(&issued)).as_ref()));
        }
        if let Some(shared) = self.shared.upgrade() {
            shared.events.record(
                EventKind::Lifecycle,
                Source::Node,
                format!(
                    "issued a node certificate to node {} ({})",
                    req.node,
                    if by_secret {
                        "bootstrap secret"
                    } else {
                        "join token"
                    }
                ),
            );
        }
        Ok(EnrolAnswer::Issued(issued))
    }

    /// Refuses an unknown, used or expired token before anything is
    /// signed or proposed, so a caller without a valid token cannot make
    /// the cluster write to its log. The proposal re-checks (the token may
    /// be used concurrently).
    fn check_token_locally(&self, digest: &str) -> Result<(), ApiError> {
        let cp = self
            .shared
            .upgrade()
            .and_then(|s| s.control_plane())
            .ok_or(ApiError::RaftNotReady)?;
        let token = cp.local(|s| s.peer.join_tokens.get(digest).cloned());
        let refuse = |m: &str| {
            tracing::warn!(reason = m, "refused an enrolment with a join token");
            Err(ApiError::Forbidden(m.to_string()))
        };
        match token {
            None => refuse("unknown join token"),
            Some(t) if t.used_by.is_some() => refuse("this join token was already used"),
            Some(t) if now_ms() >= t.expires_at => refuse("this join token has expired"),
            Some(_) => Ok(()),
        }
    }

    async fn join_token_inner(&self, ttl_ms: u64) -> Result<(String, String, u64), ApiError> {
        let shared = self.shared.upgrade().ok_or(ApiError::RaftNotReady)?;
        let cp = shared.domain_cp()?;
        let signer = cp
            .local(|s| s.peer.signer().cloned())
            .ok_or_else(|| ApiError::Conflict {
                code: "conflict",
                message: "the cluster has no peer CA yet".into(),
            })?;
        let fp =
            fingerprint(&signer.certificate_pem).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let secret = zeroize::Zeroizing::new(hex(&raw));
        let digest = token_digest(&secret);
        let before = now_ms();
        let written = cp
            .write(
                Request::Apply(Command::CreateJoinToken {
                    digest: digest.clone(),
                    ttl_ms,
                }),
                None,
            )
            .await
            .map_err(domain_error)?;
        // The expiry is the one the cluster stamped: read it once this
        // node has applied the entry (it was forwarded if this node does
        // not lead).
        if let Some(index) = written.log_index {
            let _ = cp
                .wait_for(std::time::Duration::from_secs(5), move |s| {
                    s.applied.unwrap_or(0) >= index
                })
                .await;
        }
        let expires_at = cp
            .local(|s| s.peer.join_tokens.get(&digest).map(|t| t.expires_at))
            .unwrap_or_else(|| before.saturating_add(ttl_ms));
        Ok((format!("keel1:{fp}:{}", &*secret), fp, expires_at))
    }
}

/// The certificate a node's peer listener presents (DER).
async fn presented(peer_addr: &str) -> Result<Vec<u8>, String> {
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::verify::UnverifiedServer))
        .with_no_client_auth();
    let http = crate::tls::peer_builder()
        .use_preconfigured_tls(config)
        .tls_info(true)
        .build()
        .map_err(|e| e.to_string())?;
    let r = http
        .post(format!(
            "https://{peer_addr}{}",
            keel_raft::wire::PeerRpc::Time.path()
        ))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "no certificate presented".to_string())
}

/// Whether a node's peer listener takes a client certificate from `ca`:
/// a throwaway certificate for this node, signed by `ca`, is presented in
/// a handshake, which fails if the node does not trust `ca`.
async fn trusts(peer_addr: &str, ca: &CaRecord, identity: &NodeIdentity) -> Result<(), String> {
    let (key, csr) = super::obtain::new_key_and_csr()?;
    let cert =
        sign_node_csr(ca, &csr, identity, &[], now_ms(), 60_000).map_err(|e| e.to_string())?;
    let mut chain = rustls_pemfile::certs(&mut cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    chain.extend(rustls_pemfile::certs(&mut ca.certificate_pem.as_bytes()).filter_map(Result::ok));
    let key = rustls_pemfile::private_key(&mut key.expose().as_bytes())
        .map_err(|e| e.to_string())?
        .ok_or("no key")?;
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::verify::UnverifiedServer))
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    let http = crate::tls::peer_builder()
        .use_preconfigured_tls(config)
        .build()
        .map_err(|e| e.to_string())?;
    http.post(format!(
        "https://{peer_addr}{}",
        keel_raft::wire::PeerRpc::Time.path()
    ))
    .timeout(std::time::Duration::from_secs(5))
    .send()
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn views(cas: &[CaRecord]) -> Vec<PeerCaInfo> {
    cas.iter()
        .enumerate()
        .map(|(i, c)| PeerCaInfo {
            fingerprint: fingerprint(&c.certificate_pem).unwrap_or_default(),
            signing: i == 0,
            not_after: keel_raft::clock::to_rfc3339(c.not_after),
            certificate: c.certificate_pem.clone(),
        })
        .collect()
}

impl Issuer {
    async fn rotate_inner(&self, step: RotationStep) -> Result<Vec<PeerCaInfo>, ApiError> {
        let shared = self.shared.upgrade().ok_or(ApiError::RaftNotReady)?;
        let cp = shared.domain_cp()?;
        let cas = cp.local(|s| s.peer.cas.clone());
        let conflict = |m: String| ApiError::Conflict {
            code: "conflict",
            message: m,
        };
        let Some(cluster) = self.tls.cluster() else {
            return Err(ApiError::NotReady(
                "this node has no node certificate yet".into(),
            ));
        };
        let command = match step {
            RotationStep::Add => {
                let ca = create_peer_ca(&cluster, now_ms(), super::obtain::PEER_CA_TTL_MS)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                vec![Command::AddPeerCa { ca }]
            }
            RotationStep::Activate => {
                if cas.len() < 2 {
                    return Err(conflict("no new peer CA to activate: add one first".into()));
                }
                let newest = &cas[cas.len() - 1];
                let me = NodeIdentity {
                    cluster: cluster.clone(),
                    node: self.tls.node,
                };
                let view = keel_raft::ClusterView::build(&cp.status(), None);
                for m in &view.members {
                    trusts(&m.peer_addr, newest, &me).await.map_err(|e| {
                        conflict(format!(
                            "node {} does not trust the new peer CA yet ({e}); retry in a few seconds",
                            m.id
                        ))
                    })?;
                }
                vec![Command::ActivatePeerCa {
                    index: (cas.len() - 1) as u32,
                }]
            }
            RotationStep::Drop => {
                if cas.len() < 2 {
                    return Err(conflict("only the signing peer CA is trusted".into()));
                }
                let view = keel_raft::ClusterView::build(&cp.status(), None);
                for m in &view.members {
                    let der = presented(&m.peer_addr).await.map_err(|e| {
                        conflict(format!("cannot check node {}'s certificate: {e}", m.id))
                    })?;
                    if !super::tend::signed_by_der(&der, &cas[0].certificate_pem) {
                        return Err(conflict(format!(
                            "node {} still presents a certificate from an older peer CA; wait for it to renew, then drop",
                            m.id
                        )));
                    }
                }
                (1..cas.len())
                    .rev()
                    .map(|i| Command::DropPeerCa { index: i as u32 })
                    .collect()
            }
        };
        for c in command {
            cp.write(Request::Apply(c), None)
                .await
                .map_err(domain_error)?;
        }
        shared.events.record(
            EventKind::Lifecycle,
            Source::Node,
            format!("peer CA rotation: {step:?}").to_lowercase(),
        );
        Ok(views(&cp.local(|s| s.peer.cas.clone())))
    }
}

impl PeerTrustHooks for Issuer {
    fn peer_cas(&self) -> Result<Vec<PeerCaInfo>, ApiError> {
        let cp = self
            .shared
            .upgrade()
            .and_then(|s| s.control_plane())
            .ok_or(ApiError::RaftNotReady)?;
        Ok(views(&cp.local(|s| s.peer.cas.clone())))
    }

    fn rotate(&self, step: RotationStep) -> BoxFuture<'static, Result<Vec<PeerCaInfo>, ApiError>> {
        let this = Issuer {
            tls: self.tls.clone(),
            shared: self.shared.clone(),
        };
        Box::pin(async move { this.rotate_inner(step).await })
    }

    fn cluster(&self) -> Option<String> {
        self.tls.cluster()
    }

    fn enrol(&self, req: EnrolRequest) -> BoxFuture<'static, Result<EnrolAnswer, ApiError>> {
        let this = Issuer {
            tls: self.tls.clone(),
            shared: self.shared.clone(),
        };
        Box::pin(async move { this.enrol_inner(req).await })
    }

    fn certificate(&self) -> Option<(String, u64)> {
        self.tls.info().map(|i| (i.serial, i.not_after))
    }

    fn join_token(
        &self,
        ttl_ms: u64,
    ) -> BoxFuture<'static, Result<(String, String, u64), ApiError>> {
        let this = Issuer {
            tls: self.tls.clone(),
            shared: self.shared.clone(),
        };
        Box::pin(async move { this.join_token_inner(ttl_ms).await })
    }
}
