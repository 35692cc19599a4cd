//! `/v1/cluster`: the cluster view and membership operations.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use keel_raft::{ClusterView, DecommissionRequest, MembershipChange, NodeName, name_of};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::events::EventKind;
use crate::extract::{ApiJson, ApiQuery, MaybeJson, Whole};
use crate::shared::Shared;

/// `POST /v1/cluster/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// Node id (its name, `--node-id`).
    #[schema(value_type = u64)]
    pub id: Whole,
    /// Its API address (`host:port`).
    pub api_addr: String,
    /// Its peer address (`host:port`).
    pub peer_addr: String,
    /// Promote to voter once caught up (default true).
    #[serde(default = "yes")]
    pub voter: bool,
}

/// How long a changed view may take to reach the answering node.
const VIEW_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

fn yes() -> bool {
    true
}

/// `POST /v1/cluster/transfer-leader`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferLeader {
    /// The voter (node id) to hand leadership to; the most caught-up one if
    /// absent.
    #[schema(value_type = Option<u64>)]
    pub to: Option<Whole>,
}

fn view(shared: &Shared) -> Result<ClusterView, ApiError> {
    let cp = shared.cp()?;
    let cluster_id = cp.local(|s| s.cluster.cluster_id.clone());
    Ok(ClusterView::build(&cp.status(), cluster_id).with_clock(cp.clock()))
}

/// Longest accepted address.
const MAX_ADDR_LEN: usize = 1024;

/// Parses a node id in a path: decimal digits only.
fn parse_node(id: &str) -> Result<NodeName, ApiError> {
    id.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| id.parse().ok())
        .flatten()
        .ok_or_else(|| ApiError::BadRequest(format!("`{id}` is not a node id")))
}

/// `host:port`: a host without spaces or control characters, a
/// port from 1 to 65535 written without leading zeros.
fn check_addr(what: &str, addr: &str) -> Result<(), ApiError> {
    let valid = addr.chars().count() <= MAX_ADDR_LEN
        && addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.chars().any(|c| c == ' ' || c.is_control())
                && !port.starts_with('0')
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{what} must be host:port (got `{addr}`)"
        )))
    }
}

/// This node's view of the cluster.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::ClusterRead))),
    responses((status = 200, description = "cluster view"), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_cluster(State(shared): State<Arc<Shared>>) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(view(&shared)?))
}

/// Adds a member as learner, waits until it caught up, promotes it.
#[utoipa::path(post, path = "/v1/cluster/members", tag = "cluster", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::ClusterWrite))), request_body = AddMember,
    responses((status = 200, description = "cluster view"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn add_member(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Json<ClusterView>, ApiError> {
    check_addr("api_addr", &body.api_addr)?;
    check_addr("peer_addr", &body.peer_addr)?;
    let cp = shared.cp()?;
    let (id, voter) = (body.id.0, body.voter);
    cp.change_membership(MembershipChange::Add {
        node_id: id,
        api_addr: body.api_addr,
        peer_addr: body.peer_addr,
        voter: body.voter,
    })
    .await?;
    // The change ran on the leader; answer with this node's view once it
    // has applied it too.
    let _ = cp
        .wait_for(VIEW_SETTLE, |s| {
            s.nodes
                .keys()
                .any(|n| name_of(*n) == id && s.is_voter(*n) == voter)
        })
        .await;
    Ok(Json(view(&shared)?))
}

/// Removes a member; refused if it would break quorum safety.
#[utoipa::path(delete, path = "/v1/cluster/members/{id}", tag = "cluster", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::ClusterWrite))),
    params(("id" = u64, Path, description = "node id")),
    responses((status = 200, description = "cluster view"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn remove_member(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<ClusterView>, ApiError> {
    let id = parse_node(&id)?;
    let cp = shared.cp()?;
    cp.change_membership(MembershipChange::Remove { node_id: id })
        .await?;
    let _ = cp
        .wait_for(VIEW_SETTLE, |s| !s.nodes.keys().any(|n| name_of(*n) == id))
        .await;
    Ok(Json(view(&shared)?))
}

/// Hands leadership to another voter.
#[utoipa::path(post, path = "/v1/cluster/transfer-leader", tag = "cluster", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::ClusterWrite))), request_body = TransferLeader,
    responses((status = 200, description = "cluster view"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn transfer_leader(
    State(shared): State<Arc<Shared>>,
    MaybeJson(body): MaybeJson<TransferLeader>,
) -> Result<Json<ClusterView>, ApiError> {
    let cp = shared.cp()?;
    let leader = cp.transfer_leader(body.to.map(|w| w.0)).await?;
    let _ = cp.wait_for(VIEW_SETTLE, |s| s.leader == Some(leader)).await;
    Ok(Json(view(&shared)?))
}

/// `?force=` of a decommission.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecommissionQuery {
    /// Proceed even if the voters left could not tolerate one more failure
    /// (never if they could not form a quorum at all).
    pub force: Option<bool>,
}

/// What a decommission did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecommissionView {
    /// The decommissioned node.
    pub node_id: NodeName,
    /// It led, and leadership was handed to another voter first.
    pub leadership_transferred: bool,
    /// It was a voter and was demoted to learner before its removal.
    pub demoted: bool,
    /// It confirmed its data directory is marked decommissioned (it can
    /// never rejoin with it) and that it is stopping.
    pub retired: bool,
    /// Why it could not be told to retire (it was removed anyway: stop it
    /// and wipe its data directory by hand).
    pub retire_error: Option<String>,
    /// With `force`: what the failure-tolerance check would have refused.
    pub forced_past: Option<String>,
    /// The leader afterwards.
    pub leader: Option<NodeName>,
    /// Voters afterwards.
    pub voters: Vec<NodeName>,
}

/// Decommissions a member for good: refuse if the voters left could not
/// tolerate a failure (409 unless `force`), hand leadership away if it
/// leads, demote it, wait until the cluster commits without it, tell it
/// to mark its data directory retired and stop, remove it.
#[utoipa::path(post, path = "/v1/cluster/members/{id}/decommission", tag = "cluster", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::ClusterWrite))),
    params(("id" = u64, Path, description = "node id"), DecommissionQuery),
    responses((status = 200, body = DecommissionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn decommission(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DecommissionQuery>,
) -> Result<Json<DecommissionView>, ApiError> {
    let id: NodeName = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a node id")))?;
    let cp = shared.cp()?;
    let force = q.force.unwrap_or(false);
    let r = cp
        .decommission(DecommissionRequest { node_id: id, force })
        .await?;
    shared.events.record(
        EventKind::Decommission,
        crate::events::Source::Api,
        format!(
            "node {id} decommissioned{}{}",
            if r.retired {
                ""
            } else {
                " (it could not be told to stop)"
            },
            if r.forced_past.is_some() {
                " (forced)"
            } else {
                ""
            }
        ),
    );
    Ok(Json(DecommissionView {
        node_id: r.node_id,
        leadership_transferred: r.leadership_transferred,
        demoted: r.demoted,
        retired: r.retired,
        retire_error: r.retire_error,
        forced_past: r.forced_past,
        leader: r.leader,
        voters: r.voters,
    }))
}
