//! The account reconciler (leader only): proposes `ExpireAccount` for every
//! account whose `expires_at` has passed and whose expiry is not yet
//! processed. Apply re-checks the deadline, so a renewal that races the
//! proposal wins. Renewal itself needs no reconciler: what an account owns
//! derives its state from the account at read and apply time.

use std::time::Duration;

use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Request};
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

const IDLE_POLL: Duration = Duration::from_millis(200);
const RETRY: Duration = Duration::from_secs(1);

/// Runs until `cancel`.
pub async fn run(ctx: ManagerContext, cancel: CancellationToken) {
    tracing::info!(manager = "accounts", "started");
    'run: while !cancel.is_cancelled() {
        let now = now_ms();
        let (due, next) = ctx
            .cp
            .local(|s| (s.accounts.due_for_expiry(now), s.accounts.next_expiry()));
        let mut failed = false;
        for name in due {
            let write = ctx
                .cp
                .write_on_leader(Request::Apply(Command::ExpireAccount {
                    name: name.clone(),
                }));
            tokio::pin!(write);
            let (result, stop) = tokio::select! {
                r = &mut write => (Some(r), false),
                _ = cancel.cancelled() => {
                    // Finish the proposal in flight (bounded), then stop.
                    (tokio::time::timeout(super::IN_FLIGHT_GRACE, &mut write).await.ok(), true)
                }
            };
            match result {
                Some(Ok(_)) => {
                    ctx.shared.metrics.account_expirations.inc();
                    tracing::info!(manager = "accounts", account = %name, "account expired; what it owns is suspended");
                }
                Some(Err(keel_raft::Error::NoLeader)) | None => failed = true,
                Some(Err(e)) => {
                    failed = true;
                    tracing::warn!(manager = "accounts", account = %name, error = %e, "account expiry failed; will retry");
                }
            }
            if stop {
                break 'run;
            }
        }
        let wait = if failed {
            RETRY
        } else {
            next.map_or(IDLE_POLL, |t| {
                Duration::from_millis(t.saturating_sub(now_ms())).min(IDLE_POLL)
            })
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
    tracing::info!(manager = "accounts", "stopping");
}
