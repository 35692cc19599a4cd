//! Mutual TLS between nodes with certificates from keel's own peer CA.
//!
//! [`PeerTls`] is the node's side of it: the certificate it serves and
//! presents (swapped in place on renewal, so open connections stay), the
//! peer CAs it trusts (swapped when the cluster's change), the peer
//! listener's TLS configuration, and the HTTP clients peer calls go out
//! on: one per addressee, each checking that the server is the node it
//! meant to reach. Until the node has its certificate it serves a
//! provisional self-signed one and calls out without a client
//! certificate; only the clock probe, the seal configuration and
//! enrolment answer such calls.
//!
//! - [`files`]: the identity on disk, written make-before-break.
//! - [`verify`]: what a node accepts from the server it calls.
//! - [`obtain`]: getting the first certificate (create the peer CA,
//!   enrol with the bootstrap secret, or with a join token).
//! - [`issue`]: answering other nodes' enrolments; join tokens.
//! - [`tend`]: on every node, keeping trust in step with the cluster,
//!   publishing the bootstrap CA, and renewing the certificate at two
//!   thirds of its life.

pub mod files;
pub mod issue;
pub mod obtain;
pub mod tend;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use keel_raft::pki::peer::NodeCertInfo;
use keel_raft::seal::Keeper;
use keel_raft::transport::{ClusterSecret, PeerHttp};
use keel_web::TlsSlot;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};

use self::files::Parsed;
use self::verify::{NodeServerVerifier, SharedTrust, Trust, UnverifiedServer};
use crate::tls::{install_crypto_provider, peer_builder};

/// The certificate a node serves and presents, swappable.
#[derive(Debug, Default)]
pub struct CurrentCert(RwLock<Option<Arc<CertifiedKey>>>);

impl CurrentCert {
    fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

/// Presents the node certificate only once the node has one.
#[derive(Debug)]
struct ClientCert {
    current: Arc<CurrentCert>,
    trust: SharedTrust,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let has = self
            .trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        has.then(|| self.current.get()).flatten()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A node's mutual-TLS state.
pub struct PeerTls {
    /// This node's name.
    pub node: u64,
    /// Where its identity is stored.
    pub dir: PathBuf,
    /// Host names peers reach it at (put in its certificates).
    pub hosts: Vec<String>,
    /// Life of the certificates it asks for and issues.
    pub ttl_ms: u64,
    /// The node's keys (the bootstrap CA is sealed with them).
    pub keeper: Arc<Keeper>,
    /// The bootstrap secret (the cluster secret): good for enrolling.
    pub secret: ClusterSecret,
    trust: SharedTrust,
    current: Arc<CurrentCert>,
    slot: TlsSlot,
    info: RwLock<Option<NodeCertInfo>>,
    clients: Mutex<HashMap<Option<u64>, reqwest::Client>>,
    anonymous: reqwest::Client,
    /// The certificate's end (ms), 0 before it has one: for the metric.
    pub not_after_ms: AtomicU64,
}

fn certified(parsed: &Parsed) -> Result<Arc<CertifiedKey>, String> {
    let key = rustls::crypto::ring::sign::any_supported_type(&parsed.key)
        .map_err(|e| format!("node key: {e}"))?;
    let mut chain = vec![parsed.cert.clone()];
    chain.extend(parsed.cas.first().cloned());
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

/// A self-signed certificate to serve TLS with before the node has its own.
fn provisional(node: u64) -> Result<Arc<CertifiedKey>, String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(vec![format!("keel-node-{node}.provisional")])
        .map_err(|e| e.to_string())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("keel node {node} (provisional: no node certificate loaded)"),
    );
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

impl PeerTls {
    /// Before the node has its certificate: a provisional one served, no
    /// peer trusted.
    pub fn new(
        node: u64,
        dir: PathBuf,
        hosts: Vec<String>,
        ttl_ms: u64,
        keeper: Arc<Keeper>,
        secret: ClusterSecret,
    ) -> Result<Arc<Self>, String> {
        install_crypto_provider();
        let current = Arc::new(CurrentCert::default());
        current.set(provisional(node)?);
        let anonymous = ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnverifiedServer))
            .with_no_client_auth();
        let anonymous = peer_builder()
            .use_preconfigured_tls(anonymous)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let this = PeerTls {
            node,
            dir,
            hosts,
            ttl_ms,
            keeper,
            secret,
            trust: Arc::new(RwLock::new(None)),
            current,
            slot: TlsSlot::default(),
            info: RwLock::new(None),
            clients: Mutex::new(HashMap::new()),
            anonymous,
            not_after_ms: AtomicU64::new(0),
        };
        this.slot.set(this.server_config()?);
        Ok(Arc::new(this))
    }

