//! The [`ControlPlane`]: the one handle the web layer and the node use to
//! reach the replicated core. It hides openraft behind keel's vocabulary:
//! writes of [`Request`]s, reads at a [`Consistency`], the cluster view,
//! membership changes and the peer RPCs.
//!
//! Writes go to the leader: a follower forwards the unstamped request over
//! the peer link, and the leader stamps and proposes it. Reads run against
//! the local state after a read barrier that the consistency level asks for.

mod backup;
mod clock;
mod decommission;
mod fence;
mod membership;
mod ops;
mod peer;
mod read;
mod snapshot_recv;
mod trace;
mod view;
mod write;

#[cfg(test)]
mod close_test;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::rt::WatchReceiver;
use openraft::{Config, SnapshotPolicy};
use tokio::sync::watch;

pub use backup::{Export, ReceivedBackup, RestoreReport};
pub use decommission::{DecommissionReport, DecommissionRequest};
pub use membership::MembershipChange;
pub use ops::{Answer, Caller, Written};
pub use read::Consistency;
pub use trace::trace_writes;
pub use view::{ClusterView, MemberView, RaftStatus, Role};

use crate::domain::State;
use crate::error::Error;
use crate::network::{AckedWatermarks, NetworkFactory};
use crate::settings::{Policy, RaftSettings};
use crate::skew::ClockMonitor;
use crate::store::{LogEnd, NodeMeta, SharedMachine, Storage};
use crate::transport::{ClusterIdentity, PeerClient};
use crate::types::{KeelRaft, Member, NodeId, NodeName, name_of};

/// The handle to a running Raft node and its state machine. Cheap to clone.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    node_id: NodeId,
    raft: KeelRaft,
    machine: Arc<SharedMachine>,
    peers: PeerClient,
    settings: RaftSettings,
    policy: RwLock<Arc<Policy>>,
    advertise: Member,
    node_meta: NodeMeta,
    identity: ClusterIdentity,
    /// Where snapshots received from the leader are written.
    snapshot_dir: PathBuf,
    /// The node's keys (saved snapshots are encrypted with them).
    keeper: Arc<crate::seal::Keeper>,
    stopping: AtomicBool,
    /// Set once this node learns that its log ends below what it
    /// acknowledged: the reason, for the log and the node's restart.
    retired_tx: watch::Sender<Option<String>>,
    /// Between a retire notice from the leader and the node marking its
    /// data directory decommissioned.
    decommission: decommission::DecommissionSignals,
    clock: ClockMonitor,
    /// Where this node's log ends (last entry or purge point), as its log
    /// store writes it: read from storage when Raft starts, then moved by
    /// every append, truncation and purge. openraft's metrics say the same
    /// later (they are empty until its first report, and lag under load),
    /// and a leader's true claim that this node acknowledged an index must
    /// never look like a lost log.
    log_end: LogEnd,
    /// Orders clock-derived reads against writes stamped before them.
    fence: Arc<fence::StampFence>,
}

