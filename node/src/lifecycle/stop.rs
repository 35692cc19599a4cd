//! Stopping a node, in the order ARCHITECTURE.md gives:
//!
//! 1. `/readyz` fails and new API requests are refused (draining).
//! 2. Managers, and the clock prober, are stopped and awaited (with a
//!    deadline).
//! 3. A leader hands leadership to a caught-up voter.
//! 4. The API listener stops accepting, drains in-flight requests within
//!    the shutdown timeout, then cuts what is left; then the peer listener.
//! 5. Raft shuts down; the web state gives back its handle to Raft and the
//!    node's hooks (which hold the managers), so nothing else holds the
//!    database.
//! 6. RocksDB is flushed and closed: the storage handle is the last one
//!    (checked and logged with the real count), and dropping it closes the
//!    database and releases its lock.
//!
//! Every step is awaited before the next begins, each within its own
//! deadline: a step that overruns it is reported `failed` at
//! `/v1/sys/lifecycle` and stop goes on. Parts that never started are
//! skipped, so a failed start unwinds through the same path.

use std::sync::Arc;
use std::time::Duration;

use keel_raft::{ControlPlane, Role, Storage};
use keel_web::{Component, ComponentState, LifecycleBoard, Phase, Shared};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::census::CensusRefresher;
use super::observe::RaftObserver;
use super::{RunningListener, TlsWatcher};
use crate::managers::Supervisor;
use crate::managers::clock::ClockProber;

/// How long a departing leader waits for a successor.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);
/// How long stop waits for Raft's last tasks to let go of the database.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the managers and the clock prober may take to stop.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Raft may take to shut down.
const RAFT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `step`, the stop of `component`, within `deadline`, and reports it
/// on the lifecycle board: stopped, or failed (its error, or the overrun).
async fn stop_within<F>(
    board: &LifecycleBoard,
    component: Component,
    deadline: Duration,
    step: F,
) -> bool
where
    F: std::future::Future<Output = Result<(), String>>,
{
    board.set_component(component, ComponentState::Stopping);
    let outcome = match tokio::time::timeout(deadline, step).await {
        Ok(result) => result,
        Err(_) => Err(format!("did not stop within {deadline:?}")),
    };
    match outcome {
        Ok(()) => {
            board.set_component(component, ComponentState::Stopped);
            true
        }
        Err(e) => {
            board.set_component(component, ComponentState::Failed);
            tracing::error!(component = component.name(), error = %e, "stop step failed");
            false
        }
    }
}

/// What a node has started so far.
pub struct Parts {
    /// Shared web state.
    pub shared: Arc<Shared>,
    /// Storage, once open.
    pub storage: Option<Storage>,
    /// The peer listener.
    pub peer: Option<RunningListener>,
    /// The API listener.
    pub api: Option<RunningListener>,
    /// Raft.
    pub cp: Option<ControlPlane>,
    /// The manager supervisor, its stop token and task.
    pub supervisor: Option<(Arc<Supervisor>, CancellationToken, JoinHandle<()>)>,
    /// The TLS file watcher.
    pub tls_watcher: Option<TlsWatcher>,
    /// The clock prober.
    pub clock_prober: Option<ClockProber>,
    /// The observer recording cluster events.
    pub observer: Option<RaftObserver>,
    /// The refresher of the metrics' state gauges.
    pub census: Option<CensusRefresher>,
}

impl Parts {
    /// Nothing started yet.
    pub fn new(shared: Arc<Shared>) -> Self {
        Parts {
            shared,
            storage: None,
            peer: None,
            api: None,
            cp: None,
            supervisor: None,
            tls_watcher: None,
            clock_prober: None,
            observer: None,
            census: None,
        }
    }
}

