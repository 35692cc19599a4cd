//! keel-domain: the pure domain state machine: what every replica holds,
//! and how a stamped [`Proposal`] changes it; with the commands that travel
//! through the log, the state's encodings and the CA's signing.
//!
//! Nothing in this crate performs I/O, reads a clock or draws a random
//! number, except PKI signing, which happens on the leader before a command
//! is proposed. `State::apply` takes time only from the proposal, so two
//! replicas applying the same log reach byte-identical state. Errors
//! returned from `apply` are deterministic refusals (bad input, missing
//! object, limit reached): the state is unchanged and every replica refuses
//! alike. It builds and tests without RocksDB, openraft or an HTTP stack.
//!
//! Ownership between accounts and what they own is a relation, not a copy:
//! a lease or certificate names its account, and whether it is `suspended`
//! is derived from the account whenever it is read or applied. Renewing an
//! account therefore re-activates everything it owns in the same apply.

pub mod clock;
pub mod codec;
pub mod command;
pub mod encoding;
pub mod pki;

pub mod account;
pub mod census;
pub mod cert;
pub mod idempotency;
pub mod lease;
pub mod lease_batch;
pub mod list;
pub mod peer_trust;
pub mod query;
pub mod quota;
pub mod restore;
pub mod scope;
pub mod text;
pub mod tidy;
pub mod token;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::command::{Applied, Command, Outcome, Proposal, Response};
use account::{AccountState, Accounts};
use cert::{CertRecord, CertState, Pki};
use idempotency::IdempotencyTable;
use lease::Leases;
use token::Tokens;

/// A deterministic refusal: returned to the client, state unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DomainError {
    /// The request is malformed or out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// No lease with this id.
    #[error("lease {0} not found")]
    LeaseNotFound(String),
    /// No account with this name.
    #[error("account `{0}` not found")]
    AccountNotFound(String),
    /// No certificate with this serial.
    #[error("certificate {0} not found")]
    CertificateNotFound(String),
    /// The object already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The owning account is expired or disabled.
    #[error("account `{0}` is not active")]
    AccountInactive(String),
    /// The lease belongs to an inactive account and cannot be renewed.
    #[error("lease {0} is suspended: its account is not active")]
    LeaseSuspended(String),
    /// An account limit would be exceeded.
    #[error("account `{account}` is at its limit of {limit} {resource}")]
    LimitExceeded {
        /// The account.
        account: String,
        /// Which resource.
        resource: String,
        /// The limit in force.
        limit: u64,
    },
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The `Idempotency-Key` was first used with a different request.
    #[error("idempotency key was already used with a different request")]
    IdempotencyConflict,
    /// No token with this accessor (or it has expired).
    #[error("token {0} not found")]
    TokenNotFound(String),
    /// The credential acting may not touch this object.
    #[error("{0}")]
    Forbidden(String),
    /// A cluster-wide quota would be exceeded.
    #[error("the cluster is at its quota of {limit} {resource}")]
    QuotaExceeded {
        /// Which resource.
        resource: String,
        /// The quota in force.
        limit: u64,
    },
}

/// Cluster-wide metadata fixed at bootstrap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Set once by the first `InitCluster`; never changes afterwards.
    pub cluster_id: Option<String>,
}

/// A certificate together with its state at a given time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    /// The record.
    pub cert: CertRecord,
    /// Its derived state.
    pub state: CertState,
}

/// Everything a replica holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Cluster identity.
    pub cluster: ClusterMeta,
    /// Recent idempotency keys and their first results.
    pub idempotency: IdempotencyTable,
    /// Tenants.
    pub accounts: Accounts,
    /// TTL grants.
    pub leases: Leases,
    /// The cluster CA and the certificates it issued.
    pub pki: Pki,
    /// The latest time a command was applied at (refusals change
    /// nothing, their time included). Replicated time never goes
    /// backwards: the proposer stamps `max(its clock, this)` and apply uses
    /// the same maximum, so a leader whose clock is behind its
    /// predecessor's cannot shorten, resurrect or re-expire anything.
    /// Last in the struct and defaulted, so snapshots written before it
    /// existed (positional encoding) still decode, to 0.
    #[serde(default)]
    pub last_stamp: Millis,
    /// A snapshot restore being staged through the log (see [`restore`]);
    /// `None` outside a restore. Defaulted, after `last_stamp`, for the
    /// same reason.
    #[serde(default)]
    pub restore: Option<restore::StagedRestore>,
    /// API tokens (see [`token`]). Defaulted, after `restore`, for the
    /// same reason.
    #[serde(default)]
    pub tokens: Tokens,
    /// The peer CAs and join tokens (see [`peer_trust`]). Defaulted,
    /// after `tokens`, for the same reason.
    #[serde(default)]
    pub peer: peer_trust::PeerTrust,
}

