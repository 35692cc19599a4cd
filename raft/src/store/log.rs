//! The Raft log store: entries, vote, purge and commit marks in RocksDB.
//!
//! Appends are written at once (so they are readable when `append` returns)
//! and made durable by a dedicated flusher thread that fsyncs the WAL once
//! for every batch of pending appends (group commit) before reporting them
//! flushed. Votes are fsynced before `save_vote` returns.
//!
//! Recent entries are also kept in memory, decoded (see [`EntryCache`]):
//! applying and replicating an entry reads it back soon after its append.
//!
//! Every entry is stored encrypted (see [`seal_entry`]): its index and
//! term are bound to the ciphertext, so an entry cannot be moved to another
//! index or passed off under another term.
//!
//! Crash atomicity: every step that removes entries (`purge`,
//! `truncate_after`) is one synced write batch, so a crash leaves either the
//! state before it or the state after it. The purge mark and the deletion it
//! covers are in the same batch; even so, `get_log_state` never reports a
//! last log id below the purge point (a snapshot install purges beyond the
//! last entry, and a data dir written by an older keel may hold a mark
//! without its deletion), because openraft refuses to start on
//! `last_log_id < last_purged_log_id`.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::entry_cache::EntryCache;
use super::{CF_LOGS, CF_RAFT, cf, io_err};
use crate::batch::REPLICATION_BATCH_BYTES;
use crate::codec;
use crate::seal::Keeper;
use crate::types::{Entry, LogId, TypeConfig, Vote};

pub(crate) const KEY_VOTE: &[u8] = b"vote";
const KEY_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&key[..8]);
    u64::from_be_bytes(buf)
}

/// First byte of a stored (encrypted) entry.
const SEALED_ENTRY: u8 = 0xE1;

fn entry_aad(index: u64, term: u64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..8].copy_from_slice(b"keellog1");
    aad[8..16].copy_from_slice(&index.to_be_bytes());
    aad[16..].copy_from_slice(&term.to_be_bytes());
    aad
}

/// An entry as stored: `0xE1 | term (u64 BE) | sealed encoding`, the
/// encoding sealed with the active data key and bound to index and term.
pub(crate) fn seal_entry(keeper: &Keeper, entry: &Entry) -> io::Result<Vec<u8>> {
    let plain = zeroize::Zeroizing::new(codec::encode(entry)?);
    let term = entry.log_id.leader_id.term;
    let sealed = keeper
        .seal_record(&entry_aad(entry.log_id.index, term), &plain)
        .map_err(io_err)?;
    let mut out = Vec::with_capacity(9 + sealed.len());
    out.push(SEALED_ENTRY);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The entry stored at `index` (see [`seal_entry`]).
pub(crate) fn open_entry(keeper: &Keeper, index: u64, stored: &[u8]) -> io::Result<Entry> {
    let corrupt = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("log entry {index}: {what}"),
        )
    };
    if stored.len() < 9 || stored[0] != SEALED_ENTRY {
        return Err(corrupt("not an encrypted entry"));
    }
    let term = u64::from_be_bytes(stored[1..9].try_into().expect("8 bytes"));
    let plain = keeper
        .open_record(&entry_aad(index, term), &stored[9..])
        .map_err(|e| corrupt(&e.to_string()))?;
    let plain = zeroize::Zeroizing::new(plain);
    let entry: Entry = codec::decode(&plain)?;
    if entry.log_id.index != index || entry.log_id.leader_id.term != term {
        return Err(corrupt("stored under another index or term"));
    }
    Ok(entry)
}

fn get_meta<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, CF_RAFT), key).map_err(io_err)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
    }
}

fn put_meta<T: serde::Serialize>(db: &DB, key: &[u8], value: &T, sync: bool) -> io::Result<()> {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    db.put_cf_opt(cf(db, CF_RAFT), key, codec::encode(value)?, &opts)
        .map_err(io_err)
}

/// Reads log entries and the vote; cheap to clone, one per replication task.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<DB>,
    keeper: Arc<Keeper>,
    cache: Arc<EntryCache>,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        read_entries(&self.db, &self.keeper, &self.cache, range, usize::MAX)
    }

    /// Replication reads through here: a batch stops once it holds
    /// [`REPLICATION_BATCH_BYTES`] of entries (always at least one).
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        read_entries(
            &self.db,
            &self.keeper,
            &self.cache,
            start..end,
            REPLICATION_BATCH_BYTES,
        )
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        get_meta(&self.db, KEY_VOTE)
    }
}

