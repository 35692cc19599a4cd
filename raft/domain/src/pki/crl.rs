//! Building the CA-signed CRL from the replicated CRL entries.
//!
//! The entries and the CRL number are a pure function of replicated state;
//! only the signature differs between nodes (ECDSA is randomized), so every
//! node serves an equivalent CRL for the same state.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use super::{PkiError, to_datetime};
use crate::cert::{CaRecord, CrlEntry, CrlVersion, RevocationReason};

fn reason_code(reason: Option<RevocationReason>) -> rcgen::RevocationReason {
    match reason {
        None => rcgen::RevocationReason::CertificateHold,
        Some(RevocationReason::Unspecified) => rcgen::RevocationReason::Unspecified,
        Some(RevocationReason::KeyCompromise) => rcgen::RevocationReason::KeyCompromise,
        Some(RevocationReason::AffiliationChanged) => rcgen::RevocationReason::AffiliationChanged,
        Some(RevocationReason::Superseded) => rcgen::RevocationReason::Superseded,
        Some(RevocationReason::CessationOfOperation) => {
            rcgen::RevocationReason::CessationOfOperation
        }
    }
}

fn serial_bytes(hex: &str) -> Result<Vec<u8>, PkiError> {
    if !hex.len().is_multiple_of(2) {
        return Err(PkiError::Ca(format!("bad serial {hex}")));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| PkiError::Ca(format!("bad serial {hex}")))
        })
        .collect()
}

/// Signs a CRL listing `entries`, numbered and dated by `version`, valid
/// for `validity_ms` after its this-update time. Returns DER.
pub fn build_crl(
    ca: &CaRecord,
    entries: &[CrlEntry],
    version: CrlVersion,
    validity_ms: u64,
) -> Result<Vec<u8>, PkiError> {
    let revoked_certs = entries
        .iter()
        .map(|e| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial_bytes(&e.serial)?),
                revocation_time: to_datetime(e.at),
                reason_code: Some(reason_code(e.reason)),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let params = CertificateRevocationListParams {
        this_update: to_datetime(version.this_update),
        next_update: to_datetime(version.this_update.saturating_add(validity_ms)),
        crl_number: SerialNumber::from(version.number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let issuer = super::issuer_from(ca)?;
    let crl = params
        .signed_by(&issuer)
        .map_err(|e| PkiError::Ca(e.to_string()))?;
    Ok(crl.der().to_vec())
}
