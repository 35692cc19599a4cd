//! Restoring a snapshot through the log.
//!
//! A snapshot is larger than one peer message, so it travels as a run of
//! `StageRestore` entries, each carrying one bounded chunk of the state
//! encoding, followed by one `CommitRestore` entry that names the total
//! length and SHA-256. The chunks accumulate in the replicated state (so a
//! replica that catches up from a Raft snapshot mid-restore has them too);
//! the commit verifies them, decodes them and replaces the state in that
//! one apply. Every replica therefore switches at the same log index, and a
//! crash anywhere leaves either the old state (plus a partial stage that
//! the next restore discards) or the new one, never a mix.
//!
//! What the commit keeps from the state it replaces: the cluster id (this
//! cluster stays itself, even when the snapshot came from another one) and
//! the latest stamped time, raised, never lowered: `last_stamp` becomes the
//! maximum of both states' and the commit's time, so replicated time never
//! goes backwards. Everything else, idempotency records included, comes
//! from the snapshot, so a retried request is remembered exactly when its
//! effect is in the restored state. Deadlines that passed while the
//! snapshot sat on disk are simply due: the expiration manager and the
//! account reconciler find them on their next look, and whatever accounts
//! imply for their leases and certificates is derived at read time.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use super::{DomainError, State};
use crate::clock::Millis;
use crate::command::{Outcome, Response};

/// Largest chunk one `StageRestore` may carry.
pub const MAX_RESTORE_CHUNK: usize = 8 << 20;
/// Largest snapshot that may be staged.
pub const MAX_RESTORE_BYTES: u64 = 16 << 30;

/// Bytes that encode as a MessagePack binary, not an array of integers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk(pub Vec<u8>);

impl Serialize for Chunk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Chunk;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Chunk, E> {
                Ok(Chunk(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Chunk, E> {
                Ok(Chunk(v))
            }
        }
        d.deserialize_byte_buf(Visit)
    }
}

/// A restore being staged: the chunks received so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRestore {
    /// Chosen by the node that runs the restore; a stage with another id
    /// replaces this one.
    pub id: u64,
    /// Bytes staged so far.
    pub received: u64,
    /// The chunks, in order.
    pub chunks: Vec<Chunk>,
}

/// Reads staged chunks as one stream.
struct Chunks<'a> {
    chunks: &'a [Chunk],
    at: usize,
    pos: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(chunk) = self.chunks.get(self.at) {
            if self.pos < chunk.0.len() {
                let n = buf.len().min(chunk.0.len() - self.pos);
                buf[..n].copy_from_slice(&chunk.0[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            self.at += 1;
            self.pos = 0;
        }
        Ok(0)
    }
}

impl State {
    /// Stages one chunk. Offset 0 starts a new stage (dropping any other);
    /// a chunk already staged (a retried proposal) changes nothing; any
    /// other gap or overlap is refused.
    pub(crate) fn stage_restore(&mut self, id: u64, offset: u64, chunk: &Chunk) -> Response {
        let len = chunk.0.len() as u64;
        if chunk.0.is_empty() || chunk.0.len() > MAX_RESTORE_CHUNK {
            return Err(DomainError::Invalid(format!(
                "a restore chunk holds 1 to {MAX_RESTORE_CHUNK} bytes"
            )));
        }
        if offset.saturating_add(len) > MAX_RESTORE_BYTES {
            return Err(DomainError::Invalid(format!(
                "a snapshot to restore is at most {MAX_RESTORE_BYTES} bytes"
            )));
        }
        if offset == 0 && self.restore.as_ref().is_none_or(|s| s.id != id) {
            self.restore = Some(StagedRestore {
                id,
                received: len,
                chunks: vec![chunk.clone()],
            });
            return Ok(Outcome::Done);
        }
        let Some(staged) = self.restore.as_mut().filter(|s| s.id == id) else {
            return Err(DomainError::Conflict(
                "this restore is no longer staged (another restore replaced it)".into(),
            ));
        };
        if offset + len <= staged.received {
            return Ok(Outcome::Done);
        }
        if offset != staged.received {
            return Err(DomainError::Conflict(format!(
                "restore chunk at offset {offset}, but {} bytes are staged",
                staged.received
            )));
        }
        staged.received += len;
        staged.chunks.push(chunk.clone());
        Ok(Outcome::Done)
    }

    /// Verifies the staged chunks against `len` and `sha256`, decodes them
    /// and replaces this state with theirs (see the module docs for what
    /// is kept). Refused, with nothing changed, if they do not match or do
    /// not decode.
    pub(crate) fn commit_restore(
        &mut self,
        now: Millis,
        id: u64,
        len: u64,
        sha256: &Chunk,
    ) -> Response {
        let Some(staged) = self.restore.as_ref().filter(|s| s.id == id) else {
            return Err(DomainError::Conflict("no such restore is staged".into()));
        };
        if staged.received != len {
            return Err(DomainError::Invalid(format!(
                "{} bytes are staged, the restore names {len}",
                staged.received
            )));
        }
        let mut sum = crate::encoding::Checksum::default();
        for chunk in &staged.chunks {
            sum.update(&chunk.0);
        }
        if sum.finish().as_slice() != sha256.0.as_slice() {
            return Err(DomainError::Invalid(
                "the staged snapshot does not match its checksum".into(),
            ));
        }
        let reader = Chunks {
            chunks: &staged.chunks,
            at: 0,
            pos: 0,
        };
        let mut restored = crate::encoding::read_state(reader).map_err(|e| {
            DomainError::Invalid(format!("the staged snapshot does not decode: {e}"))
        })?;
        restored.cluster = self.cluster.clone();
        restored.last_stamp = restored.last_stamp.max(self.last_stamp).max(now);
        restored.restore = None;
        *self = restored;
        Ok(Outcome::Done)
    }

    /// Drops the stage `id`, if it is the one staged.
    pub(crate) fn abort_restore(&mut self, id: u64) -> Response {
        if self.restore.as_ref().is_some_and(|s| s.id == id) {
            self.restore = None;
        }
        Ok(Outcome::Done)
    }
}
