//! The xbstream reader: chunks one at a time from any `Read`, each payload
//! checked against its CRC-32. Total: any byte sequence yields chunks or a
//! typed error, never a panic, and allocation follows the bytes actually read.

use std::io::{ErrorKind, Read};

use super::{FLAG_IGNORABLE, MAGIC};
use crate::SinkError;
use crate::paths::MAX_PATH;

/// What a chunk carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkKind {
    /// `P`: bytes of the file at `offset`.
    Payload {
        /// Offset of `data` within the file.
        offset: u64,
        /// The bytes, CRC already verified.
        data: Vec<u8>,
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

/// One chunk of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Flag byte (see [`super::FLAG_REWRITE`]).
    pub flags: u8,
    /// Path of the file the chunk belongs to.
    pub path: String,
    /// Offset of the chunk header in the stream, for error messages.
    pub stream_offset: u64,
    /// The body.
    pub kind: ChunkKind,
}

/// Reads chunks from a stream.
#[derive(Debug)]
pub struct XbStreamReader<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> XbStreamReader<R> {
    /// A reader at the start of `inner`.
    pub fn new(inner: R) -> Self {
        XbStreamReader { inner, pos: 0 }
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

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end before the
    /// first byte when `eof_ok`.
    fn fill(&mut self, buf: &mut [u8], at: u64, eof_ok: bool) -> Result<bool, SinkError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    if got == 0 && eof_ok {
                        return Ok(false);
                    }
                    return Err(
                        self.corrupt(at, "stream ends in the middle of a chunk (truncated?)")
                    );
                }
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SinkError::io("the input stream", e)),
            }
        }
        Ok(true)
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

    /// The next chunk, `None` at a clean end of stream.
    ///
    /// # Errors
    /// [`SinkError::Corrupt`] for a bad magic, type, length or a truncated
    /// chunk; [`SinkError::Checksum`] when a payload fails its CRC-32.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SinkError> {
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
                let mut data = Vec::new();
                let got = (&mut self.inner)
                    .take(len)
                    .read_to_end(&mut data)
                    .map_err(|e| SinkError::io("the input stream", e))?;
                self.pos += got as u64;
                if (got as u64) < len {
                    return Err(self.corrupt(
                        at,
                        format!("payload of {path} truncated: {got} of {len} bytes"),
                    ));
                }
                let computed = crc32fast::hash(&data);
                if computed != stored {
                    return Err(SinkError::Checksum {
                        path,
                        offset: at,
                        stored,
                        computed,
                    });
                }
                ChunkKind::Payload { offset, data }
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

    #[test]
    fn a_flipped_payload_bit_is_a_checksum_error_naming_the_file() {
        let mut s = b"XBSTCK01\0P".to_vec();
        s.extend_from_slice(&1u32.to_le_bytes());
        s.push(b'f');
        s.extend_from_slice(&3u64.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.extend_from_slice(&crc32fast::hash(b"abc").to_le_bytes());
        s.extend_from_slice(b"abd");
        let e = XbStreamReader::new(&s[..]).next_chunk().unwrap_err();
        assert!(
            matches!(e, SinkError::Checksum { ref path, .. } if path == "f"),
            "{e}"
        );
    }

    #[test]
    fn huge_declared_lengths_on_short_input_are_truncation_errors() {
        let mut s = b"XBSTCK01\0P".to_vec();
        s.extend_from_slice(&1u32.to_le_bytes());
        s.push(b'f');
        s.extend_from_slice(&u64::MAX.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(b"abc");
        let e = XbStreamReader::new(&s[..]).next_chunk().unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
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
}
