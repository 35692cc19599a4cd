//! Durable storage of one node: a single RocksDB database with a column
//! family per concern.
//!
//! - `logs`: Raft log entries keyed by big-endian index.
//! - `raft`: vote, last purged log id and committed log id.
//! - `snapshot`: a pointer to the current snapshot file (its metadata, name
//!   and length); the files themselves live in `snapshots/` beside `db/`.
//! - `node`: node-local facts that are not replicated (node id, cluster id
//!   as last applied, seal state).
//!
//! Log entries and snapshot files are encrypted through the node's
//! [`Keeper`] (see `crate::seal`); nothing is read or written while it is
//! sealed.
//!
//! The state machine itself lives in memory; it is rebuilt on start from the
//! persisted snapshot plus the committed log, so an acknowledged write
//! survives any crash once its log entry is fsynced.

mod entry_cache;
mod log;
mod node_meta;
mod snapshot;
mod snapshot_file;
mod state_machine;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

pub use log::{LogEnd, LogStore};
pub use node_meta::NodeMeta;
pub use snapshot::{SNAPSHOT_VERSION, decode_state, encode_state, read_state, write_state};
pub use snapshot_file::{SnapshotFile, SnapshotSink};
pub use state_machine::{Machine, SharedMachine, StateMachineStore};

use crate::error::Error;
use crate::seal::Keeper;
use crate::transport::ClusterIdentity;
use crate::types::NodeId;

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_RAFT: &str = "raft";
pub(crate) const CF_SNAPSHOT: &str = "snapshot";
pub(crate) const CF_NODE: &str = "node";
const COLUMN_FAMILIES: [&str; 4] = [CF_LOGS, CF_RAFT, CF_SNAPSHOT, CF_NODE];
/// Bound on all memtables of the database together.
const DB_WRITE_BUFFER_BYTES: usize = 32 << 20;

/// Whose data a data directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    /// The node id recorded at first start.
    pub node_id: Option<NodeId>,
    /// The cluster id last applied.
    pub cluster_id: Option<String>,
}

/// An open node database.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
    path: PathBuf,
    /// Where snapshot files live (`dir/snapshots`).
    snapshot_dir: PathBuf,
    identity: ClusterIdentity,
    /// The node's keys: every log entry and snapshot passes through it.
    keeper: Arc<Keeper>,
    /// Where the log ends, as every log store over this database keeps it.
    log_end: LogEnd,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("path", &self.path).finish()
    }
}

