//! `/v1/sys/census` and `/v1/sys/events`: what a status page (or a script)
//! needs beyond the cluster view: objects by state, the expiry debt, the
//! CRL's number and next update, and the recent cluster events this node
//! saw. Both read this node's applied state and memory: no quorum round,
//! so they answer on a node cut off from its cluster too.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use keel_raft::clock::{now_ms, to_rfc3339};
use keel_raft::domain::census::Census;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::events::Event;
use crate::extract::ApiQuery;
use crate::shared::Shared;

/// Leases by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseCountsView {
    /// Counting down, owner active.
    pub active: u64,
    /// Counting down, owner expired or disabled.
    pub suspended: u64,
    /// Past the deadline, expiry not yet applied.
    pub expired: u64,
}

/// Accounts by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountCountsView {
    /// Active.
    pub active: u64,
    /// Past `expires_at`.
    pub expired: u64,
    /// Disabled by an operator.
    pub disabled: u64,
}

/// Certificates by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertCountsView {
    /// In force.
    pub active: u64,
    /// On hold: the owner is not active.
    pub suspended: u64,
    /// Replaced by an activated renewal.
    pub superseded: u64,
    /// Revoked.
    pub revoked: u64,
    /// Past `not_after`.
    pub expired: u64,
}

/// Leases past their deadline whose expiry is not applied yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiryDebtView {
    /// How many.
    pub leases: u64,
    /// How long ago the oldest of them was due, in ms (0 when none).
    pub oldest_overdue_ms: u64,
}

/// The CRL as replicated.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrlView {
    /// Whether the cluster CA exists yet (no CRL before it does).
    pub ca_initialized: bool,
    /// The CRL number.
    pub number: u64,
    /// Its thisUpdate (RFC 3339).
    pub this_update: String,
    /// Its nextUpdate (RFC 3339): thisUpdate plus the CRL validity.
    pub next_update: String,
    /// Serials it lists.
    pub entries: u64,
}

/// `GET /v1/sys/census`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CensusView {
    /// When it was counted, on this node's clock (RFC 3339).
    pub at: String,
    /// The applied index it was counted at.
    pub applied_index: u64,
    /// Leases by state.
    pub leases: LeaseCountsView,
    /// Accounts by state.
    pub accounts: AccountCountsView,
    /// Certificates by state.
    pub certificates: CertCountsView,
    /// The expiry debt.
    pub expiry_debt: ExpiryDebtView,
    /// The CRL.
    pub crl: CrlView,
}

impl CensusView {
    fn new(at: u64, applied_index: u64, c: Census, crl_validity_ms: u64) -> Self {
        CensusView {
            at: to_rfc3339(at),
            applied_index,
            leases: LeaseCountsView {
                active: c.leases.active,
                suspended: c.leases.suspended,
                expired: c.leases.expired,
            },
            accounts: AccountCountsView {
                active: c.accounts.active,
                expired: c.accounts.expired,
                disabled: c.accounts.disabled,
            },
            certificates: CertCountsView {
                active: c.certificates.active,
                suspended: c.certificates.suspended,
                superseded: c.certificates.superseded,
                revoked: c.certificates.revoked,
                expired: c.certificates.expired,
            },
            expiry_debt: ExpiryDebtView {
                leases: c.expiry_debt.leases,
                oldest_overdue_ms: c.expiry_debt.oldest_overdue_ms,
            },
            crl: CrlView {
                ca_initialized: c.crl.ca_initialized,
                number: c.crl.number,
                this_update: to_rfc3339(c.crl.this_update_ms),
                next_update: to_rfc3339(c.crl.this_update_ms.saturating_add(crl_validity_ms)),
                entries: c.crl.entries,
            },
        }
    }
}

/// Objects by state, the expiry debt and the CRL, from this node's
/// applied state.
#[utoipa::path(get, path = "/v1/sys/census", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysRead))),
    responses((status = 200, body = CensusView), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn census(State(shared): State<Arc<Shared>>) -> Result<Json<CensusView>, ApiError> {
    let cp = shared.domain_cp()?;
    let validity = cp.policy().pki.crl_validity_ms;
    let applied = *cp.applied_index().borrow();
    let now = now_ms();
    let counted = cp.local(|s| s.census(now));
    Ok(Json(CensusView::new(now, applied, counted, validity)))
}

/// `?after=` of `GET /v1/sys/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events with a sequence number above this one.
    pub after: Option<u64>,
}

/// `GET /v1/sys/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsView {
    /// The events, oldest first (at most the ring's capacity).
    pub events: Vec<Event>,
    /// How many events the ring keeps.
    pub capacity: usize,
}

/// Recent cluster events this node saw (a bounded ring, not replicated,
/// empty after a restart).
#[utoipa::path(get, path = "/v1/sys/events", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysRead))), params(EventsQuery),
    responses((status = 200, body = EventsView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn events(
    State(shared): State<Arc<Shared>>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Json<EventsView> {
    Json(EventsView {
        events: shared.events.since(q.after.unwrap_or(0)),
        capacity: crate::events::CAPACITY,
    })
}
