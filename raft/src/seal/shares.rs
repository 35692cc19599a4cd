//! Key shares of the root key: Shamir's secret sharing over GF(256), done
//! by the `blahaj` crate. keel only encodes shares (hex) and keeps a
//! digest of each, so a wrong share is refused on its own, before it could
//! spoil a combination.

use blahaj::{Share, Sharks};
use ring::digest::{SHA256, digest};
use zeroize::Zeroizing;

use super::keys::{KEY_LEN, Key};

/// Most shares an init may create.
pub const MAX_SHARES: u8 = 16;

/// Why shares could not be made or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    /// Counts out of range.
    #[error(
        "key_threshold must be between 1 and key_shares, and key_shares between 1 and {MAX_SHARES} (got {threshold} of {shares})"
    )]
    Counts {
        /// Requested shares.
        shares: u8,
        /// Requested threshold.
        threshold: u8,
    },
    /// Not a share of this keel's encoding.
    #[error("a key share is {len} hex characters", len = 2 * (KEY_LEN + 1))]
    Malformed,
    /// The shares do not combine into a key.
    #[error("the key shares do not combine into a root key")]
    Combine,
}

/// An encoded share, wiped when dropped.
pub type ShareText = Zeroizing<String>;

/// Splits `root` into `shares` hex shares, any `threshold` of which rebuild it.
pub fn split(root: &Key, shares: u8, threshold: u8) -> Result<Vec<ShareText>, ShareError> {
    if shares == 0 || shares > MAX_SHARES || threshold == 0 || threshold > shares {
        return Err(ShareError::Counts { shares, threshold });
    }
    Ok(Sharks(threshold)
        .dealer(root.expose())
        .take(usize::from(shares))
        .map(|share| {
            let bytes = Zeroizing::new(Vec::from(&share));
            Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect())
}

/// The bytes of a hex share (surrounding white space ignored).
pub fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    let text = text.trim();
    if text.len() != 2 * (KEY_LEN + 1) || !text.is_ascii() {
        return Err(ShareError::Malformed);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    for pair in text.as_bytes().chunks(2) {
        let hex = std::str::from_utf8(pair).map_err(|_| ShareError::Malformed)?;
        out.push(u8::from_str_radix(hex, 16).map_err(|_| ShareError::Malformed)?);
    }
    if out[0] == 0 {
        return Err(ShareError::Malformed);
    }
    Ok(out)
}

/// The digest kept of a share (hex SHA-256 of its bytes). Shares are
/// uniformly random, so the digest reveals nothing of them.
pub fn digest_of(share: &[u8]) -> String {
    digest(&SHA256, share)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rebuilds the root key from `threshold` or more share byte strings.
pub fn combine(shares: &[Zeroizing<Vec<u8>>], threshold: u8) -> Result<Key, ShareError> {
    let parsed: Vec<Share> = shares
        .iter()
        .map(|s| Share::try_from(s.as_slice()).map_err(|_| ShareError::Malformed))
        .collect::<Result<_, _>>()?;
    let secret = Zeroizing::new(
        Sharks(threshold)
            .recover(&parsed)
            .map_err(|_| ShareError::Combine)?,
    );
    Key::from_slice(&secret).ok_or(ShareError::Combine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_of_the_shares_rebuilds_the_root_and_fewer_do_not() {
        let root = Key::random().unwrap();
        let texts = split(&root, 5, 3).unwrap();
        assert_eq!(texts.len(), 5);
        let bytes: Vec<_> = texts.iter().map(|t| decode(t).unwrap()).collect();
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let chosen: Vec<_> = pick.iter().map(|i| bytes[*i].clone()).collect();
            assert_eq!(combine(&chosen, 3).unwrap().expose(), root.expose());
        }
        assert!(combine(&bytes[..2], 3).is_err());
        let mut wrong = bytes[..3].to_vec();
        wrong[2][5] ^= 1;
        assert_ne!(combine(&wrong, 3).unwrap().expose(), root.expose());
    }

    #[test]
    fn counts_and_encodings_out_of_range_are_refused() {
        let root = Key::random().unwrap();
        for (n, t) in [(0, 0), (3, 4), (3, 0), (MAX_SHARES + 1, 2)] {
            assert!(matches!(split(&root, n, t), Err(ShareError::Counts { .. })));
        }
        assert_eq!(split(&root, 1, 1).unwrap().len(), 1);
        for bad in ["", "zz", &"0".repeat(66), &"g".repeat(66), &"ab".repeat(40)] {
            assert_eq!(decode(bad), Err(ShareError::Malformed), "{bad}");
        }
    }

    #[test]
    fn digests_tell_shares_apart() {
        let texts = split(&Key::random().unwrap(), 3, 2).unwrap();
        let digests: std::collections::BTreeSet<_> = texts
            .iter()
            .map(|t| digest_of(&decode(t).unwrap()))
            .collect();
        assert_eq!(digests.len(), 3);
    }
}
