//! `/v1/sys/*`: lifecycle, seal, unseal, reload and the audit log's HMAC.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::lifecycle::LifecycleView;
use crate::shared::Shared;

/// `{"sealed": bool}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SealStatus {
    /// Whether this node is sealed.
    pub sealed: bool,
}

/// The result of a reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadReport {
    /// Always true on 200.
    pub reloaded: bool,
    /// What changed.
    pub changes: Vec<String>,
}

/// The node's phase and components.
#[utoipa::path(get, path = "/v1/sys/lifecycle", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysRead))),
    responses((status = 200, body = LifecycleView), (status = 401, body = ErrorBody)))]
pub async fn lifecycle(State(shared): State<Arc<Shared>>) -> Json<LifecycleView> {
    Json(shared.lifecycle.view())
}

/// Whether this node is sealed (no token needed).
#[utoipa::path(get, path = "/v1/sys/seal-status", tag = "sys", responses((status = 200, body = SealStatus)))]
pub async fn seal_status(State(shared): State<Arc<Shared>>) -> Json<SealStatus> {
    Json(SealStatus {
        sealed: shared.sealed(),
    })
}

/// Stops this node's managers (awaited), hands leadership away if it leads,
/// then refuses domain requests with 503 `sealed`.
#[utoipa::path(post, path = "/v1/sys/seal", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    responses((status = 200, body = SealStatus), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn seal(State(shared): State<Arc<Shared>>) -> Result<Json<SealStatus>, ApiError> {
    let control = shared.node_control()?;
    control.seal().await.map_err(ApiError::Internal)?;
    Ok(Json(SealStatus {
        sealed: shared.sealed(),
    }))
}

/// Reverses a seal.
#[utoipa::path(post, path = "/v1/sys/unseal", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    responses((status = 200, body = SealStatus), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unseal(State(shared): State<Arc<Shared>>) -> Result<Json<SealStatus>, ApiError> {
    let control = shared.node_control()?;
    control.unseal().await.map_err(ApiError::Internal)?;
    Ok(Json(SealStatus {
        sealed: shared.sealed(),
    }))
}

/// Re-reads the config file and the files it names; a bad configuration is
/// rejected whole and the old one stays in force.
#[utoipa::path(post, path = "/v1/sys/reload", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    responses((status = 200, body = ReloadReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn reload(State(shared): State<Arc<Shared>>) -> Result<Json<ReloadReport>, ApiError> {
    let control = shared.node_control()?;
    let changes = control.reload().await.map_err(|e| {
        ApiError::BadRequest(format!(
            "reload rejected, the previous configuration stays in force: {e}"
        ))
    })?;
    Ok(Json(ReloadReport {
        reloaded: true,
        changes,
    }))
}

/// A value to hash as the audit log would.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditHashBody {
    /// The value (for example a token that may have been presented).
    pub input: String,
}

/// The value's HMAC under the cluster's audit key.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditHash {
    /// `hmac-sha256:<hex>`, as the audit log writes it.
    pub hash: String,
}

/// Hashes a value as the audit log does, so an operator holding a suspect
/// value (a leaked token, say) can find it in the audit log without the
/// log ever holding it in clear. The value is not recorded anywhere.
#[utoipa::path(post, path = "/v1/sys/audit/hash", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))), request_body = AuditHashBody,
    responses((status = 200, body = AuditHash), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn audit_hash(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<AuditHashBody>,
) -> Json<AuditHash> {
    Json(AuditHash {
        hash: shared.audit.hmac(&body.input),
    })
}
