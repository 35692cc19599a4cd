//! Online snapshots for operators: exporting the replicated state as a
//! snapshot file (see [`crate::backup`]) and restoring one into the running
//! cluster through the log (see [`crate::domain::restore`]).
//!
//! An export passes a linearizable barrier first, so it holds every write
//! acknowledged before it was asked for, then takes a frozen copy of the
//! applied state (O(1): the tables are persistent maps; apply waits only
//! for that) and encodes the copy into a temporary file while apply goes
//! on. Nothing goes to the client before the file is whole, so a slow
//! reader never holds anything up either.
//!
//! A restore is verified whole (layout, checksum, and the state decodes)
//! before anything is proposed; then its state encoding goes through the
//! log in chunks that fit a peer message, and one commit entry switches
//! every replica to it at the same index.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::ControlPlane;
use crate::backup::{self, BackupCounts, BackupHeader, BodyEncryption, Checksum, Verified};
use crate::clock::now_ms;
use crate::command::{Command, Request};
use crate::domain::restore::{Chunk, MAX_RESTORE_BYTES, MAX_RESTORE_CHUNK};
use crate::error::Error;
use crate::store::{SNAPSHOT_VERSION, SnapshotFile, SnapshotSink};
use crate::types::name_of;

/// How long one chunk (or the commit) is retried while the cluster is
/// between leaders.
const CHUNK_RETRY_FOR: Duration = Duration::from_secs(60);

/// A snapshot taken for an operator: its header and its body in a
/// temporary file (deleted when this is dropped).
#[derive(Debug)]
pub struct Export {
    /// What the file says about itself.
    pub header: BackupHeader,
    /// The state encoding.
    pub body: SnapshotFile,
}

/// A snapshot file received for a restore, verified, in a temporary file.
#[derive(Debug)]
pub struct ReceivedBackup {
    /// Its header and layout.
    pub verified: Verified,
    /// The whole file as received.
    file: SnapshotFile,
    /// Length of the plain state encoding its body holds.
    plain_len: u64,
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// Bytes of state that went through the log.
    pub bytes: u64,
    /// How many chunks carried them.
    pub chunks: u64,
    /// The index this node had applied once the restore committed.
    pub applied_index: u64,
}

fn counts_of(state: &crate::domain::State) -> BackupCounts {
    BackupCounts {
        leases: state.leases.len() as u64,
        accounts: state.accounts.len() as u64,
        certificates: state.pki.len() as u64,
        idempotency_records: state.idempotency.len() as u64,
    }
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::BadRequest(e.to_string())
}

