//! Snapshot encoding and persistence.
//!
//! A snapshot's bytes are `MAGIC`, a big-endian `u16` format version, and the
//! compact encoding of the domain [`State`], all encrypted as one stream
//! under the cluster's stream key (see `crate::seal::stream`). The same
//! encrypted bytes are stored, streamed to followers and installed. Two replicas at the same applied
//! index produce identical bytes: every table in `State` is ordered.
//!
//! Snapshots live as files in the node's snapshot directory; the `snapshot`
//! column family holds only a pointer to the current one (its metadata, file
//! name and length). Making a file current is crash-atomic: the file is
//! written under a temporary name and fsynced, renamed to its final name,
//! the directory fsynced, and only then is the pointer replaced in one
//! synced write batch; the previous file is deleted after that. A crash at
//! any step leaves the old snapshot current and at worst an orphan file,
//! which [`sweep`] removes on the next open.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::snapshot_file::{IO_BUFFER, SnapshotFile, copy_into};
use super::{CF_SNAPSHOT, cf, io_err};
use crate::codec;
use crate::domain::State;
pub use crate::domain::encoding::{
    SNAPSHOT_VERSION, decode_state, encode_state, read_state, write_state,
};
use crate::seal::Keeper;
use crate::types::SnapshotMeta;

/// Key of the pointer to the current snapshot file.
pub(crate) const KEY_CURRENT: &[u8] = b"current";
/// Key of the metadata of a snapshot stored inline (chunks in the column
/// family) by keel before snapshots became files; migrated on open.
pub(crate) const KEY_META: &[u8] = b"meta";
const CHUNK_PREFIX: &[u8] = b"chunk/";
const FILE_SUFFIX: &str = ".ksnp";

/// What the `current` key records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    /// The snapshot's metadata.
    meta: SnapshotMeta,
    /// Its file name in the snapshot directory.
    file: String,
    /// Its length, checked when it is opened.
    len: u64,
}

/// Streams `state` into a new fsynced temporary file in `dir`.
pub(crate) fn write_to_temp(
    dir: &Path,
    keeper: &Keeper,
    state: &State,
) -> io::Result<SnapshotFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix("build-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let out = BufWriter::with_capacity(IO_BUFFER, tmp.as_file_mut());
        let mut sealed = keeper.encrypt_to(out)?;
        write_state(&mut sealed, state)?;
        sealed.finish()?.flush()?;
    }
    tmp.as_file().sync_all()?;
    SnapshotFile::from_temp(tmp)
}

fn load_pointer(db: &DB) -> io::Result<Option<Pointer>> {
    match db
        .get_cf(cf(db, CF_SNAPSHOT), KEY_CURRENT)
        .map_err(io_err)?
    {
        None => Ok(None),
        Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
    }
}

/// The current snapshot's metadata, if there is one.
pub(crate) fn load_meta(db: &DB) -> io::Result<Option<SnapshotMeta>> {
    Ok(load_pointer(db)?.map(|p| p.meta))
}

/// The current snapshot, opened, if there is one.
pub(crate) fn load(db: &DB, dir: &Path) -> io::Result<Option<(SnapshotMeta, SnapshotFile)>> {
    let Some(pointer) = load_pointer(db)? else {
        return Ok(None);
    };
    let file = SnapshotFile::open(&dir.join(&pointer.file))?;
    if file.len() != pointer.len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot file {} holds {} bytes, {} were recorded",
                file.path().display(),
                file.len(),
                pointer.len
            ),
        ));
    }
    Ok(Some((pointer.meta, file)))
}

fn file_name(meta: &SnapshotMeta) -> String {
    let index = meta.last_log_id.map_or(0, |l| l.index);
    format!(
        "snapshot-{index}-{:016x}{FILE_SUFFIX}",
        rand::random::<u64>()
    )
}

/// Makes `data` (fsynced) the current snapshot with `meta`, crash-atomically
/// (see the module docs), and returns the file now current.
pub(crate) fn publish(
    db: &DB,
    dir: &Path,
    meta: &SnapshotMeta,
    data: SnapshotFile,
) -> io::Result<SnapshotFile> {
    let data = if data.is_temp_in(dir) {
        data
    } else {
        copy_into(&data, dir)?
    };
    let len = data.len();
    let name = file_name(meta);
    let path = dir.join(&name);
    data.persist(&path)?;
    sync_dir(dir)?;
    let previous = load_pointer(db)?;
    let pointer = Pointer {
        meta: meta.clone(),
        file: name,
        len,
    };
    let cf = cf(db, CF_SNAPSHOT);
    let mut batch = WriteBatch::default();
    batch.put_cf(cf, KEY_CURRENT, codec::encode(&pointer)?);
    // Leftovers of the inline format go with the first file snapshot.
    batch.delete_cf(cf, KEY_META);
    let mut end = CHUNK_PREFIX.to_vec();
    end.push(0xff);
    batch.delete_range_cf(cf, CHUNK_PREFIX, &end);
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(io_err)?;
    if let Some(previous) = previous
        && previous.file != pointer.file
        && let Err(e) = std::fs::remove_file(dir.join(&previous.file))
    {
        tracing::warn!(file = previous.file, error = %e, "could not delete a replaced snapshot");
    }
    SnapshotFile::open(&path)
}

/// Fsyncs a directory, so a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Moves a snapshot stored inline by an older keel into a file, then
/// removes every file in `dir` that is not the current snapshot (temporary
/// files of an interrupted build or transfer, files replaced just before a
/// crash). Runs on open, before Raft.
pub(crate) fn sweep(db: &DB, dir: &Path) -> io::Result<()> {
    migrate_inline(db, dir)?;
    let current = load_pointer(db)?.map(|p| p.file);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if current.as_deref() == name.to_str() {
            continue;
        }
        tracing::info!(file = ?name, "removing a leftover snapshot file");
        std::fs::remove_file(entry.path())?;
    }
    sync_dir(dir)
}

fn migrate_inline(db: &DB, dir: &Path) -> io::Result<()> {
    if load_pointer(db)?.is_some() {
        return Ok(());
    }
    let meta: SnapshotMeta = match db.get_cf(cf(db, CF_SNAPSHOT), KEY_META).map_err(io_err)? {
        None => return Ok(()),
        Some(bytes) => codec::decode(&bytes)?,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix("migrate-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let mut out = BufWriter::with_capacity(IO_BUFFER, tmp.as_file_mut());
        let iter = db.iterator_cf(
            cf(db, CF_SNAPSHOT),
            IteratorMode::From(CHUNK_PREFIX, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(io_err)?;
            if !key.starts_with(CHUNK_PREFIX) {
                break;
            }
            out.write_all(&value)?;
        }
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    publish(db, dir, &meta, SnapshotFile::from_temp(tmp)?)?;
    tracing::info!("moved the stored snapshot into a file");
    Ok(())
}
