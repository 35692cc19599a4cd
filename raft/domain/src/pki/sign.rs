//! Issuing, signing and renewing certificates with the cluster CA.
//!
//! Every certificate gets a fresh random 128-bit serial, validity bounded by
//! the configured maximum and by the CA's own `not_after`, and only the
//! names keel validated: a CSR contributes its public key, subject and
//! SANs, never its own CA flags or key usages.

use rand::RngCore;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, DnValue, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use super::{IssueSpec, PkiError, PkiSettings, RenewSpec, SecretPem, SignSpec, to_datetime};
use crate::cert::{CaRecord, CertRecord};
use crate::clock::Millis;

/// Backdating of `not_before`, to tolerate clock skew between holders.
const BACKDATE_MS: u64 = 60_000;
/// Shortest certificate validity.
const MIN_TTL_MS: u64 = 60_000;

/// 16 random bytes with the top bit cleared (a positive DER integer).
pub(crate) fn random_serial() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 0x01;
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Names {
    common_name: String,
    dns_names: Vec<String>,
    ip_addresses: Vec<String>,
}

fn check_names(names: &Names, settings: &PkiSettings) -> Result<(), PkiError> {
    super::validate_common_name(&names.common_name)?;
    for dns in &names.dns_names {
        super::validate_dns_name(dns, &settings.allowed_domains)?;
    }
    for ip in &names.ip_addresses {
        super::validate_ip(ip)?;
    }
    Ok(())
}

fn check_ttl(
    ttl_ms: u64,
    now: Millis,
    ca: &CaRecord,
    settings: &PkiSettings,
) -> Result<Millis, PkiError> {
    if ttl_ms < MIN_TTL_MS {
        return Err(PkiError::Invalid("ttl must be at least 1m".into()));
    }
    if ttl_ms > settings.max_ttl_ms {
        return Err(PkiError::Invalid(format!(
            "ttl exceeds the maximum of {}h",
            settings.max_ttl_ms / 3_600_000
        )));
    }
    let not_after = now.saturating_add(ttl_ms);
    if not_after > ca.not_after {
        return Err(PkiError::Invalid(
            "ttl reaches past the CA's own validity".into(),
        ));
    }
    Ok(not_after)
}

fn leaf_params(
    names: &Names,
    serial: &[u8],
    now: Millis,
    not_after: Millis,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        DnValue::Utf8String(names.common_name.clone()),
    );
    for dns in &names.dns_names {
        let name = dns
            .as_str()
            .try_into()
            .map_err(|_| PkiError::Invalid(format!("dns name `{dns}` is not ASCII")))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &names.ip_addresses {
        params
            .subject_alt_names
            .push(SanType::IpAddress(super::validate_ip(ip)?));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = to_datetime(now.saturating_sub(BACKDATE_MS));
    params.not_after = to_datetime(not_after);
    params.serial_number = Some(SerialNumber::from_slice(serial));
    Ok(params)
}

fn record(
    names: Names,
    serial: &[u8],
    now: Millis,
    not_after: Millis,
    pem: String,
    account: Option<String>,
) -> CertRecord {
    CertRecord {
        serial: hex(serial),
        common_name: names.common_name,
        dns_names: names.dns_names,
        ip_addresses: names.ip_addresses,
        account,
        not_before: now.saturating_sub(BACKDATE_MS),
        not_after,
        certificate_pem: pem,
        replaces: None,
        replaced_by: None,
        revocation: None,
    }
}

/// Issues a certificate with a freshly generated key, returned once.
pub fn issue(
    ca: &CaRecord,
    spec: &IssueSpec,
    settings: &PkiSettings,
    now: Millis,
) -> Result<(CertRecord, SecretPem), PkiError> {
    let names = Names {
        common_name: spec.common_name.clone(),
        dns_names: spec.dns_names.clone(),
        ip_addresses: spec.ip_addresses.clone(),
    };
    check_names(&names, settings)?;
    let not_after = check_ttl(spec.ttl_ms, now, ca, settings)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    let serial = random_serial();
    let params = leaf_params(&names, &serial, now, not_after)?;
    let issuer = super::issuer_from(ca)?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    let rec = record(
        names,
        &serial,
        now,
        not_after,
        cert.pem(),
        spec.account.clone(),
    );
    Ok((rec, SecretPem::new(key.serialize_pem())))
}

/// Parses and verifies a CSR (its signature must check out).
fn parse_csr(pem: &str) -> Result<CertificateSigningRequestParams, PkiError> {
    CertificateSigningRequestParams::from_pem(pem).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => {
            PkiError::Invalid("the CSR's signature does not verify".into())
        }
        other => PkiError::Invalid(format!("malformed CSR: {other}")),
    })
}