impl ControlPlane {
    /// Takes a consistent snapshot of the applied state (see the module
    /// docs) without stopping the cluster.
    pub async fn export_snapshot(&self) -> Result<Export, Error> {
        self.barrier(crate::handle::Consistency::Linearizable)
            .await?;
        let machine = self.inner.machine.clone();
        let dir = self.inner.snapshot_dir.clone();
        let keeper = self.inner.keeper.clone();
        let taken_by = name_of(self.node_id());
        let started = std::time::Instant::now();
        let (header, body, held) = tokio::task::spawn_blocking(move || {
            let mut tmp = tempfile::Builder::new()
                .prefix("export-")
                .suffix(".tmp")
                .tempfile_in(&dir)?;
            let (frozen, index, term, held) = {
                let m = machine.read();
                let locked = std::time::Instant::now();
                let (index, term) = m
                    .last_applied
                    .map_or((0, 0), |l| (l.index, l.leader_id.term));
                (m.state.frozen(), index, term, locked.elapsed())
            };
            let out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let mut sealed = keeper.encrypt_to(out)?;
            crate::store::write_state(&mut sealed, &frozen)?;
            sealed.finish()?.flush()?;
            let (cluster_id, counts) = (frozen.cluster.cluster_id.clone(), counts_of(&frozen));
            let body = SnapshotFile::from_temp(tmp)?;
            let header = BackupHeader {
                format_version: backup::FORMAT_VERSION,
                cluster_id,
                index,
                term,
                taken_at_ms: now_ms(),
                taken_by,
                keel_version: env!("CARGO_PKG_VERSION").to_string(),
                counts,
                state_format: SNAPSHOT_VERSION,
                body_len: body.len(),
                encryption: BodyEncryption::ClusterKey,
            };
            Ok::<_, Error>((header, body, held))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        tracing::info!(
            index = header.index,
            bytes = header.body_len,
            leases = header.counts.leases,
            apply_held_ms = held.as_millis() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot exported"
        );
        Ok(Export { header, body })
    }

    /// Receives a snapshot file from `body` into a temporary file (at most
    /// `max_bytes`), then verifies it: layout and checksum, a format and
    /// encryption this node reads, and a state that decodes. Changes
    /// nothing; a refusal is [`Error::BadRequest`].
    pub async fn receive_backup<S, E>(
        &self,
        body: S,
        max_bytes: u64,
    ) -> Result<ReceivedBackup, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut body = body;
        let mut sink = SnapshotSink::create(&self.inner.snapshot_dir)?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| bad(format!("the upload broke off: {e}")))?;
            if sink.written() + chunk.len() as u64 > max_bytes {
                return Err(bad(format!("a snapshot file is at most {max_bytes} bytes")));
            }
            sink.write(&chunk).await?;
        }
        let file = sink.finish().await?;
        let keeper = self.inner.keeper.clone();
        let (file, verified, plain_len) = tokio::task::spawn_blocking(move || {
            let verified = backup::verify(file.reader()?, file.len()).map_err(bad)?;
            let header = &verified.header;
            if header.state_format != SNAPSHOT_VERSION {
                return Err(bad(format!(
                    "the snapshot's state format {} is not supported (this node reads {SNAPSHOT_VERSION})",
                    header.state_format
                )));
            }
            if header.body_len > MAX_RESTORE_BYTES {
                return Err(bad(format!(
                    "a snapshot to restore is at most {MAX_RESTORE_BYTES} bytes"
                )));
            }
            let mut counted = Counted::new(body_reader(&file, &verified, &keeper)?);
            crate::store::read_state(&mut counted)
                .map_err(|e| bad(format!("the snapshot's state does not decode: {e}")))?;
            let plain_len = counted.finish()?;
            Ok::<_, Error>((file, verified, plain_len))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(ReceivedBackup {
            verified,
            file,
            plain_len,
        })
    }

    /// Replaces the cluster's state with a received snapshot, through the
    /// log: every replica ends with it, switching at the same index.
    pub async fn restore_backup(&self, received: ReceivedBackup) -> Result<RestoreReport, Error> {
        let restore_id = loop {
            let id = rand::random::<u64>();
            if id != 0 {
                break id;
            }
        };
        let chunk_size = (self.inner.settings.max_peer_message_bytes / 4)
            .clamp(4 << 10, MAX_RESTORE_CHUNK.min(1 << 20));
        let len = received.plain_len;
        let mut chunks_rx = plain_chunks(
            received.file,
            received.verified,
            self.inner.keeper.clone(),
            chunk_size,
        );
        let mut sum = Checksum::default();
        let mut offset = 0u64;
        let mut chunks = 0u64;
        let mut next_log = 0u64;
        tracing::info!(
            restore_id,
            bytes = len,
            "restoring a snapshot through the log"
        );
        while let Some(buf) = chunks_rx.recv().await {
            let buf = match buf {
                Ok(buf) => buf,
                Err(e) => {
                    self.abandon_restore(restore_id).await;
                    return Err(Error::Storage(format!("reading the snapshot: {e}")));
                }
            };
            let n = buf.len();
            sum.update(&buf);
            let stage = Command::StageRestore {
                restore_id,
                offset,
                chunk: Chunk(buf),
            };
            if let Err(e) = self.propose_with_retry(stage, None).await {
                self.abandon_restore(restore_id).await;
                return Err(e);
            }
            offset += n as u64;
            chunks += 1;
            if offset * 10 >= next_log * len {
                tracing::info!(restore_id, staged = offset, of = len, "restore staged");
                next_log = offset * 10 / len.max(1) + 1;
            }
        }
        if offset != len {
            self.abandon_restore(restore_id).await;
            return Err(Error::Storage(format!(
                "the snapshot body read back as {offset} bytes, {len} were verified"
            )));
        }
        let commit = Command::CommitRestore {
            restore_id,
            len,
            sha256: Chunk(sum.finish().to_vec()),
        };
        let key = format!("snapshot-restore-{restore_id:016x}");
        if let Err(e) = self.propose_with_retry(commit, Some(key)).await {
            self.abandon_restore(restore_id).await;
            return Err(e);
        }
        let applied_index = self.status().applied.unwrap_or(0);
        tracing::info!(restore_id, applied_index, "snapshot restored");
        // The chunks are in the log until a snapshot covers them: take one
        // now rather than replaying them on the next start.
        if let Err(e) = self.trigger_snapshot().await {
            tracing::warn!(error = %e, "could not trigger a snapshot after the restore");
        }
        Ok(RestoreReport {
            bytes: len,
            chunks,
            applied_index,
        })
    }

    /// Writes `command`, retrying while the cluster is between leaders or
    /// the outcome is unknown (each restore command is safe to repeat).
    async fn propose_with_retry(&self, command: Command, key: Option<String>) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + CHUNK_RETRY_FOR;
        loop {
            match self
                .write(Request::Apply(command.clone()), key.clone())
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, verb = command.verb(), "retrying a restore step");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Best effort: drops a stage that will not be committed.
    async fn abandon_restore(&self, restore_id: u64) {
        let abort = Request::Apply(Command::AbortRestore { restore_id });
        if let Err(e) = self.write(abort, None).await {
            tracing::warn!(error = %e, restore_id, "could not drop an abandoned restore stage");
        }
    }
}

/// The plain state encoding of a received snapshot file's body.
fn body_reader(
    file: &SnapshotFile,
    verified: &Verified,
    keeper: &crate::seal::Keeper,
) -> Result<Box<dyn Read + Send>, Error> {
    let mut reader = file.reader()?;
    reader.seek(SeekFrom::Start(verified.body_offset))?;
    let body = reader.take(verified.header.body_len);
    Ok(match verified.header.encryption {
        BodyEncryption::None => Box::new(body),
        BodyEncryption::ClusterKey => Box::new(keeper.decrypt_from(body).map_err(|e| {
            bad(format!(
                "the snapshot does not decrypt with this cluster's keys: {e}"
            ))
        })?),
    })
}

/// Counts what passes through, and checks the reader is used up.
struct Counted<R: Read> {
    inner: R,
    n: u64,
}

impl<R: Read> Counted<R> {
    fn new(inner: R) -> Self {
        Counted { inner, n: 0 }
    }

    /// Bytes read; refuses a body with more after the state.
    fn finish(mut self) -> Result<u64, Error> {
        let mut extra = [0u8; 1];
        if self.inner.read(&mut extra)? != 0 {
            return Err(bad("the snapshot's body has bytes after its state"));
        }
        Ok(self.n)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Streams a received file's plain body in chunks of `size`, read (and
/// decrypted) on a blocking thread.
fn plain_chunks(
    file: SnapshotFile,
    verified: Verified,
    keeper: Arc<crate::seal::Keeper>,
    size: usize,
) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut reader = match body_reader(&file, &verified, &keeper) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.to_string()));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; size];
            let mut filled = 0;
            while filled < size {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.to_string()));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    rx
}
