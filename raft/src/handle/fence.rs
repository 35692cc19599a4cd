//! The stamp fence: what keeps a read that derives state from a clock
//! linearizable against writes stamped with another reading of a clock.
//!
//! A read derives state (a lease `expired`, an account suspended) at a time
//! `T` taken when it starts. A renewal stamped by the leader at `s < T`
//! that is still on its way to commit would, once applied, contradict that
//! answer: the read said "expired", the renewal then succeeds. So before a
//! leader fixes the index a read will observe, it
//!
//! 1. raises a floor under every later stamp to `T` (bounded by its own
//!    clock plus the clock bound, so a bad `T` cannot drag time forward),
//!    so a write stamped after this moment is stamped at `T` or later; and
//! 2. waits until every proposal it stamped before this moment in its
//!    current term has finished (applied, or certainly not applied).
//!
//! Either the renewal is applied before the read, or it is stamped no
//! earlier than the read's derivation time, where the lease is already
//! expired and the renewal fails. Proposals of an earlier term are not
//! waited for: a leader's read index is at or after its own term's first
//! entry, which follows anything of an earlier term it may still commit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Millis;

/// The fence; one per node.
pub(crate) struct StampFence {
    state: Mutex<FenceState>,
    /// Bumped whenever a proposal finishes.
    finished: watch::Sender<u64>,
}

#[derive(Default)]
struct FenceState {
    /// No stamp goes below this.
    floor: Millis,
    /// The sequence number of the next proposal.
    next: u64,
    /// Proposals stamped and not finished: sequence -> term.
    pending: BTreeMap<u64, u64>,
}

/// A proposal's place in the fence; dropping it marks the proposal
/// finished.
pub(crate) struct Ticket {
    fence: Arc<StampFence>,
    seq: u64,
}

/// What a read must wait for: proposals below `before` in `term`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fenced {
    before: u64,
    term: u64,
}

impl Default for StampFence {
    fn default() -> Self {
        StampFence {
            state: Mutex::new(FenceState::default()),
            finished: watch::channel(0).0,
        }
    }
}

impl StampFence {
    fn lock(&self) -> std::sync::MutexGuard<'_, FenceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters a proposal of `term` about to be stamped: returns the clock
    /// to stamp it with (`clock` raised to the floor) and its ticket. The
    /// proposal counts as pending until the ticket is dropped.
    pub(crate) fn enter(self: &Arc<Self>, clock: Millis, term: u64) -> (Millis, Ticket) {
        let mut s = self.lock();
        let at = clock.max(s.floor);
        let seq = s.next;
        s.next += 1;
        s.pending.insert(seq, term);
        let ticket = Ticket {
            fence: self.clone(),
            seq,
        };
        (at, ticket)
    }

    /// Raises the floor to `at` (at most `limit`) and returns what a read
    /// in `term` must wait for.
    pub(crate) fn raise(&self, at: Millis, limit: Millis, term: u64) -> Fenced {
        let mut s = self.lock();
        s.floor = s.floor.max(at.min(limit));
        Fenced {
            before: s.next,
            term,
        }
    }

    /// The floor in force (for tests and the status view).
    #[cfg(test)]
    pub(crate) fn floor(&self) -> Millis {
        self.lock().floor
    }

    fn settled(&self, fenced: Fenced) -> bool {
        self.lock()
            .pending
            .range(..fenced.before)
            .all(|(_, term)| *term != fenced.term)
    }

    /// Waits until every proposal `fenced` names has finished; `false` if
    /// that took longer than `timeout`.
    pub(crate) async fn wait(&self, fenced: Fenced, timeout: Duration) -> bool {
        let mut rx = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if self.settled(fenced) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.settled(fenced),
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.fence.lock().pending.remove(&self.seq);
        self.fence.finished.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_go_below_a_raised_floor() {
        let fence = Arc::new(StampFence::default());
        fence.raise(1_000, 5_000, 1);
        let (at, _t) = fence.enter(900, 1);
        assert_eq!(at, 1_000);
        let (at, _t) = fence.enter(1_200, 1);
        assert_eq!(at, 1_200);
    }

    #[test]
    fn the_floor_is_capped_by_the_limit() {
        let fence = StampFence::default();
        fence.raise(10_000, 2_000, 1);
        assert_eq!(fence.floor(), 2_000);
        fence.raise(1_000, 5_000, 1);
        assert_eq!(fence.floor(), 2_000, "the floor never goes down");
    }

    #[tokio::test]
    async fn a_read_waits_for_proposals_stamped_before_it() {
        let fence = Arc::new(StampFence::default());
        let (_, early) = fence.enter(100, 3);
        let fenced = fence.raise(150, 1_000, 3);
        let (_, _late) = fence.enter(160, 3);
        assert!(!fence.wait(fenced, Duration::from_millis(20)).await);
        let waiter = {
            let fence = fence.clone();
            tokio::spawn(async move { fence.wait(fenced, Duration::from_secs(5)).await })
        };
        drop(early);
        assert!(
            waiter.await.unwrap(),
            "the later proposal is not waited for"
        );
    }

    #[tokio::test]
    async fn proposals_of_an_earlier_term_are_not_waited_for() {
        let fence = Arc::new(StampFence::default());
        let (_, _old) = fence.enter(100, 2);
        let fenced = fence.raise(150, 1_000, 3);
        assert!(fence.wait(fenced, Duration::from_millis(20)).await);
    }
}
