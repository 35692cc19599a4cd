//! Typed operations: every write the API offers, named by what it means,
//! with the answer it promises as a type.
//!
//! All of them go through the one write path ([`ControlPlane::write`]);
//! this is the only place an applied [`Outcome`] is turned into the type an
//! operation answers with, so no handler inspects outcomes. A command whose
//! outcome is not of the promised kind is a bug in keel, reported as
//! [`Error::Internal`] naming both.

use crate::command::{Command, Outcome, Request, WriteResult};
use crate::domain::CertView;
use crate::domain::account::Account;
use crate::domain::lease::{LeaseId, LeaseView};
use crate::domain::lease_batch::{BatchRenewal, BatchResults, GrantRequest};
use crate::domain::token::Token;
use crate::error::Error;
use crate::pki::{IssueSpec, RenewSpec, SecretPem, SignSpec};

use super::ControlPlane;

/// Who a write is made for: the account a tenant credential is confined to
/// (apply refuses anything outside it) and the client's idempotency key.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The account a tenant credential acts for; `None` for cluster roles.
    pub scope: Option<String>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

impl Caller {
    /// A caller with no scope and no idempotency key (managers, tools).
    pub fn system() -> Self {
        Self::default()
    }

    /// A caller with no scope, retrying with `idempotency_key` (the
    /// routes only cluster roles may call).
    pub fn unscoped(idempotency_key: Option<String>) -> Self {
        Self {
            scope: None,
            idempotency_key,
        }
    }

    fn scoped(&self, request: Request) -> Request {
        match &self.scope {
            Some(scope) => Request::Scoped {
                scope: scope.clone(),
                request: Box::new(request),
            },
            None => request,
        }
    }
}

/// A write's typed answer.
#[derive(Debug)]
pub struct Written<T> {
    /// What the operation answers with.
    pub value: T,
    /// A secret the leader generated for this attempt (an issued
    /// certificate's private key, a new token's secret); never for a replay.
    pub secret: Option<SecretPem>,
    /// `true` when this is the remembered first answer of an earlier
    /// attempt with the same idempotency key.
    pub replayed: bool,
    /// For a certificate: the PEM of the CA that signed it, from the leader
    /// where it applied.
    pub ca_certificate_pem: Option<String>,
}

/// A type an operation may answer with, and how it is read off an outcome.
pub trait Answer: Sized {
    /// The value, or the outcome back if it is of another kind.
    fn from_outcome(outcome: Outcome) -> Result<Self, Outcome>;
}

impl Answer for () {
    fn from_outcome(outcome: Outcome) -> Result<Self, Outcome> {
        match outcome {
            Outcome::Done => Ok(()),
            other => Err(other),
        }
    }
}

/// `Answer` for the types an outcome variant carries.
macro_rules! answers {
    ($($ty:ty: $variant:ident($v:ident) => $out:expr;)*) => {$(
        impl Answer for $ty {
            fn from_outcome(outcome: Outcome) -> Result<Self, Outcome> {
                match outcome {
                    Outcome::$variant($v) => Ok($out),
                    other => Err(other),
                }
            }
        }
    )*};
}

answers! {
    // The cluster id `Command::InitCluster` leaves in force.
    String: ClusterId(id) => id;
    u64: Count(n) => n;
    LeaseView: Lease(view) => view;
    BatchResults: LeaseBatch(results) => *results;
    Account: Account(account) => *account;
    CertView: Certificate(view) => *view;
    Token: Token(token) => *token;
}

fn typed<T: Answer>(verb: &str, result: WriteResult) -> Result<Written<T>, Error> {
    let value = T::from_outcome(result.outcome).map_err(|other| {
        Error::Internal(format!(
            "{verb} answered {other:?}, not a {}",
            std::any::type_name::<T>()
        ))
    })?;
    Ok(Written {
        value,
        secret: result.private_key_pem,
        replayed: result.replayed,
        ca_certificate_pem: result.ca_certificate_pem,
    })
}

impl ControlPlane {
    /// Writes `request` for `caller` and reads the answer as a `T`.
    pub async fn run<T: Answer>(
        &self,
        request: Request,
        caller: &Caller,
    ) -> Result<Written<T>, Error> {
        let verb = request.verb();
        let result = self
            .write(caller.scoped(request), caller.idempotency_key.clone())
            .await?;
        typed(verb, result)
    }

    /// Runs a command that needs nothing but the time.
    pub async fn apply<T: Answer>(
        &self,
        command: Command,
        caller: &Caller,
    ) -> Result<Written<T>, Error> {
        self.run(Request::Apply(command), caller).await
    }

    /// Grants a lease; the leader picks its id.
    pub async fn grant_lease(
        &self,
        grant: GrantRequest,
        caller: &Caller,
    ) -> Result<LeaseView, Error> {
        let request = Request::GrantLease {
            ttl_ms: grant.ttl_ms,
            max_ttl_ms: grant.max_ttl_ms,
            name: grant.name,
            account: grant.account,
            metadata: grant.metadata,
        };
        Ok(self.run(request, caller).await?.value)
    }

    /// Renews a lease (never shortening it).
    pub async fn renew_lease(
        &self,
        id: LeaseId,
        increment_ms: Option<u64>,
        caller: &Caller,
    ) -> Result<LeaseView, Error> {
        let command = Command::RenewLease { id, increment_ms };
        Ok(self.apply(command, caller).await?.value)
    }

    /// Revokes a lease.
    pub async fn revoke_lease(&self, id: LeaseId, caller: &Caller) -> Result<(), Error> {
        let _: Written<()> = self.apply(Command::RevokeLease { id }, caller).await?;
        Ok(())
    }

    /// Revokes every lease whose name starts with `prefix`; how many.
    pub async fn revoke_lease_prefix(&self, prefix: String, caller: &Caller) -> Result<u64, Error> {
        let command = Command::RevokeLeasePrefix { prefix };
        Ok(self.apply(command, caller).await?.value)
    }

    /// Grants, renews and revokes many leases in one log entry.
    pub async fn lease_batch(
        &self,
        grant: Vec<GrantRequest>,
        renew: Vec<BatchRenewal>,
        revoke: Vec<LeaseId>,
        caller: &Caller,
    ) -> Result<BatchResults, Error> {
        let request = Request::LeaseBatch {
            grant,
            renew,
            revoke,
        };
        Ok(self.run(request, caller).await?.value)
    }

    /// Issues a certificate with a key pair the leader generates (returned
    /// once, as [`Written::secret`]).
    pub async fn issue_certificate(
        &self,
        spec: IssueSpec,
        caller: &Caller,
    ) -> Result<Written<CertView>, Error> {
        self.run(Request::IssueCertificate(spec), caller).await
    }

    /// Signs a holder's CSR.
    pub async fn sign_certificate(
        &self,
        spec: SignSpec,
        caller: &Caller,
    ) -> Result<Written<CertView>, Error> {
        self.run(Request::SignCertificate(spec), caller).await
    }

    /// Renews a certificate under a new serial (make before break).
    pub async fn renew_certificate(
        &self,
        spec: RenewSpec,
        caller: &Caller,
    ) -> Result<Written<CertView>, Error> {
        self.run(Request::RenewCertificate(spec), caller).await
    }
}
