//! The xbstream reader: chunks one at a time from any `Read`, each payload
//! checked against its CRC-32. Total: any byte sequence yields chunks or a
//! typed error, never a panic.
//!
//! Memory is bounded whatever a chunk header declares: a payload is read in
//! pieces of at most [`MAX_PIECE`] bytes, and a piece's buffer grows only as
//! its bytes arrive, so a header that claims a terabyte costs nothing until
//! the terabyte is actually on the wire, and then never more than one piece.

use std::io::{ErrorKind, Read};

use super::{FLAG_IGNORABLE, MAGIC};
use crate::SinkError;
use crate::paths::MAX_PATH;

/// Most payload bytes [`XbStreamReader::next_chunk`] returns at once: 10 MiB.
///
/// This is the chunk size xtrabackup and mariadb-backup write by default
/// (`XB_STREAM_MIN_CHUNK_SIZE`), so every chunk of a stream they write with
/// default settings comes back whole, its CRC-32 checked before any of its
/// bytes are used. They emit a bigger write as one bigger chunk (no upper
/// limit in the format); such a chunk comes back as several pieces, and its
/// CRC can only be checked once the last piece is read (see
/// [`ChunkKind::Payload::verified`]).
pub const MAX_PIECE: usize = 10 << 20;

/// First buffer size for a piece; it doubles as bytes arrive, up to the
/// piece's length. Small enough that a lying header costs nothing.
const FIRST_READ: usize = 64 << 10;

/// What a chunk carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkKind {
    /// `P`: bytes of the file at `offset`: a whole payload chunk, or one
    /// piece of a chunk larger than [`MAX_PIECE`].
    Payload {
        /// Offset of `data` within the file.
        offset: u64,
        /// The bytes, at most [`MAX_PIECE`] of them.
        data: Vec<u8>,
        /// The chunk's CRC-32 was checked over these bytes: true for a
        /// whole chunk and for the last piece of a big one. False for the
        /// earlier pieces of a big chunk; a mismatch found at its last piece
        /// is returned as [`SinkError::Checksum`] instead of that piece.
        verified: bool,
    },
    /// `E`: the file is complete.
    Eof,
    /// `S` (MariaDB): continue writing the file at `offset`.
    Seek {
        /// The new write position.
        offset: u64,
    },
    /// `R` (MariaDB): the file is renamed to `to`.
    Rename {
        /// The new path.
        to: String,
    },
    /// `D` (MariaDB): the file is removed.
    Delete,
}

/// One chunk of a stream (or one piece of a big payload chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Flag byte (see [`super::FLAG_REWRITE`]).
    pub flags: u8,
    /// Path of the file the chunk belongs to.
    pub path: String,
    /// Offset of the chunk header in the stream, for error messages (the
    /// same for every piece of a big chunk).
    pub stream_offset: u64,
    /// The body.
    pub kind: ChunkKind,
}

/// The rest of a payload chunk still to be read.
#[derive(Debug)]
struct Pending {
    flags: u8,
    path: String,
    /// Stream offset of the chunk header.
    at: u64,
    /// Declared payload length, and bytes of it read so far.
    len: u64,
    done: u64,
    /// File offset of the payload's first byte.
    offset: u64,
    stored: u32,
    crc: crc32fast::Hasher,
}

/// Reads chunks from a stream.
#[derive(Debug)]
pub struct XbStreamReader<R> {
    inner: R,
    pos: u64,
    /// A payload chunk bigger than [`MAX_PIECE`] being returned in pieces.
    pending: Option<Pending>,
}

