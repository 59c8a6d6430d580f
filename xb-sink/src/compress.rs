//! The compression filter: files become `NAME.zst` or `NAME.lz4`, as
//! xtrabackup names them. Each chunk of a file (1 MiB by default) is
//! compressed into one complete frame on a worker thread, so a `.zst` is a
//! concatenation of zstd frames (content checksum on) and a `.lz4` one of
//! LZ4 frames in xtrabackup's framing; `zstd -d` and `lz4 -d` read both.
//! Frames leave in order; at most `threads + 1` chunks per file are in
//! flight, which bounds memory.

use std::cell::RefCell;
use std::sync::Arc;

use crate::pipeline::OrderedFile;
use crate::pool::Pool;
use crate::{Datasink, SinkError, SinkFile};

/// Which compressor, as `--compress=zstd|lz4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd at `level` (1..=19; xtrabackup's default is 1).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// LZ4 frames with 64 KiB independent blocks.
    Lz4,
}

impl Compression {
    /// The suffix added to file names.
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd { .. } => ".zst",
            Compression::Lz4 => ".lz4",
        }
    }

    fn frame(self, data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Compression::Lz4 => {
                let mut out = Vec::new();
                crate::lz4frame::encode_frame(data, &mut out);
                Ok(out)
            }
            Compression::Zstd { level } => zstd_frame(level, data),
        }
    }
}

thread_local! {
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// One zstd frame with content size and checksum, reusing this thread's context.
fn zstd_frame(level: i32, data: &[u8]) -> Result<Vec<u8>, String> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let mut c = zstd::bulk::Compressor::new(level).map_err(|e| e.to_string())?;
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .map_err(|e| e.to_string())?;
            *slot = Some((level, c));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress(data).map_err(|e| e.to_string()),
            None => Err("no zstd context".into()),
        }
    })
}

/// Wraps a sink so every file is compressed on its way to it.
pub struct Compress {
    inner: Box<dyn Datasink>,
    algo: Compression,
    pool: Arc<Pool>,
    chunk: usize,
}

impl std::fmt::Debug for Compress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compress")
            .field("algo", &self.algo)
            .field("threads", &self.pool.threads())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl Compress {
    /// Compresses into `inner` with `threads` workers (`--compress-threads`).
    #[must_use]
    pub fn new(inner: Box<dyn Datasink>, algo: Compression, threads: usize) -> Self {
        Compress {
            inner,
            algo,
            pool: Arc::new(Pool::new(threads, "xb-compress")),
            chunk: 1 << 20,
        }
    }

    /// Sets the bytes per frame (default 1 MiB; xtrabackup uses its 10 MiB
    /// read buffer). Larger chunks compress a little better and use more memory.
    #[must_use]
    pub fn with_chunk_size(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

impl Datasink for Compress {
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        let name = format!("{path}{}", self.algo.extension());
        let down = self.inner.open(&name, size_hint / 2)?;
        let algo = self.algo;
        Ok(Box::new(OrderedFile::new(
            down,
            name,
            Arc::clone(&self.pool),
            Arc::new(move |d: &[u8]| algo.frame(d)),
            self.chunk,
            true,
        )))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.inner
            .remove(&format!("{path}{}", self.algo.extension()))
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.inner.finish()
    }
}
