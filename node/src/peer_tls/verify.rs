//! How a node checks the certificate the other end of a peer link shows.
//!
//! - [`NodeServerVerifier`]: the server's chain ends at a trusted peer CA
//!   (never at public roots), and its URI SAN names this cluster and, when
//!   the caller knows whom it calls, that node. Host names are not checked:
//!   the identity is the node, wherever it is reached.
//! - [`PinnedVerifier`]: for a join with a token, the server's chain must
//!   end at the CA whose SHA-256 fingerprint the token pins.
//! - [`UnverifiedServer`]: for a node that has no trust yet (a clock probe,
//!   the seal configuration, an enrolment with the bootstrap secret, whose
//!   answer carries a MAC instead).
//!
//! The server side (which client certificates a listener takes) is
//! rustls' own `WebPkiClientVerifier`, rebuilt when the trusted CAs change.

use std::sync::{Arc, RwLock};

use keel_raft::pki::peer::{NodeIdentity, fingerprint_der, node_cert_info};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// What a node trusts: the peer CAs, and the cluster they serve.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The trusted peer CAs.
    pub roots: Arc<RootCertStore>,
    /// The cluster id node certificates must name.
    pub cluster: String,
}

/// The trust in force, swapped when the cluster's peer CAs change.
pub type SharedTrust = Arc<RwLock<Option<Trust>>>;

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

fn bad(msg: impl Into<String>) -> Error {
    Error::General(msg.into())
}

/// Checks the chain to a trusted peer CA and the node identity.
#[derive(Debug)]
pub struct NodeServerVerifier {
    trust: SharedTrust,
    expect: Option<u64>,
}

impl NodeServerVerifier {
    /// Expecting node `expect` if known, else any node of the cluster.
    pub fn new(trust: SharedTrust, expect: Option<u64>) -> Self {
        NodeServerVerifier { trust, expect }
    }
}

/// Verifies `end_entity` (with `intermediates`) against `trust` and returns
/// the identity it names.
pub fn verify_node_cert(
    trust: &Trust,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<NodeIdentity, Error> {
    let parsed = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &trust.roots,
        intermediates,
        now,
        algorithms().all,
    )?;
    let info = node_cert_info(end_entity.as_ref())
        .ok_or_else(|| bad("the peer certificate names no keel node"))?;
    if info.identity.cluster != trust.cluster {
        return Err(bad(format!(
            "the peer certificate belongs to cluster {}, not {}",
            info.identity.cluster, trust.cluster
        )));
    }
    Ok(info.identity)
}

macro_rules! signatures_checked_by_ring {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let trust = self
            .trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| bad("this node trusts no peer CA yet"))?;
        let identity = verify_node_cert(&trust, end_entity, intermediates, now)?;
        if let Some(expect) = self.expect
            && identity.node != expect
        {
            return Err(bad(format!(
                "the peer presented node {}'s certificate, but node {expect} was called",
                identity.node
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked_by_ring!();
}

/// Why [`PinnedVerifier`] refuses a server.
pub const PINNED_MISMATCH: &str = "the server does not chain to the peer CA the join token pins";

/// Accepts a server whose chain ends at the CA a join token pins.
#[derive(Debug)]
pub struct PinnedVerifier {
    /// SHA-256 of the CA certificate, hex.
    pub fingerprint: String,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint_der(c.as_ref()) == self.fingerprint)
            .ok_or_else(|| bad(PINNED_MISMATCH))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone())?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            now,
            algorithms().all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked_by_ring!();
}

/// Accepts any server certificate: only for calls whose answer is public
/// or authenticated otherwise.
#[derive(Debug)]
pub struct UnverifiedServer;

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked_by_ring!();
}

#[cfg(test)]
mod tests {
    use keel_raft::pki::peer::{create_peer_ca, sign_node_csr};

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    fn cert_for(
        ca: &keel_raft::domain::cert::CaRecord,
        cluster: &str,
        node: u64,
    ) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let who = NodeIdentity {
            cluster: cluster.into(),
            node,
        };
        let now = keel_raft::clock::now_ms();
        der(&sign_node_csr(ca, &csr, &who, &[], now, 3_600_000).unwrap())
    }

    /// A caller that meant node 3 refuses node 2's certificate, one of
    /// another cluster, and one of another CA.
    #[test]
    fn the_server_must_be_the_node_called_of_this_cluster_under_its_ca() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let now = keel_raft::clock::now_ms();
        let ca = create_peer_ca("c1", now, 86_400_000).unwrap();
        let other = create_peer_ca("c1", now, 86_400_000).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(der(&ca.certificate_pem)).unwrap();
        let trust: SharedTrust = Arc::new(RwLock::new(Some(Trust {
            roots: Arc::new(roots),
            cluster: "c1".into(),
        })));
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let check = |expect: Option<u64>, cert: &CertificateDer<'_>| {
            NodeServerVerifier::new(trust.clone(), expect)
                .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
                .map(|_| ())
        };
        assert!(check(Some(3), &cert_for(&ca, "c1", 3)).is_ok());
        assert!(check(None, &cert_for(&ca, "c1", 2)).is_ok());
        assert!(check(Some(3), &cert_for(&ca, "c1", 2)).is_err());
        assert!(check(Some(3), &cert_for(&ca, "c2", 3)).is_err());
        assert!(check(Some(3), &cert_for(&other, "c1", 3)).is_err());
    }
}
