//! Certificates issued by the cluster CA, as recorded in replicated state.
//!
//! Signing happens on the leader before proposing (see [`crate::pki`]);
//! apply only records, so it stays deterministic. Renewal is make before
//! break: a renewed certificate `replaces` the old one, which stays valid
//! until the holder `activate`s the new one; only then does the old become
//! `superseded`. The CRL's content is a pure function of this state
//! (revocations, supersessions and accounts on hold), and its number rises
//! on every change that could alter it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::account::{Accounts, Resource};
use crate::clock::Millis;
use crate::pki::SecretPem;
use crate::{CertView, DomainError};

mod expiry;

/// The cluster CA: certificate and private key. The key is replicated so any
/// leader can sign; it is never returned by the API nor logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    /// PEM certificate.
    pub certificate_pem: String,
    /// PEM PKCS#8 private key.
    pub key_pem: SecretPem,
    /// End of the CA's validity.
    pub not_after: Millis,
}

/// Why a certificate was revoked (RFC 5280 reason codes keel uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The private key leaked.
    KeyCompromise,
    /// The subject's affiliation changed.
    AffiliationChanged,
    /// Replaced by a renewed certificate.
    Superseded,
    /// The subject no longer operates.
    CessationOfOperation,
}

impl RevocationReason {
    /// Every name the API accepts for a reason: the snake_case name and the
    /// RFC 5280 spelling (`keyCompromise`), paired with the reason.
    pub const NAMES: [(&'static str, RevocationReason); 8] = [
        ("unspecified", RevocationReason::Unspecified),
        ("key_compromise", RevocationReason::KeyCompromise),
        ("keyCompromise", RevocationReason::KeyCompromise),
        ("affiliation_changed", RevocationReason::AffiliationChanged),
        ("affiliationChanged", RevocationReason::AffiliationChanged),
        ("superseded", RevocationReason::Superseded),
        (
            "cessation_of_operation",
            RevocationReason::CessationOfOperation,
        ),
        (
            "cessationOfOperation",
            RevocationReason::CessationOfOperation,
        ),
    ];

    /// Parses the API's name of a reason, snake_case or RFC 5280.
    pub fn parse(s: &str) -> Option<RevocationReason> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, reason)| *reason)
    }
}

/// A recorded revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When it was applied.
    pub at: Millis,
    /// Why.
    pub reason: RevocationReason,
}

/// A certificate issued by the cluster CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// 128-bit random serial, lowercase hex.
    pub serial: String,
    /// Subject common name.
    pub common_name: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<String>,
    /// Owning account, if any.
    pub account: Option<String>,
    /// Start of validity.
    pub not_before: Millis,
    /// End of validity.
    pub not_after: Millis,
    /// PEM certificate.
    pub certificate_pem: String,
    /// The certificate this one renews.
    pub replaces: Option<String>,
    /// The newest renewal of this certificate.
    pub replaced_by: Option<String>,
    /// Set when revoked or superseded.
    pub revocation: Option<Revocation>,
}

/// A certificate's state, derived at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    /// Valid and in good standing.
    Active,
    /// Its account is expired or disabled; listed on hold in the CRL.
    Suspended,
    /// Replaced by an activated renewal.
    Superseded,
    /// Revoked.
    Revoked,
    /// Past `not_after`.
    Expired,
}

impl CertState {
    /// Parses the API's name of a state.
    pub fn parse(s: &str) -> Option<CertState> {
        match s {
            "active" => Some(CertState::Active),
            "suspended" => Some(CertState::Suspended),
            "superseded" => Some(CertState::Superseded),
            "revoked" => Some(CertState::Revoked),
            "expired" => Some(CertState::Expired),
            _ => None,
        }
    }
}

/// One CRL entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// Serial, lowercase hex.
    pub serial: String,
    /// When it was revoked or put on hold.
    pub at: Millis,
    /// `None` means certificateHold.
    pub reason: Option<RevocationReason>,
}

/// CRL versioning: bumped by every change that may alter the CRL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlVersion {
    /// The CRL number.
    pub number: u64,
    /// The proposal time of the change, used as thisUpdate.
    pub this_update: Millis,
}

/// The CA and its certificates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pki {
    ca: Option<CaRecord>,
    certs: imbl::OrdMap<String, CertRecord>,
    crl: CrlVersion,
    /// When each account's hold state last changed (for CRL hold times).
    hold_since: BTreeMap<String, Millis>,
    /// Serials per owning account; derived, rebuilt after load.
    #[serde(skip)]
    by_account: BTreeMap<String, BTreeSet<String>>,
    /// `(not_after, serial)` of every record; derived, rebuilt after load.
    /// Lets tidying find expired records without a scan.
    #[serde(skip)]
    by_expiry: BTreeSet<(Millis, String)>,
}

