//! The state machine store: the in-memory domain [`State`] behind a lock,
//! plus the persisted snapshot it is rebuilt from.
//!
//! `apply` decodes nothing itself (entries arrive decoded), hands each
//! proposal to `State::apply`, records `last_applied`, and only then
//! answers the waiting clients. Readers share the same lock and may wait for
//! a given applied index through a watch channel (follower reads).
//!
//! Snapshots are files (see [`super::snapshot`]): a build streams the state
//! into a temporary file, an install decodes the state from a buffered
//! reader over the received file before making it current, so neither
//! holds the snapshot's bytes in memory.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::DB;
use tokio::sync::watch;

use super::node_meta::NodeMeta;
use super::snapshot;
use crate::command::{Applied, Outcome};
use crate::domain::State;
use crate::seal::Keeper;
use crate::transport::ClusterIdentity;
use crate::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};

/// The applied state of a replica.
#[derive(Debug, Default)]
pub struct Machine {
    /// The domain state.
    pub state: State,
    /// The last log id applied (or installed from a snapshot).
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
}

/// The machine shared between openraft's apply task and readers.
pub struct SharedMachine {
    machine: RwLock<Machine>,
    applied_tx: watch::Sender<u64>,
    node_meta: NodeMeta,
    identity: ClusterIdentity,
    cluster_id_recorded: AtomicBool,
}

impl SharedMachine {
    /// Read access to the applied state. Hold it briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, Machine> {
        self.machine.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of the applied index, for waiting until a read index is
    /// applied locally.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The index applied so far.
    pub fn applied(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    fn publish(&self, last_applied: Option<LogId>) {
        let index = last_applied.map_or(0, |l| l.index);
        self.applied_tx.send_if_modified(|cur| {
            if *cur != index {
                *cur = index;
                true
            } else {
                false
            }
        });
    }

    /// Persists the cluster id the first time it is applied, so the next
    /// start can check it before Raft runs.
    fn record_cluster_id(&self, cluster_id: Option<&str>) -> io::Result<()> {
        if let Some(id) = cluster_id
            && !self.cluster_id_recorded.load(Ordering::Acquire)
        {
            if self
                .node_meta
                .cluster_id()
                .map_err(super::io_err)?
                .as_deref()
                != Some(id)
            {
                self.node_meta.set_cluster_id(id).map_err(super::io_err)?;
            }
            self.identity.set(id);
            self.cluster_id_recorded.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// The state machine handed to openraft (and its snapshot builder).
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<SharedMachine>,
    db: Arc<DB>,
    keeper: Arc<Keeper>,
    /// Where snapshot files live.
    snapshot_dir: Arc<PathBuf>,
}

impl StateMachineStore {
    pub(crate) fn new(
        db: Arc<DB>,
        identity: ClusterIdentity,
        snapshot_dir: PathBuf,
        keeper: Arc<Keeper>,
    ) -> Self {
        let (applied_tx, _) = watch::channel(0);
        let shared = Arc::new(SharedMachine {
            machine: RwLock::new(Machine::default()),
            applied_tx,
            node_meta: NodeMeta::new(db.clone()),
            identity,
            cluster_id_recorded: AtomicBool::new(false),
        });
        StateMachineStore {
            shared,
            db,
            keeper,
            snapshot_dir: Arc::new(snapshot_dir),
        }
    }

    /// The shared machine, for readers.
    pub fn shared(&self) -> Arc<SharedMachine> {
        self.shared.clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Machine> {
        self.shared
            .machine
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let shared = self.shared.clone();
        let db = self.db.clone();
        let dir = self.snapshot_dir.clone();
        let keeper = self.keeper.clone();
        let (meta, file) = tokio::task::spawn_blocking(move || {
            // A frozen copy is taken under the read lock (O(1): the tables
            // are persistent maps that share storage) and encoded after
            // it is released, so apply never waits for the encoding.
            let (meta, frozen) = {
                let m = shared.read();
                let meta = SnapshotMeta {
                    last_log_id: m.last_applied,
                    last_membership: m.membership.clone(),
                };
                (meta, m.state.frozen())
            };
            let file = snapshot::write_to_temp(&dir, &keeper, &frozen)?;
            let file = snapshot::publish(&db, &dir, &meta, file)?;
            Ok::<_, io::Error>((meta, file))
        })
        .await
        .map_err(super::io_err)??;
        tracing::info!(
            last_log_index = meta.last_log_id.map(|l| l.index),
            bytes = file.len(),
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: file,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let m = self.shared.read();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let batch: Vec<EntryResponder<TypeConfig>> = entries.try_collect().await?;
        let mut replies = Vec::with_capacity(batch.len());
        let (last_applied, cluster_id) = {
            let mut m = self.write();
            for (entry, responder) in batch {
                let done = Applied {
                    response: Ok(Outcome::Done),
                    replayed: false,
                };
                let response = match &entry.payload {
                    EntryPayload::Blank => done,
                    EntryPayload::Normal(proposal) => m.state.apply_traced(proposal),
                    EntryPayload::Membership(membership) => {
                        m.membership =
                            StoredMembership::new(Some(entry.log_id), membership.clone());
                        done
                    }
                };
                m.last_applied = Some(entry.log_id);
                if let Some(responder) = responder {
                    replies.push((responder, response));
                }
            }
            (m.last_applied, m.state.cluster.cluster_id.clone())
        };
        self.shared.record_cluster_id(cluster_id.as_deref())?;
        self.shared.publish(last_applied);
        for (responder, response) in replies {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: SnapshotData,
    ) -> Result<(), io::Error> {
        let db = self.db.clone();
        let dir = self.snapshot_dir.clone();
        let meta_copy = meta.clone();
        let keeper = self.keeper.clone();
        let state = tokio::task::spawn_blocking(move || {
            // Decode (and so validate) before anything is replaced; then
            // make the file current, durably; only then swap the state.
            let state = snapshot::read_state(keeper.decrypt_from(data.reader()?)?)?;
            if snapshot::load_meta(&db)?.as_ref() != Some(&meta_copy) {
                snapshot::publish(&db, &dir, &meta_copy, data)?;
            }
            Ok::<_, io::Error>(state)
        })
        .await
        .map_err(super::io_err)??;
        let cluster_id = state.cluster.cluster_id.clone();
        {
            let mut m = self.write();
            m.state = state;
            m.last_applied = meta.last_log_id;
            m.membership = meta.last_membership.clone();
        }
        self.shared.record_cluster_id(cluster_id.as_deref())?;
        self.shared.publish(meta.last_log_id);
        tracing::info!(
            last_log_index = meta.last_log_id.map(|l| l.index),
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let db = self.db.clone();
        let dir = self.snapshot_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || snapshot::load(&db, &dir))
            .await
            .map_err(super::io_err)??;
        Ok(loaded.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
