//! Datasinks: every byte a backup writes goes through a chain of sinks
//! (local directory, object storage, xbstream, compression, encryption,
//! throttling), and
//! the way back: an xbstream reader and [`extract()`].
//!
//! A chain is built inside out, the terminus first:
//!
//! ```no_run
//! use xb_sink::{Compress, Compression, Datasink, LocalDir};
//! # fn main() -> Result<(), xb_sink::SinkError> {
//! let local = LocalDir::create(std::path::Path::new("/backups/new"))?;
//! let sink = Compress::new(Box::new(local), Compression::Zstd { level: 1 }, 2);
//! let mut f = sink.open("ibdata1", 0)?; // written as ibdata1.zst
//! f.write(b"page bytes")?;
//! f.close()?;
//! sink.finish()?;
//! # Ok(()) }
//! ```
//!
//! Every sink may be used from several threads at once: one thread per file
//! is the usual pattern of a parallel copy.
//!
//! Chains mirror xtrabackup's: compression sits outside encryption, so a
//! file is named `t.ibd.zst.xbcrypt`; metadata files that must stay plain
//! are written to the unwrapped terminus (keep it in an `Arc`).

mod compress;
mod encrypt;
mod error;
mod extract;
mod local;
pub mod lz4frame;
pub mod manifest;
pub mod membuf;
pub mod object;
mod paths;
mod pipeline;
mod pool;
mod stages;
mod throttle;
pub mod xbcrypt;
pub mod xbstream;

pub use compress::{Compress, Compression};
pub use encrypt::Encrypt;
pub use error::SinkError;
pub use extract::{ExtractOptions, ExtractStats, extract};
pub use local::LocalDir;
pub use manifest::{MANIFEST, Manifest, ManifestEntry, Manifested, PartDigest};
pub use membuf::SharedBuf;
pub use throttle::{Rate, Throttle};
pub use xbcrypt::EncryptKey;
pub use xbstream::{Chunk, ChunkKind, XbStreamReader, XbStreamWriter};

/// A destination for the files of a backup.
///
/// Implementations are shared between copy threads, hence `Send + Sync`;
/// each opened file belongs to one thread at a time.
pub trait Datasink: Send + Sync {
    /// Opens `path` (relative, `/`-separated) for writing from the start.
    /// `size_hint` is the expected size in bytes, 0 when unknown.
    ///
    /// # Errors
    /// When the path is unsafe or the file cannot be created.
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError>;

    /// Opens `path` to be written in parts by several writers at once, each
    /// from its own offset (a large tablespace copied in page ranges).
    /// `None` when this chain writes files in order only (a stream,
    /// compression, encryption, object storage): the caller then writes the
    /// file whole through [`Datasink::open`].
    ///
    /// # Errors
    /// As for [`Datasink::open`].
    fn open_parted(
        &self,
        _path: &str,
        _size_hint: u64,
    ) -> Result<Option<Box<dyn PartedFile>>, SinkError> {
        Ok(None)
    }

    /// Removes a file written earlier, when the sink can (a stream cannot).
    /// Returns whether the file is gone.
    ///
    /// # Errors
    /// When the sink could remove it but failed.
    fn remove(&self, _path: &str) -> Result<bool, SinkError> {
        Ok(false)
    }

    /// Flushes and makes everything durable; call once after all files are closed.
    ///
    /// # Errors
    /// When flushing or syncing fails.
    fn finish(&self) -> Result<(), SinkError>;
}

/// A shared sink is a sink: lets a caller keep a handle on the terminus
/// (say, to read [`LocalDir::root`]) while a filter owns it as a box.
impl<T: Datasink + ?Sized> Datasink for std::sync::Arc<T> {
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        (**self).open(path, size_hint)
    }

    fn open_parted(
        &self,
        path: &str,
        size_hint: u64,
    ) -> Result<Option<Box<dyn PartedFile>>, SinkError> {
        (**self).open_parted(path, size_hint)
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        (**self).remove(path)
    }

    fn finish(&self) -> Result<(), SinkError> {
        (**self).finish()
    }
}

/// One file being written through a sink. Bytes are appended in order.
pub trait SinkFile: Send {
    /// Appends `buf` to the file.
    ///
    /// # Errors
    /// When the bytes cannot be written (ENOSPC is [`SinkError::NoSpace`]).
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError>;

    /// Ends the file; a file not closed is not complete in the backup.
    ///
    /// # Errors
    /// When the tail cannot be written or synced.
    fn close(self: Box<Self>) -> Result<(), SinkError>;
}

/// A file written in parts, each part by one writer in order from its
/// offset, the parts by several threads at once. The parts must cover the
/// file without gaps or overlaps when it is closed.
pub trait PartedFile: Send + Sync {
    /// A writer of the bytes from `offset` on.
    ///
    /// # Errors
    /// When the file cannot be opened again for the part.
    fn part(&self, offset: u64) -> Result<Box<dyn SinkFile>, SinkError>;

    /// Ends the file, after every part was closed.
    ///
    /// # Errors
    /// When it cannot be synced.
    fn close(self: Box<Self>) -> Result<(), SinkError>;
}
