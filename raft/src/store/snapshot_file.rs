//! [`SnapshotFile`]: the snapshot data type keel hands to openraft. A
//! snapshot is never one buffer in memory: it is a file, built by streaming
//! the state into it, sent by streaming it out, received by streaming the
//! peer's body into a temporary file ([`SnapshotSink`]) and installed by
//! decoding the state from a buffered reader over it.
//!
//! A file that was received (or built) but not yet made the current
//! snapshot is temporary: it is deleted when its `SnapshotFile` is dropped,
//! so an aborted transfer or a refused install leaves nothing behind.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use tempfile::{NamedTempFile, TempPath};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Buffer size of snapshot readers and writers, and of the chunks sent to
/// peers: large enough for throughput, small against any state.
pub(crate) const IO_BUFFER: usize = 1 << 20;

/// The bytes of one snapshot, as a file: opened once, so a snapshot
/// replaced while it is being sent stays readable until the send ends.
pub struct SnapshotFile {
    /// The open file, read from the start by every reader.
    file: File,
    /// Its length in bytes.
    len: u64,
    /// Where it is, for logs and for moving a received file into place.
    path: PathBuf,
    /// Set while the file is not (yet) a store's current snapshot: deleted
    /// on drop unless [`SnapshotFile::persist`] moves it into place.
    temp: Option<TempPath>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("temp", &self.temp.is_some())
            .finish()
    }
}

impl SnapshotFile {
    /// Opens a snapshot file that belongs to a store (never deleted here).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let len = file.metadata()?.len();
        Ok(SnapshotFile {
            file,
            len,
            path: path.to_path_buf(),
            temp: None,
        })
    }

    /// Wraps a fully written, fsynced temporary file.
    pub(crate) fn from_temp(tmp: NamedTempFile) -> io::Result<Self> {
        let (file, temp) = tmp.into_parts();
        let len = file.metadata()?.len();
        Ok(SnapshotFile {
            file,
            len,
            path: temp.to_path_buf(),
            temp: Some(temp),
        })
    }

    /// The snapshot's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the snapshot is empty (never true of a valid one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this file is a temporary one in `dir` (so installing it
    /// there is a rename, not a copy).
    pub(crate) fn is_temp_in(&self, dir: &Path) -> bool {
        self.temp.is_some() && self.path.parent() == Some(dir)
    }

    /// A buffered reader from the start of the file. One reader at a time:
    /// readers share the file position.
    pub fn reader(&self) -> io::Result<BufReader<File>> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(BufReader::with_capacity(IO_BUFFER, file))
    }

    /// Moves a temporary file to `to` (same directory, so a rename) and
    /// keeps it. The caller fsyncs the directory.
    pub(crate) fn persist(mut self, to: &Path) -> io::Result<()> {
        match self.temp.take() {
            Some(temp) => temp.persist(to).map_err(|e| e.error),
            None => Err(io::Error::other("only a temporary snapshot file moves")),
        }
    }

    /// The file as a stream of chunks of at most [`IO_BUFFER`] bytes, for
    /// sending to a peer.
    pub fn into_stream(self) -> io::Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        let reader = tokio::fs::File::from_std(file).take(self.len);
        // `self` (and a temporary file's guard) lives as long as the stream.
        let guard = self;
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, IO_BUFFER);
        Ok(futures::StreamExt::map(stream, move |chunk| {
            let _keep = &guard;
            chunk
        }))
    }
}

/// Copies a snapshot file into a new temporary file in `dir`, fsynced.
pub(crate) fn copy_into(src: &SnapshotFile, dir: &Path) -> io::Result<SnapshotFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix("copy-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let mut reader = src.reader()?.take(src.len);
    io::copy(&mut reader, tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    SnapshotFile::from_temp(tmp)
}

/// A snapshot being received from a peer: bytes go to a temporary file in
/// the store's snapshot directory as they arrive, never all into memory.
pub struct SnapshotSink {
    file: tokio::io::BufWriter<tokio::fs::File>,
    temp: TempPath,
    written: u64,
}

impl SnapshotSink {
    /// A new, empty temporary file in `dir`.
    pub(crate) fn create(dir: &Path) -> io::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("recv-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        let (file, temp) = tmp.into_parts();
        Ok(SnapshotSink {
            file: tokio::io::BufWriter::with_capacity(IO_BUFFER, tokio::fs::File::from_std(file)),
            temp,
            written: 0,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends received bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).await?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the file: what is returned is durable.
    pub async fn finish(mut self) -> io::Result<SnapshotFile> {
        self.file.flush().await?;
        let file = self.file.into_inner();
        file.sync_all().await?;
        let file = file.into_std().await;
        Ok(SnapshotFile {
            file,
            len: self.written,
            path: self.temp.to_path_buf(),
            temp: Some(self.temp),
        })
    }
}
