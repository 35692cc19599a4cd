//! Getting a node's first certificate, after the seal gate and before
//! Raft starts.
//!
//! - A stored identity is used as it is.
//! - With `--join-token`, the node asks the node it joins through (or its
//!   peers) over TLS that must chain to the CA the token pins. A refused
//!   token (unknown, used, expired) stops the start with that reason.
//! - Otherwise it enrols with the bootstrap secret at its peers. A peer
//!   that has no peer CA either answers so; the lowest-id node of the
//!   peer list creates the cluster's peer CA once `bootstrap_expect`
//!   nodes (itself included) have answered that way, as bootstrap itself
//!   decides who initializes.

use std::sync::Arc;
use std::time::Duration;

use keel_raft::clock::now_ms;
use keel_raft::pki::SecretPem;
use keel_raft::pki::peer::{NodeIdentity, create_peer_ca, sign_node_csr};
use keel_web::enrol::{ENROL_PATH, EnrolAnswer, EnrolProof, EnrolRequest, Issued};
use rustls::ClientConfig;
use tokio_util::sync::CancellationToken;

use super::files::{self, Identity};
use super::issue::{self, reply_is_genuine, request_mac};
use super::verify::{PINNED_MISMATCH, PinnedVerifier};
use super::{PeerTls, hex};
use crate::config::Config;
use crate::tls::peer_builder;

const RETRY: Duration = Duration::from_millis(300);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Life of a peer CA keel creates.
pub const PEER_CA_TTL_MS: u64 = 10 * 365 * 86_400_000;

/// A new key and a CSR for it.
pub fn new_key_and_csr() -> Result<(SecretPem, String), String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| e.to_string())?;
    Ok((SecretPem::new(key.serialize_pem()), csr))
}

/// An error and its causes, as one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What one enrolment attempt at one peer gave.
enum Attempt {
    Issued(Identity),
    /// The peer has no peer CA.
    Pristine,
    /// The peer refused the proof for good.
    Refused(String),
    /// Unreachable, not ready: try again.
    Later(String),
}

async fn attempt(
    tls: &PeerTls,
    http: &reqwest::Client,
    addr: &str,
    proof: EnrolProof,
    key: &SecretPem,
    csr: &str,
) -> Attempt {
    let req = EnrolRequest {
        node: tls.node,
        csr_pem: csr.to_string(),
        hosts: tls.hosts.clone(),
        proof,
    };
    let by_secret = matches!(req.proof, EnrolProof::BootstrapMac { .. });
    let sent = http
        .post(format!("https://{addr}{ENROL_PATH}"))
        .json(&req)
        .timeout(CALL_TIMEOUT)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let why = with_causes(&e);
            // The server answered with a chain that does not end at the CA
            // the join token pins: another cluster, or not keel. Retrying
            // cannot help.
            if why.contains(PINNED_MISMATCH) {
                return Attempt::Refused(format!(
                    "{addr} is not a node of the cluster the join token is for: {why}"
                ));
            }
            return Attempt::Later(format!("{addr}: {why}"));
        }
    };
    let status = response.status();
    if status == 403 {
        let body = response.text().await.unwrap_or_default();
        return Attempt::Refused(format!("{addr} refused: {body}"));
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Attempt::Later(format!("{addr}: HTTP {status}: {body}"));
    }
    let issued: Issued = match response.json::<EnrolAnswer>().await {
        Ok(EnrolAnswer::Issued(i)) => i,
        Ok(EnrolAnswer::NoPeerCa) => return Attempt::Pristine,
        Err(e) => return Attempt::Later(format!("{addr}: {e}")),
    };
    if by_secret && !reply_is_genuine(&tls.secret.get(), &issued) {
        return Attempt::Later(format!(
            "{addr} answered without proof of the bootstrap secret; ignored"
        ));
    }
    Attempt::Issued(Identity {
        key_pem: key.clone(),
        cert_pem: issued.cert_pem,
        trust_pem: issued.trust_pem,
    })
}

fn pinned_client(fingerprint: &str) -> Result<reqwest::Client, String> {
    let config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
            fingerprint: fingerprint.to_string(),
        }))
        .with_no_client_auth();
    peer_builder()
        .use_preconfigured_tls(config)
        .build()
        .map_err(|e| e.to_string())
}

/// Stores, checks and installs an identity.
fn adopt(tls: &PeerTls, config: &Config, identity: &Identity) -> Result<(), String> {
    let parsed = identity.parse()?;
    if parsed.info.identity.node != tls.node {
        return Err(format!(
            "the certificate issued names node {}, not this node",
            parsed.info.identity.node
        ));
    }
    if let Some(want) = &config.cluster_id
        && *want != parsed.info.identity.cluster
    {
        return Err(format!(
            "the peers belong to cluster {}, but this node is configured for cluster {want}",
            parsed.info.identity.cluster
        ));
    }
    let parsed = files::store(&tls.dir, &tls.keeper, identity)?;
    tls.install(&parsed)?;
    tracing::info!(
        cluster = %parsed.info.identity.cluster,
        serial = %parsed.info.serial,
        not_after = %keel_raft::clock::to_rfc3339(parsed.info.not_after),
        "node certificate stored and in use"
    );
    Ok(())
}

