//! `/v1/cluster`: the cluster view and membership operations.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use keel_raft::{ClusterView, MembershipChange, NodeName, name_of};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, MaybeJson, Whole};
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
    responses((status = 200, description = "cluster view"), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_cluster(State(shared): State<Arc<Shared>>) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(view(&shared)?))
}

/// Adds a member as learner, waits until it caught up, promotes it.
#[utoipa::path(post, path = "/v1/cluster/members", tag = "cluster", security(("bearer" = [])), request_body = AddMember,
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
#[utoipa::path(post, path = "/v1/cluster/transfer-leader", tag = "cluster", security(("bearer" = [])), request_body = TransferLeader,
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
