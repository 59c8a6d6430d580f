//! The encryption filter: files become `NAME.xbcrypt`, a sequence of
//! xbcrypt chunks (see [`crate::xbcrypt`]) of 64 KiB of plaintext each,
//! encrypted on worker threads and written in order.
//! The key lives only in memory and is never logged.

use std::sync::Arc;

use crate::pipeline::OrderedFile;
use crate::pool::Pool;
use crate::xbcrypt::{DEFAULT_CHUNK, EncryptKey, encrypt_chunk};

/// Plaintext bytes handed to a worker at a time.
const JOB: usize = 1 << 20;
use crate::{Datasink, SinkError, SinkFile};

/// Wraps a sink so every file is encrypted on its way to it.
pub struct Encrypt {
    inner: Box<dyn Datasink>,
    key: EncryptKey,
    chunk: usize,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Encrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypt")
            .field("key", &self.key)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl Encrypt {
    /// Encrypts into `inner` with `key` on `threads` workers
    /// (`--encrypt-threads`).
    #[must_use]
    pub fn new(inner: Box<dyn Datasink>, key: EncryptKey, threads: usize) -> Self {
        Encrypt {
            inner,
            key,
            chunk: DEFAULT_CHUNK,
            pool: Arc::new(Pool::new(threads, "xb-encrypt")),
        }
    }

    /// Sets the plaintext bytes per chunk (`--encrypt-chunk-size`, default 64 KiB).
    #[must_use]
    pub fn with_chunk_size(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

impl Datasink for Encrypt {
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        let name = format!("{path}.xbcrypt");
        let down = self.inner.open(&name, size_hint)?;
        let (key, chunk) = (self.key.clone(), self.chunk);
        // a job is a whole number of chunks, about 1 MiB, so workers get
        // enough to do per hand-off
        let job = chunk * (JOB / chunk).max(1);
        Ok(Box::new(OrderedFile::new(
            down,
            name,
            Arc::clone(&self.pool),
            Arc::new(move |d: &[u8]| {
                let mut out = Vec::with_capacity(d.len() + d.len() / chunk * 92 + 92);
                for c in d.chunks(chunk) {
                    encrypt_chunk(&key, c, &mut out);
                }
                Ok(out)
            }),
            job,
            false,
        )))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.inner.remove(&format!("{path}.xbcrypt"))
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.inner.finish()
    }
}
