//! Snapshot encoding and persistence.
//!
//! A snapshot's bytes are `MAGIC`, a big-endian `u16` format version, and the
//! compact encoding of the domain [`State`]. The same bytes are stored,
//! streamed to followers and installed. Two replicas at the same applied
//! index produce identical bytes: every table in `State` is ordered.
//!
//! The current snapshot is kept in the `snapshot` column family as its
//! metadata plus the bytes split into chunks, replaced atomically in one
//! synced write batch.

use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};

use super::{CF_SNAPSHOT, cf, io_err};
use crate::codec::{self, CodecError};
use crate::domain::State;
use crate::types::{SnapshotData, SnapshotMeta};

const MAGIC: &[u8; 4] = b"KSNP";
/// Version of the snapshot state encoding.
pub const SNAPSHOT_VERSION: u16 = 1;
pub(crate) const KEY_META: &[u8] = b"meta";
const CHUNK_PREFIX: &[u8] = b"chunk/";
const CHUNK_SIZE: usize = 4 << 20;

/// Encodes the domain state as snapshot bytes.
pub fn encode_state(state: &State) -> Result<SnapshotData, CodecError> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    codec::encode_compact_into(&mut out, state)?;
    Ok(out)
}

/// Decodes snapshot bytes into a domain state with its indexes rebuilt.
pub fn decode_state(bytes: &[u8]) -> Result<State, CodecError> {
    if bytes.len() < 6 || &bytes[..4] != MAGIC {
        return Err(CodecError::Decode("not a keel snapshot".into()));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(CodecError::Decode(format!(
            "snapshot format version {version} is not supported (this node reads {SNAPSHOT_VERSION})"
        )));
    }
    let mut state: State = codec::decode_compact(&bytes[6..])?;
    state.rebuild_indexes();
    Ok(state)
}

fn chunk_key(i: usize) -> Vec<u8> {
    let mut key = CHUNK_PREFIX.to_vec();
    key.extend_from_slice(&(i as u32).to_be_bytes());
    key
}

/// Replaces the stored snapshot with `meta` and `data`, durably.
pub(crate) fn store(db: &DB, meta: &SnapshotMeta, data: &[u8]) -> std::io::Result<()> {
    let cf = cf(db, CF_SNAPSHOT);
    let mut batch = WriteBatch::default();
    let mut end = CHUNK_PREFIX.to_vec();
    end.push(0xff);
    batch.delete_range_cf(cf, CHUNK_PREFIX, &end);
    for (i, chunk) in data.chunks(CHUNK_SIZE).enumerate() {
        batch.put_cf(cf, chunk_key(i), chunk);
    }
    batch.put_cf(cf, KEY_META, codec::encode(meta)?);
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(io_err)
}

/// The stored snapshot's metadata, if there is one.
pub(crate) fn load_meta(db: &DB) -> std::io::Result<Option<SnapshotMeta>> {
    match db.get_cf(cf(db, CF_SNAPSHOT), KEY_META).map_err(io_err)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
    }
}

/// The stored snapshot, if there is one.
pub(crate) fn load(db: &DB) -> std::io::Result<Option<(SnapshotMeta, SnapshotData)>> {
    let Some(meta) = load_meta(db)? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    let iter = db.iterator_cf(
        cf(db, CF_SNAPSHOT),
        IteratorMode::From(CHUNK_PREFIX, rocksdb::Direction::Forward),
    );
    for item in iter {
        let (key, value) = item.map_err(io_err)?;
        if !key.starts_with(CHUNK_PREFIX) {
            break;
        }
        data.extend_from_slice(&value);
    }
    Ok(Some((meta, data)))
}
