//! Opening a node's data directory: whose data it is is checked before
//! anything is written, and the directory's incarnation (its Raft id) is
//! learned or allocated.

use anyhow::{anyhow, bail};
use keel_raft::Storage;

use super::retire;
use crate::config::Config;

/// Opens the data directory and checks it belongs to this node (and, if
/// configured, this cluster) before anything is written. Returns it with
/// the Raft id of its incarnation: allocated (and synced) when the data
/// directory is new, so an empty log never speaks under an id that once
/// held data.
pub fn open_storage(config: &Config) -> anyhow::Result<(Storage, keel_raft::NodeId)> {
    let dir = &config.data_dir;
    // Check whose data this is before opening it for writing, so a refused
    // start leaves every file as it was.
    if let Some(stored) = Storage::read_identity(dir)? {
        if let Some(owner) = stored.node_id
            && owner != config.node_id
        {
            bail!(
                "data directory {} belongs to node {owner}, not node {}; refusing to start",
                dir.display(),
                config.node_id
            );
        }
        if let (Some(want), Some(have)) = (&config.cluster_id, stored.cluster_id)
            && *want != have
        {
            bail!(
                "data directory {} belongs to cluster {have}, not {want}; refusing to start",
                dir.display()
            );
        }
    }
    let storage = Storage::open(dir).map_err(|e| {
        let hint = if e.to_string().to_lowercase().contains("lock") {
            " (is another keel using it?)"
        } else {
            ""
        };
        anyhow!("cannot open data directory {}: {e}{hint}", dir.display())
    })?;
    let meta = storage.node_meta();
    let pristine = storage.is_pristine()?;
    match meta.node_id()? {
        Some(_) => {}
        None if pristine => meta.set_node_id(config.node_id)?,
        None => bail!(
            "data directory {} holds Raft data without a node id; refusing to start",
            dir.display()
        ),
    }
    let raft_id = match meta.raft_id()? {
        Some(id) => id,
        None if pristine => {
            let id = keel_raft::types::raft_id(config.node_id, retire::new_incarnation());
            meta.set_raft_id(id)?;
            id
        }
        // A data directory from before incarnations: its Raft id was its
        // name, and stays so for the life of that directory.
        None => config.node_id,
    };
    Ok((storage, raft_id))
}
