//! Node-local facts kept beside the Raft data but never replicated: which
//! node this data belongs to (its name and the Raft id of this data
//! directory's incarnation), the cluster id it last applied, and whether the
//! operator sealed this node.

use std::sync::Arc;

use rocksdb::{DB, WriteOptions};

use super::{CF_NODE, cf};
use crate::error::Error;
use crate::types::NodeId;

const KEY_NODE_ID: &[u8] = b"node_id";
const KEY_CLUSTER_ID: &[u8] = b"cluster_id";
const KEY_SEALED: &[u8] = b"sealed";
const KEY_RAFT_ID: &[u8] = b"raft_id";

/// Accessor for the `node` column family. Every write is synced.
#[derive(Clone)]
pub struct NodeMeta {
    db: Arc<DB>,
}

impl NodeMeta {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        NodeMeta { db }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get_cf(cf(&self.db, CF_NODE), key)?)
    }

    /// A node-local value under `key` (the seal's configuration and the
    /// wrapped keyring live here).
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.get(key)
    }

    /// Stores a node-local value, synced.
    pub(crate) fn put_raw(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put(key, value)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .put_cf_opt(cf(&self.db, CF_NODE), key, value, &opts)?;
        Ok(())
    }

    fn get_u64(&self, key: &[u8], what: &str) -> Result<Option<u64>, Error> {
        self.get(key)?
            .map(|v| {
                let bytes: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Storage(format!("stored {what} is corrupt")))?;
                Ok(u64::from_be_bytes(bytes))
            })
            .transpose()
    }

    /// The node id this data directory belongs to, if recorded.
    pub fn node_id(&self) -> Result<Option<NodeId>, Error> {
        self.get_u64(KEY_NODE_ID, "node id")
    }

    /// Records the node id (first start only).
    pub fn set_node_id(&self, id: NodeId) -> Result<(), Error> {
        self.put(KEY_NODE_ID, &id.to_be_bytes())
    }

    /// The Raft id of this data directory's incarnation, if recorded.
    pub fn raft_id(&self) -> Result<Option<NodeId>, Error> {
        self.get_u64(KEY_RAFT_ID, "raft id")
    }

    /// Records the Raft id of this incarnation (once, when the data
    /// directory is new; synced before Raft ever speaks with it).
    pub fn set_raft_id(&self, id: NodeId) -> Result<(), Error> {
        self.put(KEY_RAFT_ID, &id.to_be_bytes())
    }

    /// The cluster id this node last applied, if any.
    pub fn cluster_id(&self) -> Result<Option<String>, Error> {
        self.get(KEY_CLUSTER_ID)?
            .map(|v| {
                String::from_utf8(v)
                    .map_err(|_| Error::Storage("stored cluster id is corrupt".into()))
            })
            .transpose()
    }

    /// Records the cluster id once it is applied.
    pub fn set_cluster_id(&self, id: &str) -> Result<(), Error> {
        self.put(KEY_CLUSTER_ID, id.as_bytes())
    }

    /// Whether the operator sealed this node.
    pub fn sealed(&self) -> Result<bool, Error> {
        Ok(self.get(KEY_SEALED)?.is_some_and(|v| v == b"1"))
    }

    /// Persists the seal state, so it survives a restart.
    pub fn set_sealed(&self, sealed: bool) -> Result<(), Error> {
        self.put(KEY_SEALED, if sealed { b"1" } else { b"0" })
    }
}
