//! Binary encoding for everything keel persists or sends between peers.
//!
//! Every encoded value starts with a one-byte format version so that a node
//! can refuse (rather than misread) bytes written by an incompatible version.
//! Log entries and peer messages use MessagePack with field names, so fields
//! can be added with `#[serde(default)]`; snapshot state uses the compact
//! positional form, because it is large and carries its own version.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the encoding of log entries and peer messages.
pub const WIRE_VERSION: u8 = 1;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be serialized.
    #[error("encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(String),
    /// The bytes were written by a format version this node does not read.
    #[error("unsupported format version {found} (this node reads version {expected})")]
    Version {
        /// The version byte found.
        found: u8,
        /// The version this node reads.
        expected: u8,
    },
    /// The input was empty.
    #[error("empty input")]
    Empty,
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    }
}

/// Encodes a value as versioned, self-describing MessagePack.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(WIRE_VERSION);
    rmp_serde::encode::write_named(&mut out, value)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_VERSION {
        return Err(CodecError::Version {
            found: version,
            expected: WIRE_VERSION,
        });
    }
    rmp_serde::from_slice(body).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Appends the compact (positional) encoding of a value to `out`.
pub fn encode_compact_into<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), CodecError> {
    rmp_serde::encode::write(out, value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Writes the compact (positional) encoding of a value to a writer, so a
/// large value (a snapshot) goes to a file without a copy in memory.
pub fn encode_compact_to<W: std::io::Write + ?Sized, T: Serialize + ?Sized>(
    out: &mut W,
    value: &T,
) -> Result<(), CodecError> {
    rmp_serde::encode::write(out, value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a compact encoding from a reader (see [`encode_compact_to`]).
pub fn decode_compact_from<R: std::io::Read, T: DeserializeOwned>(
    input: R,
) -> Result<T, CodecError> {
    rmp_serde::from_read(input).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Decodes a compact encoding written by [`encode_compact_into`].
pub fn decode_compact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        a: u64,
        b: String,
    }

    #[test]
    fn round_trip_and_version_check() {
        let v = Sample {
            a: 7,
            b: "x".into(),
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), v);

        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert!(matches!(
            decode::<Sample>(&wrong),
            Err(CodecError::Version { found: 99, .. })
        ));
        assert!(matches!(decode::<Sample>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<Sample>(&[WIRE_VERSION, 0xc1]),
            Err(CodecError::Decode(_))
        ));
    }
}
