//! Tidying (leader only): proposes `TidyRecords` whenever something is past
//! its retention, so expired certificates leave the CRL, their records go
//! after `--pki-retention`, and old idempotency keys after
//! `--idempotency-retention`. The check is a cheap look at the derived
//! indexes; apply re-checks everything against the stamped time.

use std::time::Duration;

use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Outcome, Request};
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

/// How often the leader looks for something to tidy.
const PERIOD: Duration = Duration::from_secs(1);

/// One pass: propose a tidy if anything is due.
async fn pass(ctx: &ManagerContext) -> Result<(), keel_raft::Error> {
    let retention = ctx.cp.policy().retention;
    let now = now_ms();
    if !ctx.cp.local(|s| s.tidy_due(now, &retention)) {
        return Ok(());
    }
    let written = ctx
        .cp
        .write_on_leader(Request::Apply(Command::TidyRecords { retention }))
        .await?;
    if let Outcome::Count(n) = written.outcome {
        tracing::info!(manager = "tidy", removed = n, "tidied expired records");
    }
    Ok(())
}

/// Runs until `cancel`.
pub async fn run(ctx: ManagerContext, cancel: CancellationToken) {
    tracing::info!(manager = "tidy", "started");
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = pass(&ctx) => r,
        };
        if let Err(e) = result {
            tracing::warn!(manager = "tidy", error = %e, "tidying failed; will retry");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
    tracing::info!(manager = "tidy", "stopping");
}
