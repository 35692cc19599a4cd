//! The lease expiration manager (leader only).
//!
//! Its index of deadlines is the state machine's own deadline index, which
//! is rebuilt whenever the state is loaded and kept exact by every apply,
//! so a new leader starts from the replicated deadlines with no scan. It
//! proposes `ExpireLeases` batches for leases whose deadline has passed;
//! apply re-checks every deadline against the proposal's time, so a stale
//! or repeated batch is harmless. One batch is in flight at a time. A batch
//! that fails is retried with backoff, counted and logged: a lease that
//! keeps failing stays due and visible (metric `lease_expiry_debt`), never
//! silently dropped.

use std::time::Duration;

use keel_raft::Error;
use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Outcome, Request, WriteResult};
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

/// Leases per `ExpireLeases` proposal.
const BATCH: usize = 2_000;
/// Longest sleep between checks when nothing is due.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Backoff bounds after a failed proposal.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs until `cancel`.
pub async fn run(ctx: ManagerContext, cancel: CancellationToken) {
    tracing::info!(manager = "expiration", "started");
    let mut backoff = BACKOFF_MIN;
    while !cancel.is_cancelled() {
        let now = now_ms();
        let (due, next) = ctx
            .cp
            .local(|s| (s.leases.due(now, BATCH), s.leases.next_deadline()));
        if due.is_empty() {
            let wait = next.map_or(IDLE_POLL, |t| {
                Duration::from_millis(t.saturating_sub(now)).min(IDLE_POLL)
            });
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
            continue;
        }
        let ids: Vec<u64> = due.iter().map(|(id, _)| *id).collect();
        let proposal = ctx
            .cp
            .write_on_leader(Request::Apply(Command::ExpireLeases { ids }));
        tokio::pin!(proposal);
        let result = tokio::select! {
            r = &mut proposal => r,
            _ = cancel.cancelled() => {
                // The batch is in the log already: let it finish (bounded)
                // and count it, so no work of this manager outlives its stop.
                if let Ok(r) = tokio::time::timeout(super::IN_FLIGHT_GRACE, &mut proposal).await {
                    record(&ctx, &due, r);
                }
                break;
            }
        };
        if record(&ctx, &due, result) {
            backoff = BACKOFF_MIN;
        } else {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
    tracing::info!(manager = "expiration", "stopping");
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
