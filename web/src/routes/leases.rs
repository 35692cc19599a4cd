//! `/v1/leases`: grant, look up, list, renew, revoke, revoke by prefix.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use keel_raft::clock::now_ms;
use keel_raft::domain::lease::{self, LeaseState, Leases};
use keel_raft::domain::lease_batch::GrantRequest;
use keel_raft::domain::list::paginate;
use keel_raft::domain::query::LeaseFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::authz::{Principal, scoped_account};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiJson, ApiQuery, DurationInput, IdempotencyKey, MaybeJson, ReadQuery, consistency,
    page_limit, state_filter,
};
use crate::shared::Shared;
use crate::views::{LeaseJson, ListJson};
use keel_raft::domain::text;

/// `POST /v1/leases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// Time to live: seconds or `"90s"`, `"5m"`...
    #[schema(value_type = String, example = "30s")]
    pub ttl: DurationInput,
    /// Bound on the whole life of the lease (defaults to the node's lease
    /// max TTL). A `ttl` above it is capped to it.
    #[schema(value_type = Option<String>, example = "1h")]
    pub max_ttl: Option<DurationInput>,
    /// Name, for prefix listing and revocation.
    pub name: Option<String>,
    /// Owning account.
    pub account: Option<String>,
    /// String metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `POST /v1/leases/{id}/renew`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = LeaseRenewBody)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// Extension from now; defaults to the lease's ttl.
    #[schema(value_type = Option<String>, example = "30s")]
    pub increment: Option<DurationInput>,
}

/// `POST /v1/leases/revoke-prefix`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokePrefixBody {
    /// Name prefix, not empty.
    pub prefix: String,
}

/// `{"revoked": n}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// How many were revoked.
    pub revoked: u64,
}

/// Filters and paging of the lease list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Name prefix.
    pub prefix: Option<String>,
    /// Owning account.
    pub account: Option<String>,
    /// `active`, `suspended` or `expired`.
    pub state: Option<String>,
    /// Page size (default 100, max 1000).
    pub limit: Option<usize>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// `linearizable` (default), `leader` or `local`.
    pub consistency: Option<String>,
}

/// Checks a grant body and turns it into what the leader stamps. A
/// tenant's grant names its account when the body names none.
pub(crate) fn grant_request(body: GrantBody, who: &Principal) -> Result<GrantRequest, ApiError> {
    Ok(GrantRequest::new(
        body.ttl.0,
        body.max_ttl.map(|d| d.0),
        body.name,
        body.account.or_else(|| who.scope().map(str::to_string)),
        body.metadata,
    )?)
}

/// Grants a lease.
#[utoipa::path(post, path = "/v1/leases", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesWrite))), request_body = GrantBody,
    responses((status = 201, body = LeaseJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn grant(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<LeaseJson>), ApiError> {
    let grant = grant_request(body, &who)?;
    let cp = shared.domain_cp()?;
    let view = cp.grant_lease(grant, &who.caller(key)).await?;
    Ok((
        StatusCode::CREATED,
        Json(LeaseJson::from_view(&view, now_ms())),
    ))
}

/// Looks a lease up.
#[utoipa::path(get, path = "/v1/leases/{id}", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesRead))),
    params(("id" = String, Path, description = "16 hex digits"), ("consistency" = Option<String>, Query, description = "linearizable, leader or local")),
    responses((status = 200, body = LeaseJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<LeaseJson>, ApiError> {
    let id = lease::parse_id(&id)?;
    let cp = shared.domain_cp()?;
    let found = cp
        .read(q.consistency()?, |s, now| {
            s.leases.get(id).map(|l| {
                (
                    who.may_see(l.account.as_deref()),
                    LeaseJson::new(l, Leases::state_of(l, now, &s.accounts), now),
                )
            })
        })
        .await?;
    match found {
        Some((true, lease)) => Ok(Json(lease)),
        Some((false, _)) => Err(ApiError::Forbidden(
            "a tenant token may not read another account's lease".into(),
        )),
        None => Err(ApiError::NotFound {
            code: "lease_not_found",
            message: format!("lease {} not found", lease::format_id(id)),
        }),
    }
}

/// Lists leases, filtered.
#[utoipa::path(get, path = "/v1/leases", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesRead))), params(ListQuery),
    responses((status = 200, body = ListJson<LeaseJson>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(mut q): ApiQuery<ListQuery>,
) -> Result<Json<ListJson<LeaseJson>>, ApiError> {
    let consistency = consistency(q.consistency.as_deref())?;
    let limit = page_limit(q.limit)?;
    let state_filter = state_filter("lease", q.state.as_deref(), LeaseState::parse)?;
    if let Some(prefix) = &q.prefix {
        text::lease_name("prefix", prefix)?;
    }
    text::maybe_account_ref("account", q.account.as_deref())?;
    q.account = scoped_account(&who, q.account)?;
    let after = q.cursor.as_deref().map(lease::parse_id).transpose()?;
    let filter = LeaseFilter {
        prefix: q.prefix,
        account: q.account,
        state: state_filter,
    };
    let cp = shared.domain_cp()?;
    let page = cp
        .read(consistency, |s, now| {
            let items = s
                .list_leases(&filter, after, now)
                .map(|(l, st)| LeaseJson::new(l, st, now));
            paginate(items, limit, |l| l.id.clone())
        })
        .await?;
    Ok(Json(ListJson {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Renews a lease: `expires_at = max(expires_at, min(now + increment, hard_expires_at))`
/// (a renewal never shortens a lease).
#[utoipa::path(post, path = "/v1/leases/{id}/renew", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesWrite))), request_body = RenewBody,
    params(("id" = String, Path, description = "16 hex digits")),
    responses((status = 200, body = LeaseJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn renew(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    MaybeJson(body): MaybeJson<RenewBody>,
) -> Result<Json<LeaseJson>, ApiError> {
    let id = lease::parse_id(&id)?;
    if let Some(inc) = body.increment {
        lease::validate_ttl("increment", inc.0)?;
    }
    let cp = shared.domain_cp()?;
    let increment_ms = body.increment.map(|d| d.0);
    let view = cp.renew_lease(id, increment_ms, &who.caller(key)).await?;
    Ok(Json(LeaseJson::from_view(&view, now_ms())))
}

/// Revokes a lease.
#[utoipa::path(delete, path = "/v1/leases/{id}", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesWrite))),
    params(("id" = String, Path, description = "16 hex digits")),
    responses((status = 204, description = "revoked"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn revoke(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let id = lease::parse_id(&id)?;
    let cp = shared.domain_cp()?;
    cp.revoke_lease(id, &who.caller(key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every lease whose name starts with a prefix.
#[utoipa::path(post, path = "/v1/leases/revoke-prefix", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesWrite))), request_body = RevokePrefixBody,
    responses((status = 200, body = Revoked), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn revoke_prefix(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<RevokePrefixBody>,
) -> Result<Json<Revoked>, ApiError> {
    text::lease_name("prefix", &body.prefix)?;
    let cp = shared.domain_cp()?;
    let revoked = cp
        .revoke_lease_prefix(body.prefix, &who.caller(key))
        .await?;
    Ok(Json(Revoked { revoked }))
}