fn random_cluster_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// Creates the cluster's peer CA and this node's certificate from it.
fn create(tls: &PeerTls, config: &Config, stored_cluster: Option<String>) -> Result<(), String> {
    let cluster = stored_cluster
        .or_else(|| config.cluster_id.clone())
        .unwrap_or_else(random_cluster_id);
    let now = now_ms();
    let ca = create_peer_ca(&cluster, now, PEER_CA_TTL_MS).map_err(|e| e.to_string())?;
    issue::keep_bootstrap_ca(tls, &ca)?;
    let (key, csr) = new_key_and_csr()?;
    let identity = NodeIdentity {
        cluster: cluster.clone(),
        node: tls.node,
    };
    let cert_pem = sign_node_csr(&ca, &csr, &identity, &tls.hosts, now, tls.ttl_ms)
        .map_err(|e| e.to_string())?;
    tracing::info!(cluster = %cluster, "created the cluster's peer CA");
    adopt(
        tls,
        config,
        &Identity {
            key_pem: key,
            cert_pem,
            trust_pem: ca.certificate_pem.clone(),
        },
    )
}

/// Makes sure the node has its certificate; `Ok(false)` if stopped first.
pub async fn ensure(
    tls: &PeerTls,
    config: &Config,
    stored_cluster: Option<String>,
    stop: &CancellationToken,
) -> Result<bool, String> {
    if tls.info().is_some() {
        return Ok(true);
    }
    let stored = files::load(&tls.dir, &tls.keeper).unwrap_or_else(|e| {
        // Not this data directory's (a key sealed under another keyring):
        // the node enrols again rather than never starting.
        tracing::warn!(error = %e, "the stored node certificate cannot be used; enrolling again");
        None
    });
    if let Some(identity) = stored {
        let parsed = identity.parse()?;
        if parsed.info.not_after > now_ms() {
            tls.install(&parsed)?;
            tracing::info!(serial = %parsed.info.serial, "node certificate loaded");
            return Ok(true);
        }
        // Down for longer than its certificate lived: peers would refuse
        // it, so it enrols again like a new node.
        tracing::warn!(
            serial = %parsed.info.serial,
            not_after = %keel_raft::clock::to_rfc3339(parsed.info.not_after),
            "the stored node certificate has expired; enrolling again"
        );
    }
    let (key, csr) = new_key_and_csr()?;
    let pinned = config
        .join_token
        .as_ref()
        .map(|t| pinned_client(&t.ca_fingerprint))
        .transpose()?;
    let mut targets: Vec<String> = config.join.iter().cloned().collect();
    targets.extend(
        config
            .peers
            .iter()
            .filter(|(id, _)| **id != config.node_id)
            .map(|(_, a)| a.clone()),
    );
    targets.dedup();
    let lowest = config.peers.keys().next().copied() == Some(config.node_id);
    let mut last_note = tokio::time::Instant::now();
    loop {
        let mut pristine = 0usize;
        let mut last_error = String::new();
        for addr in &targets {
            let outcome = match (&config.join_token, &pinned) {
                (Some(token), Some(http)) => {
                    let proof = EnrolProof::JoinToken {
                        secret: token.secret.clone(),
                    };
                    attempt(tls, http, addr, proof, &key, &csr).await
                }
                _ => {
                    let proof = EnrolProof::BootstrapMac {
                        mac: request_mac(&tls.secret.get(), tls.node, &csr),
                    };
                    attempt(tls, &tls.anonymous(), addr, proof, &key, &csr).await
                }
            };
            match outcome {
                Attempt::Issued(identity) => {
                    adopt(tls, config, &identity)?;
                    tracing::info!(via = %addr, "enrolled: node certificate issued by the cluster");
                    return Ok(true);
                }
                Attempt::Pristine => pristine += 1,
                Attempt::Refused(why) => {
                    return Err(format!(
                        "the cluster refused to issue a node certificate: {why}"
                    ));
                }
                Attempt::Later(why) => last_error = why,
            }
        }
        if config.join_token.is_none()
            && config.join.is_none()
            && lowest
            && pristine + 1 >= config.bootstrap_expect
            && pristine + 1 >= config.peers.len().min(config.bootstrap_expect.max(1))
        {
            create(tls, config, stored_cluster.clone())?;
            return Ok(true);
        }
        if last_note.elapsed() > Duration::from_secs(10) {
            tracing::info!(pristine, last_error = %last_error, "waiting for a node certificate");
            last_note = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(false),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
