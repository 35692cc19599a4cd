//! Health, metrics and the OpenAPI document: the unauthenticated routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_raft::{ControlPlane, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::ApiQuery;
use crate::lifecycle::Phase;
use crate::shared::Shared;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready` or `not_ready`.
    pub status: &'static str,
    /// Each readiness check (with `?verbose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<Check>>,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// Which check.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// Why, when useful.
    pub detail: String,
}

/// `?verbose` of `/readyz`.
#[derive(Debug, Deserialize)]
pub struct ReadyQuery {
    verbose: Option<String>,
}

/// Liveness: the process serves at all and its Raft core (once started)
/// has not died; no quorum needed.
#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, body = Status), (status = 503, body = Status)))]
pub async fn livez(State(shared): State<Arc<Shared>>) -> Response {
    let dead = shared.control_plane().and_then(|cp| cp.status().failed);
    match dead {
        None => Json(Status {
            status: "ok",
            checks: None,
        })
        .into_response(),
        Some(reason) => {
            tracing::error!(%reason, "liveness fails: the raft core has stopped");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "raft_failed",
                    checks: None,
                }),
            )
                .into_response()
        }
    }
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

/// Committed entries a ready node may still have to apply. Under write
/// load a healthy replica always trails its commit index by a few entries
/// for a few milliseconds; readiness must not flap with that. (A node that
/// starts is not ready before it has applied the leader's read index.)
const MAX_APPLY_LAG: u64 = 1_000;

/// Whether this node's clock is within the max offset of a majority.
fn clock_check(cp: &ControlPlane) -> Check {
    let h = cp.clock().health();
    let detail = match (h.healthy, h.offset_from_majority_ms) {
        (true, Some(off)) => format!("{off:+} ms from the majority; {}", h.reason),
        _ => h.reason,
    };
    check("clock", h.healthy, detail)
}

/// Every readiness check, in order.
pub fn readiness(shared: &Shared) -> Vec<Check> {
    let mut checks = vec![check(
        "serving",
        shared.barrier_passed(),
        if shared.barrier_passed() {
            "listeners serve and configuration is complete"
        } else {
            "readiness barrier not yet passed"
        },
    )];
    match shared.control_plane() {
        None => checks.push(check("raft", false, "raft not started")),
        Some(cp) => {
            let status = cp.status();
            let running = status.failed.is_none() && status.role != Role::Shutdown;
            checks.push(check(
                "raft",
                running,
                status
                    .failed
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", status.role).to_lowercase()),
            ));
            let member = status.nodes.contains_key(&status.node_id);
            checks.push(check(
                "member",
                member,
                if member {
                    "member of the cluster".to_string()
                } else {
                    "not (yet) a member of a cluster".to_string()
                },
            ));
            checks.push(check(
                "leader",
                status.leader.is_some(),
                status.leader.map_or_else(
                    || "no known leader".to_string(),
                    |l| format!("leader is node {}", keel_raft::name_of(l)),
                ),
            ));
            let sole_voter = status.voters.len() == 1 && status.is_voter(status.node_id);
            if status.role == Role::Leader && sole_voter {
                // A single-voter cluster is its own quorum: nothing ever
                // acknowledges it, and nothing needs to.
                checks.push(check("quorum", true, "the only voter is its own quorum"));
            } else if status.role == Role::Leader {
                // A leader cut off from its quorum still believes it leads
                // until it steps down; it must not take traffic meanwhile.
                let limit = cp.settings().election_timeout_max * 2;
                let fresh = status.quorum_acked_ago.is_some_and(|ago| ago <= limit);
                checks.push(check(
                    "quorum",
                    fresh,
                    match status.quorum_acked_ago {
                        Some(ago) => format!("a quorum acknowledged {} ms ago", ago.as_millis()),
                        None => "no quorum acknowledgement yet".to_string(),
                    },
                ));
            }
            checks.push(clock_check(&cp));
            checks.push(check(
                "caught_up",
                status.apply_lag() <= MAX_APPLY_LAG,
                format!(
                    "applied {} of committed {}",
                    status.applied.unwrap_or(0),
                    status.committed.unwrap_or(0)
                ),
            ));
        }
    }
    if let Some(hooks) = shared.peer_trust() {
        let now = keel_raft::clock::now_ms();
        checks.push(match hooks.certificate() {
            Some((serial, not_after)) if not_after > now => check(
                "peer_certificate",
                true,
                format!(
                    "serial {serial} expires {} (in {} days)",
                    keel_raft::clock::to_rfc3339(not_after),
                    (not_after - now) / 86_400_000
                ),
            ),
            Some((serial, _)) => check(
                "peer_certificate",
                false,
                format!("serial {serial} has expired"),
            ),
            None => check("peer_certificate", false, "no node certificate yet"),
        });
    }
    let phase = shared.lifecycle.phase();
    checks.push(check(
        "started",
        phase == Phase::Ready,
        format!("lifecycle phase {}", format!("{phase:?}").to_lowercase()),
    ));
    checks.push(check(
        "unsealed",
        !shared.sealed(),
        if shared.sealed() {
            "sealed"
        } else {
            "unsealed"
        },
    ));
    checks.push(check(
        "not_draining",
        !shared.draining(),
        if shared.draining() {
            "shutting down"
        } else {
            "serving"
        },
    ));
    checks
}

/// Readiness: serving, Raft started, member of a cluster with a known
/// leader, clock within the max offset, caught up, unsealed, not draining.
#[utoipa::path(get, path = "/readyz", tag = "health",
    params(("verbose" = Option<String>, Query, description = "list every check")),
    responses((status = 200, body = Status), (status = 503, body = Status)))]
pub async fn readyz(
    State(shared): State<Arc<Shared>>,
    ApiQuery(q): ApiQuery<ReadyQuery>,
) -> Response {
    let checks = readiness(&shared);
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Status {
        status: if ready { "ready" } else { "not_ready" },
        checks: q.verbose.is_some().then_some(checks),
    };
    let mut response = (status, Json(body)).into_response();
    if !ready {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.metrics.render(shared.control_plane().as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi(State(shared): State<Arc<Shared>>) -> Response {
    let policy = shared
        .control_plane()
        .map(|cp| cp.policy())
        .unwrap_or_default();
    Json(crate::openapi::document(&policy)).into_response()
}
