//! The read path: a barrier chosen by the consistency level, then a read of
//! the local state.
//!
//! - `linearizable`: the leader confirms its leadership with a quorum
//!   (ReadIndex); a follower asks the leader for that read index and waits
//!   until it has applied up to it, then reads locally.
//! - `leader`: the same, but the leader may rely on its lease instead of a
//!   quorum round.
//! - `local`: no barrier; the answer may be stale.
//!
//! A read derives clock-dependent states (expired, suspended) at the time
//! it began. Before the leader fixes a read index it passes the stamp
//! fence (`fence`), so a write stamped earlier is in what the read sees
//! and a write stamped later is stamped no earlier than that time.

use std::time::Duration;

use openraft::ReadPolicy;
use openraft::errors::{LinearizableReadError, RaftError};

use super::ControlPlane;
use crate::clock::Millis;
use crate::domain::State;
use crate::error::Error;
use crate::transport::PeerCallError;
use crate::wire::{PeerRpc, ReadIndexReply, ReadIndexRequest, WireError};

/// How long a read may wait for its barrier.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The consistency a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Confirmed with a quorum: never stale.
    #[default]
    Linearizable,
    /// Served under the leader's lease: not stale unless clocks misbehave.
    Leader,
    /// Whatever this node has applied.
    Local,
}

impl Consistency {
    /// Parses the API's `?consistency=` value.
    pub fn parse(s: &str) -> Option<Consistency> {
        match s {
            "linearizable" => Some(Consistency::Linearizable),
            "leader" => Some(Consistency::Leader),
            "local" => Some(Consistency::Local),
            _ => None,
        }
    }
}

impl ControlPlane {
    /// Reads the state at `consistency`; `f` gets the state and the time
    /// to derive states at: the local wall clock when the read began,
    /// raised to the latest time already applied. The barrier fences
    /// writes stamped below that time (see `fence`), so no write the read
    /// did not see can later contradict what it derived.
    /// Refused (`ClockOffset`) while this node's clock is not trusted.
    pub async fn read<T>(
        &self,
        consistency: Consistency,
        f: impl FnOnce(&State, Millis) -> T,
    ) -> Result<T, Error> {
        let at = self.trusted_now()?;
        self.barrier_at(consistency, at).await?;
        // Checked again: the barrier may have waited across a verdict.
        self.check_clock()?;
        Ok(self.local(|state| f(state, state.stamp_time(at))))
    }

    /// Passes the barrier `consistency` asks for, without reading: after
    /// it, the local state is as fresh as that level promises. Derives
    /// nothing from the clock, so it is not gated on clock health.
    pub async fn barrier(&self, consistency: Consistency) -> Result<(), Error> {
        self.barrier_at(consistency, 0).await
    }

    /// The barrier for a read that derives its answer at `at` (0: derives
    /// nothing from a clock, and raises no stamp floor).
    async fn barrier_at(&self, consistency: Consistency, at: Millis) -> Result<(), Error> {
        match consistency {
            Consistency::Local => Ok(()),
            Consistency::Leader => self.read_barrier(true, at).await,
            Consistency::Linearizable => self.read_barrier(false, at).await,
        }
    }

    async fn read_barrier(&self, lease: bool, at: Millis) -> Result<(), Error> {
        if self.is_stopping() {
            return Err(Error::ShuttingDown);
        }
        let index = match self.leader() {
            Some(leader) if leader == self.node_id() => {
                match self.leader_read_index(lease, at).await {
                    Ok(index) => index,
                    Err(Error::NoLeader) => self.remote_read_index(lease, at).await?,
                    Err(e) => return Err(e),
                }
            }
            Some(_) => self.remote_read_index(lease, at).await?,
            None => {
                self.wait_for(READ_TIMEOUT, |s| s.leader.is_some())
                    .await
                    .map_err(|_| Error::NoLeader)?;
                return Box::pin(self.read_barrier(lease, at)).await;
            }
        };
        self.wait_applied(index).await
    }

    /// On the leader: the index a linearizable read that derives its
    /// answer at `at` must observe. Fences first: no later stamp goes below
    /// `at` (capped at this node's trusted clock plus the clock bound;
    /// refused while its clock is not trusted), and every write stamped
    /// before now in this term has finished.
    async fn leader_read_index(&self, lease: bool, at: Millis) -> Result<u64, Error> {
        let term = self.current_term();
        let fenced = if at == 0 {
            self.inner.fence.raise(0, 0, term)
        } else {
            // The floor outlives this read (and this term): only a trusted
            // clock may bound it, or a node whose clock was off when it
            // served a read would stamp with that clock once trusted again.
            let limit = self
                .trusted_now()?
                .saturating_add(self.inner.clock.max_offset().as_millis() as Millis);
            self.inner.fence.raise(at, limit, term)
        };
        if !self.inner.fence.wait(fenced, READ_TIMEOUT).await {
            return Err(Error::Timeout(
                "writes stamped before this read did not finish in time".into(),
            ));
        }
        let policy = if lease {
            ReadPolicy::LeaseRead
        } else {
            ReadPolicy::ReadIndex
        };
        let fetch = self.inner.raft.get_read_log_id(policy);
        match tokio::time::timeout(READ_TIMEOUT, fetch).await {
            Err(_) => Err(Error::Timeout(
                "leadership was not confirmed in time".into(),
            )),
            Ok(Ok((read_log_id, _))) => Ok(read_log_id.index()),
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_)))) => {
                Err(Error::NoLeader)
            }
            Ok(Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q)))) => Err(
                Error::Timeout(format!("no quorum to confirm leadership: {q}")),
            ),
            Ok(Err(RaftError::Fatal(e))) => Err(if self.is_stopping() {
                Error::ShuttingDown
            } else {
                Error::Internal(e.to_string())
            }),
        }
    }

    /// On a follower: asks the leader for the read index.
    async fn remote_read_index(&self, lease: bool, at: Millis) -> Result<u64, Error> {
        let leader = self.leader().ok_or(Error::NoLeader)?;
        let addr = self.peer_addr_of(leader).ok_or(Error::NoLeader)?;
        let reply: Result<ReadIndexReply, PeerCallError> = self
            .inner
            .peers
            .call_node(
                leader,
                &addr,
                PeerRpc::ReadIndex,
                &ReadIndexRequest { lease, at_ms: at },
                READ_TIMEOUT,
            )
            .await;
        match reply {
            Ok(Ok(index)) => Ok(index),
            Ok(Err(e)) => Err(e.into()),
            Err(PeerCallError::Connect(_)) => Err(Error::NoLeader),
            Err(PeerCallError::Status { refusal, .. }) if refusal.unavailable() => {
                Err(Error::NoLeader)
            }
            Err(e) => Err(Error::Peer {
                peer: format!("node {leader}"),
                message: e.to_string(),
            }),
        }
    }

    /// Waits until the local state machine has applied `index`.
    async fn wait_applied(&self, index: u64) -> Result<(), Error> {
        let mut rx = self.applied_index();
        let wait = rx.wait_for(|applied| *applied >= index);
        match tokio::time::timeout(READ_TIMEOUT, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::Timeout(format!(
                "this node did not apply index {index} in time"
            ))),
        }
    }

    /// Serves a follower's read-index request on the leader.
    pub(crate) async fn serve_read_index(&self, req: ReadIndexRequest) -> ReadIndexReply {
        // 0: a barrier that derives nothing (or a peer that predates the
        // fence): no floor is raised.
        self.leader_read_index(req.lease, req.at_ms)
            .await
            .map_err(|e| WireError::from(&e))
    }
}
