//! `/v1/auth/tokens`: create, list, look up, renew and revoke API tokens.
//!
//! A token's secret is returned once, by the create that made it; every
//! other answer shows only its public accessor. An admin manages tokens of
//! any role, an operator only readers' and tenants'. Any token may look
//! itself up and renew itself (`/v1/auth/tokens/self`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use keel_raft::Consistency;
use keel_raft::clock::{Millis, to_rfc3339};
use keel_raft::command::{Command, Request};
use keel_raft::domain::lease;
use keel_raft::domain::list::paginate;
use keel_raft::domain::token::{self, Role, Token};
use keel_raft::{Caller, Written};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::authz::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, DurationInput, IdempotencyKey, MaybeJson, page_limit};
use crate::shared::Shared;
use crate::views::ListJson;
use keel_raft::domain::text;

/// `POST /v1/auth/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// `admin`, `operator`, `reader` or `tenant`.
    pub role: String,
    /// The account a tenant token acts for (tenant tokens only).
    pub account: Option<String>,
    /// Time to live: seconds or `"90s"`, `"24h"`...
    #[schema(value_type = String, example = "24h")]
    pub ttl: DurationInput,
    /// Bound on its whole life (defaults to the ttl); renewals stop there.
    #[schema(value_type = Option<String>, example = "720h")]
    pub max_ttl: Option<DurationInput>,
    /// Display name.
    pub name: Option<String>,
}

/// `POST /v1/auth/tokens/self/renew`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewTokenBody {
    /// Extension from now; defaults to the token's ttl.
    #[schema(value_type = Option<String>, example = "1h")]
    pub increment: Option<DurationInput>,
}

/// A token as the API shows it (never its secret but once, at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenJson {
    /// Public id: 16 hex digits (`root` for the admin token file).
    pub accessor: String,
    /// Its role.
    pub role: String,
    /// The account of a tenant token.
    pub account: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Time to live of each renewal, in seconds.
    pub ttl: Option<u64>,
    /// When it was created (RFC 3339).
    pub issued_at: Option<String>,
    /// When it stops working unless renewed.
    pub expires_at: Option<String>,
    /// When it stops working whatever happens.
    pub hard_expires_at: Option<String>,
    /// The secret: present only in the answer to the create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl TokenJson {
    fn new(t: &Token) -> Self {
        let time = |ms: Millis| Some(to_rfc3339(ms));
        TokenJson {
            accessor: t.accessor.clone(),
            role: t.role.as_str().to_string(),
            account: t.account.clone(),
            name: t.name.clone(),
            created_by: Some(t.created_by.clone()),
            ttl: Some(t.ttl_ms / 1000),
            issued_at: time(t.issued_at),
            expires_at: time(t.expires_at),
            hard_expires_at: time(t.hard_expires_at),
            secret: None,
        }
    }

    fn root() -> Self {
        TokenJson {
            accessor: "root".into(),
            role: Role::Admin.as_str().into(),
            account: None,
            name: Some("admin token file".into()),
            created_by: None,
            ttl: None,
            issued_at: None,
            expires_at: None,
            hard_expires_at: None,
            secret: None,
        }
    }
}

/// Paging of the token list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenListQuery {
    /// Page size (default 100, max 1000).
    pub limit: Option<usize>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Checks an accessor: exactly 16 hex digits.
fn parse_accessor(s: &str) -> Result<String, ApiError> {
    lease::parse_id(s)
        .map(|_| s.to_ascii_lowercase())
        .map_err(|_| ApiError::BadRequest(format!("`{s}` is not a token accessor (16 hex digits)")))
}

fn may_manage(who: &Principal, role: Role) -> Result<(), ApiError> {
    if who.role.may_manage(role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "a {} token may not manage {} tokens",
            who.role.as_str(),
            role.as_str()
        )))
    }
}

/// Creates a token; its secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/auth/tokens", tag = "auth", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::TokensManage))), request_body = CreateTokenBody,
    responses((status = 201, body = TokenJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<(StatusCode, Json<TokenJson>), ApiError> {
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown role `{}` (admin, operator, reader or tenant)",
            body.role
        ))
    })?;
    lease::validate_ttl("ttl", body.ttl.0)?;
    if let Some(max) = body.max_ttl {
        lease::validate_ttl("max_ttl", max.0)?;
    }
    text::maybe_account_ref("account", body.account.as_deref())?;
    if let Some(name) = &body.name {
        text::printable("name", name, token::MAX_NAME_LEN)?;
    }
    may_manage(&who, role)?;
    let cp = shared.domain_cp()?;
    let request = Request::CreateToken {
        role,
        account: body.account,
        name: body.name,
        ttl_ms: body.ttl.0,
        max_ttl_ms: body.max_ttl.map(|d| d.0),
        created_by: who.accessor.clone(),
    };
    let written: Written<Token> = cp.run(request, &Caller::unscoped(key)).await?;
    let mut json = TokenJson::new(&written.value);
    json.secret = written.secret.map(|s| s.expose().to_string());
    Ok((StatusCode::CREATED, Json(json)))
}

