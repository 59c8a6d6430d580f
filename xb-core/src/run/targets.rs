//! Where a backup's bytes go: an `xb_sink` chain (local directory or
//! xbstream at the end; throttling, compression and encryption in front),
//! seen by the orchestration through the [`Target`] seam.
//!
//! `xtrabackup_checkpoints` is written to the plain end of the chain, as
//! xtrabackup does, so tools can read it without decompressing; every other
//! file (data, redo, the other metadata) goes through the whole chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use xb_sink::{
    Compress, Compression, Datasink, Encrypt, EncryptKey, LocalDir, SinkError, SinkFile, Throttle,
    XbStreamWriter,
};

use super::Destination;
use super::seams::{OutFile, SeamError, Target};
use crate::error::BackupError;
use crate::prepare::INCOMPLETE_MARKER;

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
    /// The directory holds files ([`xb_sink::SinkError::NotEmpty`]), or
    /// cannot be created.
    pub fn dir(root: &Path, opts: &SinkOptions) -> Result<Self, xb_sink::SinkError> {
        let end = LocalDir::create(root)?;
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
    fn write(&mut self, buf: &[u8]) -> Result<(), SeamError> {
        Ok(self.0.write(buf)?)
    }
    fn close(self: Box<Self>) -> Result<(), SeamError> {
        Ok(self.0.close()?)
    }
}

impl Target for SinkTarget {
    fn create(&self, rel: &str, size_hint: u64) -> Result<Box<dyn OutFile>, SeamError> {
        let sink: &dyn Datasink = if PLAIN_FILES.contains(&rel) {
            &*self.plain
        } else {
            &*self.data
        };
        Ok(Box::new(File(sink.open(rel, size_hint)?)))
    }

    fn remove(&self, rel: &str) -> Result<bool, SeamError> {
        Ok(self.plain.remove(rel)?)
    }

    fn finish(&self) -> Result<(), SeamError> {
        self.data.finish()?;
        Ok(self.plain.finish()?)
    }
}

/// The backup's target and, for a directory, the marker that says it is
/// incomplete until the very end.
pub struct Output {
    /// Where files go.
    pub target: Arc<dyn Target>,
    /// `file` or `mbstream`, for `xtrabackup_info`.
    pub format: &'static str,
    marker_dir: Option<PathBuf>,
}

impl Output {
    /// Opens the destination and, for a directory, marks it incomplete
    /// before anything else is written.
    ///
    /// # Errors
    /// [`BackupError::TargetNotEmpty`] or [`BackupError::Target`].
    pub fn open(destination: Destination, opts: &SinkOptions) -> Result<Self, BackupError> {
        match destination {
            Destination::Dir(p) => {
                let t = SinkTarget::dir(&p, opts).map_err(|e| match e {
                    SinkError::NotEmpty { .. } => BackupError::TargetNotEmpty {
                        path: p.display().to_string(),
                    },
                    other => BackupError::Target(other.into()),
                })?;
                let marker = p.join(INCOMPLETE_MARKER);
                std::fs::write(&marker, b"xb: this backup did not complete\n")
                    .map_err(|e| BackupError::Target(SinkError::io(marker.display(), e).into()))?;
                Ok(Output {
                    target: Arc::new(t),
                    format: "file",
                    marker_dir: Some(p),
                })
            }
            Destination::Stream(w) => Ok(Output {
                target: Arc::new(SinkTarget::stream(w, opts)),
                format: "mbstream",
                marker_dir: None,
            }),
        }
    }

    /// Flushes everything, then removes the incomplete marker: only now is
    /// the directory a backup.
    ///
    /// # Errors
    /// [`BackupError::Target`]; the marker then stays.
    pub fn complete(&self) -> Result<(), BackupError> {
        self.target.finish().map_err(BackupError::Target)?;
        if let Some(d) = &self.marker_dir {
            let m = d.join(INCOMPLETE_MARKER);
            std::fs::remove_file(&m)
                .map_err(|e| BackupError::Target(SinkError::io(m.display(), e).into()))?;
            if let Ok(dir) = std::fs::File::open(d) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}
