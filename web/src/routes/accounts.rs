//! `/v1/accounts`: tenants, their expiry, limits and operator switch.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use keel_raft::Caller;
use keel_raft::clock::{Millis, now_ms, parse_rfc3339};
use keel_raft::command::Command;
use keel_raft::domain::account::{self, Account, AccountState, LimitsPatch, Patch};
use keel_raft::domain::list::paginate;
use keel_raft::domain::query::AccountFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::authz::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiJson, ApiQuery, IdempotencyKey, ReadQuery, Whole, consistency, double_option, object,
    page_limit, state_filter,
};
use crate::shared::Shared;
use crate::views::{AccountJson, ListJson};

/// Limits in a create request: absent or null is unlimited.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLimits {
    /// Most leases at once.
    #[schema(value_type = Option<u64>)]
    pub max_leases: Option<Whole>,
    /// Most live certificates at once.
    #[schema(value_type = Option<u64>)]
    pub max_certificates: Option<Whole>,
}

/// `POST /v1/accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// `[a-z0-9][a-z0-9._-]{0,62}`.
    pub name: String,
    /// RFC 3339 expiry.
    pub expires_at: Option<String>,
    /// Limits.
    #[serde(default, deserialize_with = "object")]
    pub limits: CreateLimits,
}

/// Limits in a PATCH: absent keeps, null removes, a number sets.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchLimits {
    /// Most leases at once.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub max_leases: Option<Option<Whole>>,
    /// Most live certificates at once.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub max_certificates: Option<Option<Whole>>,
}

/// `PATCH /v1/accounts/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// New expiry (RFC 3339), or null for none. Moving it into the future
    /// re-activates an expired account and everything it owns, at once.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    /// Limits to change.
    #[serde(default, deserialize_with = "object")]
    pub limits: PatchLimits,
}

/// `{"deleted": name, "revoked": n}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// The deleted account.
    pub deleted: String,
    /// Leases and certificates revoked with it.
    pub revoked: u64,
}

/// Paging of the account list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `expired` or `disabled`.
    pub state: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// `linearizable` (default), `leader` or `local`.
    pub consistency: Option<String>,
}

/// Absent keeps, `null` clears, a value sets.
fn patch(field: Option<Option<Whole>>) -> Patch<u64> {
    match field {
        None => Patch::Keep,
        Some(None) => Patch::Clear,
        Some(Some(v)) => Patch::Set(v.0),
    }
}

fn parse_time(field: &str, s: &str) -> Result<Millis, ApiError> {
    parse_rfc3339(s).map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    account::validate_name(name).map_err(ApiError::from)
}

async fn write_account(
    shared: &Shared,
    command: Command,
    key: Option<String>,
) -> Result<Json<AccountJson>, ApiError> {
    let cp = shared.domain_cp()?;
    let account: Account = cp.apply(command, &Caller::unscoped(key)).await?.value;
    // Certificate usage is derived from the PKI table.
    Ok(Json(
        cp.local(|s| AccountJson::new(&account, Some(s), now_ms())),
    ))
}

/// Creates an account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsWrite))), request_body = CreateBody,
    responses((status = 201, body = AccountJson), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create(
    State(shared): State<Arc<Shared>>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<AccountJson>), ApiError> {
    check_name(&body.name)?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|s| parse_time("expires_at", s))
        .transpose()?;
    let command = Command::CreateAccount {
        name: body.name,
        expires_at,
        limits: LimitsPatch {
            max_leases: Patch::from_option(body.limits.max_leases.map(|w| w.0)),
            max_certificates: Patch::from_option(body.limits.max_certificates.map(|w| w.0)),
        },
    };
    let json = write_account(&shared, command, key).await?;
    Ok((StatusCode::CREATED, json))
}

/// Looks an account up.
#[utoipa::path(get, path = "/v1/accounts/{name}", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsRead))),
    params(("name" = String, Path, description = "account name"), ("consistency" = Option<String>, Query, description = "linearizable, leader or local")),
    responses((status = 200, body = AccountJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<AccountJson>, ApiError> {
    check_name(&name)?;
    if !who.may_see(Some(&name)) {
        return Err(ApiError::Forbidden(format!(
            "a tenant token may read only its own account, not `{name}`"
        )));
    }
    let cp = shared.domain_cp()?;
    let found = cp
        .read(q.consistency()?, |s, now| {
            s.accounts
                .find(&name)
                .map(|a| AccountJson::new(a, Some(s), now))
        })
        .await?;
    found.map(Json).ok_or_else(|| ApiError::NotFound {
        code: "account_not_found",
        message: format!("account `{name}` not found"),
    })
}

/// Lists accounts.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsRead))), params(ListQuery),
    responses((status = 200, body = ListJson<AccountJson>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListJson<AccountJson>>, ApiError> {
    let consistency = consistency(q.consistency.as_deref())?;
    let limit = page_limit(q.limit)?;
    let state_filter = state_filter("account", q.state.as_deref(), AccountState::parse)?;
    if let Some(cursor) = &q.cursor {
        check_name(cursor)?;
    }
    let filter = AccountFilter {
        only: who.scope().map(str::to_string),
        state: state_filter,
    };
    let cp = shared.domain_cp()?;
    let page = cp
        .read(consistency, |s, now| {
            let items = s
                .list_accounts(&filter, q.cursor.as_deref(), now)
                .map(|a| AccountJson::new(a, Some(s), now));
            paginate(items, limit, |a| a.name.clone())
        })
        .await?;
    Ok(Json(ListJson {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Changes an account's expiry and limits.
#[utoipa::path(patch, path = "/v1/accounts/{name}", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsWrite))), request_body = PatchBody,
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = AccountJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<AccountJson>, ApiError> {
    check_name(&name)?;
    let expires_at = match body.expires_at {
        None => Patch::Keep,
        Some(None) => Patch::Clear,
        Some(Some(s)) => Patch::Set(parse_time("expires_at", &s)?),
    };
    let command = Command::UpdateAccount {
        name,
        expires_at,
        limits: LimitsPatch {
            max_leases: patch(body.limits.max_leases),
            max_certificates: patch(body.limits.max_certificates),
        },
    };
    write_account(&shared, command, key).await
}

/// The operator switch behind `disable` and `enable`.
async fn flip_switch(
    shared: &Shared,
    name: String,
    disabled: bool,
    key: Option<String>,
) -> Result<Json<AccountJson>, ApiError> {
    check_name(&name)?;
    write_account(shared, Command::SetAccountDisabled { name, disabled }, key).await
}

/// Switches an account off: what it owns is suspended.
#[utoipa::path(post, path = "/v1/accounts/{name}/disable", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsWrite))),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = AccountJson), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn disable(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<AccountJson>, ApiError> {
    flip_switch(&shared, name, true, key).await
}

/// Switches an account back on: what it owns is active again at once.
#[utoipa::path(post, path = "/v1/accounts/{name}/enable", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsWrite))),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = AccountJson), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn enable(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<AccountJson>, ApiError> {
    flip_switch(&shared, name, false, key).await
}

/// Revokes an account's leases and certificates, then deletes it.
#[utoipa::path(delete, path = "/v1/accounts/{name}", tag = "accounts", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::AccountsWrite))),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<Deleted>, ApiError> {
    check_name(&name)?;
    let cp = shared.domain_cp()?;
    let command = Command::DeleteAccount { name: name.clone() };
    let revoked: u64 = cp.apply(command, &Caller::unscoped(key)).await?.value;
    Ok(Json(Deleted {
        deleted: name,
        revoked,
    }))
}
