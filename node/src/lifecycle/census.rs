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
//! or lease passing its deadline).

use std::sync::Arc;
use std::time::Duration;

use keel_raft::ControlPlane;
use keel_raft::clock::now_ms;
use keel_web::Shared;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Least time between two counts (a burst of writes costs one count).
const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Most time between two counts.
const MAX_INTERVAL: Duration = Duration::from_secs(1);

/// The running refresher.
pub struct CensusRefresher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Counts once and sets the gauges.
fn refresh(cp: &ControlPlane, shared: &Shared) {
    let now = now_ms();
    // Lease counts need the live deadline index (a frozen copy has none);
    // accounts and certificates are walked on the copy, off the lock.
    let (frozen, at, leases) = cp.local(|s| {
        let at = s.stamp_time(now);
        (s.frozen(), at, s.lease_census(at))
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
                let counted = tokio::task::spawn_blocking(move || refresh(&cp2, &shared2));
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = counted => {}
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(MIN_INTERVAL) => {}
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = applied.changed() => {}
                    _ = tokio::time::sleep(MAX_INTERVAL - MIN_INTERVAL) => {}
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
