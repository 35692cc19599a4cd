//! Tidying (leader only): proposes `TidyRecords` whenever something is past
//! its retention, so expired certificates leave the CRL, their records go
//! after `--pki-retention`, and old idempotency keys after
//! `--idempotency-retention`. The check is a cheap look at the derived
//! indexes; apply re-checks everything against the stamped time.

use std::time::Duration;

use keel_raft::clock::now_ms;
use keel_raft::command::{Command, Outcome, Request};
use keel_web::events::Source;
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

/// How far past now a token's deadline may be and still make it a
/// candidate for the tidy being proposed.
const CANDIDATE_MARGIN_MS: u64 = 5_000;

/// How often the leader looks for something to tidy.
const PERIOD: Duration = Duration::from_secs(1);

/// One pass: propose a tidy if anything is due.
async fn pass(ctx: &ManagerContext) -> Result<(), keel_raft::Error> {
    let retention = ctx.cp.policy().retention;
    let now = now_ms();
    if !ctx.cp.local(|s| s.tidy_due(now, &retention)) {
        return Ok(());
    }
    // Tokens that may go with this tidy (apply's stamped time is a little
    // later than `now`); which of them did go is read back afterwards.
    let candidates = ctx
        .cp
        .local(|s| s.tokens.expired_at(now + CANDIDATE_MARGIN_MS));
    let written = ctx
        .cp
        .write_on_leader(Request::Apply(Command::TidyRecords { retention }))
        .await?;
    if let Outcome::Count(n) = written.outcome {
        tracing::info!(manager = "tidy", removed = n, "tidied expired records");
    }
    let removed: Vec<String> = ctx.cp.local(|s| {
        candidates
            .into_iter()
            .filter(|a| s.tokens.get(a).is_none())
            .collect()
    });
    if !removed.is_empty() {
        ctx.shared.audit.event(
            "tokens_expired",
            Source::Manager.as_str(),
            &format!(
                "expired tokens removed at log index {}: {}",
                written.log_index.unwrap_or_default(),
                removed.join(", ")
            ),
        );
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
