//! The snapshot encoding of the domain [`State`]: `MAGIC`, a big-endian
//! `u16` format version, then the compact encoding of the state. The same
//! bytes are stored, streamed to followers, installed and backed up; two
//! replicas at the same applied index produce identical bytes, because every
//! table in `State` is ordered. Also the running checksum backups and staged
//! restores are verified with.

use std::io::{Read, Write};

use crate::State;
use crate::codec::{self, CodecError};

const MAGIC: &[u8; 4] = b"KSNP";
/// Version of the snapshot state encoding.
pub const SNAPSHOT_VERSION: u16 = 1;
/// Length of a [`Checksum`] digest.
pub const CHECKSUM_LEN: usize = 32;

/// Encodes the domain state as snapshot bytes in memory (tests, tools).
pub fn encode_state(state: &State) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(1024);
    write_state(&mut out, state)?;
    Ok(out)
}

/// Decodes in-memory snapshot bytes into a domain state.
pub fn decode_state(bytes: &[u8]) -> Result<State, CodecError> {
    read_state(bytes)
}

/// Writes the snapshot encoding of `state` to `out`.
pub fn write_state<W: Write + ?Sized>(out: &mut W, state: &State) -> Result<(), CodecError> {
    out.write_all(MAGIC)
        .and_then(|()| out.write_all(&SNAPSHOT_VERSION.to_be_bytes()))
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    codec::encode_compact_to(out, state)
}

/// Reads a snapshot encoding from `input` (buffered by the caller) into a
/// domain state with its indexes rebuilt. Trailing bytes are an error: a
/// snapshot is exactly one state.
pub fn read_state<R: Read>(mut input: R) -> Result<State, CodecError> {
    let mut head = [0u8; 6];
    input
        .read_exact(&mut head)
        .map_err(|_| CodecError::Decode("not a keel snapshot (too short)".into()))?;
    if &head[..4] != MAGIC {
        return Err(CodecError::Decode("not a keel snapshot".into()));
    }
    let version = u16::from_be_bytes([head[4], head[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(CodecError::Decode(format!(
            "snapshot format version {version} is not supported (this node reads {SNAPSHOT_VERSION})"
        )));
    }
    let mut state: State = codec::decode_compact_from(&mut input)?;
    let mut rest = [0u8; 1];
    match input.read(&mut rest) {
        Ok(0) => {}
        Ok(_) => {
            return Err(CodecError::Decode(
                "trailing bytes after the snapshot".into(),
            ));
        }
        Err(e) => return Err(CodecError::Decode(e.to_string())),
    }
    state.rebuild_indexes();
    Ok(state)
}

/// A running SHA-256 over the bytes of a snapshot file.
pub struct Checksum(ring::digest::Context);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Checksum {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(self) -> [u8; CHECKSUM_LEN] {
        let mut out = [0u8; CHECKSUM_LEN];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}
