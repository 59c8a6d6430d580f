//! Where a backup's bytes go: an `xb_sink` chain (local directory or
//! xbstream at the end; throttling, compression and encryption in front),
//! seen by the orchestration through the [`Target`] seam.
//!
//! `xtrabackup_checkpoints` is written to the plain end of the chain, as
//! xtrabackup does, so tools can read it without decompressing; every other
//! file (data, redo, the other metadata) goes through the whole chain.

use std::path::Path;
use std::sync::Arc;

use xb_sink::{
    Compress, Compression, Datasink, Encrypt, EncryptKey, LocalDir, SinkFile, Throttle,
    XbStreamWriter,
};

use super::seams::{OutFile, Target};

/// How data is transformed on its way into the backup.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Compress data files (`.zst` / `.lz4`).
    pub compression: Option<Compression>,
    /// Threads per compressing or encrypting stage (default 2).
    pub threads: usize,
    /// Encrypt data files (`.xbcrypt`, AES-CTR) with this key.
    pub encrypt_key: Option<EncryptKey>,
    /// Limit the data written into the chain, in bytes per second.
    pub throttle: Option<u64>,
}

/// The plain end of the chain, for files that stay readable as they are.
const PLAIN_FILES: &[&str] = &["xtrabackup_checkpoints"];

/// A target made of an `xb_sink` chain.
pub struct SinkTarget {
    data: Box<dyn Datasink>,
    plain: Arc<dyn Datasink>,
}

impl std::fmt::Debug for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkTarget")
    }
}

impl SinkTarget {
    fn chain(end: Arc<dyn Datasink>, opts: &SinkOptions) -> Self {
        let threads = opts.threads.max(1);
        let mut data: Box<dyn Datasink> = Box::new(Arc::clone(&end));
        if let Some(key) = &opts.encrypt_key {
            data = Box::new(Encrypt::new(data, key.clone(), threads));
        }
        if let Some(c) = opts.compression {
            data = Box::new(Compress::new(data, c, threads));
        }
        if let Some(rate) = opts.throttle {
            data = Box::new(Throttle::new(data, rate));
        }
        SinkTarget { data, plain: end }
    }

    /// A new (or empty) local directory.
    ///
    /// # Errors
    /// The directory holds files, or cannot be created.
    pub fn dir(root: &Path, opts: &SinkOptions) -> Result<Self, String> {
        let end = LocalDir::create(root).map_err(|e| e.to_string())?;
        Ok(Self::chain(Arc::new(end), opts))
    }

    /// An xbstream on `out`.
    #[must_use]
    pub fn stream(out: Box<dyn std::io::Write + Send>, opts: &SinkOptions) -> Self {
        Self::chain(Arc::new(XbStreamWriter::new(out)), opts)
    }
}

struct File(Box<dyn SinkFile>);

impl OutFile for File {
    fn write(&mut self, buf: &[u8]) -> Result<(), String> {
        self.0.write(buf).map_err(|e| e.to_string())
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.0.close().map_err(|e| e.to_string())
    }
}

impl Target for SinkTarget {
    fn create(&self, rel: &str, size_hint: u64) -> Result<Box<dyn OutFile>, String> {
        let sink: &dyn Datasink = if PLAIN_FILES.contains(&rel) {
            &*self.plain
        } else {
            &*self.data
        };
        Ok(Box::new(File(
            sink.open(rel, size_hint).map_err(|e| e.to_string())?,
        )))
    }

    fn remove(&self, rel: &str) -> Result<bool, String> {
        self.plain.remove(rel).map_err(|e| e.to_string())
    }

    fn finish(&self) -> Result<(), String> {
        self.data.finish().map_err(|e| e.to_string())?;
        self.plain.finish().map_err(|e| e.to_string())
    }
}
