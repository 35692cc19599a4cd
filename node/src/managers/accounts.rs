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
    while !cancel.is_cancelled() {
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
            let result = tokio::select! {
                _ = cancel.cancelled() => break,
                r = write => r,
            };
            match result {
                Ok(_) => {
                    ctx.shared.metrics.account_expirations.inc();
                    tracing::info!(manager = "accounts", account = %name, "account expired; what it owns is suspended");
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(manager = "accounts", account = %name, error = %e, "account expiry failed; will retry");
                }
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
