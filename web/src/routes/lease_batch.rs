//! `POST /v1/leases/batch`: many grants, renewals and revokes in one request
//! and one log entry, with a result per item.
//!
//! A malformed item (a bad id, a ttl out of range, a list over the limit)
//! refuses the whole request with 400 and nothing is written. Items that
//! are well formed apply one by one, grants, then renewals, then revokes;
//! one that the state refuses (a lease not found, an account at its limit)
//! gets its own 404 or 409 in the results and the others still apply: a
//! batch is not all-or-nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use keel_raft::DomainError;
use keel_raft::clock::now_ms;
use keel_raft::domain::lease::{self, LeaseId, LeaseView};
use keel_raft::domain::lease_batch::{BatchRenewal, BatchResults, GrantRequest, LeaseBatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::leases::{GrantBody, grant_request};
use crate::authz::Principal;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::extract::{ApiJson, DurationInput, IdempotencyKey};
use crate::shared::Shared;
use crate::views::LeaseJson;

/// `POST /v1/leases/batch`. Every list is optional; each holds at most
/// 1000 items.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// Leases to grant, as `POST /v1/leases` takes them.
    #[serde(default)]
    pub grant: Vec<GrantBody>,
    /// Leases to renew.
    #[serde(default)]
    pub renew: Vec<BatchRenewBody>,
    /// Ids of leases to revoke.
    #[serde(default)]
    pub revoke: Vec<String>,
}

/// One renewal of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRenewBody {
    /// The lease: 16 hex digits.
    pub id: String,
    /// Extension from now; defaults to the lease's ttl.
    #[schema(value_type = Option<String>, example = "30s")]
    pub increment: Option<DurationInput>,
}

/// The result of one item: its status as the single request would have
/// answered it, and the lease or the error.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemJson {
    /// 201 for a grant, 200 for a renewal, 204 for a revoke; 404 or 409
    /// when the item was refused.
    pub status: u16,
    /// The lease, for a grant or renewal that took effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseJson>,
    /// Why the item was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Per-item results, in the order of the request's lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchJson {
    /// One per grant.
    pub grant: Vec<BatchItemJson>,
    /// One per renewal.
    pub renew: Vec<BatchItemJson>,
    /// One per revoke.
    pub revoke: Vec<BatchItemJson>,
    /// How many items took effect.
    pub succeeded: usize,
    /// How many were refused.
    pub failed: usize,
}

/// Names the item a validation error is about: `grant[3]: ttl must ...`.
fn at_item(list: &str, index: usize, e: impl Into<ApiError>) -> ApiError {
    match e.into() {
        ApiError::BadRequest(m) => ApiError::BadRequest(format!("{list}[{index}]: {m}")),
        other => other,
    }
}

fn refused(e: DomainError) -> BatchItemJson {
    let e = ApiError::from(e);
    let (status, code) = e.status_and_code();
    BatchItemJson {
        status: status.as_u16(),
        lease: None,
        error: Some(ErrorDetail {
            code: code.to_string(),
            message: e.to_string(),
        }),
    }
}

fn lease_item(status: u16, r: Result<LeaseView, DomainError>, now: u64) -> BatchItemJson {
    match r {
        Ok(view) => BatchItemJson {
            status,
            lease: Some(LeaseJson::from_view(&view, now)),
            error: None,
        },
        Err(e) => refused(e),
    }
}

/// What a batch asks for: grants, renewals and revocations.
type BatchItems = (Vec<GrantRequest>, Vec<BatchRenewal>, Vec<LeaseId>);

/// Checks every item and turns the body into what the leader stamps.
fn batch_items(body: BatchBody, who: &Principal) -> Result<BatchItems, ApiError> {
    LeaseBatch::validate_sizes(body.grant.len(), body.renew.len(), body.revoke.len())?;
    let grant = body
        .grant
        .into_iter()
        .enumerate()
        .map(|(i, g)| grant_request(g, who).map_err(|e| at_item("grant", i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let renew = body
        .renew
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let id = lease::parse_id(&r.id).map_err(|e| at_item("renew", i, e))?;
            if let Some(inc) = r.increment {
                lease::validate_ttl("increment", inc.0).map_err(|e| at_item("renew", i, e))?;
            }
            Ok(BatchRenewal {
                id,
                increment_ms: r.increment.map(|d| d.0),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let revoke = body
        .revoke
        .iter()
        .enumerate()
        .map(|(i, id)| lease::parse_id(id).map_err(|e| at_item("revoke", i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((grant, renew, revoke))
}

fn batch_json(results: BatchResults) -> BatchJson {
    let now = now_ms();
    let succeeded = results.succeeded();
    let grant: Vec<_> = results
        .grant
        .into_iter()
        .map(|r| lease_item(201, r, now))
        .collect();
    let renew: Vec<_> = results
        .renew
        .into_iter()
        .map(|r| lease_item(200, r, now))
        .collect();
    let revoke: Vec<_> = results
        .revoke
        .into_iter()
        .map(|r| match r {
            Ok(()) => BatchItemJson {
                status: 204,
                lease: None,
                error: None,
            },
            Err(e) => refused(e),
        })
        .collect();
    let failed = grant.len() + renew.len() + revoke.len() - succeeded;
    BatchJson {
        grant,
        renew,
        revoke,
        succeeded,
        failed,
    }
}

/// Grants, renews and revokes many leases in one log entry.
#[utoipa::path(post, path = "/v1/leases/batch", tag = "leases", security(("bearer" = [])),
    extensions(("x-keel-permission" = json!(crate::authz::Permission::LeasesWrite))), request_body = BatchBody,
    responses((status = 200, body = BatchJson), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn batch(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Json<BatchJson>, ApiError> {
    let empty = body.grant.is_empty() && body.renew.is_empty() && body.revoke.is_empty();
    let items = batch_items(body, &who)?;
    let cp = shared.domain_cp()?;
    if empty {
        // Nothing to write: an empty batch makes no log entry.
        return Ok(Json(batch_json(BatchResults::default())));
    }
    let (grant, renew, revoke) = items;
    let results = cp
        .lease_batch(grant, renew, revoke, &who.caller(key))
        .await?;
    Ok(Json(batch_json(results)))
}
