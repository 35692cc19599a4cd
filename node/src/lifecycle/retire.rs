//! Retiring a data directory whose log can no longer stand behind its Raft
//! identity, and the fresh incarnation that replaces it.
//!
//! A node learns that its log ends below what it acknowledged when a leader
//! says so (see `ControlPlane::check_acknowledged`). It then stops in
//! order, writes a `RETIRED` marker into its data directory (atomically:
//! temp file, fsync, rename, fsync the directory) and starts again in the
//! same process image. On every start, before anything else reads the data
//! directory, a marker moves the old database aside (`db.retired-<ms>`,
//! only the newest kept for forensics) and removes its node certificate; the node then starts pristine, with
//! a new incarnation, and joins its cluster as a learner that replaces the
//! old incarnation once caught up. A crash at any step repeats the step.
//!
//! A node the cluster *decommissioned* gets the same marker with a
//! `decommissioned:` reason, written before it stops. That directory must
//! never speak again, not even as a new incarnation: every later start
//! with it refuses, leaving the files as they are.

use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::client::rotate::{sync_dir, write_atomic};

/// The marker file, in the data directory.
const MARKER: &str = "RETIRED";
/// Prefix of a retired database directory.
const RETIRED_PREFIX: &str = "db.retired-";

/// How the reason of a decommissioned data directory begins.
const DECOMMISSIONED: &str = "decommissioned: ";

/// The cluster decommissioned this node: it stops for good.
#[derive(Debug, thiserror::Error)]
#[error("this node was decommissioned: {0}")]
pub struct Decommissioned(pub String);

/// Marks the data directory decommissioned (crash-atomically): no later
/// start uses it.
pub fn mark_decommissioned(data_dir: &Path, reason: &str) -> anyhow::Result<()> {
    mark(data_dir, &format!("{DECOMMISSIONED}{reason}"))
}

/// The node must retire its data directory and start again.
#[derive(Debug, thiserror::Error)]
#[error("this node's data directory was retired: {0}")]
pub struct Retired(pub String);

/// A fresh incarnation number: random, never 0.
pub fn new_incarnation() -> u32 {
    loop {
        let n: u32 = rand::random();
        if n != 0 {
            return n;
        }
    }
}

/// Writes the marker (with the reason) crash-atomically.
pub fn mark(data_dir: &Path, reason: &str) -> anyhow::Result<()> {
    let marker = data_dir.join(MARKER);
    write_atomic(&marker, reason.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", marker.display()))
}

/// If the data directory is marked retired, moves its database aside and
/// removes the marker. Returns the reason it was retired, if it was.
pub fn retire_if_marked(data_dir: &Path) -> anyhow::Result<Option<String>> {
    if !data_dir.is_dir() {
        // Missing or not a directory: opening storage says so properly.
        return Ok(None);
    }
    let marker = data_dir.join(MARKER);
    let reason = match fs::read_to_string(&marker) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", marker.display())),
    };
    if let Some(why) = reason.strip_prefix(DECOMMISSIONED) {
        anyhow::bail!(
            "data directory {} was decommissioned ({why}); it can never rejoin a cluster. \
             To run this node again, give it an empty data directory: it then joins as a new member",
            data_dir.display()
        );
    }
    let db = data_dir.join("db");
    if db.exists() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        // Keep only the newest retired copy: a disk must not fill up with
        // them when a node is retired more than once.
        for entry in fs::read_dir(data_dir)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(RETIRED_PREFIX)
            {
                fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        let aside = data_dir.join(format!("{RETIRED_PREFIX}{now}"));
        fs::rename(&db, &aside)
            .with_context(|| format!("moving {} to {}", db.display(), aside.display()))?;
        sync_dir(data_dir)?;
        tracing::warn!(moved_to = %aside.display(), "retired data directory moved aside");
    }
    // The node certificate belonged to the retired incarnation, and its key
    // is sealed under the keyring that went aside with the database: the
    // new incarnation enrols for its own.
    let peer = data_dir.join("peer");
    if peer.exists() {
        fs::remove_dir_all(&peer).with_context(|| format!("removing {}", peer.display()))?;
    }
    fs::remove_file(&marker)?;
    sync_dir(data_dir)?;
    Ok(Some(reason))
}

/// Replaces this process with a fresh start of the same command line: the
/// node comes back with a new incarnation, under the same process id, with
/// no supervisor needed. Returns only if the exec failed.
pub fn restart_in_place() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    std::process::Command::new(exe).args(args).exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_directory_is_moved_aside_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(retire_if_marked(dir.path()).unwrap(), None);
        fs::create_dir_all(dir.path().join("db")).unwrap();
        fs::write(dir.path().join("db/CURRENT"), b"x").unwrap();
        mark(dir.path(), "log reverted").unwrap();
        assert_eq!(
            retire_if_marked(dir.path()).unwrap().as_deref(),
            Some("log reverted")
        );
        assert!(!dir.path().join("db").exists());
        assert!(!dir.path().join(MARKER).exists());
        let retired: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(RETIRED_PREFIX))
            .collect();
        assert_eq!(retired.len(), 1);
        assert_eq!(retire_if_marked(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_retired_directory_loses_its_node_certificate() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("db")).unwrap();
        fs::create_dir_all(dir.path().join("peer")).unwrap();
        fs::write(dir.path().join("peer/node.pem"), b"x").unwrap();
        mark(dir.path(), "log reverted").unwrap();
        assert!(retire_if_marked(dir.path()).unwrap().is_some());
        assert!(!dir.path().join("peer").exists());
    }

    #[test]
    fn a_decommissioned_directory_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("db")).unwrap();
        mark_decommissioned(dir.path(), "by node 0").unwrap();
        for _ in 0..2 {
            let e = retire_if_marked(dir.path()).unwrap_err().to_string();
            assert!(e.contains("was decommissioned (by node 0)"), "{e}");
            assert!(dir.path().join("db").is_dir());
            assert!(dir.path().join(MARKER).is_file());
        }
    }

    #[test]
    fn incarnations_are_never_zero() {
        for _ in 0..1000 {
            assert_ne!(new_incarnation(), 0);
        }
    }
}
