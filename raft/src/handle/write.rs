//! The write path: propose on the leader, forward from a follower.
//!
//! A follower forwards the *unstamped* request, so everything
//! non-deterministic is stamped by the node that proposes. A write is only
//! retried when it certainly was not appended (no leader yet, a refused
//! connection, a leader that answered "not leader"); anything ambiguous is
//! returned to the client as [`Error::OutcomeUnknown`], and the client can
//! retry safely with an idempotency key.
//!
//! A retry is exact: the proposer looks the key up *before* stamping, so a
//! retry of an applied write generates nothing (no lease id, no key pair,
//! no signature) and returns the first result. If the first attempt is
//! still in flight when the retry is stamped, apply recognises the key and
//! marks the answer as a replay, and whatever was generated for the retry
//! is dropped.

use std::time::Duration;

use openraft::errors::{ClientWriteError, RaftError};

use super::ControlPlane;
use crate::command::IdempotencyStamp;
use crate::command::{Outcome, Request, WriteResult};
use crate::error::Error;
use crate::pki::SecretPem;
use crate::stamp::{Stamped, fingerprint, stamp};
use crate::transport::PeerCallError;
use crate::types::{NodeId, name_of};
use crate::wire::{ForwardReply, ForwardWrite, PeerRpc, WireError};

/// How long a write may wait for a leader and for its commit.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Outcome of one attempt.
enum Attempt {
    Done(Result<WriteResult, Error>),
    /// Certainly not applied; try again once the leader is known.
    Retry,
}

impl ControlPlane {
    /// Writes `request` through the leader and returns its applied result.
    pub async fn write(
        &self,
        request: Request,
        idempotency_key: Option<String>,
    ) -> Result<WriteResult, Error> {
        // A node whose clock is not trusted takes no write, not even to
        // forward it: what it would answer is derived from its clock.
        self.check_clock()?;
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        loop {
            if self.is_stopping() {
                return Err(Error::ShuttingDown);
            }
            let attempt = match self.leader() {
                Some(leader) if leader == self.node_id() => {
                    self.propose(request.clone(), idempotency_key.clone()).await
                }
                Some(leader) => self.forward(leader, &request, &idempotency_key).await,
                None => Attempt::Retry,
            };
            match attempt {
                Attempt::Done(result) => {
                    if let Ok(WriteResult {
                        log_index: Some(index),
                        ..
                    }) = &result
                    {
                        super::trace::record(*index);
                    }
                    return result;
                }
                Attempt::Retry => {
                    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if remaining.is_zero() {
                        return Err(Error::NoLeader);
                    }
                    let before = self.leader();
                    // Wait for a (different) leader, or a short pause if the
                    // same one is still believed to lead (a leader that has
                    // just been elected may refuse writes for a moment).
                    let pause = if before.is_some() { 20 } else { 200 };
                    let wait = remaining.min(Duration::from_millis(pause));
                    let _ = self
                        .wait_for(wait, |s| s.leader.is_some() && s.leader != before)
                        .await;
                }
            }
        }
    }

    /// Proposes on this node only while it leads, never forwarding: for the
    /// leader-only managers, whose work must stop with leadership.
    pub async fn write_on_leader(&self, request: Request) -> Result<WriteResult, Error> {
        if !self.is_leader() {
            return Err(Error::NoLeader);
        }
        match self.propose(request, None).await {
            Attempt::Done(result) => result,
            Attempt::Retry => Err(Error::NoLeader),
        }
    }

    /// Stamps and proposes on this node, which believes it leads. Refused
    /// while its clock is not trusted (it is about to hand leadership on).
    async fn propose(&self, request: Request, idempotency_key: Option<String>) -> Attempt {
        if let Err(e) = self.check_clock() {
            return Attempt::Done(Err(e));
        }
        if let Some(key) = &idempotency_key {
            let probe = IdempotencyStamp {
                key: key.clone(),
                fingerprint: fingerprint(&request),
            };
            if let Some(first) = self.local(|state| state.remembered(&probe)) {
                return Attempt::Done(
                    first
                        .map(|outcome| self.result_of(outcome, None, true, None))
                        .map_err(Error::Domain),
                );
            }
        }
        // Stamped through the fence, so a read that began before this
        // moment waits for the write (see `fence`); the ticket goes with
        // the commit, which goes on even if the caller stops waiting.
        let policy = self.policy();
        let now = match self.trusted_now() {
            Ok(now) => now,
            Err(e) => return Attempt::Done(Err(e)),
        };
        let (clock, ticket) = self.inner.fence.enter(now, self.current_term());
        let stamped = {
            let m = self.inner.machine.read();
            stamp(request, idempotency_key, clock, &m.state, &policy)
        };
        let Stamped { proposal, secret } = match stamped {
            Ok(s) => s,
            Err(e) => return Attempt::Done(Err(e)),
        };
        let verb = proposal.command.verb();
        let raft = self.inner.raft.clone();
        let write = tokio::spawn(async move {
            let result = raft.client_write(proposal).await;
            drop(ticket);
            result
        });
        let written = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Err(_) => Err(()),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => return Attempt::Done(Err(Error::Internal(format!("{verb}: {e}")))),
        };
        match written {
            Err(()) => Attempt::Done(Err(Error::OutcomeUnknown(format!(
                "{verb} was not committed in time; it may or may not apply"
            )))),
            Ok(Ok(response)) => {
                let replayed = response.data.replayed;
                let index = (!replayed).then(|| response.log_id.index());
                Attempt::Done(
                    response
                        .data
                        .response
                        .map(|outcome| {
                            // A replay's certificate was created by an
                            // earlier attempt: the key made for this one
                            // matches nothing and is dropped here.
                            let key = if replayed { None } else { secret };
                            self.result_of(outcome, key, replayed, index)
                        })
                        .map_err(Error::Domain),
                )
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Attempt::Retry,
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => {
                Attempt::Done(Err(Error::OutcomeUnknown(format!(
                    "{verb} lost its leader before commit; it may or may not apply"
                ))))
            }
            Ok(Err(RaftError::APIError(e))) => Attempt::Done(Err(Error::Internal(e.to_string()))),
            Ok(Err(RaftError::Fatal(e))) => Attempt::Done(Err(if self.is_stopping() {
                Error::ShuttingDown
            } else {
                Error::Internal(e.to_string())
            })),
        }
    }