impl PartialEq for Pki {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca
            && self.certs == other.certs
            && self.crl == other.crl
            && self.hold_since == other.hold_since
    }
}
impl Eq for Pki {}

impl Pki {
    /// A copy for encoding: the certificate table shares its storage with
    /// this one (O(1)); derived indexes are left empty.
    pub fn frozen(&self) -> Self {
        Pki {
            ca: self.ca.clone(),
            certs: self.certs.clone(),
            crl: self.crl,
            hold_since: self.hold_since.clone(),
            by_account: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The CA, if initialized.
    pub fn ca(&self) -> Option<&CaRecord> {
        self.ca.as_ref()
    }

    /// The current CRL version.
    pub fn crl_version(&self) -> CrlVersion {
        self.crl
    }

    /// Looks a certificate up.
    pub fn get(&self, serial: &str) -> Option<&CertRecord> {
        self.certs.get(serial)
    }

    /// Certificates in serial order starting after `after`.
    pub fn iter_from<'a>(
        &'a self,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CertRecord> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        self.certs
            .range::<_, str>((start, Bound::Unbounded))
            .map(|(_, c)| c)
    }

    /// How many certificates are recorded.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Derives a certificate's state at `now`.
    pub fn state_of(cert: &CertRecord, now: Millis, accounts: &Accounts) -> CertState {
        match cert.revocation {
            Some(Revocation {
                reason: RevocationReason::Superseded,
                ..
            }) => CertState::Superseded,
            Some(_) => CertState::Revoked,
            None if cert.not_after <= now => CertState::Expired,
            None if !accounts.owner_active(cert.account.as_deref(), now) => CertState::Suspended,
            None => CertState::Active,
        }
    }

    /// A certificate with its state at `now`.
    pub fn view(cert: &CertRecord, now: Millis, accounts: &Accounts) -> CertView {
        CertView {
            cert: cert.clone(),
            state: Self::state_of(cert, now, accounts),
        }
    }

    /// Live (unrevoked, unexpired) certificates an account owns at `now`.
    pub fn live_count(&self, account: &str, now: Millis) -> u64 {
        self.by_account.get(account).map_or(0, |serials| {
            serials
                .iter()
                .filter_map(|s| self.certs.get(s))
                .filter(|c| c.revocation.is_none() && c.not_after > now)
                .count() as u64
        })
    }

    /// Installs the CA, once.
    pub fn init_ca(&mut self, now: Millis, ca: CaRecord) -> Result<(), DomainError> {
        if self.ca.is_some() {
            return Err(DomainError::Conflict(
                "the cluster CA already exists".into(),
            ));
        }
        self.ca = Some(ca);
        self.bump_crl(now);
        Ok(())
    }

    /// Records a certificate signed by the leader.
    pub fn record(
        &mut self,
        now: Millis,
        cert: CertRecord,
        accounts: &Accounts,
    ) -> Result<CertView, DomainError> {
        if self.ca.is_none() {
            return Err(DomainError::Conflict(
                "the cluster CA is not initialized".into(),
            ));
        }
        if self.certs.contains_key(&cert.serial) {
            return Err(DomainError::Conflict(format!(
                "serial {} is taken",
                cert.serial
            )));
        }
        if let Some(account) = &cert.account {
            accounts.admit(
                now,
                account,
                Resource::Certificate,
                self.live_count(account, now),
            )?;
        }
        if let Some(old) = &cert.replaces {
            let previous = self
                .certs
                .get_mut(old)
                .ok_or_else(|| DomainError::CertificateNotFound(old.clone()))?;
            if previous.revocation.is_some() {
                return Err(DomainError::Conflict(format!(
                    "certificate {old} is revoked and cannot be renewed"
                )));
            }
            previous.replaced_by = Some(cert.serial.clone());
        }
        if let Some(account) = &cert.account {
            self.by_account
                .entry(account.clone())
                .or_default()
                .insert(cert.serial.clone());
        }
        let view = Self::view(&cert, now, accounts);
        self.by_expiry.insert((cert.not_after, cert.serial.clone()));
        self.certs.insert(cert.serial.clone(), cert);
        Ok(view)
    }

    /// The holder confirms it stored `serial`; the certificate it replaces
    /// becomes superseded. Repeating it changes nothing.
    pub fn activate(
        &mut self,
        now: Millis,
        serial: &str,
        accounts: &Accounts,
    ) -> Result<CertView, DomainError> {
        let cert = self
            .certs
            .get(serial)
            .ok_or_else(|| DomainError::CertificateNotFound(serial.to_string()))?;
        if cert.revocation.is_some() {
            return Err(DomainError::Conflict(format!(
                "certificate {serial} is revoked"
            )));
        }
        if let Some(old) = cert.replaces.clone()
            && let Some(previous) = self.certs.get_mut(&old)
            && previous.revocation.is_none()
        {
            previous.revocation = Some(Revocation {
                at: now,
                reason: RevocationReason::Superseded,
            });
            self.bump_crl(now);
        }
        Ok(Self::view(&self.certs[serial], now, accounts))
    }

    /// Revokes a certificate; revoking it again returns it unchanged.
    pub fn revoke(
        &mut self,
        now: Millis,
        serial: &str,
        reason: RevocationReason,
        accounts: &Accounts,
    ) -> Result<CertView, DomainError> {
        let cert = self
            .certs
            .get_mut(serial)
            .ok_or_else(|| DomainError::CertificateNotFound(serial.to_string()))?;
        if cert.revocation.is_none() {
            cert.revocation = Some(Revocation { at: now, reason });
            self.bump_crl(now);
        }
        Ok(Self::view(&self.certs[serial], now, accounts))
    }

    /// Revokes every certificate an account owns (account deletion).
    pub fn revoke_owned_by(&mut self, now: Millis, account: &str) -> u64 {
        let serials = self.by_account.remove(account).unwrap_or_default();
        let mut n = 0;
        for serial in serials {
            if let Some(cert) = self.certs.get_mut(&serial)
                && cert.revocation.is_none()
            {
                cert.revocation = Some(Revocation {
                    at: now,
                    reason: RevocationReason::CessationOfOperation,
                });
                n += 1;
            }
        }
        self.hold_since.remove(account);
        if n > 0 {
            self.bump_crl(now);
        }
        n
    }

    /// Called after any account change: if the account's hold state flipped
    /// and it owns certificates, the CRL changes.
    pub fn account_changed(&mut self, now: Millis, account: &str, accounts: &Accounts) {
        let on_hold = accounts.owner_on_hold(Some(account));
        let was_on_hold = self.hold_since.contains_key(account);
        if on_hold == was_on_hold {
            return;
        }
        if on_hold {
            self.hold_since.insert(account.to_string(), now);
        } else {
            self.hold_since.remove(account);
        }
        if self.by_account.get(account).is_some_and(|s| !s.is_empty()) {
            self.bump_crl(now);
        }
    }

    /// Raises the CRL number.
    pub fn bump_crl(&mut self, now: Millis) {
        self.crl.number += 1;
        self.crl.this_update = self.crl.this_update.max(now);
    }

    /// The CRL's entries: revoked and superseded certificates with their
    /// reason, and certificates of accounts on hold as certificateHold.
    /// A certificate whose `not_after` is at or before the CRL's
    /// thisUpdate has expired and is no longer listed (RFC 5280 lets a CA
    /// drop it; relying parties refuse it anyway). A pure function of
    /// replicated state.
    pub fn crl_entries(&self) -> Vec<CrlEntry> {
        let this_update = self.crl.this_update;
        self.certs
            .values()
            .filter(|c| c.not_after > this_update)
            .filter_map(|c| match (c.revocation, &c.account) {
                (Some(r), _) => Some(CrlEntry {
                    serial: c.serial.clone(),
                    at: r.at,
                    reason: Some(r.reason),
                }),
                (None, Some(account)) => self.hold_since.get(account).map(|at| CrlEntry {
                    serial: c.serial.clone(),
                    at: *at,
                    reason: None,
                }),
                (None, None) => None,
            })
            .collect()
    }

    /// Rebuilds the derived indexes after a snapshot was decoded.
    pub fn rebuild_indexes(&mut self) {
        self.by_account.clear();
        self.by_expiry = self
            .certs
            .values()
            .map(|c| (c.not_after, c.serial.clone()))
            .collect();
        for cert in self.certs.values() {
            if let Some(account) = &cert.account {
                self.by_account
                    .entry(account.clone())
                    .or_default()
                    .insert(cert.serial.clone());
            }
        }
    }
}
