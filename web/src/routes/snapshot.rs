//! `/v1/sys/snapshot`: online snapshots. `GET` streams a snapshot file of
//! the replicated state (see `keel_raft::backup` for the layout), taken at
//! a committed index while writes go on; `POST .../restore` takes one back
//! and replaces the cluster's state with it through Raft.
//!
//! The file is streamed from a temporary copy: the state machine's lock is
//! released before the first byte is sent, and memory holds one chunk at a
//! time. An upload is written to a temporary file and verified whole
//! before anything is proposed, so a corrupt or truncated file changes
//! nothing.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use keel_raft::backup::{self, BackupCounts, Checksum};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::shared::Shared;

/// Largest snapshot file a restore accepts.
const MAX_UPLOAD_BYTES: u64 = keel_raft::domain::restore::MAX_RESTORE_BYTES + (1 << 20);

/// One restore at a time on a node: a second would replace the first's
/// stage in the log.
static RESTORING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `?force=` of a restore.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RestoreQuery {
    /// Restore a snapshot taken from another cluster (its cluster id
    /// differs from this one's). This cluster keeps its own id.
    #[serde(default)]
    pub force: bool,
}

/// Object counts of a snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotCounts {
    /// Leases.
    pub leases: u64,
    /// Accounts.
    pub accounts: u64,
    /// Certificates.
    pub certificates: u64,
    /// Remembered idempotency keys.
    pub idempotency_records: u64,
}

impl From<BackupCounts> for SnapshotCounts {
    fn from(c: BackupCounts) -> Self {
        SnapshotCounts {
            leases: c.leases,
            accounts: c.accounts,
            certificates: c.certificates,
            idempotency_records: c.idempotency_records,
        }
    }
}

/// What a restore did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreAnswer {
    /// Always true on 200.
    pub restored: bool,
    /// The cluster the snapshot was taken from.
    pub source_cluster_id: Option<String>,
    /// The index the snapshot was taken at (in its own cluster).
    pub snapshot_index: u64,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// What it holds.
    pub counts: SnapshotCounts,
    /// Bytes of state replicated.
    pub bytes: u64,
    /// Log entries that carried them.
    pub chunks: u64,
    /// The answering node's applied index once the restore committed.
    pub applied_index: u64,
}

/// Streams a snapshot file of the replicated state, taken at a committed
/// index that includes every write acknowledged before the request.
#[utoipa::path(get, path = "/v1/sys/snapshot", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    responses(
        (status = 200, description = "the snapshot file (header, state, SHA-256); `x-keel-snapshot-index` names the committed index it is taken at",
            body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn save(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let cp = shared.domain_cp()?;
    let export = cp.export_snapshot().await?;
    let head = Bytes::from(backup::encode_prefix(&export.header));
    let total = head.len() as u64 + export.header.body_len + backup::CHECKSUM_LEN as u64;
    let mut sum = Checksum::default();
    sum.update(&head);
    let name = format!(
        "keel-{}-{}.snap",
        export.header.cluster_id.as_deref().unwrap_or("cluster"),
        export.header.index
    );
    let index = export.header.index;
    let body = Box::pin(
        export
            .body
            .into_stream()
            .map_err(|e| ApiError::Internal(format!("snapshot file: {e}")))?,
    );
    // The prefix, then the body as it is read, then the checksum of both.
    let stream = futures::stream::unfold(Some((Some(head), body, Some(sum))), |st| async move {
        let (head, mut body, mut sum) = st?;
        if let Some(head) = head {
            return Some((Ok(head), Some((None, body, sum))));
        }
        match body.next().await {
            Some(Ok(chunk)) => {
                if let Some(s) = sum.as_mut() {
                    s.update(&chunk);
                }
                Some((Ok(chunk), Some((None, body, sum))))
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "snapshot stream broke off");
                Some((Err(e), None))
            }
            None => {
                let digest = sum.take()?.finish();
                Some((Ok(Bytes::copy_from_slice(&digest)), None))
            }
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert("x-keel-snapshot-index", HeaderValue::from(index));
    Ok(response)
}

/// Replaces the cluster's state with a snapshot file, through Raft: every
/// node ends with it. The file is verified whole first (a corrupt or
/// truncated one is a 400 and changes nothing); one from another cluster
/// is a 409 `cluster_mismatch` unless `force=true`.
#[utoipa::path(post, path = "/v1/sys/snapshot/restore", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    params(RestoreQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "a snapshot file"),
    responses((status = 200, body = RestoreAnswer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn restore(
    State(shared): State<Arc<Shared>>,
    ApiQuery(query): ApiQuery<RestoreQuery>,
    body: Body,
) -> Result<Json<RestoreAnswer>, ApiError> {
    let cp = shared.domain_cp()?;
    let Ok(guard) = RESTORING.try_lock() else {
        return Err(ApiError::Conflict {
            code: "restore_in_progress",
            message: "a restore is already running on this node".into(),
        });
    };
    let received = cp
        .receive_backup(body.into_data_stream(), MAX_UPLOAD_BYTES)
        .await?;
    let header = received.verified.header.clone();
    let ours = cp.local(|s| s.cluster.cluster_id.clone());
    if header.cluster_id != ours && !query.force {
        return Err(ApiError::Conflict {
            code: "cluster_mismatch",
            message: format!(
                "the snapshot was taken from cluster {:?}, this is cluster {:?}; restore with force=true to replace this cluster's state with it",
                header.cluster_id.as_deref().unwrap_or("unknown"),
                ours.as_deref().unwrap_or("unknown"),
            ),
        });
    }
    // Once proposing starts, it runs to its end (commit, or abort on
    // failure) even if the client goes away: never half a stage left.
    let restore = tokio::spawn(async move {
        let _guard = guard;
        cp.restore_backup(received).await
    });
    let report = restore
        .await
        .map_err(|e| ApiError::Internal(format!("restore task: {e}")))??;
    Ok(Json(RestoreAnswer {
        restored: true,
        source_cluster_id: header.cluster_id,
        snapshot_index: header.index,
        taken_at: keel_raft::clock::to_rfc3339(header.taken_at_ms),
        counts: header.counts.into(),
        bytes: report.bytes,
        chunks: report.chunks,
        applied_index: report.applied_index,
    }))
}