    /// The answer to a write applied on this node (the leader): for a
    /// certificate, with the CA that signed it, as this node holds it.
    fn result_of(
        &self,
        outcome: Outcome,
        private_key_pem: Option<SecretPem>,
        replayed: bool,
        log_index: Option<u64>,
    ) -> WriteResult {
        let ca_certificate_pem = matches!(outcome, Outcome::Certificate(_))
            .then(|| self.local(|s| s.pki.ca().map(|ca| ca.certificate_pem.clone())))
            .flatten();
        WriteResult {
            outcome,
            private_key_pem,
            replayed,
            ca_certificate_pem,
            log_index,
        }
    }

    /// Sends the request to the leader's forwarding route.
    async fn forward(
        &self,
        leader: NodeId,
        request: &Request,
        idempotency_key: &Option<String>,
    ) -> Attempt {
        let Some(addr) = self
            .status()
            .nodes
            .get(&leader)
            .map(|m| m.peer_addr.clone())
        else {
            return Attempt::Retry;
        };
        let body = ForwardWrite {
            request: request.clone(),
            idempotency_key: idempotency_key.clone(),
        };
        let call = self.inner.peers.call_node::<_, ForwardReply>(
            leader,
            &addr,
            PeerRpc::Forward,
            &body,
            WRITE_TIMEOUT + Duration::from_secs(2),
        );
        // If another leader is elected meanwhile, the forwarded write may
        // hang on a dead link: answer at once instead. It may or may not
        // apply, so it is not retried here (an idempotency key makes the
        // client's retry safe).
        let reply: Result<ForwardReply, PeerCallError> = tokio::select! {
            reply = call => reply,
            () = self.leader_changed_from(leader) => {
                return Attempt::Done(Err(Error::OutcomeUnknown(format!(
                    "leadership moved from node {} while the write was in flight; it may or may not have applied",
                    name_of(leader)
                ))));
            }
        };
        match reply {
            Ok(Ok(result)) => Attempt::Done(Ok(result)),
            Ok(Err(WireError::NoLeader)) => Attempt::Retry,
            // A leader whose clock went wrong refuses before proposing and
            // is about to hand leadership on: wait for the next one.
            Ok(Err(WireError::ClockOffset(_))) => Attempt::Retry,
            Ok(Err(e)) => Attempt::Done(Err(e.into())),
            // Not delivered, or refused before it reached Raft.
            Err(PeerCallError::Connect(_)) => Attempt::Retry,
            Err(PeerCallError::Status { refusal, .. }) if refusal.before_raft() => Attempt::Retry,
            // Delivered or maybe delivered, with no usable answer.
            Err(e) => Attempt::Done(Err(Error::OutcomeUnknown(format!(
                "the leader (node {}) did not answer the forwarded write ({e}); it may or may not have applied",
                name_of(leader)
            )))),
        }
    }

    /// Resolves once this node knows of a leader other than `leader`.
    async fn leader_changed_from(&self, leader: NodeId) {
        loop {
            match self
                .wait_for(WRITE_TIMEOUT, |s| s.leader.is_some_and(|l| l != leader))
                .await
            {
                Ok(_) => return,
                Err(Error::ShuttingDown) => std::future::pending::<()>().await,
                Err(_) => {}
            }
        }
    }

    /// Serves a forwarded write on the leader. Answers `NoLeader` (the
    /// sender retries) if this node does not lead.
    pub(crate) async fn serve_forward(&self, forward: ForwardWrite) -> ForwardReply {
        if !self.is_leader() {
            return Err(WireError::NoLeader);
        }
        match self.propose(forward.request, forward.idempotency_key).await {
            Attempt::Done(result) => result.map_err(|e| WireError::from(&e)),
            Attempt::Retry => Err(WireError::NoLeader),
        }
    }
}
