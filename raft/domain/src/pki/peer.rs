//! The peer CA: the certificate authority nodes authenticate each other
//! with, kept apart from the tenant-facing cluster CA. It signs node
//! certificates whose identity is a URI SAN `keel://<cluster>/node/<name>`
//! (plus the host names and addresses peers reach the node at), valid for
//! both server and client authentication. Like the cluster CA it is made
//! and used on a proposer; apply only records it.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ca::pem_to_der;
use super::sign::random_serial;
use super::{PkiError, SecretPem, to_datetime, to_millis};
use crate::cert::CaRecord;
use crate::clock::Millis;

/// The URI scheme of node identities.
const SCHEME: &str = "keel://";

/// The identity a node certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The cluster.
    pub cluster: String,
    /// The node's name (its configured id).
    pub node: u64,
}

impl NodeIdentity {
    /// `keel://<cluster>/node/<node>`.
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/node/{}", self.cluster, self.node)
    }

    /// Parses a node identity URI.
    pub fn parse(uri: &str) -> Option<NodeIdentity> {
        let rest = uri.strip_prefix(SCHEME)?;
        let (cluster, node) = rest.split_once("/node/")?;
        if cluster.is_empty() || cluster.contains('/') {
            return None;
        }
        Some(NodeIdentity {
            cluster: cluster.to_string(),
            node: node.parse().ok()?,
        })
    }
}

/// Creates a peer CA for `cluster`, valid from `now` for `ttl_ms`.
pub fn create_peer_ca(cluster: &str, now: Millis, ttl_ms: u64) -> Result<CaRecord, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("keel peer CA {cluster}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "keel");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_datetime(now.saturating_sub(60_000));
    let not_after = now.saturating_add(ttl_ms);
    params.not_after = to_datetime(not_after);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
    let cert = params
        .self_signed(&key)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    Ok(CaRecord {
        certificate_pem: cert.pem(),
        key_pem: SecretPem::new(key.serialize_pem()),
        not_after,
    })
}

/// Signs a node's CSR: the key stays with the node; the names are the
/// signer's (the identity it proved, the hosts it advertises), never the
/// CSR's.
pub fn sign_node_csr(
    ca: &CaRecord,
    csr_pem: &str,
    identity: &NodeIdentity,
    hosts: &[String],
    now: Millis,
    ttl_ms: u64,
) -> Result<String, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::Invalid(format!("malformed CSR: {e}")))?;
    let not_after = now.saturating_add(ttl_ms).min(ca.not_after);
    if not_after <= now {
        return Err(PkiError::Ca("the peer CA has expired".into()));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        DnValue::Utf8String(format!("keel node {}", identity.node)),
    );
    let uri = identity
        .uri()
        .try_into()
        .map_err(|_| PkiError::Invalid("the node identity is not ASCII".into()))?;
    params.subject_alt_names.push(SanType::URI(uri));
    for host in hosts {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        } else if let Ok(name) = host.as_str().try_into() {
            params.subject_alt_names.push(SanType::DnsName(name));
        }
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    // Back-dated a little for peers whose clocks trail, never by more than
    // a quarter of the life (renewal is due at two thirds of it).
    params.not_before = to_datetime(now.saturating_sub(60_000.min(ttl_ms / 4)));
    params.not_after = to_datetime(not_after);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
    let signing = CertificateSigningRequestParams {
        params,
        public_key: csr.public_key,
    };
    let issuer = super::issuer_from(ca)?;
    let cert = signing
        .signed_by(&issuer)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    Ok(cert.pem())
}

/// What a node certificate (DER) says: its identity and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertInfo {
    /// The identity in its URI SAN.
    pub identity: NodeIdentity,
    /// Start of validity.
    pub not_before: Millis,
    /// End of validity.
    pub not_after: Millis,
    /// Serial, hex.
    pub serial: String,
}

/// Reads the node identity and validity of a certificate; `None` if it
/// names no keel node.
pub fn node_cert_info(der: &[u8]) -> Option<NodeCertInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    let identity = sans.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => NodeIdentity::parse(u),
        _ => None,
    })?;
    let validity = cert.validity();
    Some(NodeCertInfo {
        identity,
        not_before: to_millis(validity.not_before.to_datetime()),
        not_after: to_millis(validity.not_after.to_datetime()),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

/// The SHA-256 fingerprint (hex) of a certificate in PEM.
pub fn fingerprint(cert_pem: &str) -> Result<String, PkiError> {
    let der = pem_to_der(cert_pem).map_err(PkiError::Invalid)?;
    Ok(fingerprint_der(&der))
}

/// The SHA-256 fingerprint (hex) of a DER certificate.
pub fn fingerprint_der(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_node_certificate_names_the_node_and_chains_to_the_peer_ca() {
        let ca = create_peer_ca("c1", 1_000_000, 86_400_000).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::new(vec!["ignored.example".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let who = NodeIdentity {
            cluster: "c1".into(),
            node: 2,
        };
        let pem = sign_node_csr(&ca, &csr, &who, &["127.0.0.1".into()], 1_000_000, 60_000).unwrap();
        let der = pem_to_der(&pem).unwrap();
        let info = node_cert_info(&der).unwrap();
        assert_eq!(info.identity, who);
        assert_eq!(info.not_after, 1_060_000 / 1000 * 1000);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let ca_der = pem_to_der(&ca.certificate_pem).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(fingerprint(&ca.certificate_pem).unwrap().len(), 64);
    }

    #[test]
    fn identities_parse_only_from_keel_uris() {
        assert_eq!(
            NodeIdentity::parse("keel://abc/node/3"),
            Some(NodeIdentity {
                cluster: "abc".into(),
                node: 3
            })
        );
        for bad in [
            "https://abc/node/3",
            "keel:///node/3",
            "keel://a/b/node/3",
            "keel://a/node/x",
        ] {
            assert_eq!(NodeIdentity::parse(bad), None, "{bad}");
        }
    }
}