impl State {
    /// A copy to encode a snapshot from while apply goes on: the tables
    /// are persistent maps that share storage with this state, so taking
    /// it costs O(1) in their size (and O(n) only in the small ones); the
    /// copy has no derived indexes, as encoding does not need them.
    pub fn frozen(&self) -> State {
        State {
            cluster: self.cluster.clone(),
            idempotency: self.idempotency.frozen(),
            accounts: self.accounts.clone(),
            leases: self.leases.frozen(),
            pki: self.pki.frozen(),
            last_stamp: self.last_stamp,
            restore: self.restore.clone(),
            tokens: self.tokens.frozen(),
            peer: self.peer.clone(),
        }
    }

    /// Applies one stamped proposal. Deterministic: reads time only from
    /// `proposal.now`, raised to the latest time already applied.
    pub fn apply(&mut self, proposal: &Proposal) -> Response {
        self.apply_traced(proposal).response
    }

    /// Applies one stamped proposal and says whether its response is the
    /// remembered result of an earlier entry with the same idempotency key
    /// (in which case this entry changed nothing).
    pub fn apply_traced(&mut self, proposal: &Proposal) -> Applied {
        let now = self.stamp_time(proposal.now);
        if let Some(stamp) = &proposal.idempotency
            && let Some(previous) = self.idempotency.lookup(stamp)
        {
            return Applied {
                response: previous,
                replayed: true,
            };
        }
        let response = self
            .check_scope(proposal.scope.as_deref(), &proposal.command)
            .and_then(|()| self.check_quotas(&proposal.quotas, &proposal.command))
            .and_then(|()| self.apply_command(now, proposal));
        let changed = match &response {
            // A batch whose every item was refused changed nothing.
            Ok(Outcome::LeaseBatch(results)) => results.succeeded() > 0,
            Ok(_) => true,
            Err(_) => false,
        };
        if changed {
            // A refusal changes nothing, its time included. Raised, never
            // set: a restored state may carry a later stamp than `now`.
            self.last_stamp = self.last_stamp.max(now);
        }
        if let Some(stamp) = &proposal.idempotency {
            self.idempotency.record(stamp, now, &response);
        }
        self.idempotency.cap();
        Applied {
            response,
            replayed: false,
        }
    }

    /// The remembered first result of an idempotency key, if the key was
    /// applied: lets the proposer answer a retry without stamping (and so
    /// without generating anything) at all.
    pub fn remembered(&self, stamp: &crate::command::IdempotencyStamp) -> Option<Response> {
        self.idempotency.lookup(stamp)
    }