impl<R: Read> XbStreamReader<R> {
    /// A reader at the start of `inner`.
    pub fn new(inner: R) -> Self {
        XbStreamReader {
            inner,
            pos: 0,
            pending: None,
        }
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn corrupt(&self, at: u64, what: impl Into<String>) -> SinkError {
        SinkError::Corrupt {
            offset: at,
            what: what.into(),
        }
    }

    /// Reads until `buf` is full or the input ends; the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, SinkError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SinkError::io("the input stream", e)),
            }
        }
        Ok(got)
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end before the
    /// first byte when `eof_ok`.
    fn fill(&mut self, buf: &mut [u8], at: u64, eof_ok: bool) -> Result<bool, SinkError> {
        match self.read_full(buf)? {
            n if n == buf.len() => Ok(true),
            0 if eof_ok => Ok(false),
            _ => Err(self.corrupt(at, "stream ends in the middle of a chunk (truncated?)")),
        }
    }

    fn u32(&mut self, at: u64) -> Result<u32, SinkError> {
        let mut b = [0u8; 4];
        self.fill(&mut b, at, false)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, at: u64) -> Result<u64, SinkError> {
        let mut b = [0u8; 8];
        self.fill(&mut b, at, false)?;
        Ok(u64::from_le_bytes(b))
    }

    fn path(&mut self, at: u64) -> Result<String, SinkError> {
        let len = self.u32(at)? as usize;
        if len == 0 || len > MAX_PATH {
            return Err(self.corrupt(at, format!("path length {len} out of range 1..=511")));
        }
        let mut p = vec![0u8; len];
        self.fill(&mut p, at, false)?;
        String::from_utf8(p).map_err(|_| self.corrupt(at, "path is not valid utf-8"))
    }

    /// Reads the next piece of the payload `p` (all of it when it fits in
    /// [`MAX_PIECE`]), checking the CRC-32 once the last byte is in.
    fn piece(&mut self, mut p: Pending) -> Result<Chunk, SinkError> {
        let rest = p.len - p.done;
        // at most MAX_PIECE, so the cast cannot truncate
        let want = usize::try_from(rest.min(MAX_PIECE as u64)).unwrap_or(MAX_PIECE);
        let mut data = Vec::new();
        while data.len() < want {
            // grow with the bytes that actually came, never past `want`:
            // the declared length alone allocates nothing
            let filled = data.len();
            let grow = filled.max(FIRST_READ).min(want - filled);
            data.reserve_exact(grow);
            data.resize(filled + grow, 0);
            let got = self.read_full(&mut data[filled..])?;
            if got < grow {
                let total = p.done + (filled + got) as u64;
                return Err(self.corrupt(
                    p.at,
                    format!(
                        "payload of {} truncated: {total} of {} bytes",
                        p.path, p.len
                    ),
                ));
            }
        }
        p.crc.update(&data);
        let offset = p.offset + p.done;
        p.done += data.len() as u64;
        let verified = p.done == p.len;
        if verified {
            let computed = p.crc.clone().finalize();
            if computed != p.stored {
                return Err(SinkError::Checksum {
                    path: p.path,
                    offset: p.at,
                    stored: p.stored,
                    computed,
                });
            }
        }
        let chunk = Chunk {
            flags: p.flags,
            path: p.path.clone(),
            stream_offset: p.at,
            kind: ChunkKind::Payload {
                offset,
                data,
                verified,
            },
        };
        if !verified {
            self.pending = Some(p);
        }
        Ok(chunk)
    }

    /// The next chunk, `None` at a clean end of stream. A payload chunk
    /// bigger than [`MAX_PIECE`] comes back as consecutive pieces with
    /// running offsets before any other chunk.
    ///
    /// # Errors
    /// [`SinkError::Corrupt`] for a bad magic, type, length or a truncated
    /// chunk; [`SinkError::Checksum`] when a payload fails its CRC-32.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SinkError> {
        if let Some(p) = self.pending.take() {
            return self.piece(p).map(Some);
        }
        let at = self.pos;
        let mut head = [0u8; 10];
        if !self.fill(&mut head, at, true)? {
            return Ok(None);
        }
        if &head[..8] != MAGIC {
            return Err(self.corrupt(at, "bad chunk magic (not an xbstream?)"));
        }
        let flags = head[8];
        let kind_byte = head[9];
        let path = self.path(at)?;
        let kind = match kind_byte {
            b'P' => {
                let len = self.u64(at)?;
                let offset = self.u64(at)?;
                let stored = self.u32(at)?;
                if offset.checked_add(len).is_none() {
                    return Err(self.corrupt(
                        at,
                        format!("payload of {path} at file offset {offset} with length {len} ends past 2^64"),
                    ));
                }
                return self
                    .piece(Pending {
                        flags,
                        path,
                        at,
                        len,
                        done: 0,
                        offset,
                        stored,
                        crc: crc32fast::Hasher::new(),
                    })
                    .map(Some);
            }
            b'E' => ChunkKind::Eof,
            b'S' => ChunkKind::Seek {
                offset: self.u64(at)?,
            },
            b'R' => ChunkKind::Rename { to: self.path(at)? },
            b'D' => ChunkKind::Delete,
            // an ignorable chunk of unknown type has no length we could skip by
            other => {
                let note = if flags & FLAG_IGNORABLE != 0 {
                    " (flagged ignorable, but its length is unknown)"
                } else {
                    ""
                };
                return Err(self.corrupt(
                    at,
                    format!("unknown chunk type {other:#04x} for {path}{note}"),
                ));
            }
        };
        Ok(Some(Chunk {
            flags,
            path,
            stream_offset: at,
            kind,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `P` chunk for `path` whose header says `len` bytes at `offset`
    /// with CRC `crc`, followed by `body` (which may be shorter or longer).
    fn p_chunk(path: &str, len: u64, offset: u64, crc: u32, body: &[u8]) -> Vec<u8> {
        let mut s = b"XBSTCK01\0P".to_vec();
        s.extend_from_slice(&u32::try_from(path.len()).unwrap().to_le_bytes());
        s.extend_from_slice(path.as_bytes());
        s.extend_from_slice(&len.to_le_bytes());
        s.extend_from_slice(&offset.to_le_bytes());
        s.extend_from_slice(&crc.to_le_bytes());
        s.extend_from_slice(body);
        s
    }

    fn payload(c: Chunk) -> (u64, Vec<u8>, bool) {
        match c.kind {
            ChunkKind::Payload {
                offset,
                data,
                verified,
            } => (offset, data, verified),
            other => panic!("not a payload: {other:?}"),
        }
    }

    #[test]
    fn a_flipped_payload_bit_is_a_checksum_error_naming_the_file() {
        let s = p_chunk("f", 3, 0, crc32fast::hash(b"abc"), b"abd");
        let e = XbStreamReader::new(&s[..]).next_chunk().unwrap_err();
        assert!(
            matches!(e, SinkError::Checksum { ref path, .. } if path == "f"),
            "{e}"
        );
    }

    #[test]
    fn huge_declared_lengths_on_short_input_are_truncation_errors() {
        let s = p_chunk("f", u64::MAX, 0, 0, b"abc");
        let e = XbStreamReader::new(&s[..]).next_chunk().unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("payload of f truncated: 3 of {} bytes", u64::MAX)),
            "{e}"
        );
        let e = XbStreamReader::new(&b"XBSTCK02\0P\x01\0\0\0f"[..])
            .next_chunk()
            .unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        assert!(
            XbStreamReader::new(&b""[..])
                .next_chunk()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_payload_ending_past_2_pow_64_is_refused_before_reading_it() {
        let s = p_chunk("f", 10, u64::MAX - 3, 0, &[0; 10]);
        let e = XbStreamReader::new(&s[..]).next_chunk().unwrap_err();
        assert!(
            matches!(e, SinkError::Corrupt { offset: 0, ref what } if what.contains("past 2^64")),
            "{e}"
        );
    }

    #[test]
    fn a_chunk_bigger_than_a_piece_comes_back_in_pieces_checked_at_the_last() {
        let body: Vec<u8> = (0..2 * MAX_PIECE + 5).map(|i| (i % 251) as u8).collect();
        let len = body.len() as u64;
        // the big chunk second, so its pieces must all name its header offset
        let mut s = p_chunk("g", 2, 0, crc32fast::hash(b"hi"), b"hi");
        let big_at = s.len() as u64;
        s.extend(p_chunk("db/t.ibd", len, 100, crc32fast::hash(&body), &body));
        let mut r = XbStreamReader::new(&s[..]);
        let mut pieces = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            assert_eq!(c.stream_offset, if c.path == "g" { 0 } else { big_at });
            pieces.push((c.path.clone(), payload(c)));
        }
        let sizes: Vec<_> = pieces
            .iter()
            .map(|(p, (o, d, v))| (p.as_str(), *o, d.len(), *v))
            .collect();
        assert_eq!(
            sizes,
            [
                ("g", 0, 2, true),
                ("db/t.ibd", 100, MAX_PIECE, false),
                ("db/t.ibd", 100 + MAX_PIECE as u64, MAX_PIECE, false),
                ("db/t.ibd", 100 + 2 * MAX_PIECE as u64, 5, true),
            ]
        );
        let joined: Vec<u8> = pieces[1..]
            .iter()
            .flat_map(|(_, (_, d, _))| d.clone())
            .collect();
        assert!(joined == body, "the pieces do not add up to the payload");

        // a bit flipped in the first piece shows at the last one, naming the file
        let mut bad = p_chunk("db/t.ibd", len, 0, crc32fast::hash(&body), &body);
        let at = bad.len() - body.len() + 7;
        bad[at] ^= 1;
        let mut r = XbStreamReader::new(&bad[..]);
        assert!(!payload(r.next_chunk().unwrap().unwrap()).2);
        assert!(!payload(r.next_chunk().unwrap().unwrap()).2);
        let e = r.next_chunk().unwrap_err();
        assert!(
            matches!(e, SinkError::Checksum { ref path, offset: 0, .. } if path == "db/t.ibd"),
            "{e}"
        );
    }

    #[test]
    fn a_big_chunk_cut_short_in_a_later_piece_says_how_much_came() {
        let body = vec![7u8; MAX_PIECE + 10];
        let s = p_chunk("f", 3 * MAX_PIECE as u64, 0, 0, &body);
        let mut r = XbStreamReader::new(&s[..]);
        assert_eq!(payload(r.next_chunk().unwrap().unwrap()).1.len(), MAX_PIECE);
        let e = r.next_chunk().unwrap_err();
        let want = format!(
            "payload of f truncated: {} of {} bytes",
            MAX_PIECE + 10,
            3 * MAX_PIECE
        );
        assert!(e.to_string().contains(&want), "{e}");
        assert_eq!(r.position(), s.len() as u64);
    }

    #[test]
    fn an_empty_payload_is_one_verified_chunk() {
        let s = p_chunk("f", 0, 0, 0, b"");
        let c = XbStreamReader::new(&s[..]).next_chunk().unwrap().unwrap();
        assert_eq!(payload(c), (0, Vec::new(), true));
        let s = p_chunk("f", 0, 0, 1, b"");
        let e = XbStreamReader::new(&s[..]).next_chunk().unwrap_err();
        assert!(
            matches!(
                e,
                SinkError::Checksum {
                    stored: 1,
                    computed: 0,
                    ..
                }
            ),
            "{e}"
        );
    }
}
