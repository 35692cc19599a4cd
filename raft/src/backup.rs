//! The operator's snapshot file: what `GET /v1/sys/snapshot` streams,
//! `keel operator snapshot save` writes, `inspect` reads without a server
//! and `restore` sends back.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! "KEELSNAP"            8 bytes, magic
//! format version        u16 (FORMAT_VERSION)
//! header length         u32, at most MAX_HEADER
//! header                JSON BackupHeader (readable with any tool)
//! body                  header.body_len bytes: the state snapshot encoding
//!                       (crate::store::write_state), or, under an
//!                       encryption scheme, its ciphertext
//! checksum              32 bytes: SHA-256 of everything before it
//! ```
//!
//! The checksum covers the header as well as the body and is computed over
//! the bytes as stored, so a file is verified (truncation, corruption,
//! trailing garbage) without any key and without decoding the state. The
//! header names the body's encryption: `cluster_key` (what a node saves:
//! the state encoding as an encrypted stream under the cluster's stream
//! key, see `crate::seal::stream`, so only an unsealed node of the same
//! cluster reads it) or `none` (files saved by keel before encryption at
//! rest, still restorable).

use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file's magic bytes.
pub const MAGIC: &[u8; 8] = b"KEELSNAP";
/// Version of this layout.
pub const FORMAT_VERSION: u16 = 1;
/// Largest header accepted: a header is a few hundred bytes.
pub const MAX_HEADER: usize = 64 << 10;
/// The trailing checksum and its length.
pub use crate::domain::encoding::{CHECKSUM_LEN, Checksum};

/// How many objects of each kind the snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCounts {
    /// Leases (every state).
    pub leases: u64,
    /// Accounts.
    pub accounts: u64,
    /// Certificates recorded by the cluster CA.
    pub certificates: u64,
    /// Remembered idempotency keys.
    pub idempotency_records: u64,
}

/// How the body is protected at rest. Tagged by `scheme`, so a file sealed
/// with a scheme this keel does not know is refused by name, not misread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum BodyEncryption {
    /// The body is the plain state encoding.
    None,
    /// The body is the state encoding encrypted under the cluster's stream
    /// key (derived from its root key).
    ClusterKey,
}

