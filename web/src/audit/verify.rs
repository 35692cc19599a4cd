//! `keel audit verify`: walks audit files along their chain and reports
//! the first broken or missing link.
//!
//! Files may be given in any order (a shell glob lists `audit.log` before
//! `audit.log.1`); they are taken in the order of their first sequence
//! number. A chain that does not start at the first line ever written
//! (older files rotated away or not given) is reported as such, not as a
//! break. What the chain cannot show: lines cut from the very end of the
//! newest file, which is why audit lines belong shipped off the node too.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chain::{GENESIS, fields_of, hash_line};
use super::entry::Entry;

/// A chain that held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Files read.
    pub files: usize,
    /// Lines checked.
    pub lines: u64,
    /// Sequence number of the first line given.
    pub first_seq: Option<u64>,
    /// Sequence number of the last line given.
    pub last_seq: Option<u64>,
    /// Whether the first line given is the first line ever written.
    pub from_genesis: bool,
}

/// The first link that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The file it is in.
    pub file: PathBuf,
    /// Its line number in that file (1-based; 0 for the file as a whole).
    pub line: usize,
    /// Its sequence number, if it has one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

fn broken(file: &Path, line: usize, seq: Option<u64>, reason: impl Into<String>) -> Broken {
    Broken {
        file: file.to_path_buf(),
        line,
        seq,
        reason: reason.into(),
    }
}

/// The sequence number of a file's first line (`None`: empty file).
fn first_seq(path: &Path) -> Result<Option<u64>, Broken> {
    let file = File::open(path).map_err(|e| broken(path, 0, None, e.to_string()))?;
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .map_err(|e| broken(path, 0, None, e.to_string()))?;
    let first = first.trim_end_matches('\n');
    if first.is_empty() {
        return Ok(None);
    }
    fields_of(first)
        .map(|(seq, _)| Some(seq))
        .ok_or_else(|| broken(path, 1, None, "not an audit line (no seq and prev)"))
}

/// Checks the chain through `files`.
pub fn verify(files: &[PathBuf]) -> Result<Verified, Broken> {
    let mut ordered = Vec::with_capacity(files.len());
    for path in files {
        ordered.push((first_seq(path)?, path));
    }
    // Empty files first (they hold nothing), then by first sequence number.
    ordered.sort_by_key(|(seq, _)| seq.unwrap_or(0));
    let mut report = Verified {
        files: files.len(),
        lines: 0,
        first_seq: None,
        last_seq: None,
        from_genesis: false,
    };
    let mut last: Option<(u64, String)> = None;
    for (_, path) in ordered {
        let file = File::open(path).map_err(|e| broken(path, 0, None, e.to_string()))?;
        let mut reader = BufReader::new(file);
        let mut number = 0;
        let mut raw = String::new();
        loop {
            raw.clear();
            let n = reader
                .read_line(&mut raw)
                .map_err(|e| broken(path, number + 1, None, e.to_string()))?;
            if n == 0 {
                break;
            }
            number += 1;
            let Some(line) = raw.strip_suffix('\n') else {
                return Err(broken(path, number, None, "the last line is cut short"));
            };
            let Some((seq, prev)) = fields_of(line) else {
                return Err(broken(
                    path,
                    number,
                    None,
                    "not an audit line (no seq and prev)",
                ));
            };
            if serde_json::from_str::<Entry>(line).is_err() {
                return Err(broken(
                    path,
                    number,
                    Some(seq),
                    "not a well-formed audit entry",
                ));
            }
            match &last {
                None => {
                    report.first_seq = Some(seq);
                    report.from_genesis = prev == GENESIS;
                    if report.from_genesis && seq != 1 {
                        return Err(broken(
                            path,
                            number,
                            Some(seq),
                            "links to the start of the chain but is not its first line",
                        ));
                    }
                }
                Some((last_seq, last_hash)) => {
                    if seq != last_seq + 1 {
                        return Err(broken(
                            path,
                            number,
                            Some(seq),
                            format!(
                                "expected seq {} here: lines {}..{} are missing",
                                last_seq + 1,
                                last_seq + 1,
                                seq.saturating_sub(1).max(last_seq + 1)
                            ),
                        ));
                    }
                    if &prev != last_hash {
                        return Err(broken(
                            path,
                            number,
                            Some(seq),
                            format!(
                                "does not link to the line before (seq {last_seq}): that line \
                                 was changed or replaced"
                            ),
                        ));
                    }
                }
            }
            report.lines += 1;
            report.last_seq = Some(seq);
            last = Some((seq, hash_line(line)));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{Head, link};

    fn write_chain(dir: &Path, n: u64) -> (PathBuf, Vec<String>) {
        let mut head = Head::default();
        let mut lines = Vec::new();
        for i in 0..n {
            let entry = format!(
                r#"{{"type":"event","time":"t{i}","node":"node-1","event":{{"kind":"seal","source":"api","message":"m{i}"}}}}"#
            );
            let (line, next) = link(&head, &entry);
            head = next;
            lines.push(line);
        }
        let path = dir.join("audit.log");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        (path, lines)
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_any_edit_or_removal_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let (path, lines) = write_chain(dir.path(), 5);
        let ok = verify(std::slice::from_ref(&path)).unwrap();
        assert_eq!((ok.lines, ok.first_seq, ok.last_seq), (5, Some(1), Some(5)));
        assert!(ok.from_genesis);

        // An edited line: the link after it breaks.
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("m2", "m9");
        rewrite(&path, &edited);
        let e = verify(std::slice::from_ref(&path)).unwrap_err();
        assert_eq!((e.line, e.seq), (4, Some(4)));
        assert!(e.reason.contains("changed"), "{e}");

        // A removed line: a gap in the sequence.
        let mut removed = lines.clone();
        removed.remove(1);
        rewrite(&path, &removed);
        let e = verify(std::slice::from_ref(&path)).unwrap_err();
        assert_eq!((e.line, e.seq), (2, Some(3)));
        assert!(e.reason.contains("missing"), "{e}");

        // A removed line with the sequence numbers patched: the hash breaks.
        let mut patched = lines.clone();
        patched.remove(1);
        patched[1] = patched[1].replacen("\"seq\":3", "\"seq\":2", 1);
        rewrite(&path, &patched);
        assert!(verify(std::slice::from_ref(&path)).is_err());

        // A cut-short last line.
        std::fs::write(&path, lines.join("\n")).unwrap();
        let e = verify(std::slice::from_ref(&path)).unwrap_err();
        assert!(e.reason.contains("cut short"), "{e}");
    }

    #[test]
    fn rotated_files_verify_in_any_order_and_a_missing_one_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (_, lines) = write_chain(dir.path(), 9);
        let parts: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("part{i}"));
                rewrite(&p, &lines[i * 3..i * 3 + 3]);
                p
            })
            .collect();
        let all = verify(&[parts[2].clone(), parts[0].clone(), parts[1].clone()]).unwrap();
        assert_eq!((all.lines, all.last_seq), (9, Some(9)));
        let e = verify(&[parts[0].clone(), parts[2].clone()]).unwrap_err();
        assert_eq!(e.seq, Some(7));
        // Only the newer files: a chain that starts mid-way, not a break.
        let tail = verify(&[parts[1].clone(), parts[2].clone()]).unwrap();
        assert_eq!((tail.first_seq, tail.from_genesis), (Some(4), false));
    }
}
