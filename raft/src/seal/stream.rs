//! Encrypted streams, for snapshot files and saved snapshots (backups).
//!
//! A stream is `MAGIC | version (1) | stream id (8, random)` then frames:
//! `length (u32 BE, of what follows; the top bit marks the last frame) |
//! sealed chunk`. Chunk `i` is sealed
//! with the stream key under the nonce `stream id | i` and binds the
//! stream id, `i` and whether it is the last chunk, so frames cannot be
//! reordered, dropped, repeated or cut off at the end without the reader
//! failing. The stream key is derived from the root key, the same on every
//! node of a cluster: snapshot files travel between nodes as they are
//! stored, and a saved snapshot restores on any node of the cluster.

use std::io::{self, Read, Write};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::keys::Key;

/// First bytes of an encrypted stream.
pub const MAGIC: &[u8; 4] = b"KENC";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 8;
/// Plaintext bytes per chunk.
const CHUNK: usize = 64 << 10;
const TAG_LEN: usize = 16;

fn cipher(key: &Key) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).expect("32-byte key"))
}

fn nonce(stream: [u8; 8], index: u32) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&stream);
    n[8..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(stream: [u8; 8], index: u32, last: bool) -> [u8; 21] {
    let mut a = [0u8; 21];
    a[..8].copy_from_slice(b"kstream1");
    a[8..16].copy_from_slice(&stream);
    a[16..20].copy_from_slice(&index.to_be_bytes());
    a[20] = u8::from(last);
    a
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("encrypted stream: {what}"),
    )
}

/// Encrypts what is written to it; [`EncryptWriter::finish`] seals the
/// last chunk (a stream never finished is refused by the reader).
pub struct EncryptWriter<W: Write> {
    out: W,
    cipher: LessSafeKey,
    stream: [u8; 8],
    index: u32,
    buf: Zeroizing<Vec<u8>>,
}

impl<W: Write> EncryptWriter<W> {
    /// Starts a stream into `out` under `key`.
    pub fn new(mut out: W, key: &Key) -> io::Result<Self> {
        let mut stream = [0u8; 8];
        SystemRandom::new()
            .fill(&mut stream)
            .map_err(|_| io::Error::other("system RNG failed"))?;
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        out.write_all(&stream)?;
        Ok(EncryptWriter {
            out,
            cipher: cipher(key),
            stream,
            index: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK + TAG_LEN)),
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let mut chunk = Zeroizing::new(std::mem::take(&mut *self.buf));
        self.cipher
            .seal_in_place_append_tag(
                nonce(self.stream, self.index),
                Aad::from(aad(self.stream, self.index, last)),
                &mut *chunk,
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        let len = u32::try_from(chunk.len()).map_err(|_| invalid("chunk too long"))?;
        self.out
            .write_all(&(len | (u32::from(last) << 31)).to_be_bytes())?;
        self.out.write_all(&chunk)?;
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| invalid("too many chunks"))?;
        chunk.clear();
        *self.buf = std::mem::take(&mut *chunk);
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == CHUNK {
            self.emit(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Decrypts a stream [`EncryptWriter`] wrote, failing on any change.
pub struct DecryptReader<R: Read> {
    input: R,
    cipher: LessSafeKey,
    stream: [u8; 8],
    index: u32,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    done: bool,
}

impl<R: Read> DecryptReader<R> {
    /// Reads the stream header from `input`.
    pub fn new(mut input: R, key: &Key) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        input
            .read_exact(&mut header)
            .map_err(|_| invalid("too short"))?;
        if &header[..4] != MAGIC {
            return Err(invalid("not encrypted by keel (no header)"));
        }
        if header[4] != VERSION {
            return Err(invalid("unknown version"));
        }
        Ok(DecryptReader {
            input,
            cipher: cipher(key),
            stream: header[5..].try_into().expect("8 bytes"),
            index: 0,
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            done: false,
        })
    }

    /// Reads and opens the next chunk; `false` at the end of the stream.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let mut len = [0u8; 4];
        self.input
            .read_exact(&mut len)
            .map_err(|_| invalid("cut short"))?;
        let word = u32::from_be_bytes(len);
        let last = word >> 31 == 1;
        let len = (word & !(1 << 31)) as usize;
        if !(TAG_LEN..=CHUNK + TAG_LEN).contains(&len) {
            return Err(invalid("bad chunk length"));
        }
        let mut chunk = std::mem::take(&mut *self.plain);
        chunk.resize(len, 0);
        self.input
            .read_exact(&mut chunk)
            .map_err(|_| invalid("cut short"))?;
        let opened = self
            .cipher
            .open_in_place(
                nonce(self.stream, self.index),
                Aad::from(aad(self.stream, self.index, last)),
                &mut chunk,
            )
            .map(|plain| plain.len());
        let Ok(plain_len) = opened else {
            chunk.fill(0);
            return Err(invalid("wrong key, or the data was altered"));
        };
        chunk.truncate(plain_len);
        if last {
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra)? != 0 {
                return Err(invalid("data after the last chunk"));
            }
            self.done = true;
        }
        self.index += 1;
        *self.plain = chunk;
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whether `bytes` start like an encrypted stream.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt(key: &Key, data: &[u8]) -> Vec<u8> {
        let mut w = EncryptWriter::new(Vec::new(), key).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn decrypt(key: &Key, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        DecryptReader::new(data, key)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn streams_of_every_size_round_trip_and_hide_their_content() {
        let key = Key::random().unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = b"acme/job-7 ".iter().copied().cycle().take(len).collect();
            let sealed = encrypt(&key, &data);
            assert!(is_encrypted(&sealed));
            assert!(!sealed.windows(10).any(|w| w == b"acme/job-7"), "len {len}");
            assert_eq!(decrypt(&key, &sealed).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn a_cut_reordered_altered_or_foreign_stream_is_refused() {
        let key = Key::random().unwrap();
        let data = vec![7u8; 2 * CHUNK + 5];
        let sealed = encrypt(&key, &data);
        // Cut at a frame boundary: the last chunk is missing.
        let first_frame = HEADER_LEN + 4 + CHUNK + TAG_LEN;
        assert!(decrypt(&key, &sealed[..first_frame]).is_err());
        assert!(decrypt(&key, &sealed[..sealed.len() - 1]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(decrypt(&key, &longer).is_err());
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN + 10] ^= 1;
        assert!(decrypt(&key, &flipped).is_err());
        // Two full frames swapped.
        let frame = 4 + CHUNK + TAG_LEN;
        let mut swapped = sealed[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&sealed[HEADER_LEN + frame..HEADER_LEN + 2 * frame]);
        swapped.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + frame]);
        swapped.extend_from_slice(&sealed[HEADER_LEN + 2 * frame..]);
        assert!(decrypt(&key, &swapped).is_err());
        assert!(decrypt(&Key::random().unwrap(), &sealed).is_err());
        assert!(decrypt(&key, b"KSNPplain").is_err());
    }
}
