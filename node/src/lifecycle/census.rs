//! The census refresher: keeps the state gauges of `/metrics` (leases,
//! accounts and certificates by state, the CA's remaining life) current,
//! so a scrape reads them and never walks the state (a scrape with a
//! million leases costs what it costs with none, and takes no lock apply
//! needs). Runs from Raft's start until stop, on every node.
//!
//! It counts on a frozen copy of the state (persistent maps: taking it
//! holds the state lock for microseconds), after every change of the
//! applied index but at most every [`MIN_INTERVAL`], and at least every
//! [`MAX_INTERVAL`], since states also change with time alone (an account
//! or lease passing its deadline); a slow count spaces the next one out.

use std::sync::Arc;
use std::time::Duration;

use keel_raft::ControlPlane;
use keel_raft::clock::now_ms;
use keel_web::Shared;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Least time between two counts (a burst of writes costs one count).
const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Most time between two counts (unless a count is slow: see
/// [`COST_SHARE`]).
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// After a count that took `t`, the next waits at least `COST_SHARE * t`
/// (the refresher uses at most about 1/20 of a core).
const COST_SHARE: u32 = 20;

/// The running refresher.
pub struct CensusRefresher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Counts once and sets the gauges.
fn refresh(cp: &ControlPlane, shared: &Shared) {
    let now = now_ms();
    // Lease counts need the live deadline index (a frozen copy has none);
    // accounts and certificates are walked on a copy of theirs, off the
    // lock.
    let (frozen, at, leases) = cp.local(|s| {
        let at = s.stamp_time(now);
        (s.frozen_for_census(), at, s.lease_census(at))
    });
    let census = frozen.census_with(at, leases);
    let ca_not_after = frozen.pki.ca().map(|ca| ca.not_after);
    shared.metrics.set_census(&census, ca_not_after, now);
}

impl CensusRefresher {
    /// Starts keeping `shared.metrics`' state gauges current from `cp`.
    pub fn start(cp: ControlPlane, shared: Arc<Shared>) -> Self {
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let task = tokio::spawn(async move {
            let mut applied = cp.applied_index();
            loop {
                // The walk is CPU work on a frozen copy: off the async
                // workers, and a slow one never holds up stop for long.
                let (cp2, shared2) = (cp.clone(), shared.clone());
                let started = tokio::time::Instant::now();
                let counted = tokio::task::spawn_blocking(move || refresh(&cp2, &shared2));
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = counted => {}
                }
                // A count that took long (a huge state) waits longer, so
                // the refresher never takes more than a small share of a
                // core from the requests it is counting.
                let rest = (started.elapsed() * COST_SHARE).max(MIN_INTERVAL);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(rest) => {}
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = applied.changed() => {}
                    _ = tokio::time::sleep(MAX_INTERVAL.saturating_sub(rest)) => {}
                }
            }
        });
        CensusRefresher { stop, task }
    }

    /// Stops it and waits for its task.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "census refresher failed");
        }
    }
}
