//! Middleware of the API listener: a request id and tracing span on every
//! request (so every log line of a request carries its id), HTTP metrics,
//! admin authentication of `/v1/*`, and refusal of new work while draining.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::auth::bearer;
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
pub async fn observe(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
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

/// Requires a valid admin bearer token.
pub async fn require_admin(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if !shared.auth.admin_ok(req.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    let token = bearer(req.headers()).unwrap_or_default();
    if let Err(wait) = shared.rate_limits.check(token) {
        return ApiError::RateLimited(wait).into_response();
    }
    next.run(req).await
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

/// Requires the cluster secret on peer routes.
pub async fn require_peer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if !shared.auth.peer_ok(req.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(req).await
}