/// Stops everything in `parts`, in order.
pub async fn run(parts: Parts) {
    let Parts {
        shared,
        storage,
        peer,
        api,
        cp,
        supervisor,
        tls_watcher,
        clock_prober,
        observer,
        census,
    } = parts;
    let board = &shared.lifecycle;
    board.set_phase(Phase::Draining);
    shared.start_draining();
    shared.events.record(
        keel_web::events::EventKind::Lifecycle,
        keel_web::events::Source::Node,
        "node stopping",
    );
    tracing::info!(
        step = 1,
        "draining: readiness fails, new requests are refused"
    );

    if let Some((supervisor, stop, task)) = supervisor {
        stop.cancel();
        let joined = stop_within(board, Component::Managers, TASK_STOP_TIMEOUT, async {
            task.await
                .map_err(|e| format!("manager supervisor failed: {e}"))
        })
        .await;
        // It holds the control plane (and so the database): let go now.
        drop(supervisor);
        if joined {
            tracing::info!(step = 2, "managers stopped");
        }
    }
    if let Some(watcher) = tls_watcher {
        watcher.stop().await;
    }
    if let Some(observer) = observer {
        observer.stop().await;
    }
    if let Some(census) = census {
        census.stop().await;
    }
    if let Some(prober) = clock_prober
        && stop_within(board, Component::Clock, TASK_STOP_TIMEOUT, async {
            prober.stop().await;
            Ok(())
        })
        .await
    {
        tracing::info!(step = 2, "clock prober stopped");
    }

    if let Some(cp) = &cp
        && cp.status().role == Role::Leader
        && cp.status().voters.len() > 1
    {
        match tokio::time::timeout(HANDOFF_TIMEOUT, cp.transfer_leader(None)).await {
            Ok(Ok(to)) => tracing::info!(step = 3, to, "leadership handed off"),
            Ok(Err(e)) => {
                tracing::warn!(step = 3, error = %e, "leadership hand-off failed; followers will elect")
            }
            Err(_) => tracing::warn!(
                step = 3,
                "leadership hand-off timed out; followers will elect"
            ),
        }
    }

    // A listener's stop is bounded by its own drain deadline (the shutdown
    // timeout), after which it cuts what is left.
    for listener in [api, peer].into_iter().flatten() {
        let component = listener.component;
        board.set_component(component, ComponentState::Stopping);
        let report = listener.stop().await;
        board.set_component(component, ComponentState::Stopped);
        tracing::info!(
            step = 4,
            listener = component.name(),
            open = report.open_at_stop,
            cut = report.cut,
            "listener drained"
        );
    }

    if let Some(cp) = cp {
        let stopped = stop_within(board, Component::Raft, RAFT_STOP_TIMEOUT, async {
            cp.shutdown().await.map_err(|e| e.to_string())
        })
        .await;
        board.set_component(Component::Cluster, ComponentState::Stopped);
        if stopped {
            tracing::info!(step = 5, "raft stopped");
        }
    }
    // The web state outlives stop; what it still holds of Raft (the handle,
    // the node's hooks and through them the managers) goes now.
    let (installed, control) = shared.retire();
    drop((installed, control));

    if let Some(storage) = storage {
        board.set_component(Component::Storage, ComponentState::Stopping);
        match storage.flush() {
            Ok(()) => board.set_component(Component::Storage, ComponentState::Stopped),
            Err(e) => {
                board.set_component(Component::Storage, ComponentState::Failed);
                tracing::error!(error = %e, "storage flush failed");
            }
        }
        let handles = storage.wait_sole_handle(CLOSE_TIMEOUT).await;
        if handles == 1 {
            drop(storage);
            tracing::info!(step = 6, handles, "storage flushed and closed");
        } else {
            board.set_component(Component::Storage, ComponentState::Failed);
            tracing::error!(
                step = 6,
                handles,
                "storage flushed but still held elsewhere: it closes only at exit"
            );
        }
    }
    shared.audit.sync();
    board.set_phase(Phase::Stopped);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keel_web::{Component, ComponentState, LifecycleBoard};

    use super::stop_within;

    #[tokio::test]
    async fn a_stop_step_that_overruns_or_fails_is_reported_failed_and_stop_goes_on() {
        let board = LifecycleBoard::default();
        let deadline = Duration::from_millis(50);
        let stopped = stop_within(&board, Component::Managers, deadline, async { Ok(()) }).await;
        assert!(stopped);
        assert_eq!(
            board.component(Component::Managers),
            ComponentState::Stopped
        );

        let hung = stop_within(&board, Component::Clock, deadline, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        assert!(!hung, "a step past its deadline is not waited for");
        assert_eq!(board.component(Component::Clock), ComponentState::Failed);

        let failed = stop_within(&board, Component::Raft, deadline, async {
            Err("shutdown failed".to_string())
        })
        .await;
        assert!(!failed);
        assert_eq!(board.component(Component::Raft), ComponentState::Failed);
        // Untouched components keep their state, in start order.
        let view = board.view();
        let names: Vec<&str> = view.components.iter().map(|c| c.name.as_str()).collect();
        let expected: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, expected);
        assert_eq!(board.component(Component::Storage), ComponentState::Pending);
    }
}
