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
//! Every step is awaited before the next begins; parts that never started
//! are skipped, so a failed start unwinds through the same path.

use std::sync::Arc;
use std::time::Duration;

use keel_raft::{ControlPlane, Role, Storage};
use keel_web::{ComponentState, Phase, Shared};
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
        board.set_component("managers", ComponentState::Stopping);
        stop.cancel();
        if let Err(e) = task.await {
            tracing::error!(error = %e, "manager supervisor failed");
        }
        // It holds the control plane (and so the database): let go now.
        drop(supervisor);
        board.set_component("managers", ComponentState::Stopped);
        tracing::info!(step = 2, "managers stopped");
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
    if let Some(prober) = clock_prober {
        board.set_component("clock", ComponentState::Stopping);
        prober.stop().await;
        board.set_component("clock", ComponentState::Stopped);
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

    for listener in [api, peer].into_iter().flatten() {
        let name = listener.name;
        board.set_component(name, ComponentState::Stopping);
        let report = listener.stop().await;
        board.set_component(name, ComponentState::Stopped);
        tracing::info!(
            step = 4,
            listener = name,
            open = report.open_at_stop,
            cut = report.cut,
            "listener drained"
        );
    }

    if let Some(cp) = cp {
        board.set_component("raft", ComponentState::Stopping);
        match cp.shutdown().await {
            Ok(()) => board.set_component("raft", ComponentState::Stopped),
            Err(e) => {
                board.set_component("raft", ComponentState::Failed);
                tracing::error!(error = %e, "raft shutdown failed");
            }
        }
        board.set_component("cluster", ComponentState::Stopped);
        tracing::info!(step = 5, "raft stopped");
    }
    // The web state outlives stop; what it still holds of Raft (the handle,
    // the node's hooks and through them the managers) goes now.
    let (installed, control) = shared.retire();
    drop((installed, control));

    if let Some(storage) = storage {
        board.set_component("storage", ComponentState::Stopping);
        match storage.flush() {
            Ok(()) => board.set_component("storage", ComponentState::Stopped),
            Err(e) => {
                board.set_component("storage", ComponentState::Failed);
                tracing::error!(error = %e, "storage flush failed");
            }
        }
        let handles = storage.wait_sole_handle(CLOSE_TIMEOUT).await;
        if handles == 1 {
            drop(storage);
            tracing::info!(step = 6, handles, "storage flushed and closed");
        } else {
            board.set_component("storage", ComponentState::Failed);
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
