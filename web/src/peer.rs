//! The peer router (`/raft/*` on the peer listener): Raft RPCs, forwarded
//! writes, read-index and membership requests from other nodes.
//!
//! Every route requires the cluster secret. Until the control plane is
//! installed every route answers 503 `raft_not_ready` and nothing reaches
//! Raft: this is the transport-before-consensus rule.

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
use keel_raft::wire::{self, PeerRpc};
use keel_raft::{ControlPlane, Error};

use crate::error::ApiError;
use crate::middleware::require_peer;
use crate::shared::Shared;

fn peer_error(e: Error) -> Response {
    match e {
        Error::ShuttingDown => ApiError::ShuttingDown.into_response(),
        Error::Decode(m) => {
            ApiError::BadRequest(format!("undecodable peer message: {m}")).into_response()
        }
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

/// The control plane, if installed and if the sender belongs to our cluster.
fn peer_cp(shared: &Shared, headers: &HeaderMap) -> Result<ControlPlane, ApiError> {
    let cp = shared.control_plane().ok_or(ApiError::RaftNotReady)?;
    let theirs = headers.get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
    if !cp.identity().accepts(theirs) {
        tracing::warn!(theirs, "refused a peer request from another cluster");
        return Err(ApiError::Conflict {
            code: "cluster_mismatch",
            message: "the sender belongs to another cluster".into(),
        });
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

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        ApiError::not_found("no such peer route"),
    )
        .into_response()
}

/// The peer listener's router.
pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new().route(wire::PATH_SNAPSHOT, post(snapshot));
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
