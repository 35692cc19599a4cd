//! `/v1/sys/*`: lifecycle, seal, init, unseal, key rotation, reload and
//! the audit log's HMAC.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, MaybeJson, Whole};
use crate::lifecycle::LifecycleView;
use crate::shared::Shared;
use keel_raft::seal::{SealKind, SealState};

/// The seal, as `/v1/sys/seal-status` and the seal routes answer it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SealStatus {
    /// Whether this node is sealed: no keys in memory, or Raft not (yet)
    /// running again; a sealed node serves no domain request.
    pub sealed: bool,
    /// Whether the cluster's seal was initialized (key shares made, or an
    /// auto-unseal key file adopted).
    pub initialized: bool,
    /// `shares` or `key_file`, once initialized.
    #[schema(value_type = Option<String>)]
    pub kind: Option<&'static str>,
    /// Key shares needed to unseal (0 with a key file).
    pub threshold: u8,
    /// Key shares made at init (0 with a key file).
    pub shares: u8,
    /// Valid, distinct shares given so far towards the next unseal.
    pub progress: u8,
}

impl From<SealState> for SealStatus {
    fn from(s: SealState) -> Self {
        SealStatus {
            sealed: s.sealed,
            initialized: s.initialized,
            kind: s.kind.map(|k| match k {
                SealKind::Shares => "shares",
                SealKind::KeyFile => "key_file",
            }),
            threshold: s.threshold,
            shares: s.shares,
            progress: s.progress,
        }
    }
}

/// `POST /v1/sys/unseal`: one key share, or nothing to unseal with the
/// node's auto-unseal key file.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealBody {
    /// One key share (hex, as `init` printed it).
    pub share: Option<String>,
}

/// `POST /v1/sys/init`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitBody {
    /// How many key shares to make (1 to 16).
    #[schema(value_type = u8, minimum = 1, maximum = 16)]
    pub key_shares: Whole,
    /// How many of them unseal (1 to `key_shares`).
    #[schema(value_type = u8, minimum = 1, maximum = 16)]
    pub key_threshold: Whole,
}

/// The key shares, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct InitResult {
    /// The key shares (hex). keel keeps none of them: store each with a
    /// different person.
    pub keys: Vec<String>,
    /// Shares needed to unseal.
    pub key_threshold: u8,
}

/// A keyring rotation's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotateResult {
    /// The id of the data key new writes use.
    pub key_id: u32,
    /// Keys the keyring now holds (older ones still read older entries).
    pub keys: usize,
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

/// Whether this node is sealed, and the unseal progress (no token needed).
#[utoipa::path(get, path = "/v1/sys/seal-status", tag = "sys", responses((status = 200, body = SealStatus)))]
pub async fn seal_status(State(shared): State<Arc<Shared>>) -> Json<SealStatus> {
    Json(shared.seal_state().into())
}

/// Seals this node: managers stopped and awaited, leadership handed away,
/// Raft stopped, then the keys dropped from memory.
#[utoipa::path(post, path = "/v1/sys/seal", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    responses((status = 200, body = SealStatus), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn seal(State(shared): State<Arc<Shared>>) -> Result<Json<SealStatus>, ApiError> {
    let control = shared.node_control()?;
    control.seal().await?;
    Ok(Json(shared.seal_state().into()))
}

/// Takes one key share (`{"share": ...}`), or unseals with the node's
/// auto-unseal key file (`{}` or no body). A wrong share is refused and
/// the progress kept.
#[utoipa::path(post, path = "/v1/sys/unseal", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))), request_body = UnsealBody,
    responses((status = 200, body = SealStatus), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unseal(
    State(shared): State<Arc<Shared>>,
    MaybeJson(body): MaybeJson<UnsealBody>,
) -> Result<Json<SealStatus>, ApiError> {
    let control = shared.node_control()?;
    let state = control.unseal(body.share).await?;
    Ok(Json(state.into()))
}

/// Initializes the cluster's seal with key shares, once per cluster; the
/// shares are in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/sys/init", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))), request_body = InitBody,
    responses((status = 200, body = InitResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn init(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<InitBody>,
) -> Result<Json<InitResult>, ApiError> {
    let count = |w: Whole, what: &str| {
        u8::try_from(w.0)
            .ok()
            .filter(|n| (1..=keel_raft::seal::shares::MAX_SHARES).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{what} must be between 1 and {}",
                    keel_raft::seal::shares::MAX_SHARES
                ))
            })
    };
    let shares = count(body.key_shares, "key_shares")?;
    let threshold = count(body.key_threshold, "key_threshold")?;
    let control = shared.node_control()?;
    let keys = control.init(shares, threshold).await?;
    Ok(Json(InitResult {
        keys,
        key_threshold: threshold,
    }))
}

