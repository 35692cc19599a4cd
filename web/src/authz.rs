//! Authorization: who is asking (a [`Principal`]), what each route needs
//! (a [`Permission`], declared by each handler in its `#[utoipa::path]`
//! attribute, so `/openapi.json` shows it as `x-keel-permission`), and
//! which roles hold which permissions. Default deny: a route with no
//! declared permission is refused to everyone, and tests check that every
//! route of the API declares one.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;
use keel_raft::domain::token::Role;
use serde::{Serialize, Serializer};
use utoipa::OpenApi;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the node's and cluster's status (lifecycle, warnings, census,
    /// events).
    SysRead,
    /// Seal, unseal, reload, save and restore snapshots.
    SysWrite,
    /// Read the membership.
    ClusterRead,
    /// Change the membership or the leader.
    ClusterWrite,
    /// Look leases up and list them.
    LeasesRead,
    /// Grant, renew and revoke leases.
    LeasesWrite,
    /// Read accounts.
    AccountsRead,
    /// Create, change and delete accounts.
    AccountsWrite,
    /// Read the CA, certificates and the CRL.
    PkiRead,
    /// Issue, sign, renew, activate and revoke certificates.
    PkiWrite,
    /// Create, list, look up and revoke other tokens.
    TokensManage,
    /// Look up and renew the token in use.
    TokensSelf,
}

/// Every permission, for tables and tests.
pub const ALL: [Permission; 12] = [
    Permission::SysRead,
    Permission::SysWrite,
    Permission::ClusterRead,
    Permission::ClusterWrite,
    Permission::LeasesRead,
    Permission::LeasesWrite,
    Permission::AccountsRead,
    Permission::AccountsWrite,
    Permission::PkiRead,
    Permission::PkiWrite,
    Permission::TokensManage,
    Permission::TokensSelf,
];

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Permission {
    /// The permission of a name written by [`Permission::as_str`].
    pub fn parse(name: &str) -> Option<Permission> {
        ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The name shown in errors and in the OpenAPI document.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SysRead => "sys.read",
            Permission::SysWrite => "sys.write",
            Permission::ClusterRead => "cluster.read",
            Permission::ClusterWrite => "cluster.write",
            Permission::LeasesRead => "leases.read",
            Permission::LeasesWrite => "leases.write",
            Permission::AccountsRead => "accounts.read",
            Permission::AccountsWrite => "accounts.write",
            Permission::PkiRead => "pki.read",
            Permission::PkiWrite => "pki.write",
            Permission::TokensManage => "tokens.manage",
            Permission::TokensSelf => "tokens.self",
        }
    }
}

/// Whether `role` holds `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::Operator => !matches!(permission, LeasesWrite | AccountsWrite | PkiWrite),
        Role::Reader => matches!(
            permission,
            SysRead | ClusterRead | LeasesRead | AccountsRead | PkiRead | TokensSelf
        ),
        // Scoped to its account by the handlers (reads) and by apply
        // (writes).
        Role::Tenant => matches!(
            permission,
            LeasesRead | LeasesWrite | AccountsRead | PkiRead | PkiWrite | TokensSelf
        ),
    }
}

/// Every operation's permission, read once from the OpenAPI document,
/// where each handler declares it in its `#[utoipa::path]` attribute
/// (`x-keel-permission`): one declaration, beside the handler, that both
/// the document shows and the middleware enforces.
static DECLARED: LazyLock<HashMap<String, Vec<(Method, Permission)>>> = LazyLock::new(|| {
    let doc = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap_or_default();
    let mut declared: HashMap<String, Vec<(Method, Permission)>> = HashMap::new();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let permission = op["x-keel-permission"].as_str().and_then(Permission::parse);
            let method = Method::from_bytes(method.to_uppercase().as_bytes());
            if let (Some(permission), Ok(method)) = (permission, method) {
                declared
                    .entry(path.clone())
                    .or_default()
                    .push((method, permission));
            }
        }
    }
    declared
});

/// The permission the route `path` (as declared in the router) needs for
/// `method`; `None` for a route that declares none, which nobody may use.
pub fn required(method: &Method, path: &str) -> Option<Permission> {
    DECLARED
        .get(path)?
        .iter()
        .find(|(m, _)| m == method)
        .map(|(_, p)| *p)
}

/// The credential behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's accessor; `root` for a token from the admin token file.
    pub accessor: String,
    /// Its role.
    pub role: Role,
    /// The account a tenant token acts for.
    pub account: Option<String>,
}

impl Principal {
    /// A token from the admin token file.
    pub fn root() -> Self {
        Principal {
            accessor: "root".into(),
            role: Role::Admin,
            account: None,
        }
    }

    /// The account this credential is confined to, if any.
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            Role::Tenant => self.account.as_deref(),
            _ => None,
        }
    }

    /// The caller a write is made for: this credential's scope (apply
    /// refuses anything outside a tenant's account) and the client's
    /// idempotency key.
    pub fn caller(&self, idempotency_key: Option<String>) -> keel_raft::Caller {
        keel_raft::Caller {
            scope: self.scope().map(str::to_string),
            idempotency_key,
        }
    }

    /// Refuses an object of another account to a tenant.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.scope().is_none_or(|scope| owner == Some(scope))
    }
}

/// The account filter of a list for `who`: a tenant's own account (an
/// explicit other account is refused), anyone else's filter as given.
pub fn scoped_account(
    who: &Principal,
    asked: Option<String>,
) -> Result<Option<String>, crate::error::ApiError> {
    match (who.scope(), asked) {
        (None, asked) => Ok(asked),
        (Some(scope), Some(asked)) if asked != scope => Err(crate::error::ApiError::Forbidden(
            format!("a tenant token of account `{scope}` may not list account `{asked}`"),
        )),
        (Some(scope), _) => Ok(Some(scope.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_hold_nested_permissions_and_unknown_routes_need_the_impossible() {
        let all = ALL;
        for p in all {
            assert!(allows(Role::Admin, p), "{p:?}");
            // A reader holds nothing an operator lacks.
            assert!(
                !allows(Role::Reader, p) || allows(Role::Operator, p),
                "{p:?}"
            );
        }
        assert!(!allows(Role::Tenant, Permission::ClusterRead));
        assert!(!allows(Role::Reader, Permission::LeasesWrite));
        assert!(!allows(Role::Operator, Permission::PkiWrite));
        assert_eq!(required(&Method::GET, "/v1/nothing"), None);
        assert_eq!(
            required(&Method::GET, "/v1/leases"),
            Some(Permission::LeasesRead)
        );
        assert_eq!(
            required(&Method::POST, "/v1/leases"),
            Some(Permission::LeasesWrite)
        );
        for p in ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn every_operation_behind_a_token_declares_a_known_permission() {
        let doc = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap();
        let mut secured = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if op.get("security").is_none() {
                    assert!(
                        !path.starts_with("/v1/") || path == "/v1/sys/seal-status",
                        "{method} {path} has no security"
                    );
                    continue;
                }
                secured += 1;
                let declared = op["x-keel-permission"].as_str();
                assert!(
                    declared.and_then(Permission::parse).is_some(),
                    "{method} {path} declares no known permission: {declared:?}"
                );
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                assert!(required(&m, path).is_some(), "{method} {path}");
            }
        }
        assert!(secured > 40, "{secured} secured operations");
    }
}
