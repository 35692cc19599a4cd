//! The peer router (`/raft/*` on the peer listener): Raft RPCs, forwarded
//! writes, read-index and membership requests from other nodes.
//!
//! Every route requires the cluster secret. Until the control plane is
//! installed every route answers 503 `raft_not_ready` and nothing reaches
//! Raft: this is the transport-before-consensus rule.
//!
//! A request naming the Raft node it is meant for (`x-keel-to`) is refused
//! with 409 `not_this_node` by any other incarnation: a node that came back
//! with a wiped data directory never votes or acknowledges for the log it
//! lost. An AppendEntries carrying a watermark above this node's log
//! (`x-keel-acked`) is refused with 409 `log_reverted`, and the node
//! retires that data directory.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError};
use keel_raft::network::CLUSTER_HEADER;
use keel_raft::wire::{self, PeerRefusal, PeerRpc};
use keel_raft::{ControlPlane, Error};

use crate::error::ApiError;
use crate::middleware::require_peer;
use crate::shared::Shared;

fn peer_error(e: Error) -> Response {
    match e {
        Error::ShuttingDown => ApiError::ShuttingDown.into_response(),
        Error::ClockOffset(m) => ApiError::ClockOffset(m).into_response(),
        Error::Decode(m) => {
            ApiError::BadRequest(format!("undecodable peer message: {m}")).into_response()
        }
        Error::BadRequest(m) => ApiError::BadRequest(m).into_response(),
        other => {
            tracing::warn!(error = %other, "peer request failed");
            ApiError::Internal(other.to_string()).into_response()
        }
    }
}

fn encoded(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response()
}

/// Reads a peer body of at most `limit` bytes. Too large is a 413, which
/// the sender takes as "send smaller batches", never as "retry".
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Response> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit).into_response())
        }
        Err(e) => Err(ApiError::BadRequest(format!("peer body: {e}")).into_response()),
    }
}

/// A numeric peer header, if present; malformed is a 400.
fn number_header(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::BadRequest(format!("malformed {name} header")))
        })
        .transpose()
}

/// The control plane, if installed, if the sender belongs to our cluster,
/// and if the request is meant for this incarnation of this node.
fn peer_cp(shared: &Shared, headers: &HeaderMap) -> Result<ControlPlane, ApiError> {
    let cp = shared.control_plane().ok_or(ApiError::RaftNotReady)?;
    let theirs = headers.get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
    if !cp.identity().accepts(theirs) {
        tracing::warn!(theirs, "refused a peer request from another cluster");
        return Err(ApiError::Conflict {
            code: PeerRefusal::ClusterMismatch.code(),
            message: "the sender belongs to another cluster".into(),
        });
    }
    if let Some(to) = number_header(headers, wire::TO_HEADER)?
        && to != cp.node_id()
    {
        tracing::debug!(
            to,
            this = cp.node_id(),
            "refused a peer request meant for another incarnation"
        );
        return Err(ApiError::Conflict {
            code: PeerRefusal::NotThisNode.code(),
            message: format!(
                "this is node {} incarnation {:08x}, not the addressed raft id {to}",
                cp.name(),
                keel_raft::types::incarnation_of(cp.node_id())
            ),
        });
    }
    if let Some(acked) = number_header(headers, wire::ACKED_HEADER)? {
        cp.check_acknowledged(acked).map_err(ApiError::from)?;
    }
    Ok(cp)
}

async fn serve_rpc(shared: Arc<Shared>, rpc: PeerRpc, headers: HeaderMap, body: Body) -> Response {
    let cp = match peer_cp(&shared, &headers) {
        Ok(cp) => cp,
        Err(e) => return e.into_response(),
    };
    let bytes = match read_limited(body, cp.settings().max_peer_message_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match cp.serve_peer(rpc, &bytes).await {
        Ok(out) => encoded(out),
        Err(e) => peer_error(e),
    }
}

async fn snapshot(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let cp = match peer_cp(&shared, &headers) {
        Ok(cp) => cp,
        Err(e) => return e.into_response(),
    };
    // Streamed to a file in the data dir as it arrives, never collected.
    match cp.serve_snapshot(body.into_data_stream()).await {
        Ok(out) => encoded(out),
        Err(e) => peer_error(e),
    }
}

/// A clock probe: answered from the moment the listener serves, with or
/// without Raft, so offsets are known before this node could lead.
async fn time() -> Response {
    match keel_raft::skew::probe::encoded_time_reply() {
        Ok(bytes) => encoded(bytes),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        ApiError::not_found("no such peer route"),
    )
        .into_response()
}

/// The peer listener's router.
pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route(wire::PATH_SNAPSHOT, post(snapshot))
        .route(wire::PATH_TIME, post(time));
    for rpc in PeerRpc::ALL {
        router = router.route(
            rpc.path(),
            post(
                move |State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body| {
                    serve_rpc(shared, rpc, headers, body)
                },
            ),
        );
    }
    router
        .layer(middleware::from_fn_with_state(shared.clone(), require_peer))
        .fallback(not_found)
        .with_state(shared)
}
