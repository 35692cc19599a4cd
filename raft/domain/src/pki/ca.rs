//! The cluster CA: creating one at bootstrap, importing one from PEM, and
//! turning the replicated record back into a signing issuer.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{PkiError, PkiSettings, SecretPem, to_datetime, to_millis};
use crate::cert::CaRecord;
use crate::clock::Millis;

/// Creates a self-signed ECDSA P-256 CA valid from `now` for `ca_ttl_ms`.
pub fn create_ca(settings: &PkiSettings, now: Millis) -> Result<CaRecord, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, settings.ca_common_name.clone());
    params
        .distinguished_name
        .push(DnType::OrganizationName, "keel");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_datetime(now.saturating_sub(60_000));
    let not_after = now.saturating_add(settings.ca_ttl_ms);
    params.not_after = to_datetime(not_after);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(
        &super::sign::random_serial(),
    ));
    let cert = params
        .self_signed(&key)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    Ok(CaRecord {
        certificate_pem: cert.pem(),
        key_pem: SecretPem::new(key.serialize_pem()),
        not_after,
    })
}

/// Imports an operator-supplied CA: the certificate must be a CA and the key
/// must match it.
pub fn import_ca(cert_pem: &str, key_pem: &SecretPem) -> Result<CaRecord, PkiError> {
    let key = KeyPair::from_pem(key_pem.expose())
        .map_err(|e| PkiError::Invalid(format!("CA key: {e}")))?;
    let der =
        pem_to_der(cert_pem).map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
    if !cert.is_ca() {
        return Err(PkiError::Invalid(
            "the imported certificate is not a CA".into(),
        ));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::Invalid(
            "the imported CA key does not match its certificate".into(),
        ));
    }
    let not_after = to_millis(cert.validity().not_after.to_datetime());
    Ok(CaRecord {
        certificate_pem: cert_pem.to_string(),
        key_pem: key_pem.clone(),
        not_after,
    })
}

/// Rebuilds a signing issuer from the replicated CA record.
pub fn issuer_from(ca: &CaRecord) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(ca.key_pem.expose()).map_err(|e| PkiError::Ca(e.to_string()))?;
    Issuer::from_ca_cert_pem(&ca.certificate_pem, key).map_err(|e| PkiError::Ca(e.to_string()))
}

/// Decodes the first PEM block of `pem`.
pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    Ok(block.contents)
}