fn names_of_csr(csr: &CertificateSigningRequestParams) -> Result<Names, PkiError> {
    let common_name = match csr.params.distinguished_name.get(&DnType::CommonName) {
        Some(DnValue::Utf8String(s)) => s.clone(),
        Some(DnValue::PrintableString(s)) => s.as_str().to_string(),
        Some(DnValue::Ia5String(s)) => s.as_str().to_string(),
        Some(_) => {
            return Err(PkiError::Invalid(
                "the CSR's common name uses an unsupported string type".into(),
            ));
        }
        None => return Err(PkiError::Invalid("the CSR has no common name".into())),
    };
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::DnsName(n) => dns_names.push(n.as_str().to_string()),
            SanType::IpAddress(ip) => ip_addresses.push(ip.to_string()),
            _ => {
                return Err(PkiError::Invalid(
                    "the CSR asks for a name type keel does not issue".into(),
                ));
            }
        }
    }
    Ok(Names {
        common_name,
        dns_names,
        ip_addresses,
    })
}

/// Signs a holder's CSR: the key never leaves its holder.
pub fn sign_csr(
    ca: &CaRecord,
    spec: &SignSpec,
    settings: &PkiSettings,
    now: Millis,
) -> Result<CertRecord, PkiError> {
    let csr = parse_csr(&spec.csr_pem)?;
    let names = names_of_csr(&csr)?;
    check_names(&names, settings)?;
    let not_after = check_ttl(spec.ttl_ms, now, ca, settings)?;
    let serial = random_serial();
    let signing = CertificateSigningRequestParams {
        params: leaf_params(&names, &serial, now, not_after)?,
        public_key: csr.public_key,
    };
    let issuer = super::issuer_from(ca)?;
    let cert = signing
        .signed_by(&issuer)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    Ok(record(
        names,
        &serial,
        now,
        not_after,
        cert.pem(),
        spec.account.clone(),
    ))
}

/// Renews `old`: same names and account, a new serial, `replaces` set. With
/// a CSR the holder's new key is used; without one a key is generated and
/// returned once.
pub fn renew(
    ca: &CaRecord,
    old: &CertRecord,
    spec: &RenewSpec,
    settings: &PkiSettings,
    now: Millis,
) -> Result<(CertRecord, Option<SecretPem>), PkiError> {
    let names = Names {
        common_name: old.common_name.clone(),
        dns_names: old.dns_names.clone(),
        ip_addresses: old.ip_addresses.clone(),
    };
    let default_ttl = old
        .not_after
        .saturating_sub(old.not_before.saturating_add(BACKDATE_MS));
    // An explicit TTL is checked as given; the inherited one is clamped to
    // what the configuration and the CA allow now.
    let ttl = match spec.ttl_ms {
        Some(t) => t,
        None => default_ttl
            .min(settings.max_ttl_ms)
            .min(ca.not_after.saturating_sub(now)),
    };
    let not_after = check_ttl(ttl, now, ca, settings)?;
    let serial = random_serial();
    let params = leaf_params(&names, &serial, now, not_after)?;
    let issuer = super::issuer_from(ca)?;
    let (pem, key) = match &spec.csr_pem {
        Some(csr_pem) => {
            let csr = parse_csr(csr_pem)?;
            let signing = CertificateSigningRequestParams {
                params,
                public_key: csr.public_key,
            };
            (
                signing
                    .signed_by(&issuer)
                    .map_err(|e| PkiError::Ca(e.to_string()))?
                    .pem(),
                None,
            )
        }
        None => {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| PkiError::Ca(e.to_string()))?;
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(|e| PkiError::Ca(e.to_string()))?;
            (cert.pem(), Some(SecretPem::new(key.serialize_pem())))
        }
    };
    let mut rec = record(names, &serial, now, not_after, pem, old.account.clone());
    rec.replaces = Some(old.serial.clone());
    Ok((rec, key))
}
