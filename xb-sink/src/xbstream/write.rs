//! The xbstream writer: a [`Datasink`] over any `Write` (stdout included).

use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};

use super::{DEFAULT_CHUNK, MAGIC};
use crate::paths::check_rel;
use crate::{Datasink, SinkError, SinkFile};

type Out = Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>;

/// Writes files as xbstream chunks to one writer. Chunks of concurrently
/// written files interleave; a chunk's header and payload are written under
/// one lock so they stay contiguous.
pub struct XbStreamWriter {
    out: Out,
    chunk: usize,
}

impl std::fmt::Debug for XbStreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XbStreamWriter")
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl XbStreamWriter {
    /// A stream on `out`; small writes of one file are coalesced into chunks
    /// of up to [`DEFAULT_CHUNK`] bytes, as xtrabackup does with 10 MiB.
    #[must_use]
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self::with_chunk_size(out, DEFAULT_CHUNK)
    }

    /// Like [`Self::new`] with another coalescing size (0: every write is its
    /// own chunk). Memory use is at most this size per open file.
    #[must_use]
    pub fn with_chunk_size(out: Box<dyn Write + Send>, chunk: usize) -> Self {
        XbStreamWriter {
            out: Arc::new(Mutex::new(BufWriter::with_capacity(1 << 20, out))),
            chunk,
        }
    }
}

/// Header of an `E` or `D` chunk, or the start of a `P` chunk header.
fn header(kind: u8, path: &str, cap: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(34 + path.len() + cap);
    h.extend_from_slice(MAGIC);
    h.push(0);
    h.push(kind);
    // check_rel bounds the length to 511, so it fits
    h.extend_from_slice(&(path.len() as u32).to_le_bytes());
    h.extend_from_slice(path.as_bytes());
    h
}

/// Writes one chunk (`parts` back to back) under the stream's lock, so it
/// stays contiguous; an error names the file the chunk is for.
fn put(out: &Out, parts: &[&[u8]], path: &str) -> Result<(), SinkError> {
    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
    parts
        .iter()
        .try_for_each(|p| out.write_all(p))
        .map_err(|e| SinkError::io(format!("the stream (file {path})"), e))
}

struct StreamFile {
    out: Out,
    path: String,
    offset: u64,
    buf: Vec<u8>,
    chunk: usize,
}

impl StreamFile {
    fn emit(&mut self, payload: &[u8]) -> Result<(), SinkError> {
        if payload.is_empty() {
            return Ok(());
        }
        let mut h = header(b'P', &self.path, 20);
        h.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        h.extend_from_slice(&self.offset.to_le_bytes());
        h.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        put(&self.out, &[&h, payload], &self.path)?;
        self.offset += payload.len() as u64;
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), SinkError> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.emit(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }
}

impl SinkFile for StreamFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        if buf.len() < self.chunk - self.buf.len().min(self.chunk) {
            self.buf.extend_from_slice(buf);
            return Ok(());
        }
        self.flush_buf()?;
        self.emit(buf)
    }

    fn close(mut self: Box<Self>) -> Result<(), SinkError> {
        self.flush_buf()?;
        put(&self.out, &[&header(b'E', &self.path, 0)], &self.path)
    }
}

impl Datasink for XbStreamWriter {
    fn open(&self, path: &str, _size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        check_rel(path)?;
        Ok(Box::new(StreamFile {
            out: Arc::clone(&self.out),
            path: path.to_string(),
            offset: 0,
            buf: Vec::new(),
            chunk: self.chunk,
        }))
    }

    /// A `D` chunk: the reader (ours, mbstream) removes the file it has
    /// written under `path` so far. A backup uses it to take back a copy
    /// that DDL made stale, before it writes the file again.
    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        check_rel(path)?;
        put(&self.out, &[&header(b'D', path, 0)], path)?;
        Ok(true)
    }

    fn finish(&self) -> Result<(), SinkError> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.flush().map_err(|e| SinkError::io("the stream", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SharedBuf;

    #[test]
    fn chunks_have_the_xbstream_layout_and_small_writes_coalesce() {
        let buf = SharedBuf::default();
        let s = XbStreamWriter::new(Box::new(buf.clone()));
        let mut f = s.open("db/t.ibd", 0).unwrap();
        f.write(b"hel").unwrap();
        f.write(b"lo").unwrap();
        f.close().unwrap();
        s.open("empty", 0).unwrap().close().unwrap();
        s.finish().unwrap();
        let bytes = buf.bytes();
        let mut want = b"XBSTCK01\0P".to_vec();
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(b"db/t.ibd");
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&crc32fast::hash(b"hello").to_le_bytes());
        want.extend_from_slice(b"hello");
        want.extend_from_slice(b"XBSTCK01\0E");
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(b"db/t.ibd");
        want.extend_from_slice(b"XBSTCK01\0E");
        want.extend_from_slice(&5u32.to_le_bytes());
        want.extend_from_slice(b"empty");
        assert_eq!(bytes, want);
    }

    #[test]
    fn a_removed_file_written_again_extracts_as_its_second_content() {
        let buf = SharedBuf::default();
        let s = XbStreamWriter::new(Box::new(buf.clone()));
        for (path, body) in [("db/m.MYD", &b"stale"[..]), ("db/gone.MYD", b"x")] {
            let mut f = s.open(path, 0).unwrap();
            f.write(body).unwrap();
            f.close().unwrap();
        }
        assert!(s.remove("db/m.MYD").unwrap());
        assert!(s.remove("db/gone.MYD").unwrap());
        let mut f = s.open("db/m.MYD", 0).unwrap();
        f.write(b"fresh").unwrap();
        f.close().unwrap();
        s.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        crate::extract::extract(
            &buf.bytes()[..],
            dir.path(),
            &crate::extract::ExtractOptions::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("db/m.MYD")).unwrap(),
            b"fresh"
        );
        assert!(!dir.path().join("db/gone.MYD").exists());
    }

    #[test]
    fn big_writes_become_their_own_chunks_with_running_offsets() {
        let buf = SharedBuf::default();
        let s = XbStreamWriter::with_chunk_size(Box::new(buf.clone()), 4);
        let mut f = s.open("f", 0).unwrap();
        f.write(b"ab").unwrap();
        f.write(b"cdefg").unwrap();
        f.close().unwrap();
        s.finish().unwrap();
        let bytes = buf.bytes();
        let mut r = crate::XbStreamReader::new(&bytes[..]);
        let mut got = vec![];
        while let Some(c) = r.next_chunk().unwrap() {
            if let crate::ChunkKind::Payload { offset, data, .. } = c.kind {
                got.push((offset, data));
            }
        }
        assert_eq!(got, vec![(0, b"ab".to_vec()), (2, b"cdefg".to_vec())]);
    }
}