/// Entries in `range`, stopping after the one that brings their stored
/// size to `max_bytes`: from the cache if it holds them all, else from
/// the database.
fn read_entries<RB: RangeBounds<u64>>(
    db: &DB,
    keeper: &Keeper,
    cache: &EntryCache,
    range: RB,
    max_bytes: usize,
) -> io::Result<Vec<Entry>> {
    let start = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    if let Some(entries) = cache.read(start, end, max_bytes) {
        return Ok(entries);
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let iter = db.iterator_cf(
        cf(db, CF_LOGS),
        IteratorMode::From(&index_key(start), Direction::Forward),
    );
    for item in iter {
        let (key, value) = item.map_err(io_err)?;
        let index = key_index(&key);
        if !range.contains(&index) {
            break;
        }
        out.push(open_entry(keeper, index, &value)?);
        bytes = bytes.saturating_add(value.len());
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}

/// The index the log ends at (its last entry, or the purge point if that
/// is later), as the log store wrote it: set by every append before the
/// entries can be acknowledged, lowered by a truncation, raised by a purge.
/// Unlike openraft's metrics, which are published later, it never lags
/// what this node has told a leader it holds.
#[derive(Debug, Clone, Default)]
pub struct LogEnd(Arc<AtomicU64>);

impl LogEnd {
    /// The index the log ends at (0: nothing known yet).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, index: u64) {
        self.0.store(index, Ordering::Release);
    }

    fn raise(&self, index: u64) {
        self.0.fetch_max(index, Ordering::AcqRel);
    }
}

/// The log store handed to openraft.
pub struct LogStore {
    db: Arc<DB>,
    keeper: Arc<Keeper>,
    flush_tx: mpsc::Sender<IOFlushed<TypeConfig>>,
    end: LogEnd,
    cache: Arc<EntryCache>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, keeper: Arc<Keeper>, end: LogEnd) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        // The flusher holds only a weak handle, so it never keeps the
        // database open; it exits when the store (its only sender) drops.
        let flusher_db = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("keel-wal-flush".into())
            .spawn(move || run_flusher(flusher_db, flush_rx))
            .expect("spawn WAL flusher thread");
        LogStore {
            db,
            keeper,
            flush_tx,
            end,
            cache: Arc::default(),
        }
    }
}

/// Group commit: one WAL fsync for every batch of appends waiting on it.
fn run_flusher(db: std::sync::Weak<DB>, rx: mpsc::Receiver<IOFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let result = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(io_err),
            None => Err(std::io::Error::other("database closed")),
        };
        for callback in pending {
            callback.io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        read_entries(&self.db, &self.keeper, &self.cache, range, usize::MAX)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        get_meta(&self.db, KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = get_meta(&self.db, KEY_PURGED)?;
        let last = self
            .db
            .iterator_cf(cf(&self.db, CF_LOGS), IteratorMode::End)
            .next()
            .transpose()
            .map_err(io_err)?;
        let last_entry = match last {
            Some((key, value)) => Some(open_entry(&self.keeper, key_index(&key), &value)?.log_id),
            None => None,
        };
        // Entries at or below the purge point are gone (or about to be);
        // the log ends no earlier than the purge point.
        let last_log_id = last_entry.max(last_purged_log_id);
        self.end.raise(last_log_id.map_or(0, |l| l.index));
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            db: self.db.clone(),
            keeper: self.keeper.clone(),
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        put_meta(&self.db, KEY_VOTE, vote, true)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: the committed mark only spares re-applying on start.
        // The WAL is ordered, so a mark that survives a crash never points
        // past entries that did not; a mark lost to a crash is rebuilt
        // from the leader.
        put_meta(&self.db, KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(get_meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let logs = cf(&self.db, CF_LOGS);
        let mut written = Vec::new();
        for entry in entries {
            let sealed = seal_entry(&self.keeper, &entry)?;
            batch.put_cf(logs, index_key(entry.log_id.index), &sealed);
            written.push((entry, sealed.len()));
        }
        self.db.write(batch).map_err(io_err)?;
        // Appends follow the log's end (or a truncation): the last entry
        // written is where the log now ends.
        if let Some((last, _)) = written.last() {
            let (ended, last) = (self.end.get(), last.log_id.index);
            self.cache.appended(ended, written);
            self.end.set(last);
        }
        if let Err(mpsc::SendError(callback)) = self.flush_tx.send(callback) {
            callback.io_completed(Err(io::Error::other("WAL flusher stopped")));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOGS), index_key(from), index_key(u64::MAX));
        self.db.write_opt(batch, &opts).map_err(io_err)?;
        self.cache.truncated_from(from);
        self.end.set(from.saturating_sub(1));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The mark and the deletion it stands for, in one synced batch.
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_PURGED, codec::encode(&log_id)?);
        batch.delete_range_cf(
            cf(&self.db, CF_LOGS),
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(io_err)?;
        self.cache.purged_through(log_id.index);
        self.end.raise(log_id.index);
        Ok(())
    }
}
