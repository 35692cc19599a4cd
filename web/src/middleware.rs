//! Middleware of the API listener: a request id and tracing span on every
//! request (so every log line of a request carries its id), HTTP metrics,
//! authentication and authorization of `/v1/*`, and refusal of new work while draining.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use keel_raft::clock::{Millis, now_ms};
use keel_raft::domain::State as DomainState;
use keel_raft::stamp::{looks_like_token, token_digest};
use keel_raft::{Consistency, trace_writes};

use crate::audit::entry::Who;
use crate::audit::trail::Trail;
use crate::auth::bearer;
use crate::authz::{self, Principal};
use crate::error::ApiError;
use crate::shared::Shared;

/// Header carrying the request id, accepted from the client if sane.
pub const REQUEST_ID: &str = "x-request-id";

fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Wraps every request in a span with its id, logs its outcome and records
/// its metrics. Headers (and so tokens) are never logged.
pub async fn observe(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    shared
        .metrics
        .observe_http(&method, &route, status, elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request served"
            );
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The id of the request being served (set by [`observe`]).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Authenticates `/v1/*` requests and authorizes them (default deny): a
/// token from the admin token file acts as `admin`; any other must be a
/// live replicated token (401 otherwise), whose role must hold the route's
/// permission (403 otherwise), and a tenant's account must be active. The
/// [`Principal`] goes into the request's extensions for the handlers.
///
/// Every request that gets here is audited: a refusal by one line, an
/// admitted request by a line before it runs and one with its answer.
pub async fn authenticate(
    State(shared): State<Arc<Shared>>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let params = params
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut trail = Trail::begin(
        &shared.audit,
        request_id,
        req.method().as_str(),
        &route,
        params,
    );
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let principal = match admit(&shared, &method, &headers, &route, &mut trail).await {
        Ok(principal) => principal,
        Err(refusal) => return trail.answer(refusal.into_response(), None),
    };
    if let Err(e) = trail.admit() {
        return e.into_response();
    }
    req.extensions_mut().insert(principal);
    let (response, log_index) = trace_writes(next.run(req)).await;
    trail.answer(response, log_index)
}

/// Who is asking and whether they may: the principal, or the refusal.
async fn admit(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    route: &str,
    trail: &mut Trail<'_>,
) -> Result<Principal, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::Unauthorized);
    };
    let principal = if shared.auth.admin_ok(headers) {
        Principal::root()
    } else {
        match resolve(shared, token).await {
            Ok((p, true)) => p,
            Ok((p, false)) => {
                trail.identify(Who::of(&p));
                return Err(ApiError::Forbidden(format!(
                    "the account `{}` of this token is not active",
                    p.account.as_deref().unwrap_or_default()
                )));
            }
            Err(e) => {
                trail.identify(match &e {
                    // Unknown: only its HMAC is written down.
                    ApiError::Unauthorized => Who {
                        token_hmac: Some(shared.audit.hmac(token)),
                        ..Who::default()
                    },
                    _ => Who::default(),
                });
                return Err(e);
            }
        }
    };
    trail.identify(Who::of(&principal));
    if let Err(wait) = shared.rate_limits.check(token) {
        return Err(ApiError::RateLimited(wait));
    }
    match authz::required(method, route) {
        Some(p) if authz::allows(principal.role, p) => Ok(principal),
        Some(p) => Err(ApiError::Forbidden(format!(
            "a {} token lacks the permission {} that {} {route} needs",
            principal.role.as_str(),
            p.as_str(),
            method
        ))),
        None => Err(ApiError::Forbidden(format!(
            "{method} {route} declares no permission, so no token may use it"
        ))),
    }
}

/// The replicated token behind `secret`, live now, and whether its
/// tenant's account is active. A token this node does not know (perhaps created a
/// moment ago and not applied here yet) is looked up again after a
/// linearizable barrier, so a new token works on every node at once; only
/// unknown tokens of keel's shape pay that round trip (anything else is 401
/// at once, whatever the cluster's health).
async fn resolve(shared: &Shared, secret: &str) -> Result<(Principal, bool), ApiError> {
    if !looks_like_token(secret) {
        return Err(ApiError::Unauthorized);
    }
    let cp = shared.cp()?;
    let digest = token_digest(secret);
    let lookup = |s: &DomainState, now: Millis| {
        s.tokens
            .by_secret(&digest)
            .filter(|t| t.live_at(now))
            .map(|t| {
                let active = s.owner_active(t.account.as_deref(), now);
                (
                    Principal {
                        accessor: t.accessor.clone(),
                        role: t.role,
                        account: t.account.clone(),
                    },
                    active,
                )
            })
    };
    let found = match cp.local(|s| lookup(s, now_ms())) {
        Some(found) => Some(found),
        None => cp.read(Consistency::Linearizable, lookup).await?,
    };
    found.ok_or(ApiError::Unauthorized)
}

/// Refuses new API requests once the node is draining.
pub async fn refuse_when_draining(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if shared.draining() {
        return ApiError::ShuttingDown.into_response();
    }
    next.run(req).await
}
