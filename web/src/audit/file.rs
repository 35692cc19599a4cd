//! The audit file: JSON lines appended with the chain, rotated by size.
//!
//! On (re)open the chain resumes from the last line on disk, so restarts
//! and rotations never break it: after `audit.log` passes its size limit
//! it becomes `audit.log.1` (older files shift up, the oldest beyond the
//! kept count goes) and the next line, in a new `audit.log`, links to the
//! last line of `audit.log.1`. A line is written with one `write` to a file
//! opened for appending, so a crash of the process loses no line it
//! acknowledged; a line cut short by a crash of the machine is removed on
//! the next open (it was never acknowledged).
//!
//! The directory is created 0700 and files 0600. A failed write closes the
//! file; the next line opens the path again, so an operator who fixes the
//! disk (or re-points a symlink) restores audit without a restart.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::chain::{Head, fields_of, hash_line, link};

/// How much of a file's end is read to find its last line.
const TAIL_BYTES: u64 = 1 << 20;

/// An open audit file and where its chain stands.
#[derive(Debug)]
pub struct Appender {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
    head: Option<Head>,
}

impl Appender {
    /// An appender for `path`, rotating past `max_bytes` and keeping
    /// `keep` rotated files. Opens nothing yet.
    pub fn new(path: PathBuf, max_bytes: u64, keep: usize) -> Self {
        Appender {
            path,
            max_bytes: max_bytes.max(1),
            keep,
            file: None,
            size: 0,
            head: None,
        }
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        let (size, last) = last_line(&mut file)?;
        if self.head.is_none() {
            let head = match last {
                Some(line) => head_of(&line)?,
                None => match std::fs::read(self.rotated(1)) {
                    Ok(bytes) => match String::from_utf8_lossy(&bytes).lines().last() {
                        Some(line) => head_of(line)?,
                        None => Head::default(),
                    },
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Head::default(),
                    Err(e) => return Err(e),
                },
            };
            self.head = Some(head);
        }
        self.size = size;
        self.file = Some(file);
        Ok(())
    }

    /// Appends one entry (a serialized JSON object) and returns its
    /// sequence number. On error nothing is acknowledged and the file is
    /// closed, to be opened again by the next append.
    pub fn append(&mut self, entry_json: &str) -> io::Result<u64> {
        if self.file.is_none() {
            self.open()?;
        }
        let head = self.head.clone().unwrap_or_default();
        let (mut line, next) = link(&head, entry_json);
        line.push('\n');
        let written = self
            .file
            .as_mut()
            .map_or(Ok(()), |f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            self.file = None;
            return Err(e);
        }
        self.size += line.len() as u64;
        let seq = next.seq;
        self.head = Some(next);
        if self.size >= self.max_bytes {
            // The line is written either way; a failed rotation only means
            // the file grows until the next attempt.
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, "rotating the audit file failed; will retry");
                self.file = None;
            }
        }
        Ok(seq)
    }

    /// Flushes written lines to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_data()?;
        }
        match std::fs::remove_file(self.rotated(self.keep.max(1))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..self.keep.max(1)).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        if self.keep == 0 {
            // Nothing kept: the chain goes on from memory.
            std::fs::remove_file(self.rotated(1))?;
        }
        Ok(())
    }
}

fn head_of(line: &str) -> io::Result<Head> {
    let (seq, _) = fields_of(line).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the audit file's last line is not an audit line; move the file aside",
        )
    })?;
    Ok(Head {
        seq,
        hash: hash_line(line),
    })
}

/// The file's size and last complete line. A partial last line (a crash
/// of the machine mid-write) is cut off.
fn last_line(file: &mut File) -> io::Result<(u64, Option<String>)> {
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok((0, None));
    }
    let len = meta.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.take(len - start).read_to_end(&mut tail)?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut size = len;
    if complete < tail.len() {
        tracing::warn!(
            bytes = tail.len() - complete,
            "the audit file ends in a cut-short line; removing it"
        );
        size = start + complete as u64;
        file.set_len(size)?;
    }
    let text = String::from_utf8_lossy(&tail[..complete]);
    Ok((size, text.lines().last().map(str::to_string)))
}

/// The audit file and the rotated files beside it, oldest first.
pub fn files_of(path: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    if path.exists() {
        found.push((0, path.to_path_buf()));
    }
    let mut n = 1;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        let p = PathBuf::from(name);
        if !p.exists() {
            break;
        }
        found.push((n, p));
        n += 1;
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::verify;

    fn entry(i: usize) -> String {
        format!(
            r#"{{"type":"event","time":"t","node":"n","event":{{"kind":"reload","source":"signal","message":"{i}"}}}}"#
        )
    }

    #[test]
    fn rotation_and_reopening_keep_one_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit").join("audit.log");
        let mut a = Appender::new(path.clone(), 600, 3);
        for i in 0..10 {
            assert_eq!(a.append(&entry(i)).unwrap(), i as u64 + 1);
        }
        // Reopened, as after a restart: the chain resumes.
        let mut b = Appender::new(path.clone(), 600, 3);
        for i in 10..20 {
            assert_eq!(b.append(&entry(i)).unwrap(), i as u64 + 1);
        }
        let files = files_of(&path);
        assert!(files.len() > 2, "{files:?}");
        assert!(files.len() <= 4, "kept at most 3 rotated files: {files:?}");
        let report = verify(&files).unwrap();
        assert_eq!(report.last_seq, Some(20));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for f in &files {
            assert_eq!(mode(f), 0o600, "{f:?}");
        }
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_cut_short_line_is_dropped_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut a = Appender::new(path.clone(), 1 << 20, 3);
        a.append(&entry(0)).unwrap();
        a.append(&entry(1)).unwrap();
        drop(a);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":3,"prev":"ab"#).unwrap();
        let mut b = Appender::new(path.clone(), 1 << 20, 3);
        assert_eq!(b.append(&entry(2)).unwrap(), 3);
        assert_eq!(verify(&[path]).unwrap().lines, 3);
    }

    #[test]
    fn a_failing_device_fails_the_append_and_a_fixed_path_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let link_path = dir.path().join("audit.log");
        std::os::unix::fs::symlink("/dev/full", &link_path).unwrap();
        let mut a = Appender::new(link_path.clone(), 1 << 20, 3);
        assert!(a.append(&entry(0)).is_err());
        assert!(a.append(&entry(0)).is_err());
        std::fs::remove_file(&link_path).unwrap();
        let real = dir.path().join("real.log");
        std::os::unix::fs::symlink(&real, &link_path).unwrap();
        assert_eq!(a.append(&entry(1)).unwrap(), 1);
        assert_eq!(verify(&[real]).unwrap().lines, 1);
    }
}
