//! The peer router (`/raft/*` on the peer listener): Raft RPCs, forwarded
//! writes, read-index and membership requests from other nodes.
//!
//! Every route requires the cluster secret, or with keel-run mutual TLS a
//! node certificate (see [`crate::enrol`]). Until the control plane is
//! installed every route answers 503 `raft_not_ready` and nothing reaches
//! Raft: this is the transport-before-consensus rule.
//!
//! This is only the HTTP end of `keel_raft::transport`: the headers are
//! read into [`ControlPlane::admit`] (another cluster, another incarnation
//! than `x-keel-to`, a watermark `x-keel-acked` above this node's log: all
//! refused before Raft), and the body handed to `serve_peer` or
//! `serve_snapshot`; refusals are the [`PeerRefusal`]s both transports
//! share.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError};
use keel_raft::transport::CLUSTER_HEADER;
use keel_raft::wire::{self, PeerRefusal, PeerRpc};
use keel_raft::{ControlPlane, Error};

use crate::enrol::{ENROL_PATH, enrol, require_peer};
use crate::error::ApiError;
use crate::shared::Shared;

/// A failed peer call's answer: the refusal [`PeerRefusal::answering`]
/// names (as the in-memory transport answers it), or a 500.
fn peer_error(e: Error) -> Response {
    match e {
        Error::Decode(m) => {
            ApiError::BadRequest(format!("undecodable peer message: {m}")).into_response()
        }
        e if PeerRefusal::answering(&e) != PeerRefusal::Other => ApiError::from(e).into_response(),
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

/// The sending node the request names (`x-keel-from`): under mutual TLS
/// [`crate::enrol::require_peer`] has checked it against the client
/// certificate, so a Raft message in it must speak for that node.
fn sender(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(keel_raft::transport::FROM_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Why a peer call was not admitted: before Raft runs, or refused by it.
enum Refused {
    Api(ApiError),
    Call(Error),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Api(e) => e.into_response(),
            Refused::Call(e) => peer_error(e),
        }
    }
}

/// The control plane, if installed and if it admits the call (see
/// [`ControlPlane::admit`]: same cluster, this incarnation, a watermark
/// its log holds).
fn peer_cp(shared: &Shared, headers: &HeaderMap) -> Result<ControlPlane, Refused> {
    let cp = shared
        .control_plane()
        .ok_or(Refused::Api(ApiError::RaftNotReady))?;
    let cluster = headers.get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
    let to = number_header(headers, wire::TO_HEADER).map_err(Refused::Api)?;
    let acked = number_header(headers, wire::ACKED_HEADER).map_err(Refused::Api)?;
    cp.admit(cluster, to, acked).map_err(Refused::Call)?;
    Ok(cp)
}

async fn serve_rpc(shared: Arc<Shared>, rpc: PeerRpc, headers: HeaderMap, body: Body) -> Response {
    let cp = match peer_cp(&shared, &headers) {
        Ok(cp) => cp,
        Err(r) => return r.into_response(),
    };
    let bytes = match read_limited(body, cp.settings().max_peer_message_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match cp.serve_peer(rpc, &bytes, sender(&headers)).await {
        Ok(out) => encoded(out),
        Err(e) => peer_error(e),
    }
}

async fn snapshot(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let cp = match peer_cp(&shared, &headers) {
        Ok(cp) => cp,
        Err(r) => return r.into_response(),
    };
    // Streamed to a file in the data dir as it arrives, never collected.
    match cp
        .serve_snapshot(body.into_data_stream(), sender(&headers))
        .await
    {
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

/// The cluster's seal configuration (digests and a check value, never a
/// key or a share): answered while sealed, so a node initialized
/// elsewhere can take key shares.
async fn seal_config(State(shared): State<Arc<Shared>>) -> Response {
    match keel_raft::codec::encode(&shared.seal_config()) {
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
        .route(PeerRpc::Snapshot.path(), post(snapshot))
        .route(PeerRpc::Time.path(), post(time))
        .route(PeerRpc::SealConfig.path(), post(seal_config))
        .route(ENROL_PATH, post(enrol));
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use keel_raft::Error;
    use keel_raft::wire::PeerRefusal;

    use super::peer_error;

    /// The peer listener refuses a failed call as the in-memory transport
    /// does: the same status, and a body the client reads back as the
    /// same refusal.
    #[tokio::test]
    async fn failed_calls_answer_what_the_in_memory_transport_answers() {
        let errors = || {
            vec![
                Error::ShuttingDown,
                Error::ClockOffset("x".into()),
                Error::Decode("x".into()),
                Error::BadRequest("x".into()),
                Error::LogReverted("x".into()),
                Error::PeerRefused {
                    refusal: PeerRefusal::ClusterMismatch,
                    message: "x".into(),
                },
                Error::PeerRefused {
                    refusal: PeerRefusal::NotThisNode,
                    message: "x".into(),
                },
                Error::NoLeader,
                Error::Internal("x".into()),
                Error::Storage("x".into()),
            ]
        };
        for (e, shown) in errors().into_iter().zip(errors()) {
            let meant = PeerRefusal::answering(&e);
            let response = peer_error(e);
            assert_eq!(response.status().as_u16(), meant.status(), "{shown:?}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(PeerRefusal::read(&body), meant, "{shown:?}");
        }
    }
}
