//! One request's way through the audit log: a `request` line before an
//! admitted request runs, a `response` line when it is answered (with its
//! status, error code and the log index its write became), or a single
//! `response` line for a request refused before it ran (401, 403, 429).
//!
//! Under required audit a line that cannot be written turns the answer
//! into 503 `audit_unavailable`; a request whose request line failed never
//! runs.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};

use super::Audit;
use super::entry::{Answered, Asked, EntryKind, Who};
use crate::authz::Principal;
use crate::error::{ApiError, ErrorCode};

/// The audit of one request.
pub struct Trail<'a> {
    audit: &'a Audit,
    request_id: String,
    asked: Asked,
    who: Who,
}

impl Who {
    /// A known credential.
    pub fn of(principal: &Principal) -> Who {
        Who {
            accessor: Some(principal.accessor.clone()),
            role: Some(principal.role.as_str().to_string()),
            account: principal.account.clone(),
            token_hmac: None,
        }
    }
}

impl<'a> Trail<'a> {
    /// Starts the audit of a request for `method` on the route template
    /// `route`, naming `params`. Opaque ids (`id`, `serial`) are kept as
    /// they are; any other parameter (an account's name) is written as
    /// its HMAC, so the log in the data directory holds no name in clear
    /// (`/v1/sys/audit/hash` finds a name's lines).
    pub fn begin(
        audit: &'a Audit,
        request_id: String,
        method: &str,
        route: &str,
        params: BTreeMap<String, String>,
    ) -> Self {
        Trail {
            audit,
            request_id,
            asked: Asked {
                method: method.to_string(),
                route: route.to_string(),
                params: params
                    .into_iter()
                    .map(|(k, v)| match k.as_str() {
                        "id" | "serial" => (k, v),
                        _ => {
                            let hashed = audit.hmac(&v);
                            (k, hashed)
                        }
                    })
                    .collect(),
            },
            who: Who::default(),
        }
    }

    /// Who is asking, once known.
    pub fn identify(&mut self, who: Who) {
        self.who = who;
    }

    fn line(&self, kind: EntryKind, answered: Option<Answered>) -> Result<(), ApiError> {
        if !self.audit.enabled() {
            return Ok(());
        }
        let mut entry = self.audit.entry(kind);
        entry.request_id = Some(self.request_id.clone());
        entry.auth = Some(self.who.clone());
        entry.request = Some(self.asked.clone());
        entry.response = answered;
        match self.audit.write(&entry) {
            Ok(()) => Ok(()),
            Err(_) if !self.audit.required() => Ok(()),
            Err(_) => Err(ApiError::AuditUnavailable(
                "the audit log cannot be written, and audit is required".into(),
            )),
        }
    }

    /// Records an admitted request before it runs. An error means it must
    /// not run.
    pub fn admit(&self) -> Result<(), ApiError> {
        self.line(EntryKind::Request, None)
    }

    /// Records the answer (or refusal) and returns what the client gets.
    pub fn answer(self, response: Response, log_index: Option<u64>) -> Response {
        let answered = Answered {
            status: response.status().as_u16(),
            error: response
                .extensions()
                .get::<ErrorCode>()
                .map(|c| c.0.to_string()),
            log_index,
        };
        match self.line(EntryKind::Response, Some(answered)) {
            Ok(()) => response,
            Err(e) => {
                let mut refused = ApiError::AuditUnavailable(format!(
                    "the request was answered {} but its audit record cannot be written, and \
                     audit is required",
                    response.status().as_u16()
                ))
                .into_response();
                // Say whether it ran, so a client can reconcile.
                if let Some(index) = log_index {
                    refused
                        .headers_mut()
                        .insert("x-keel-log-index", axum::http::HeaderValue::from(index));
                }
                drop(e);
                refused
            }
        }
    }
}
