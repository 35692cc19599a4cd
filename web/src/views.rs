//! The JSON shapes of API.md, built from domain records at a given time.
//! States are derived here, at read time, from the record and its account:
//! nothing the API shows is a stored flag that could drift.

use std::collections::BTreeMap;

use keel_raft::clock::{Millis, to_rfc3339};
use keel_raft::domain::CertView;
use keel_raft::domain::State;
use keel_raft::domain::account::{Account, AccountState};
use keel_raft::domain::cert::{CertRecord, CertState, Pki};
use keel_raft::domain::lease::{self, Lease, LeaseState, LeaseView};
use serde::Serialize;
use utoipa::ToSchema;

fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// A lease as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseJson {
    /// 16 hex digits.
    pub id: String,
    /// Optional name.
    pub name: Option<String>,
    /// Owning account.
    pub account: Option<String>,
    /// TTL in seconds.
    pub ttl: u64,
    /// Max TTL in seconds.
    pub max_ttl: u64,
    /// Grant time.
    pub issued_at: String,
    /// Current deadline.
    pub expires_at: String,
    /// Deadline no renewal can pass.
    pub hard_expires_at: String,
    /// `active`, `suspended`, `expired` or `revoked`.
    #[schema(value_type = String)]
    pub state: LeaseState,
    /// Whole seconds left before `expires_at` (0 once expired).
    pub remaining_ttl: u64,
    /// Renewals applied.
    pub renewals: u32,
    /// String metadata.
    pub metadata: BTreeMap<String, String>,
}

impl LeaseJson {
    /// The JSON of a lease with the given state, as of `now`.
    pub fn new(l: &Lease, state: LeaseState, now: Millis) -> Self {
        let remaining_ms = l.expires_at.saturating_sub(now);
        LeaseJson {
            id: lease::format_id(l.id),
            name: l.name.as_deref().map(str::to_string),
            account: l.account.as_deref().map(str::to_string),
            ttl: secs(l.ttl_ms),
            max_ttl: secs(l.max_ttl_ms),
            issued_at: to_rfc3339(l.issued_at),
            expires_at: to_rfc3339(l.expires_at),
            hard_expires_at: to_rfc3339(l.hard_expires_at),
            state,
            remaining_ttl: remaining_ms.div_ceil(1000),
            renewals: l.renewals,
            metadata: l.metadata.map().clone(),
        }
    }

    /// The JSON of a write's result view.
    pub fn from_view(v: &LeaseView, now: Millis) -> Self {
        Self::new(&v.lease, v.state, now)
    }
}

/// Account limits as the API shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitsJson {
    /// Lease limit, null for none.
    pub max_leases: Option<u64>,
    /// Certificate limit, null for none.
    pub max_certificates: Option<u64>,
}

/// What an account holds now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageJson {
    /// Leases held.
    pub leases: u64,
    /// Live certificates held.
    pub certificates: u64,
}

/// An account as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountJson {
    /// The key.
    pub name: String,
    /// `active`, `expired` or `disabled`.
    #[schema(value_type = String)]
    pub state: AccountState,
    /// Expiry, null for none.
    pub expires_at: Option<String>,
    /// Limits.
    pub limits: LimitsJson,
    /// Usage.
    pub usage: UsageJson,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl AccountJson {
    /// The JSON of an account as of `now`, with usage from `state` if given.
    pub fn new(a: &Account, state: Option<&State>, now: Millis) -> Self {
        AccountJson {
            name: a.name.clone(),
            state: a.state_at(now),
            expires_at: a.expires_at.map(to_rfc3339),
            limits: LimitsJson {
                max_leases: a.limits.max_leases,
                max_certificates: a.limits.max_certificates,
            },
            usage: UsageJson {
                leases: a.lease_count,
                certificates: state.map_or(0, |s| s.pki.live_count(&a.name, now)),
            },
            created_at: to_rfc3339(a.created_at),
            updated_at: to_rfc3339(a.updated_at),
        }
    }
}

/// A certificate as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertJson {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Subject common name.
    pub common_name: String,
    /// DNS names.
    pub dns_names: Vec<String>,
    /// IP addresses.
    pub ip_addresses: Vec<String>,
    /// Owning account.
    pub account: Option<String>,
    /// Start of validity.
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// `active`, `suspended`, `superseded`, `revoked` or `expired`.
    #[schema(value_type = String)]
    pub state: CertState,
    /// The certificate this one renews.
    pub replaces: Option<String>,
    /// The newest renewal of this one.
    pub replaced_by: Option<String>,
    /// PEM certificate.
    pub certificate: String,
}

impl CertJson {
    /// The JSON of a certificate with the given state.
    pub fn new(c: &CertRecord, state: CertState) -> Self {
        CertJson {
            serial: c.serial.clone(),
            common_name: c.common_name.clone(),
            dns_names: c.dns_names.clone(),
            ip_addresses: c.ip_addresses.clone(),
            account: c.account.clone(),
            not_before: to_rfc3339(c.not_before),
            not_after: to_rfc3339(c.not_after),
            state,
            replaces: c.replaces.clone(),
            replaced_by: c.replaced_by.clone(),
            certificate: c.certificate_pem.clone(),
        }
    }

    /// The JSON of a write's result view.
    pub fn from_view(v: &CertView) -> Self {
        Self::new(&v.cert, v.state)
    }

    /// The JSON of a record as of `now`.
    pub fn at(c: &CertRecord, state: &State, now: Millis) -> Self {
        Self::new(c, Pki::state_of(c, now, &state.accounts))
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListJson<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, null when this is the last.
    pub next_cursor: Option<String>,
}
