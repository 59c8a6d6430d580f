//! The encryption filter: files become `NAME.xbcrypt`, a sequence of
//! xbcrypt chunks (see [`crate::xbcrypt`]) of 64 KiB of plaintext each.
//! The key lives only in memory and is never logged.

use crate::xbcrypt::{DEFAULT_CHUNK, EncryptKey, encrypt_chunk};
use crate::{Datasink, SinkError, SinkFile};

/// Wraps a sink so every file is encrypted on its way to it.
pub struct Encrypt {
    inner: Box<dyn Datasink>,
    key: EncryptKey,
    chunk: usize,
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
    /// Encrypts into `inner` with `key`.
    #[must_use]
    pub fn new(inner: Box<dyn Datasink>, key: EncryptKey) -> Self {
        Encrypt {
            inner,
            key,
            chunk: DEFAULT_CHUNK,
        }
    }

    /// Sets the plaintext bytes per chunk (`--encrypt-chunk-size`, default 64 KiB).
    #[must_use]
    pub fn with_chunk_size(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

struct EncryptFile {
    down: Box<dyn SinkFile>,
    key: EncryptKey,
    chunk: usize,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl SinkFile for EncryptFile {
    fn write(&mut self, mut buf: &[u8]) -> Result<(), SinkError> {
        self.out.clear();
        if !self.buf.is_empty() {
            let take = (self.chunk - self.buf.len()).min(buf.len());
            self.buf.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.buf.len() == self.chunk {
                encrypt_chunk(&self.key, &self.buf, &mut self.out);
                self.buf.clear();
            }
        }
        while buf.len() >= self.chunk {
            encrypt_chunk(&self.key, &buf[..self.chunk], &mut self.out);
            buf = &buf[self.chunk..];
        }
        self.buf.extend_from_slice(buf);
        if self.out.is_empty() {
            return Ok(());
        }
        self.down.write(&self.out)
    }

    fn close(mut self: Box<Self>) -> Result<(), SinkError> {
        if !self.buf.is_empty() {
            self.out.clear();
            encrypt_chunk(&self.key, &self.buf, &mut self.out);
            self.down.write(&self.out)?;
        }
        self.down.close()
    }
}

impl Datasink for Encrypt {
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        let down = self.inner.open(&format!("{path}.xbcrypt"), size_hint)?;
        Ok(Box::new(EncryptFile {
            down,
            key: self.key.clone(),
            chunk: self.chunk,
            buf: Vec::new(),
            out: Vec::new(),
        }))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.inner.remove(&format!("{path}.xbcrypt"))
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.inner.finish()
    }
}