/// Adds a data key to this node's keyring: new log entries use it, older
/// ones stay readable, and the next snapshot drops the need for old keys.
#[utoipa::path(post, path = "/v1/sys/rotate-key", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))),
    responses((status = 200, body = RotateResult), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rotate_key(State(shared): State<Arc<Shared>>) -> Result<Json<RotateResult>, ApiError> {
    let control = shared.node_control()?;
    let (key_id, keys) = control.rotate_key().await?;
    Ok(Json(RotateResult { key_id, keys }))
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

/// `POST /v1/sys/join-token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenBody {
    /// How long the token may be used: seconds or `"1h"`, `"30m"`...
    /// (at most 7 days).
    #[schema(value_type = String, example = "1h")]
    pub ttl: crate::extract::DurationInput,
}

/// A join token: good for one node certificate, once, until it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinTokenResult {
    /// Give it to the joining node (`--join-token`); it carries the
    /// fingerprint of the peer CA it pins, and is shown only here.
    pub token: String,
    /// SHA-256 of the peer CA certificate the joining node will accept.
    pub ca_fingerprint: String,
    /// When the token stops working.
    pub expires_at: String,
}

/// Longest join token life.
pub const MAX_JOIN_TOKEN_TTL_MS: u64 = 7 * 86_400_000;

/// Makes a join token: a new node that presents it gets a node
/// certificate from the cluster's peer CA, once, before the token expires.
#[utoipa::path(post, path = "/v1/sys/join-token", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))), request_body = JoinTokenBody,
    responses((status = 200, body = JoinTokenResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn join_token(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<JoinTokenBody>,
) -> Result<Json<JoinTokenResult>, ApiError> {
    let ttl_ms = body.ttl.0;
    if ttl_ms == 0 || ttl_ms > MAX_JOIN_TOKEN_TTL_MS {
        return Err(ApiError::BadRequest(
            "ttl must be between 1 second and 7 days".into(),
        ));
    }
    let hooks = peer_hooks(&shared)?;
    shared.domain_cp()?;
    let (token, ca_fingerprint, expires_at) = hooks.join_token(ttl_ms).await?;
    Ok(Json(JoinTokenResult {
        token,
        ca_fingerprint,
        expires_at: keel_raft::clock::to_rfc3339(expires_at),
    }))
}

/// `GET /v1/sys/peer-ca`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeerCas {
    /// The trusted peer CAs, the signer first.
    pub cas: Vec<crate::enrol::PeerCaInfo>,
}

/// `POST /v1/sys/peer-ca/rotate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotatePeerCaBody {
    /// `add`, then `activate`, then `drop`.
    pub step: crate::enrol::RotationStep,
}

fn peer_hooks(shared: &Shared) -> Result<Arc<dyn crate::enrol::PeerTrustHooks>, ApiError> {
    shared.peer_trust().ok_or_else(|| ApiError::NotFound {
        code: "not_found",
        message: "this node does not run keel's peer CA (mutual TLS is off: --dev, --peer-auth secret or --tls-* files)"
            .into(),
    })
}

/// The peer CAs nodes trust each other's certificates from (never a key).
#[utoipa::path(get, path = "/v1/sys/peer-ca", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysRead))),
    responses((status = 200, body = PeerCas), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn peer_ca(State(shared): State<Arc<Shared>>) -> Result<Json<PeerCas>, ApiError> {
    let hooks = peer_hooks(&shared)?;
    shared.domain_cp()?;
    Ok(Json(PeerCas {
        cas: hooks.peer_cas()?,
    }))
}

/// One step of a peer-CA rotation: `add` a new CA (trusted beside the
/// old), `activate` it (nodes renew from it at once), then `drop` the old
/// once every member presents a certificate from the new one.
#[utoipa::path(post, path = "/v1/sys/peer-ca/rotate", tag = "sys", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::SysWrite))), request_body = RotatePeerCaBody,
    responses((status = 200, body = PeerCas), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rotate_peer_ca(
    State(shared): State<Arc<Shared>>,
    ApiJson(body): ApiJson<RotatePeerCaBody>,
) -> Result<Json<PeerCas>, ApiError> {
    let hooks = peer_hooks(&shared)?;
    shared.domain_cp()?;
    Ok(Json(PeerCas {
        cas: hooks.rotate(body.step).await?,
    }))
}
