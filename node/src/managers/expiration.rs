//! The lease expiration manager (leader only).
//!
//! Its index of deadlines is the state machine's own deadline index, which
//! is rebuilt whenever the state is loaded and kept exact by every apply,
//! so a new leader starts from the replicated deadlines with no scan. It
//! proposes `ExpireLeases` batches for leases whose deadline has passed;
//! apply re-checks every deadline against the proposal's time, so a stale
//! or repeated batch is harmless. Up to [`IN_FLIGHT`] batches are in
//! flight at a time, each starting after the last lease the one before
//! listed. A batch that fails is retried with backoff, counted and logged:
//! a lease that keeps failing stays due and visible (metric
//! `lease_expiry_debt`), never silently dropped.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use keel_raft::Error;
use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Outcome, Request, WriteResult};
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

/// Leases per `ExpireLeases` proposal.
const BATCH: usize = 2_000;
/// Proposals in flight at once: while one waits for its commit the next
/// is already replicating, so a storm of expiries is not paced by one
/// round trip and fsync per batch (openraft sends and syncs the batches
/// waiting together as one). A request that arrives in a storm waits
/// behind up to `IN_FLIGHT * BATCH` expiries: on the 2-core reference
/// machine 4 in flight expired a million leases in about 6 s with other
/// requests at p99 ~110 ms, 8 in about 4.4-5.2 s at p99 150-200 ms.
const IN_FLIGHT: usize = 8;
/// Longest sleep between checks when nothing is due.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Backoff bounds after a failed proposal.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A lease listed in a batch: `(id, deadline)`.
type Due = Vec<(u64, u64)>;

/// Runs until `cancel`.
pub async fn run(ctx: ManagerContext, cancel: CancellationToken) {
    tracing::info!(manager = "expiration", "started");
    let mut backoff = BACKOFF_MIN;
    let mut in_flight = FuturesUnordered::new();
    // The `(deadline, id)` of the last lease proposed while batches are in
    // flight; the next batch starts after it. Forgotten whenever nothing
    // is in flight or a batch failed, so every due lease is looked at again.
    let mut proposed_up_to: Option<(u64, u64)> = None;
    while !cancel.is_cancelled() {
        while in_flight.len() < IN_FLIGHT {
            let now = now_ms();
            let due = ctx
                .cp
                .local(|s| s.leases.due_after(now, proposed_up_to, BATCH));
            let Some(&(id, deadline)) = due.last() else {
                break;
            };
            proposed_up_to = Some((deadline, id));
            in_flight.push(propose(ctx.clone(), due));
        }
        if in_flight.is_empty() {
            proposed_up_to = None;
            let now = now_ms();
            let next = ctx.cp.local(|s| s.leases.next_deadline());
            let wait = next.map_or(IDLE_POLL, |t| {
                Duration::from_millis(t.saturating_sub(now)).min(IDLE_POLL)
            });
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
            continue;
        }
        let done = tokio::select! {
            done = in_flight.next() => done,
            _ = cancel.cancelled() => break,
        };
        let Some((due, result)) = done else { continue };
        if record(&ctx, &due, result) {
            backoff = BACKOFF_MIN;
        } else {
            proposed_up_to = None;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
    // Batches in flight are in the log already: let them finish (bounded)
    // and count them, so no work of this manager outlives its stop.
    let grace = tokio::time::sleep(super::IN_FLIGHT_GRACE);
    tokio::pin!(grace);
    while !in_flight.is_empty() {
        tokio::select! {
            Some((due, result)) = in_flight.next() => { record(&ctx, &due, result); }
            _ = &mut grace => break,
        }
    }
    tracing::info!(manager = "expiration", "stopping");
}

/// Proposes one batch on this node while it leads.
async fn propose(ctx: ManagerContext, due: Due) -> (Due, Result<WriteResult, Error>) {
    let ids = due.iter().map(|(id, _)| *id).collect();
    let result = ctx
        .cp
        .write_on_leader(Request::Apply(Command::ExpireLeases { ids }))
        .await;
    (due, result)
}

/// Records the outcome of one batch in the metrics and the log. `true` if
/// it applied.
fn record(ctx: &ManagerContext, due: &[(u64, u64)], result: Result<WriteResult, Error>) -> bool {
    let metrics = &ctx.shared.metrics;
    match result {
        Ok(written) => {
            let applied_at = now_ms();
            if let Outcome::Count(n) = written.outcome {
                metrics.lease_expirations.inc_by(n);
            }
            for (_, deadline) in due {
                let lag_ms = applied_at.saturating_sub(*deadline);
                metrics.lease_expiry_lag.observe(lag_ms as f64 / 1000.0);
            }
            tracing::debug!(manager = "expiration", batch = due.len(), "expired a batch");
            true
        }
        Err(Error::NoLeader | Error::ClockOffset(_)) => {
            // Leadership just moved, or this node's clock stopped being
            // trusted: the supervisor is about to stop this manager and the
            // next leader's takes over.
            tracing::debug!(
                manager = "expiration",
                "not the leader (or its clock is not trusted); batch left to the next leader"
            );
            false
        }
        Err(e) => {
            metrics.lease_revoke_failures.inc();
            tracing::warn!(
                manager = "expiration",
                error = %e,
                pending = due.len(),
                "expiry proposal failed; will retry"
            );
            false
        }
    }
}
