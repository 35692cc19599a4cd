//! Background managers and the supervisor that runs them.
//!
//! The leader-only managers (lease expiration, account reconciliation,
//! cluster housekeeping, tidying, finishing a joint membership change) run exactly while this node leads, is unsealed and
//! is not stopping. The supervisor follows leadership: it starts them when
//! the node becomes leader and, when leadership is lost, the node is sealed
//! or it shuts down, cancels them and *awaits* them (aborting stragglers at
//! a deadline) before anything they use is released. Seal, step-down and
//! shutdown all go through the same [`Supervisor::stop_managers`].
//! They also stop while this node's clock is not trusted (it is about to
//! hand leadership away, and could not propose meanwhile).
//!
//! The clock prober ([`clock`]) is not leader-only: it runs on every node
//! from the moment the peer listener serves, started and stopped by the
//! lifecycle next to the supervisor.

mod accounts;
pub mod clock;
mod expiration;
mod housekeeping;
mod membership;
mod tidy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_raft::ControlPlane;
use keel_web::{Component, ComponentState, Shared};
use tokio::sync::{Mutex, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How long managers get to finish after cancellation before they are
/// aborted.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How long a manager waits for its proposal in flight once cancelled
/// (well within [`STOP_DEADLINE`]).
pub(crate) const IN_FLIGHT_GRACE: Duration = Duration::from_secs(3);

/// What every manager gets.
#[derive(Clone)]
pub struct ManagerContext {
    /// The control plane.
    pub cp: ControlPlane,
    /// Shared web state (metrics).
    pub shared: Arc<Shared>,
    /// Configuration at start.
    pub config: Arc<Config>,
    /// Mutual TLS between nodes, when keel runs its peer CA.
    pub peer_tls: Option<Arc<crate::peer_tls::PeerTls>>,
}

/// The managers currently running.
struct Running {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Runs the leader-only managers while this node leads.
pub struct Supervisor {
    ctx: ManagerContext,
    running: Mutex<Option<Running>>,
    sealed: AtomicBool,
    stopping: AtomicBool,
    wake: Notify,
}

impl Supervisor {
    /// A supervisor for an unsealed node (Raft runs only unsealed).
    pub fn new(ctx: ManagerContext) -> Arc<Self> {
        ctx.shared
            .lifecycle
            .set_component(Component::Managers, ComponentState::Pending);
        Arc::new(Supervisor {
            ctx,
            running: Mutex::new(None),
            sealed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// Starts following leadership. The returned task ends after `stop`
    /// is cancelled and every manager has been stopped and awaited.
    pub fn spawn(self: &Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.follow(stop).await })
    }

    async fn follow(self: Arc<Self>, stop: CancellationToken) {
        // Not leader-only: every node keeps its own certificate current.
        let upkeep = self.ctx.peer_tls.clone().map(|tls| {
            tokio::spawn(crate::peer_tls::tend::run(
                tls,
                self.ctx.cp.clone(),
                self.ctx.shared.clone(),
                stop.clone(),
            ))
        });
        let mut last_handoff = tokio::time::Instant::now() - Duration::from_secs(60);
        loop {
            self.reconcile().await;
            let leading = self.ctx.cp.is_leader();
            if leading
                && self.sealed.load(Ordering::Acquire)
                && last_handoff.elapsed() > Duration::from_secs(2)
            {
                last_handoff = tokio::time::Instant::now();
                self.hand_off_leadership().await;
            }
            let cp = self.ctx.cp.clone();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = cp.wait_for_change(Duration::from_secs(1), move |s| (s.role == keel_raft::Role::Leader) != leading) => {}
            }
        }
        self.stopping.store(true, Ordering::Release);
        self.stop_managers().await;
        if let Some(task) = upkeep {
            let _ = task.await;
        }
    }

    /// Starts or stops the managers to match leadership and seal state.
    async fn reconcile(&self) {
        // Decide under the lock, so a concurrent seal cannot be undone.
        let mut running = self.running.lock().await;
        let want = self.ctx.cp.is_leader()
            && self.ctx.cp.clock().is_healthy()
            && !self.sealed.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
            && !self.ctx.cp.is_stopping();
        match (want, running.is_some()) {
            (true, false) => *running = Some(self.start_managers()),
            (false, true) => {
                if let Some(r) = running.take() {
                    self.stop(r).await;
                }
            }
            _ => {}
        }
    }

    fn start_managers(&self) -> Running {
        let board = &self.ctx.shared.lifecycle;
        board.set_component(Component::Managers, ComponentState::Starting);
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // Logged before the tasks run, so no manager's own first line can
        // come before it (on a loaded host a spawned task may run first).
        tracing::info!("leader: managers started");
        tasks.spawn(expiration::run(self.ctx.clone(), cancel.clone()));
        tasks.spawn(accounts::run(self.ctx.clone(), cancel.clone()));
        tasks.spawn(housekeeping::run(self.ctx.clone(), cancel.clone()));
        tasks.spawn(tidy::run(self.ctx.clone(), cancel.clone()));
        tasks.spawn(membership::run(self.ctx.clone(), cancel.clone()));
        board.set_component(Component::Managers, ComponentState::Running);
        Running { cancel, tasks }
    }

    /// Cancels the managers and waits for every one of them to end.
    async fn stop(&self, mut running: Running) {
        let board = &self.ctx.shared.lifecycle;
        board.set_component(Component::Managers, ComponentState::Stopping);
        running.cancel.cancel();
        let all_done = async { while running.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_DEADLINE, all_done).await.is_err() {
            tracing::warn!(
                left = running.tasks.len(),
                "managers did not stop in time; aborting them"
            );
            running.tasks.abort_all();
            while running.tasks.join_next().await.is_some() {}
        }
        board.set_component(Component::Managers, ComponentState::Stopped);
        tracing::info!("managers stopped");
    }

    /// Stops the managers if they run, and returns once they have ended.
    pub async fn stop_managers(&self) {
        let mut running = self.running.lock().await;
        if let Some(r) = running.take() {
            self.stop(r).await;
        }
    }

    /// The first half of a seal: managers stopped and awaited, the seal
    /// persisted, then leadership handed to an unsealed voter if this
    /// node leads. The lifecycle then stops Raft and drops the keys.
    pub async fn seal(&self) -> Result<(), String> {
        {
            // Holding the lock keeps the supervisor from restarting them.
            let mut running = self.running.lock().await;
            self.sealed.store(true, Ordering::Release);
            if let Some(r) = running.take() {
                self.stop(r).await;
            }
            self.ctx
                .cp
                .node_meta()
                .set_sealed(true)
                .map_err(|e| e.to_string())?;
            self.ctx.shared.set_sealed(true);
        }
        tracing::info!("sealed");
        if self.ctx.cp.is_leader() {
            self.hand_off_leadership().await;
        }
        Ok(())
    }

    /// A sealed leader hands leadership to an unsealed, reachable voter.
    async fn hand_off_leadership(&self) {
        match self.ctx.cp.hand_off_to_unsealed().await {
            Ok(to) => tracing::info!(to, "sealed leader handed leadership away"),
            Err(e) => tracing::warn!(error = %e, "sealed leader kept leadership"),
        }
    }
}
