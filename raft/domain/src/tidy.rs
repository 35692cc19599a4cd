//! Tidying: what keeps the replicated state from growing without bound.
//!
//! The leader proposes `TidyRecords` when something is due (see
//! [`State::tidy_due`]); apply re-checks everything against the proposal's
//! stamped time, as lease expiry does, so a stale or repeated command is
//! harmless and every replica removes exactly the same records:
//!
//! - a certificate past `not_after` leaves the CRL (the CRL is re-published);
//! - its record is removed once `not_after + pki_retention` has passed;
//! - an idempotency key older than its retention is forgotten;
//! - a token past its deadline is removed (it stopped working at the
//!   deadline already: validity is derived).
//!
//! Revoked and expired leases need nothing here: revocation and expiry
//! remove them from the table when they apply.

use serde::{Deserialize, Serialize};

use crate::State;
use crate::clock::Millis;

/// How long records are kept, stamped into `TidyRecords` by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// How long a certificate record is kept after its `not_after`.
    pub pki_ms: Millis,
    /// How long an idempotency key is remembered.
    pub idempotency_ms: Millis,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            pki_ms: 72 * 3_600_000,
            idempotency_ms: crate::idempotency::RETENTION_MS,
        }
    }
}

/// What one `TidyRecords` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tidied {
    /// Whether the CRL was re-published without newly expired certificates.
    pub crl_shortened: bool,
    /// Certificate records removed.
    pub certificates: u64,
    /// Idempotency keys forgotten.
    pub idempotency_keys: u64,
    /// Expired tokens removed.
    pub tokens: u64,
}

impl Tidied {
    /// Everything removed, as one count.
    pub fn total(&self) -> u64 {
        u64::from(self.crl_shortened) + self.certificates + self.idempotency_keys + self.tokens
    }
}

impl State {
    /// Whether a `TidyRecords` at `now` would change anything.
    pub fn tidy_due(&self, now: Millis, retention: &Retention) -> bool {
        self.pki.crl_lists_expired(now)
            || self.pki.prune_due(now, retention.pki_ms)
            || self
                .idempotency
                .oldest()
                .is_some_and(|at| at < now.saturating_sub(retention.idempotency_ms))
            || self.tokens.prune_due(now)
    }

    /// Applies `TidyRecords` at stamped time `now`.
    pub fn tidy(&mut self, now: Millis, retention: &Retention) -> Tidied {
        let crl_shortened = self.pki.drop_expired_from_crl(now);
        let certificates = self.pki.prune_expired(now, retention.pki_ms);
        let idempotency_keys = self.idempotency.prune(now, retention.idempotency_ms);
        let tokens = self.tokens.prune_expired(now);
        Tidied {
            crl_shortened,
            certificates,
            idempotency_keys,
            tokens,
        }
    }
}