    fn apply_command(&mut self, now: Millis, proposal: &Proposal) -> Response {
        let scope = proposal.scope.as_deref();
        match &proposal.command {
            Command::InitCluster { cluster_id } => {
                let id = self
                    .cluster
                    .cluster_id
                    .get_or_insert_with(|| cluster_id.clone());
                Ok(Outcome::ClusterId(id.clone()))
            }
            Command::GrantLease {
                id,
                ttl_ms,
                max_ttl_ms,
                name,
                account,
                metadata,
            } => {
                let grant = lease::Grant {
                    id: *id,
                    ttl_ms: *ttl_ms,
                    max_ttl_ms: *max_ttl_ms,
                    name: name.clone(),
                    account: account.clone(),
                    metadata: metadata.clone(),
                };
                self.leases
                    .grant(now, grant, &mut self.accounts)
                    .map(Outcome::Lease)
            }
            Command::RenewLease { id, increment_ms } => self
                .leases
                .renew(now, *id, *increment_ms, &self.accounts)
                .map(Outcome::Lease),
            Command::RevokeLease { id } => {
                self.leases.revoke(*id, &mut self.accounts)?;
                Ok(Outcome::Done)
            }
            Command::ApplyLeaseBatch { batch } => Ok(Outcome::LeaseBatch(Box::new(
                self.apply_lease_batch(now, batch, &proposal.quotas, scope),
            ))),
            Command::RevokeLeasePrefix { prefix } => self
                .leases
                .revoke_prefix(prefix, scope, &mut self.accounts)
                .map(Outcome::Count),
            Command::ExpireLeases { ids } => Ok(Outcome::Count(self.leases.expire(
                now,
                ids,
                &mut self.accounts,
            ))),
            Command::CreateAccount {
                name,
                expires_at,
                limits,
            } => {
                let account = self.accounts.create(now, name, *expires_at, limits)?;
                self.pki.account_changed(now, name, &self.accounts);
                Ok(Outcome::Account(Box::new(account)))
            }
            Command::UpdateAccount {
                name,
                expires_at,
                limits,
            } => {
                let account = self.accounts.update(now, name, *expires_at, limits)?;
                self.pki.account_changed(now, name, &self.accounts);
                Ok(Outcome::Account(Box::new(account)))
            }
            Command::SetAccountDisabled { name, disabled } => {
                let account = self.accounts.set_disabled(now, name, *disabled)?;
                self.pki.account_changed(now, name, &self.accounts);
                Ok(Outcome::Account(Box::new(account)))
            }
            Command::ExpireAccount { name } => {
                let account = self.accounts.expire(now, name)?;
                self.pki.account_changed(now, name, &self.accounts);
                Ok(Outcome::Account(Box::new(account)))
            }
            Command::DeleteAccount { name } => {
                self.accounts.get(name)?;
                let leases = self.leases.revoke_owned_by(name, &mut self.accounts);
                let certs = self.pki.revoke_owned_by(now, name);
                self.accounts.remove(name);
                Ok(Outcome::Count(leases + certs))
            }
            Command::InitCa { ca } => {
                self.pki.init_ca(now, ca.clone())?;
                Ok(Outcome::Done)
            }
            Command::RecordCertificate { cert } => {
                let view = self.pki.record(now, cert.clone(), &self.accounts)?;
                Ok(Outcome::Certificate(Box::new(view)))
            }
            Command::ActivateCertificate { serial } => {
                let view = self.pki.activate(now, serial, &self.accounts)?;
                Ok(Outcome::Certificate(Box::new(view)))
            }
            Command::RevokeCertificate { serial, reason } => {
                let view = self.pki.revoke(now, serial, *reason, &self.accounts)?;
                Ok(Outcome::Certificate(Box::new(view)))
            }
            Command::RefreshCrl => {
                self.pki.bump_crl(now);
                Ok(Outcome::Done)
            }
            Command::StageRestore {
                restore_id,
                offset,
                chunk,
            } => self.stage_restore(*restore_id, *offset, chunk),
            Command::CommitRestore {
                restore_id,
                len,
                sha256,
            } => self.commit_restore(now, *restore_id, *len, sha256),
            Command::AbortRestore { restore_id } => self.abort_restore(*restore_id),
            Command::CreateToken { token } => {
                let token = self.tokens.create(token.clone(), &self.accounts)?;
                Ok(Outcome::Token(Box::new(token)))
            }
            Command::RenewToken {
                accessor,
                increment_ms,
            } => {
                let token = self.tokens.renew(now, accessor, *increment_ms)?;
                Ok(Outcome::Token(Box::new(token)))
            }
            Command::RevokeToken { accessor } => {
                let token = self.tokens.revoke(accessor)?;
                Ok(Outcome::Token(Box::new(token)))
            }
            Command::TidyRecords { retention } => {
                Ok(Outcome::Count(self.tidy(now, retention).total()))
            }
            Command::InitPeerCa { ca } => self.peer.init(ca).map(|()| Outcome::Done),
            Command::AddPeerCa { ca } => self.peer.add(ca).map(|()| Outcome::Done),
            Command::ActivatePeerCa { index } => {
                self.peer.activate(*index as usize).map(|()| Outcome::Done)
            }
            Command::DropPeerCa { index } => {
                self.peer.drop_ca(*index as usize).map(|()| Outcome::Done)
            }
            Command::CreateJoinToken { digest, ttl_ms } => self
                .peer
                .create_token(now, digest, *ttl_ms)
                .map(|()| Outcome::Done),
            Command::ConsumeJoinToken { digest, node } => self
                .peer
                .consume_token(now, digest, *node)
                .map(|()| Outcome::Done),
        }
    }

    /// The time a proposal read from `clock` is stamped and applied at:
    /// never earlier than the latest time already applied.
    pub fn stamp_time(&self, clock: Millis) -> Millis {
        clock.max(self.last_stamp)
    }

    /// Rebuilds every index that is derived from the tables and therefore
    /// not stored in snapshots. Called after a snapshot is decoded.
    pub fn rebuild_indexes(&mut self) {
        self.tokens.rebuild_indexes();
        self.leases.rebuild_indexes();
        self.pki.rebuild_indexes();
    }

    /// The standing of an optional owning account at `now`: `true` when the
    /// owner is active (or there is no owner).
    pub fn owner_active(&self, account: Option<&str>, now: Millis) -> bool {
        self.accounts.owner_active(account, now)
    }

    /// An account's derived state at `now`, if it exists.
    pub fn account_state(&self, name: &str, now: Millis) -> Option<AccountState> {
        self.accounts.find(name).map(|a| a.state_at(now))
    }
}

#[cfg(test)]
mod tests;