    /// The peer listener's TLS configuration slot.
    pub fn slot(&self) -> TlsSlot {
        self.slot.clone()
    }

    /// A TLS configuration for the API listener: the node certificate
    /// (renewals included), no client certificates.
    pub fn api_slot(&self) -> TlsSlot {
        TlsSlot::new(Arc::new(
            ServerConfig::builder()
                .with_no_client_auth()
                .with_cert_resolver(self.current.clone()),
        ))
    }

    /// The trust in force, if the node has its certificate.
    pub fn trust(&self) -> Option<Trust> {
        self.trust.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the node's certificate says, once it has one.
    pub fn info(&self) -> Option<NodeCertInfo> {
        self.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The cluster node certificates name, once known.
    pub fn cluster(&self) -> Option<String> {
        self.trust().map(|t| t.cluster)
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let builder = ServerConfig::builder();
        let builder = match self.trust() {
            Some(trust) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder(trust.roots.clone())
                    // Enrolment, the clock probe and the seal configuration
                    // take callers without a certificate; the peer router
                    // refuses them everything else.
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("peer CA trust: {e}"))?,
            ),
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(builder.with_cert_resolver(self.current.clone())))
    }

    /// Puts a stored identity in force: new connections use it at once,
    /// open ones go on.
    pub fn install(&self, parsed: &Parsed) -> Result<(), String> {
        let key = certified(parsed)?;
        let mut roots = RootCertStore::empty();
        for ca in &parsed.cas {
            roots.add(ca.clone()).map_err(|e| format!("peer CA: {e}"))?;
        }
        let trust = Trust {
            roots: Arc::new(roots),
            cluster: parsed.info.identity.cluster.clone(),
        };
        *self.trust.write().unwrap_or_else(|e| e.into_inner()) = Some(trust);
        // The listener asks for client certificates before it presents the
        // node certificate: in the other order, a peer could complete a
        // handshake that verifies this node but was never asked for its own
        // certificate, and keep that connection (every request on it then
        // unauthenticated).
        self.slot.set(self.server_config()?);
        self.current.set(key);
        *self.info.write().unwrap_or_else(|e| e.into_inner()) = Some(parsed.info.clone());
        self.not_after_ms
            .store(parsed.info.not_after, Ordering::Release);
        Ok(())
    }

    /// Drops the node's key and trust from memory (a seal): until the
    /// node is unsealed and loads them again, it serves a provisional
    /// certificate and trusts no peer.
    pub fn forget(&self) {
        match provisional(self.node) {
            Ok(key) => self.current.set(key),
            Err(e) => tracing::error!(error = %e, "cannot make a provisional certificate"),
        }
        *self.trust.write().unwrap_or_else(|e| e.into_inner()) = None;
        *self.info.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.not_after_ms.store(0, Ordering::Release);
        match self.server_config() {
            Ok(c) => self.slot.set(c),
            Err(e) => tracing::error!(error = %e, "cannot reset the peer listener's TLS"),
        }
    }

    fn client_for(&self, to: Option<u64>) -> Result<reqwest::Client, String> {
        let config = ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NodeServerVerifier::new(
                self.trust.clone(),
                to,
            )))
            .with_client_cert_resolver(Arc::new(ClientCert {
                current: self.current.clone(),
                trust: self.trust.clone(),
            }));
        peer_builder()
            .use_preconfigured_tls(config)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))
    }

    /// A client with no client certificate that accepts any server (the
    /// caller authenticates the answer otherwise).
    pub fn anonymous(&self) -> reqwest::Client {
        self.anonymous.clone()
    }
}

impl PeerHttp for PeerTls {
    fn sends_secret(&self) -> bool {
        false
    }

    fn client(&self, to: Option<u64>) -> (reqwest::Client, &'static str) {
        if self.trust().is_none() {
            return (self.anonymous.clone(), "https");
        }
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&to) {
            return (c.clone(), "https");
        }
        match self.client_for(to) {
            Ok(c) => {
                clients.insert(to, c.clone());
                (c, "https")
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot build a peer client; calling without a certificate");
                (self.anonymous.clone(), "https")
            }
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