/// Makes a data directory private to the node's user: the directory and
/// `subdirs` 0700, every file in the subdirectories 0600 (what a data
/// directory holds includes the CA's private key). New files get the same
/// modes from the server's umask (see `keel server`).
fn restrict(dir: &Path, subdirs: &[&Path]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let private_dir = std::fs::Permissions::from_mode(0o700);
    std::fs::set_permissions(dir, private_dir.clone())?;
    for sub in subdirs {
        std::fs::set_permissions(sub, private_dir.clone())?;
        for entry in std::fs::read_dir(sub)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

impl Storage {
    /// Opens (creating if needed) the database under `dir/db` and the
    /// snapshot directory `dir/snapshots`, removing leftover files of an
    /// interrupted snapshot build or transfer.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("db");
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Memtables hold only the recent log: cap them all together, so the
        // node's memory is the state, not write buffers.
        opts.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, &path, cfs)
            .map_err(|e| Error::Storage(format!("cannot open {}: {e}", path.display())))?;
        let db = Arc::new(db);
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .and_then(|()| snapshot::sync_dir(dir))
            .and_then(|()| snapshot::sweep(&db, &snapshot_dir))
            .map_err(|e| Error::Storage(format!("snapshots in {}: {e}", snapshot_dir.display())))?;
        restrict(dir, &[&path, &snapshot_dir])
            .map_err(|e| Error::Storage(format!("permissions of {}: {e}", dir.display())))?;
        let identity = ClusterIdentity::new(NodeMeta::new(db.clone()).cluster_id()?.as_deref());
        let keeper = Keeper::load(&db).map_err(|e| Error::Storage(e.to_string()))?;
        Ok(Storage {
            db,
            path,
            snapshot_dir,
            identity,
            keeper,
            log_end: LogEnd::default(),
        })
    }

    /// The node id and cluster id recorded in the database under `dir`,
    /// read without opening it for writing (so a node refusing foreign
    /// data changes nothing in it). `None` if there is no database yet.
    pub fn read_identity(dir: &Path) -> Result<Option<StoredIdentity>, Error> {
        let path = dir.join("db");
        if !path.join("CURRENT").exists() {
            return Ok(None);
        }
        let opts = Options::default();
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors_read_only(&opts, &path, cfs, false)
            .map_err(|e| Error::Storage(format!("cannot read {}: {e}", path.display())))?;
        let meta = NodeMeta::new(Arc::new(db));
        Ok(Some(StoredIdentity {
            node_id: meta.node_id()?,
            cluster_id: meta.cluster_id()?,
        }))
    }

    /// Node-local metadata.
    pub fn node_meta(&self) -> NodeMeta {
        NodeMeta::new(self.db.clone())
    }

    /// The node's keys (sealed until unsealed).
    pub fn keeper(&self) -> &Arc<Keeper> {
        &self.keeper
    }

    /// The Raft log store over this database.
    pub fn log_store(&self) -> LogStore {
        LogStore::new(self.db.clone(), self.keeper.clone(), self.log_end.clone())
    }

    /// Where the log ends, kept by the log stores as they write.
    pub fn log_end(&self) -> LogEnd {
        self.log_end.clone()
    }

    /// The state machine store over this database.
    pub fn state_machine(&self) -> StateMachineStore {
        StateMachineStore::new(
            self.db.clone(),
            self.identity.clone(),
            self.snapshot_dir.clone(),
            self.keeper.clone(),
        )
    }

    /// The cluster id this data belongs to, kept current as it is applied.
    pub fn identity(&self) -> &ClusterIdentity {
        &self.identity
    }

    /// Whether this node has never taken part in a cluster: no vote, no log
    /// entry and no snapshot.
    pub fn is_pristine(&self) -> Result<bool, Error> {
        let raft = self.cf(CF_RAFT);
        let has_vote = self.db.get_cf(raft, log::KEY_VOTE)?.is_some();
        let has_log = self
            .db
            .iterator_cf(self.cf(CF_LOGS), rocksdb::IteratorMode::Start)
            .next()
            .is_some();
        let has_snapshot = self
            .db
            .get_cf(self.cf(CF_SNAPSHOT), snapshot::KEY_CURRENT)?
            .is_some()
            || self
                .db
                .get_cf(self.cf(CF_SNAPSHOT), snapshot::KEY_META)?
                .is_some();
        Ok(!has_vote && !has_log && !has_snapshot)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where snapshot files live; a snapshot received from a peer is
    /// written here, so installing it is a rename.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Syncs the WAL and flushes memtables: called on orderly shutdown once
    /// Raft has stopped, before the database is dropped.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush_wal(true)?;
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }

    /// How many handles to the database are still alive (1 means only this
    /// one: the database closes when it is dropped).
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.db)
    }

    /// Waits (up to `timeout`) until this is the only handle to the
    /// database, and returns the count then: 1 means dropping this handle
    /// closes the database. Raft's tasks release theirs shortly after Raft
    /// shuts down.
    pub async fn wait_sole_handle(&self, timeout: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let handles = self.handles();
            if handles == 1 || tokio::time::Instant::now() >= deadline {
                return handles;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column family exists")
    }
}

/// Looks up a column family that `Storage::open` created.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name).expect("column family exists")
}

/// Maps a RocksDB error to an I/O error for openraft.
pub(crate) fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Opens `dir` and unseals it with a fixed test key file.
#[cfg(test)]
pub(crate) fn open_unsealed(dir: &Path) -> Storage {
    let storage = Storage::open(dir).expect("storage opens");
    storage
        .keeper()
        .unseal_with_file(b"keel unit tests: not a secret, only a key file")
        .expect("unseals");
    storage
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod suite;
