//! The API's error type and its one mapping to HTTP.
//!
//! Every error body is `{"error": {"code", "message"}}`. 4xx messages say
//! what was wrong with the request; 5xx bodies stay generic and the detail
//! goes to the log with the request id. Every 503 carries `Retry-After`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_raft::wire::PeerRefusal;
use keel_raft::{DomainError, Error};
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or out-of-bounds input.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The route exists but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A named object does not exist.
    #[error("{message}")]
    NotFound {
        /// `not_found`, `lease_not_found`, ...
        code: &'static str,
        /// What was missing.
        message: String,
    },
    /// The request conflicts with current state.
    #[error("{message}")]
    Conflict {
        /// `conflict`, `limit_exceeded`, `account_inactive`, ...
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The body is larger than the limit.
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The node is not yet (or no longer) able to serve this route.
    #[error("{0}")]
    NotReady(String),
    /// A Raft RPC arrived before Raft was installed on this node.
    #[error("raft has not started on this node yet")]
    RaftNotReady,
    /// No leader is available.
    #[error("{0}")]
    NoLeader(String),
    /// A write was sent but its fate is unknown; retry with the same
    /// `Idempotency-Key`.
    #[error("{0}; retry with the same Idempotency-Key")]
    OutcomeUnknown(String),
    /// The token sent more requests than its rate allows.
    #[error("too many requests for this token; retry in {}s", retry_after_secs(*.0))]
    RateLimited(std::time::Duration),
    /// The node is sealed.
    #[error("this node is sealed")]
    Sealed,
    /// The node is shutting down.
    #[error("this node is shutting down")]
    ShuttingDown,
    /// This node's clock is beyond the max offset from the cluster's: it
    /// serves no write and no read derived from its clock until corrected.
    #[error("this node's clock cannot be trusted ({0}); use another node or retry later")]
    ClockOffset(String),
    /// The audit log is required and cannot be written: the request was
    /// not served (or, for an answer, was served but cannot be recorded).
    #[error("{0}")]
    AuditUnavailable(String),
    /// Anything unexpected; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

/// The error code of an error response, kept in the response's
/// extensions for the audit log (so the body need not be parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// Whole seconds to wait, rounded up, at least 1 (`Retry-After` takes
/// whole seconds).
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// Status and code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, PeerRefusal::BadRequest.code()),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, PeerRefusal::Unauthorized.code()),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, PeerRefusal::TooLarge.code())
            }
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::RaftNotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                PeerRefusal::NotReady.code(),
            ),
            ApiError::NoLeader(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
            ApiError::OutcomeUnknown(_) => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Sealed => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
            ApiError::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                PeerRefusal::ShuttingDown.code(),
            ),
            ApiError::ClockOffset(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                PeerRefusal::ClockOffset.code(),
            ),
            ApiError::AuditUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Shorthand for a 404 with the generic code.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code: "not_found",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(code));
        if let ApiError::RateLimited(wait) = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(*wait)),
            );
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::Invalid(m) => ApiError::BadRequest(m),
            DomainError::LeaseNotFound(_) => ApiError::NotFound {
                code: "lease_not_found",
                message,
            },
            DomainError::AccountNotFound(_) => ApiError::NotFound {
                code: "account_not_found",
                message,
            },
            DomainError::CertificateNotFound(_) => ApiError::NotFound {
                code: "certificate_not_found",
                message,
            },
            DomainError::AlreadyExists(_)
            | DomainError::Conflict(_)
            | DomainError::IdempotencyConflict => ApiError::Conflict {
                code: "conflict",
                message,
            },
            DomainError::AccountInactive(_) => ApiError::Conflict {
                code: "account_inactive",
                message,
            },
            DomainError::LeaseSuspended(_) => ApiError::Conflict {
                code: "lease_suspended",
                message,
            },
            DomainError::LimitExceeded { .. } => ApiError::Conflict {
                code: "limit_exceeded",
                message,
            },
            DomainError::TokenNotFound(_) => ApiError::NotFound {
                code: "token_not_found",
                message,
            },
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::QuotaExceeded { .. } => ApiError::Conflict {
                code: "quota_exceeded",
                message,
            },
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Domain(d) => d.into(),
            Error::NoLeader => ApiError::NoLeader("no leader is available; retry shortly".into()),
            Error::Timeout(m) => ApiError::NoLeader(m),
            Error::OutcomeUnknown(m) => ApiError::OutcomeUnknown(m),
            Error::LogReverted(m) => ApiError::Conflict {
                code: PeerRefusal::LogReverted.code(),
                message: m,
            },
            Error::ShuttingDown => ApiError::ShuttingDown,
            Error::MembershipRefused(m) => ApiError::Conflict {
                code: "conflict",
                message: m,
            },
            Error::MemberNotFound(id) => ApiError::NotFound {
                code: "member_not_found",
                message: format!("member {id} not found"),
            },
            Error::BadRequest(m) | Error::Decode(m) => ApiError::BadRequest(m),
            Error::Peer { peer, message } => ApiError::NoLeader(format!(
                "the leader could not be reached ({peer}: {message})"
            )),
            Error::ClockOffset(m) => ApiError::ClockOffset(m),
            Error::PeerRefused { refusal, message } => ApiError::Conflict {
                code: refusal.code(),
                message,
            },
            Error::Storage(m) => ApiError::Internal(format!("storage: {m}")),
            Error::Internal(m) => ApiError::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use keel_raft::wire::PeerRefusal;

    use super::ApiError;

    /// The peer listener's refusals are read back by the peer client as
    /// the refusal the server meant.
    #[tokio::test]
    async fn peer_refusals_read_back_as_what_the_server_meant() {
        let cases = [
            (ApiError::RaftNotReady, PeerRefusal::NotReady),
            (ApiError::ShuttingDown, PeerRefusal::ShuttingDown),
            (ApiError::ClockOffset("x".into()), PeerRefusal::ClockOffset),
            (
                keel_raft::Error::LogReverted("x".into()).into(),
                PeerRefusal::LogReverted,
            ),
            (ApiError::PayloadTooLarge(1), PeerRefusal::TooLarge),
            (ApiError::Unauthorized, PeerRefusal::Unauthorized),
            (ApiError::BadRequest("x".into()), PeerRefusal::BadRequest),
        ];
        for (error, meant) in cases {
            let body = error.into_response().into_body().collect().await.unwrap();
            assert_eq!(PeerRefusal::read(&body.to_bytes()), meant);
        }
    }
}
