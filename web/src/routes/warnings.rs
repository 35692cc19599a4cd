//! `GET /v1/sys/warnings`: what an operator must act on, as this node sees
//! it. `keel status` prints these (and adds the seal state of every
//! member, which it asks each member for).
//!
//! Each warning has a stable code: `sealed`, `clock_untrusted`,
//! `clock_offset`, `no_leader`, `member_unreachable`, `expiry_debt`,
//! `ca_expired`, `ca_expiring`, `certificates_expiring`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use keel_raft::ClusterView;
use keel_raft::clock::now_ms;
use keel_raft::domain::cert::{CertState, Pki};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::shared::Shared;

/// Leases this long past their deadline and still there are expiry debt.
const EXPIRY_GRACE_MS: u64 = 5_000;
/// The CA is reported this long before it expires.
const CA_WINDOW_MS: u64 = 30 * 24 * 3_600_000;
/// Active certificates are reported this long before they expire.
const CERT_WINDOW_MS: u64 = 7 * 24 * 3_600_000;

/// One thing to act on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Warning {
    /// Stable code (see the route's description).
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// `{"warnings": [...]}`, empty when all is well.
#[derive(Debug, Serialize, ToSchema)]
pub struct Warnings {
    /// The node that answered (its name).
    pub node_id: u64,
    /// What to act on.
    pub warnings: Vec<Warning>,
}

fn warn(code: &str, message: String) -> Warning {
    Warning {
        code: code.to_string(),
        message,
    }
}

fn days(ms: u64) -> String {
    format!("{:.1} days", ms as f64 / 86_400_000.0)
}

/// Warnings derived from the replicated state at `now`.
fn state_warnings(state: &keel_raft::State, now: u64, out: &mut Vec<Warning>) {
    let debt = state.leases.count_due(now.saturating_sub(EXPIRY_GRACE_MS));
    if debt > 0 {
        out.push(warn(
            "expiry_debt",
            format!(
                "{debt} leases are more than {}s past their deadline and not yet expired: \
                 check that a leader is running its expiration manager (is it sealed?)",
                EXPIRY_GRACE_MS / 1000
            ),
        ));
    }
    if let Some(ca) = state.pki.ca() {
        if ca.not_after <= now {
            out.push(warn(
                "ca_expired",
                "the cluster CA has expired: nothing it signs is valid; import a new CA".into(),
            ));
        } else if ca.not_after - now <= CA_WINDOW_MS {
            out.push(warn(
                "ca_expiring",
                format!(
                    "the cluster CA expires in {}: plan its replacement",
                    days(ca.not_after - now)
                ),
            ));
        }
    }
    let mut expiring = 0u64;
    let mut soonest: Option<u64> = None;
    for cert in state.pki.iter_from(None) {
        if cert.not_after > now
            && cert.not_after - now <= CERT_WINDOW_MS
            && cert.replaced_by.is_none()
            && Pki::state_of(cert, now, &state.accounts) == CertState::Active
        {
            expiring += 1;
            soonest = Some(soonest.map_or(cert.not_after, |s| s.min(cert.not_after)));
        }
    }
    if let Some(soonest) = soonest {
        out.push(warn(
            "certificates_expiring",
            format!(
                "{expiring} active certificates expire within {} (the first in {}) and have no renewal",
                days(CERT_WINDOW_MS),
                days(soonest - now)
            ),
        ));
    }
}

/// Warnings from the cluster view and this node's clock.
fn cluster_warnings(view: &ClusterView, max_offset_ms: u64, out: &mut Vec<Warning>) {
    if view.leader.is_none() {
        out.push(warn(
            "no_leader",
            "no leader is known: writes are refused until one is elected".into(),
        ));
    }
    for member in &view.members {
        if member.state == "unreachable" {
            out.push(warn(
                "member_unreachable",
                format!(
                    "member {} ({}) does not answer the leader",
                    member.id, member.api_addr
                ),
            ));
        }
        if let Some(offset) = member.clock_offset_ms
            && offset.unsigned_abs() * 2 > max_offset_ms
        {
            out.push(warn(
                "clock_offset",
                format!(
                    "member {}'s clock is {offset} ms off node {}'s (the limit is {max_offset_ms} ms): fix its time sync",
                    member.id, view.node_id
                ),
            ));
        }
    }
}

/// What an operator must act on, as this node sees it.
#[utoipa::path(get, path = "/v1/sys/warnings", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysRead))),
    responses((status = 200, body = Warnings), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn warnings(State(shared): State<Arc<Shared>>) -> Result<Json<Warnings>, ApiError> {
    let cp = shared.cp()?;
    let mut out = Vec::new();
    if shared.sealed() {
        out.push(warn(
            "sealed",
            format!(
                "node {} is sealed: it serves no domain request and runs no manager; `keel operator unseal` it",
                cp.name()
            ),
        ));
    }
    let health = cp.clock().health();
    if !health.healthy {
        out.push(warn("clock_untrusted", health.reason));
    }
    let cluster_id = cp.local(|s| s.cluster.cluster_id.clone());
    let view = ClusterView::build(&cp.status(), cluster_id).with_clock(cp.clock());
    cluster_warnings(&view, health.max_offset_ms, &mut out);
    let now = now_ms();
    cp.local(|s| state_warnings(s, now, &mut out));
    Ok(Json(Warnings {
        node_id: cp.name(),
        warnings: out,
    }))
}