/// What a snapshot file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// Repeats the layout version, for readers of the JSON alone.
    pub format_version: u16,
    /// The cluster the snapshot was taken from.
    pub cluster_id: Option<String>,
    /// The committed log index the state is taken at.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// When it was taken (wall clock of the node that took it, ms).
    pub taken_at_ms: u64,
    /// The node (name) that took it.
    pub taken_by: u64,
    /// Version of the keel that took it.
    pub keel_version: String,
    /// Object counts of the state.
    pub counts: BackupCounts,
    /// Version of the state encoding inside the body.
    pub state_format: u16,
    /// Length of the body in bytes.
    pub body_len: u64,
    /// Protection of the body.
    pub encryption: BodyEncryption,
}

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The magic bytes are wrong.
    #[error("not a keel snapshot file")]
    NotASnapshot,
    /// A layout this keel does not read.
    #[error("snapshot file format {0} is not supported (this keel reads {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// The header is unreadable.
    #[error("snapshot header is invalid: {0}")]
    Header(String),
    /// The file is shorter than its header says.
    #[error("snapshot file is truncated: {found} of {expected} bytes")]
    Truncated {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file is longer than its header says.
    #[error("snapshot file has {extra} bytes after its checksum")]
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The checksum does not match the content.
    #[error("snapshot checksum mismatch: the file is corrupt")]
    ChecksumMismatch,
    /// Reading failed.
    #[error("reading the snapshot: {0}")]
    Io(#[from] io::Error),
}

/// The bytes before the body: magic, version, header length and header.
pub fn encode_prefix(header: &BackupHeader) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a header always serializes");
    let mut out = Vec::with_capacity(14 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Reads the prefix off `input`, feeding it to `sum`; returns the header
/// and the prefix length.
fn read_prefix<R: Read>(
    input: &mut R,
    sum: &mut Checksum,
    total: u64,
) -> Result<(BackupHeader, u64), BackupError> {
    let mut fixed = [0u8; 14];
    if total < fixed.len() as u64 {
        return Err(if total >= 8 {
            BackupError::Truncated {
                expected: fixed.len() as u64,
                found: total,
            }
        } else {
            BackupError::NotASnapshot
        });
    }
    input.read_exact(&mut fixed)?;
    if &fixed[..8] != MAGIC {
        return Err(BackupError::NotASnapshot);
    }
    let version = u16::from_be_bytes([fixed[8], fixed[9]]);
    if version != FORMAT_VERSION {
        return Err(BackupError::UnsupportedVersion(version));
    }
    let len = u32::from_be_bytes([fixed[10], fixed[11], fixed[12], fixed[13]]) as usize;
    if len > MAX_HEADER {
        return Err(BackupError::Header(format!(
            "{len} bytes long (at most {MAX_HEADER})"
        )));
    }
    let prefix_len = fixed.len() as u64 + len as u64;
    if total < prefix_len {
        return Err(BackupError::Truncated {
            expected: prefix_len,
            found: total,
        });
    }
    let mut json = vec![0u8; len];
    input.read_exact(&mut json)?;
    sum.update(&fixed);
    sum.update(&json);
    let header: BackupHeader =
        serde_json::from_slice(&json).map_err(|e| BackupError::Header(e.to_string()))?;
    if header.format_version != version {
        return Err(BackupError::Header(format!(
            "format_version {} disagrees with the file's {version}",
            header.format_version
        )));
    }
    Ok((header, prefix_len))
}

/// A snapshot file that passed [`verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its header.
    pub header: BackupHeader,
    /// Where the body starts in the file.
    pub body_offset: u64,
}

/// Verifies a whole snapshot file of `total` bytes read from `input`:
/// layout, lengths and checksum. Nothing is decoded beyond the header.
pub fn verify<R: Read>(mut input: R, total: u64) -> Result<Verified, BackupError> {
    let mut sum = Checksum::default();
    let (header, body_offset) = read_prefix(&mut input, &mut sum, total)?;
    let expected = body_offset
        .checked_add(header.body_len)
        .and_then(|n| n.checked_add(CHECKSUM_LEN as u64))
        .ok_or_else(|| BackupError::Header("body_len is out of range".into()))?;
    if total < expected {
        return Err(BackupError::Truncated {
            expected,
            found: total,
        });
    }
    if total > expected {
        return Err(BackupError::TrailingBytes {
            extra: total - expected,
        });
    }
    let mut body = (&mut input).take(header.body_len);
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != header.body_len {
        return Err(BackupError::Truncated {
            expected,
            found: body_offset + seen,
        });
    }
    let mut stored = [0u8; CHECKSUM_LEN];
    input.read_exact(&mut stored)?;
    if sum.finish() != stored {
        return Err(BackupError::ChecksumMismatch);
    }
    Ok(Verified {
        header,
        body_offset,
    })
}

/// Verifies the snapshot file at `path` (see [`verify`]).
pub fn verify_file(path: &Path) -> Result<Verified, BackupError> {
    let file = std::fs::File::open(path)?;
    let total = file.metadata()?.len();
    verify(io::BufReader::with_capacity(1 << 20, file), total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(body_len: u64) -> BackupHeader {
        BackupHeader {
            format_version: FORMAT_VERSION,
            cluster_id: Some("c1".into()),
            index: 7,
            term: 2,
            taken_at_ms: 1,
            taken_by: 0,
            keel_version: "test".into(),
            counts: BackupCounts::default(),
            state_format: 1,
            body_len,
            encryption: BodyEncryption::None,
        }
    }

    fn file(body: &[u8]) -> Vec<u8> {
        let mut out = encode_prefix(&header(body.len() as u64));
        out.extend_from_slice(body);
        let mut sum = Checksum::default();
        sum.update(&out);
        out.extend_from_slice(&sum.finish());
        out
    }

    fn check(bytes: &[u8]) -> Result<Verified, BackupError> {
        verify(bytes, bytes.len() as u64)
    }

    #[test]
    fn a_whole_file_verifies_and_says_where_its_body_is() {
        let bytes = file(b"state bytes");
        let v = check(&bytes).unwrap();
        assert_eq!(v.header, header(11));
        let start = v.body_offset as usize;
        assert_eq!(&bytes[start..start + 11], b"state bytes");
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = file(b"some state bytes");
        for cut in 0..bytes.len() {
            assert!(check(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = file(b"some state bytes");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(check(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn trailing_bytes_and_foreign_files_are_refused() {
        let mut bytes = file(b"x");
        bytes.push(0);
        assert!(matches!(
            check(&bytes),
            Err(BackupError::TrailingBytes { extra: 1 })
        ));
        assert!(matches!(
            check(b"PK\x03\x04 not ours at all"),
            Err(BackupError::NotASnapshot)
        ));
    }

    #[test]
    fn an_unknown_encryption_scheme_is_refused_by_name() {
        let json = serde_json::to_string(&header(1))
            .unwrap()
            .replace(r#""scheme":"none""#, r#""scheme":"aes256_gcm""#);
        let err = serde_json::from_str::<BackupHeader>(&json).unwrap_err();
        assert!(err.to_string().contains("aes256_gcm"), "{err}");
    }
}
