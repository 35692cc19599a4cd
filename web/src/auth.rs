//! Bearer-token authentication: admin tokens for `/v1/*`, the cluster
//! secret for `/raft/*`. Comparisons are constant-time; tokens never reach
//! a log line (only whether a request was authenticated).

use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use keel_raft::transport::ClusterSecret;
use subtle::ConstantTimeEq;

/// The credentials this node accepts, replaced in place on reload.
#[derive(Debug, Default)]
pub struct Auth {
    admin_tokens: RwLock<Vec<Arc<str>>>,
    /// The cluster secret peers present (shared with the peer client).
    pub cluster_secret: ClusterSecret,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Auth {
    /// Credentials with these admin tokens and cluster secret.
    pub fn new(admin_tokens: Vec<String>, cluster_secret: ClusterSecret) -> Self {
        Auth {
            admin_tokens: RwLock::new(admin_tokens.into_iter().map(Arc::from).collect()),
            cluster_secret,
        }
    }

    /// Replaces the admin tokens (reload). Several may be valid at once, so
    /// a token can be rotated without downtime.
    pub fn set_admin_tokens(&self, tokens: Vec<String>) {
        *self.admin_tokens.write().unwrap_or_else(|e| e.into_inner()) =
            tokens.into_iter().map(Arc::from).collect();
    }

    /// Whether the request carries a valid admin token.
    pub fn admin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = bearer(headers) else {
            return false;
        };
        let tokens = self.admin_tokens.read().unwrap_or_else(|e| e.into_inner());
        // Compare against every token so timing does not reveal which matched.
        tokens.iter().fold(false, |ok, t| {
            constant_time_eq(t.as_bytes(), presented.as_bytes()) | ok
        })
    }

    /// Whether the request carries the cluster secret.
    pub fn peer_ok(&self, headers: &HeaderMap) -> bool {
        let secret = self.cluster_secret.get();
        bearer(headers).is_some_and(|p| constant_time_eq(secret.as_bytes(), p.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accepts_any_configured_token_only_as_bearer() {
        let auth = Auth::new(
            vec!["old".into(), "new".into()],
            ClusterSecret::new("s3cret"),
        );
        assert!(auth.admin_ok(&headers("Bearer old")));
        assert!(auth.admin_ok(&headers("bearer new")));
        assert!(!auth.admin_ok(&headers("Bearer nope")));
        assert!(!auth.admin_ok(&headers("Basic old")));
        assert!(!auth.admin_ok(&HeaderMap::new()));
        assert!(auth.peer_ok(&headers("Bearer s3cret")));
        assert!(!auth.peer_ok(&headers("Bearer old")));
        auth.set_admin_tokens(vec!["new".into()]);
        assert!(!auth.admin_ok(&headers("Bearer old")));
    }
}