/// Lists tokens (accessors, never secrets).
#[utoipa::path(get, path = "/v1/auth/tokens", tag = "auth", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::TokensManage))), params(TokenListQuery),
    responses((status = 200, body = ListJson<TokenJson>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(shared): State<Arc<Shared>>,
    ApiQuery(q): ApiQuery<TokenListQuery>,
) -> Result<Json<ListJson<TokenJson>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(parse_accessor).transpose()?;
    let cp = shared.domain_cp()?;
    let page = cp
        .read(Consistency::Linearizable, |s, now| {
            let items = s.list_tokens(after.as_deref(), now).map(TokenJson::new);
            paginate(items, limit, |t| t.accessor.clone())
        })
        .await?;
    Ok(Json(ListJson {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A live token, read linearizably (a token created a moment ago through
/// another node is found).
async fn live_token(shared: &Shared, accessor: &str) -> Result<Token, ApiError> {
    shared
        .domain_cp()?
        .read(Consistency::Linearizable, |s, now| {
            s.tokens.get(accessor).filter(|t| t.live_at(now)).cloned()
        })
        .await?
        .ok_or_else(|| ApiError::NotFound {
            code: "token_not_found",
            message: format!("token {accessor} not found"),
        })
}

/// Looks a token up by its accessor.
#[utoipa::path(get, path = "/v1/auth/tokens/{accessor}", tag = "auth", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::TokensManage))),
    params(("accessor" = String, Path, description = "16 hex digits")),
    responses((status = 200, body = TokenJson), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path(accessor): Path<String>,
) -> Result<Json<TokenJson>, ApiError> {
    let accessor = parse_accessor(&accessor)?;
    Ok(Json(TokenJson::new(&live_token(&shared, &accessor).await?)))
}

/// Revokes a token: refused on every node as soon as the revoke applies.
#[utoipa::path(delete, path = "/v1/auth/tokens/{accessor}", tag = "auth", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::TokensManage))),
    params(("accessor" = String, Path, description = "16 hex digits")),
    responses((status = 204, description = "revoked"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn revoke(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(accessor): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let accessor = parse_accessor(&accessor)?;
    let target = live_token(&shared, &accessor).await?;
    may_manage(&who, target.role)?;
    let cp = shared.domain_cp()?;
    let command = Command::RevokeToken { accessor };
    let _: Written<Token> = cp.apply(command, &Caller::unscoped(key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The token in use.
#[utoipa::path(post, path = "/v1/auth/tokens/self", tag = "auth", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::TokensSelf))),
    responses((status = 200, body = TokenJson), (status = 503, body = ErrorBody)))]
pub async fn lookup_self(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> Result<Json<TokenJson>, ApiError> {
    if who.accessor == "root" {
        return Ok(Json(TokenJson::root()));
    }
    Ok(Json(TokenJson::new(
        &live_token(&shared, &who.accessor).await?,
    )))
}

/// Renews the token in use, up to its max TTL.
#[utoipa::path(post, path = "/v1/auth/tokens/self/renew", tag = "auth", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::TokensSelf))), request_body = RenewTokenBody,
    responses((status = 200, body = TokenJson), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn renew_self(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    IdempotencyKey(key): IdempotencyKey,
    MaybeJson(body): MaybeJson<RenewTokenBody>,
) -> Result<Json<TokenJson>, ApiError> {
    if let Some(inc) = body.increment {
        lease::validate_ttl("increment", inc.0)?;
    }
    if who.accessor == "root" {
        // A token from the admin token file never expires: nothing to do.
        return Ok(Json(TokenJson::root()));
    }
    let cp = shared.domain_cp()?;
    let command = Command::RenewToken {
        accessor: who.accessor.clone(),
        increment_ms: body.increment.map(|d| d.0),
    };
    let token: Token = cp.apply(command, &Caller::unscoped(key)).await?.value;
    Ok(Json(TokenJson::new(&token)))
}
