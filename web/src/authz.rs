//! Authorization: who is asking (a [`Principal`]), what each route needs
//! (a [`Permission`]), and which roles hold which permissions. Default
//! deny: a route with no declared permission is refused to everyone, and
//! a test checks that every route of the API declares one. The declared
//! permission of each operation is also in `/openapi.json`
//! (`x-keel-permission`).

use axum::http::Method;
use keel_raft::domain::token::Role;

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

impl Permission {
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

/// The permission the route `path` (as declared in the router) needs for
/// `method`; `None` for a route that declares none, which nobody may use.
pub fn required(method: &Method, path: &str) -> Option<Permission> {
    use Permission::*;
    let read = *method == Method::GET;
    Some(match path {
        "/v1/sys/lifecycle" | "/v1/sys/warnings" | "/v1/sys/census" | "/v1/sys/events" => SysRead,
        "/v1/sys/seal"
        | "/v1/sys/unseal"
        | "/v1/sys/reload"
        | "/v1/sys/snapshot"
        | "/v1/sys/snapshot/restore" => SysWrite,
        "/v1/cluster" => ClusterRead,
        "/v1/cluster/members"
        | "/v1/cluster/members/{id}"
        | "/v1/cluster/members/{id}/decommission"
        | "/v1/cluster/transfer-leader" => ClusterWrite,
        "/v1/leases" | "/v1/leases/{id}" if read => LeasesRead,
        "/v1/leases"
        | "/v1/leases/{id}"
        | "/v1/leases/{id}/renew"
        | "/v1/leases/revoke-prefix"
        | "/v1/leases/batch" => LeasesWrite,
        "/v1/accounts" | "/v1/accounts/{name}" if read => AccountsRead,
        "/v1/accounts"
        | "/v1/accounts/{name}"
        | "/v1/accounts/{name}/disable"
        | "/v1/accounts/{name}/enable" => AccountsWrite,
        "/v1/pki/ca" | "/v1/pki/certs" | "/v1/pki/certs/{serial}" | "/v1/pki/crl" => PkiRead,
        "/v1/pki/issue"
        | "/v1/pki/sign"
        | "/v1/pki/certs/{serial}/renew"
        | "/v1/pki/certs/{serial}/activate"
        | "/v1/pki/certs/{serial}/revoke" => PkiWrite,
        "/v1/auth/tokens" | "/v1/auth/tokens/{accessor}" => TokensManage,
        "/v1/auth/tokens/self" | "/v1/auth/tokens/self/renew" => TokensSelf,
        _ => return None,
    })
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

    /// `request`, marked with this credential's scope when it has one, so
    /// apply refuses anything outside the account.
    pub fn scoped(&self, request: keel_raft::command::Request) -> keel_raft::command::Request {
        match self.scope() {
            Some(scope) => keel_raft::command::Request::Scoped {
                scope: scope.to_string(),
                request: Box::new(request),
            },
            None => request,
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
        let all = [
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
    }
}
