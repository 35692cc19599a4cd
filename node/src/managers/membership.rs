//! Membership upkeep (leader only): finishes a joint membership change that
//! a former leader left half done (see
//! `ControlPlane::finish_joint_membership`). A leader's own change moves
//! from the joint configuration to the new one within its call, so the
//! manager waits until the joint configuration has stood for [`SETTLE`]
//! before it steps in; stepping in early is harmless too (openraft refuses
//! while a change is uncommitted, and finishing twice changes nothing).

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ManagerContext;

/// How often the membership is looked at.
const PERIOD: Duration = Duration::from_millis(500);
/// How long a joint configuration must stand before this leader finishes it.
const SETTLE: Duration = Duration::from_secs(2);

/// Runs until `cancel`.
pub async fn run(ctx: ManagerContext, cancel: CancellationToken) {
    tracing::info!(manager = "membership", "started");
    let mut joint_since: Option<Instant> = None;
    loop {
        let joint = ctx.cp.status().joint;
        let since = *joint_since.get_or_insert_with(Instant::now);
        if !joint {
            joint_since = None;
        } else if since.elapsed() >= SETTLE {
            let finish = ctx.cp.finish_joint_membership();
            let result = tokio::select! {
                _ = cancel.cancelled() => break,
                r = finish => r,
            };
            match result {
                Ok(_) => joint_since = None,
                Err(e) => tracing::warn!(
                    manager = "membership",
                    error = %e,
                    "could not finish the joint membership change; will retry"
                ),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
    tracing::info!(manager = "membership", "stopping");
}
