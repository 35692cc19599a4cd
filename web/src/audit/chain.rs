//! The hash chain that makes the audit log tamper-evident: every line
//! carries a sequence number and the SHA-256 of the line before it, so an
//! edited, removed or reordered line breaks the link after it, and a
//! missing rotated file shows as a gap in the sequence.
//!
//! A line is `{"seq":N,"prev":"<hex>",` followed by the entry's own JSON
//! fields; its hash is over its exact bytes (without the newline). The
//! first line ever written links to [`GENESIS`].

use ring::digest::{SHA256, digest};

/// The `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the chain stands: the last line's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last line (0 before any).
    pub seq: u64,
    /// Hash of the last line ([`GENESIS`] before any).
    pub hash: String,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The hash a following line names as its `prev`.
pub fn hash_line(line: &str) -> String {
    hex(digest(&SHA256, line.as_bytes()).as_ref())
}

/// The next line after `head` for an entry serialized as a JSON object,
/// and the head it makes.
pub fn link(head: &Head, entry_json: &str) -> (String, Head) {
    let seq = head.seq + 1;
    let rest = entry_json.strip_prefix('{').unwrap_or(entry_json);
    let line = format!("{{\"seq\":{seq},\"prev\":\"{}\",{rest}", head.hash);
    let hash = hash_line(&line);
    (line, Head { seq, hash })
}

/// The chain fields of a line, if it has them.
pub fn fields_of(line: &str) -> Option<(u64, String)> {
    #[derive(serde::Deserialize)]
    struct Chain {
        seq: u64,
        prev: String,
    }
    let c: Chain = serde_json::from_str(line).ok()?;
    Some((c.seq, c.prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_names_the_hash_of_the_one_before() {
        let (first, head1) = link(&Head::default(), r#"{"type":"event"}"#);
        assert_eq!(
            first,
            format!(r#"{{"seq":1,"prev":"{GENESIS}","type":"event"}}"#)
        );
        assert_eq!(fields_of(&first), Some((1, GENESIS.to_string())));
        let (second, head2) = link(&head1, r#"{"type":"request"}"#);
        assert_eq!(fields_of(&second), Some((2, hash_line(&first))));
        assert_eq!(head2.seq, 2);
        assert_eq!(head2.hash, hash_line(&second));
        assert_ne!(head1.hash, head2.hash);
    }
}
