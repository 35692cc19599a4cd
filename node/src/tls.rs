//! TLS material for the listeners and the trust the node's HTTP clients
//! need to reach TLS peers. Loaded (and so validated) with the rest of the
//! configuration; reload swaps the server configuration in place.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;

/// Installs ring as rustls' process-wide crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loaded TLS material.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The listeners' server configuration.
    pub server: Arc<ServerConfig>,
    /// PEM of the CA peers' certificates chain to, if given.
    pub ca_pem: Option<Vec<u8>>,
    /// Where the certificate chain was read from.
    pub cert_path: std::path::PathBuf,
    /// Where the key was read from.
    pub key_path: std::path::PathBuf,
    /// Where the CA was read from.
    pub ca_path: Option<std::path::PathBuf>,
}

impl TlsMaterial {
    /// Loads certificate, key and CA. `None` when no TLS is configured.
    pub fn load(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Option<TlsMaterial>, String> {
        let (cert, key) = match (cert, key) {
            (None, None) => {
                if ca.is_some() {
                    return Err("--tls-ca-file needs --tls-cert-file and --tls-key-file".into());
                }
                return Ok(None);
            }
            (Some(c), Some(k)) => (c, k),
            _ => return Err("--tls-cert-file and --tls-key-file go together".into()),
        };
        install_crypto_provider();
        let read = |what: &str, p: &Path| {
            std::fs::read(p).map_err(|e| format!("{what} {}: {e}", p.display()))
        };
        let cert_pem = read("--tls-cert-file", cert)?;
        let key_pem = read("--tls-key-file", key)?;
        let chain = rustls_pemfile::certs(&mut BufReader::new(cert_pem.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--tls-cert-file {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--tls-cert-file {} holds no certificate",
                cert.display()
            ));
        }
        let key_der = rustls_pemfile::private_key(&mut BufReader::new(key_pem.as_slice()))
            .map_err(|e| format!("--tls-key-file {}: {e}", key.display()))?
            .ok_or_else(|| format!("--tls-key-file {} holds no private key", key.display()))?;
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| format!("TLS certificate and key do not form a usable pair: {e}"))?;
        let ca_pem = ca.map(|p| read("--tls-ca-file", p)).transpose()?;
        Ok(Some(TlsMaterial {
            server: Arc::new(server),
            ca_pem,
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            ca_path: ca.map(Path::to_path_buf),
        }))
    }
}

/// An HTTP client for peers (and the readiness self-check) that trusts the
/// configured CA.
pub fn http_client(tls: Option<&TlsMaterial>) -> Result<reqwest::Client, String> {
    let mut builder = peer_builder();
    if let Some(ca) = tls.and_then(|t| t.ca_pem.as_deref()) {
        for cert in
            reqwest::Certificate::from_pem_bundle(ca).map_err(|e| format!("--tls-ca-file: {e}"))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// The connection settings every peer client shares.
pub fn peer_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(2))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        // Dead peers (a vanished IP, a cut link) are noticed in seconds, not
        // at the request timeout: unacknowledged data gives up after 3 s and
        // idle pooled connections are probed.
        .tcp_user_timeout(std::time::Duration::from_secs(3))
        .tcp_keepalive(std::time::Duration::from_secs(5))
        .tcp_keepalive_interval(std::time::Duration::from_secs(1))
        .tcp_keepalive_retries(3u32)
        .tcp_nodelay(true)
}
