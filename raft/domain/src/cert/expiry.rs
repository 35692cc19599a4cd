//! Expired certificates in the PKI table: when one leaves the CRL (at its
//! `not_after`, by re-publishing) and when its record goes (after the
//! retention). Used by tidying (`crate::tidy`); everything here is
//! decided by the stamped time it is given, so replicas agree.

use super::{CertRecord, Pki};
use crate::clock::Millis;

impl Pki {
    /// Whether the published CRL still lists a certificate that has expired
    /// by `now`: re-publishing it (see [`Pki::drop_expired_from_crl`]) would
    /// shorten it.
    pub fn crl_lists_expired(&self, now: Millis) -> bool {
        let after = self.crl.this_update;
        self.by_expiry
            .range((after.saturating_add(1), String::new())..)
            .take_while(|(t, _)| *t <= now)
            .filter_map(|(_, serial)| self.certs.get(serial))
            .any(|c| self.is_listed(c))
    }

    /// Whether a certificate is on the CRL as of its current version.
    fn is_listed(&self, c: &CertRecord) -> bool {
        c.not_after > self.crl.this_update
            && (c.revocation.is_some()
                || c.account
                    .as_ref()
                    .is_some_and(|a| self.hold_since.contains_key(a)))
    }

    /// Re-publishes the CRL if it still lists a certificate expired by
    /// `now`, so that certificate leaves it. Returns whether it did.
    pub fn drop_expired_from_crl(&mut self, now: Millis) -> bool {
        if self.crl_lists_expired(now) {
            self.bump_crl(now);
            true
        } else {
            false
        }
    }

    /// Removes the records of certificates whose `not_after` is at least
    /// `retention_ms` before `now`, except any the current CRL still lists
    /// (tidying re-publishes the CRL first, so none is). Returns how many.
    pub fn prune_expired(&mut self, now: Millis, retention_ms: Millis) -> u64 {
        let horizon = now.saturating_sub(retention_ms);
        let due: Vec<(Millis, String)> = self
            .by_expiry
            .iter()
            .take_while(|(t, _)| *t <= horizon)
            .filter(|(_, serial)| self.certs.get(serial).is_some_and(|c| !self.is_listed(c)))
            .cloned()
            .collect();
        for key in &due {
            self.by_expiry.remove(key);
            let Some(cert) = self.certs.remove(&key.1) else {
                continue;
            };
            if let Some(account) = &cert.account
                && let Some(owned) = self.by_account.get_mut(account)
            {
                owned.remove(&key.1);
                if owned.is_empty() {
                    self.by_account.remove(account);
                }
            }
        }
        due.len() as u64
    }

    /// Whether a record is due for pruning at `now`.
    pub fn prune_due(&self, now: Millis, retention_ms: Millis) -> bool {
        let horizon = now.saturating_sub(retention_ms);
        self.by_expiry
            .iter()
            .take_while(|(t, _)| *t <= horizon)
            .any(|(_, serial)| self.certs.get(serial).is_some_and(|c| !self.is_listed(c)))
    }
}