impl ControlPlane {
    /// Starts Raft over `storage`. The caller guarantees the web/transport
    /// layer already serves (Raft RPCs may arrive as soon as this returns).
    /// `clock` is the node's clock monitor: Raft starts with elections
    /// enabled only if it already trusts this node's clock.
    pub async fn start(
        settings: RaftSettings,
        storage: &Storage,
        peers: PeerClient,
        advertise: Member,
        clock: ClockMonitor,
    ) -> Result<Self, Error> {
        let config = Config {
            cluster_name: "keel".into(),
            heartbeat_interval: settings.heartbeat_interval.as_millis() as u64,
            election_timeout_min: settings.election_timeout_min.as_millis() as u64,
            election_timeout_max: settings.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: 120_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_threshold),
            max_in_snapshot_log_to_keep: settings.logs_kept_after_snapshot,
            enable_pre_vote: Some(true),
            // Batches are bounded in bytes by the log reader and the peer
            // network (see `crate::batch`); the count only caps batches
            // of many tiny entries.
            max_payload_entries: 1024,
            // A Raft id always means the same log: a wiped data directory
            // comes back as a new incarnation (a new id), and one whose log
            // ends below what it acknowledged is refused and retired (see
            // `network` and `check_acknowledged`). So a follower's log never
            // reverts, and openraft must never be told to tolerate it.
            allow_log_reversion: Some(false),
            // A node whose clock is not trusted must not lead; the clock
            // prober enables elections once it is.
            enable_elect: clock.is_healthy(),
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Internal(format!("raft config: {e}")))?;
        {
            // Reading the log state sets where the log ends.
            use openraft::storage::RaftLogStorage;
            storage
                .log_store()
                .get_log_state()
                .await
                .map_err(|e| Error::Storage(format!("reading the log state: {e}")))?;
        }
        let state_machine = storage.state_machine();
        let machine = state_machine.shared();
        let network = NetworkFactory::new(
            peers.clone(),
            AckedWatermarks::default(),
            settings.max_peer_message_bytes,
            settings.rpc_timeout,
        );
        let raft = KeelRaft::new(
            settings.node_id,
            Arc::new(config),
            network,
            storage.log_store(),
            state_machine,
        )
        .await
        .map_err(|e| Error::Storage(format!("raft start: {e}")))?;
        Ok(ControlPlane {
            inner: Arc::new(Inner {
                node_id: settings.node_id,
                raft,
                machine,
                peers,
                policy: RwLock::new(Arc::new(settings.policy.clone())),
                settings,
                advertise,
                node_meta: storage.node_meta(),
                identity: storage.identity().clone(),
                snapshot_dir: storage.snapshot_dir().to_path_buf(),
                keeper: storage.keeper().clone(),
                stopping: AtomicBool::new(false),
                retired_tx: watch::channel(None).0,
                decommission: Default::default(),
                clock,
                log_end: storage.log_end(),
                fence: Arc::default(),
            }),
        })
    }

    /// This node's Raft id (its current incarnation).
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// This node's name (`--node-id`), the same for every incarnation.
    pub fn name(&self) -> NodeName {
        name_of(self.inner.node_id)
    }

    /// Checks a leader's claim that this node acknowledged entries up to
    /// `acknowledged` (committed ones). A log that ends below it lost
    /// acknowledged data (an old disk image, a damaged volume): the node
    /// must not speak with this identity again. It refuses, and asks the
    /// node to retire this data directory and rejoin as a new incarnation.
    pub fn check_acknowledged(&self, acknowledged: u64) -> Result<(), Error> {
        // On every AppendEntries. Each term is an index this node holds
        // (its log, a snapshot, what it applied); the log store's end is
        // the one that never lags: openraft's metrics are published after
        // the entries they count were acknowledged, and a busy follower
        // read them one entry short of what it had acknowledged.
        let last = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow_watched();
            m.last_log_index
                .max(m.snapshot.map(|l| l.index))
                .max(m.purged.map(|l| l.index))
                .unwrap_or(0)
                .max(self.inner.log_end.get())
                .max(self.inner.machine.applied())
        };
        if acknowledged <= last {
            return Ok(());
        }
        let reason = format!(
            "this node's log ends at index {last}, but it acknowledged index {acknowledged}: \
             its data directory is older than its Raft identity (restored from an old copy?)"
        );
        self.retire(reason.clone());
        Err(Error::LogReverted(reason))
    }

    /// Checks what a peer that knows a leader says of the membership: if
    /// it lists another incarnation of this node's name and not this one,
    /// the cluster replaced this incarnation (this data directory is an
    /// old copy of a node that has since come back with new data). It can
    /// never be a member again, so it retires, like a reverted log, and the
    /// node rejoins as a new incarnation. Returns whether it retired.
    ///
    /// Only a membership newer than this node's own counts: a peer that
    /// resumed from an old image of its own data lists members the cluster
    /// has since replaced (an earlier incarnation of this very node), and
    /// believing it would retire a healthy node. A node whose data is a
    /// real old copy holds a membership older than the one that replaced
    /// it, which was decided after that copy was taken.
    pub fn check_superseded(&self, peer: &crate::wire::Hello) -> bool {
        let me = self.node_id();
        if peer.leader.is_none() || peer.members.contains(&me) {
            return false;
        }
        // A peer that does not say (an older keel) is not believed.
        let Some(theirs) = peer.membership_at else {
            return false;
        };
        if self.membership_at().is_some_and(|ours| theirs <= ours) {
            return false;
        }
        let Some(newer) = peer
            .members
            .iter()
            .find(|id| name_of(**id) == self.name() && **id != me)
        else {
            return false;
        };
        self.retire(format!(
            "node {} says the cluster replaced this incarnation (raft id {me}) with raft id {newer}, \
             in a membership newer than this node's (decided at term {} index {}): \
             this data directory is an old copy",
            peer.node_id, theirs.term, theirs.index
        ));
        true
    }

    /// Asks the node to retire this data directory, with `reason` (logged
    /// once).
    fn retire(&self, reason: String) {
        let first = self.inner.retired_tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.clone());
                true
            } else {
                false
            }
        });
        if first {
            tracing::error!(reason = %reason, "retiring this data directory");
        }
    }

    /// Resolves with the reason once this node must retire its data
    /// directory (see [`ControlPlane::check_acknowledged`]).
    pub async fn retired(&self) -> String {
        let mut rx = self.inner.retired_tx.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The settings the core runs with.
    pub fn settings(&self) -> &RaftSettings {
        &self.inner.settings
    }

    /// The stamping policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the stamping policy (reload): requests stamped from now on
    /// follow it.
    pub fn set_policy(&self, policy: Policy) {
        *self.inner.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    /// This node's advertised addresses.
    pub fn advertise(&self) -> &Member {
        &self.inner.advertise
    }

    /// The peer client (for bootstrap and join).
    pub fn peers(&self) -> &PeerClient {
        &self.inner.peers
    }

    /// Node-local metadata (seal state, identity).
    pub fn node_meta(&self) -> &NodeMeta {
        &self.inner.node_meta
    }

    /// The cluster this node belongs to, once known.
    pub fn identity(&self) -> &ClusterIdentity {
        &self.inner.identity
    }

    /// A snapshot of Raft's view of the cluster.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        RaftStatus::from_metrics(&m)
    }

    /// Whether this node is the leader right now. Cheap: reads one field of
    /// the metrics (it is on every request's path).
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow_watched().state == openraft::ServerState::Leader
    }

    /// The Raft term this node is in.
    pub(crate) fn current_term(&self) -> u64 {
        self.inner.raft.metrics().borrow_watched().current_term
    }

    /// Where the membership in force on this node was decided.
    pub fn membership_at(&self) -> Option<crate::wire::MembershipAt> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .log_id()
            .as_ref()
            .map(|l| crate::wire::MembershipAt {
                term: l.leader_id.term,
                index: l.index,
            })
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow_watched().current_leader
    }

    /// The peer address of a member, from the membership in force.
    pub fn peer_addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.peer_addr.clone())
    }

    /// Waits until `cond` holds for the Raft status, up to `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        cond: impl Fn(&RaftStatus) -> bool,
    ) -> Result<RaftStatus, Error> {
        let mut rx = self.inner.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = RaftStatus::from_metrics(&rx.borrow_watched());
            if cond(&status) {
                return Ok(status);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::ShuttingDown),
                Err(_) => return Err(Error::Timeout("waiting for a cluster condition".into())),
            }
        }
    }

    /// Waits until `cond` holds for the Raft status, up to `timeout`,
    /// looking again only when the role, leader, term or membership
    /// changes (or Raft stops): for long waits on those, which would
    /// otherwise wake on every write. A condition on anything else (log
    /// progress) must use [`ControlPlane::wait_for`].
    pub async fn wait_for_change(
        &self,
        timeout: Duration,
        cond: impl Fn(&RaftStatus) -> bool,
    ) -> Result<RaftStatus, Error> {
        let mut rx = self.inner.raft.server_metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Its own facts from the watch that woke it: openraft
            // publishes them just before the rest of its metrics.
            let server = rx.borrow_watched().clone();
            let status = self.status().with_server(&server);
            if cond(&status) {
                return Ok(status);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // Raft stopped: its last metrics say how.
                Ok(Err(_)) => {
                    let status = self.status();
                    return if cond(&status) {
                        Ok(status)
                    } else {
                        Err(Error::ShuttingDown)
                    };
                }
                Err(_) => return Err(Error::Timeout("waiting for a cluster change".into())),
            }
        }
    }

    /// Whether Raft holds any state (vote, log or membership).
    pub async fn is_initialized(&self) -> Result<bool, Error> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Initializes a pristine cluster with these voters.
    pub async fn initialize(&self, members: BTreeMap<NodeId, Member>) -> Result<(), Error> {
        self.inner
            .raft
            .initialize(members)
            .await
            .map_err(|e| Error::Internal(format!("initialize: {e}")))
    }

    /// Reads the local state without any barrier.
    pub fn local<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let m = self.inner.machine.read();
        f(&m.state)
    }

    /// The locally applied index, as a watch.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.inner.machine.applied_index()
    }

    /// Asks Raft to build a snapshot now.
    pub async fn trigger_snapshot(&self) -> Result<(), Error> {
        self.inner
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Stops Raft and waits for its tasks to finish. Idempotent.
    pub async fn shutdown(&self) -> Result<(), Error> {
        if self.inner.stopping.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| Error::Internal(format!("raft shutdown: {e}")))
    }
}
