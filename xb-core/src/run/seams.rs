//! The seams between the orchestration and the crates that do the I/O:
//! where the backup writes (a datasink chain), and how a live file is read
//! (pages validated, torn reads retried). The orchestration only sees these
//! traits, so every phase can be tested with plain in-memory doubles.
//!
//! Every seam returns a [`SeamError`]: the orchestration decides what a
//! failure means (which exit code, which hint) by its variant, never by the
//! words of its message.

use std::path::{Path, PathBuf};

use xb_innodb::pagereader::PageReadError;
use xb_sink::SinkError;

/// Why a read from a live file or a write into the backup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeamError {
    /// The target's file system is full.
    #[error("no space left on device while writing {path}")]
    NoSpace {
        /// The file in the backup being written.
        path: String,
    },
    /// The file disappeared before it could be read (dropped by the server).
    #[error("{path} vanished before it could be copied")]
    Vanished {
        /// The live file.
        path: String,
    },
    /// A page stayed invalid after every re-read.
    #[error(transparent)]
    CorruptPage(PageReadError),
    /// The work was stopped because another part of the backup failed.
    #[error("cancelled")]
    Cancelled,
    /// The target refused or failed to write a file (other than a full disk).
    #[error(transparent)]
    Sink(SinkError),
    /// Reading a live file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error or the reader's account of it.
        message: String,
    },
}

impl From<SinkError> for SeamError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::NoSpace { path } => SeamError::NoSpace { path },
            other => SeamError::Sink(other),
        }
    }
}

impl From<PageReadError> for SeamError {
    fn from(e: PageReadError) -> Self {
        match e {
            PageReadError::Io {
                file,
                offset,
                source,
            } => SeamError::Io {
                path: file.display().to_string(),
                message: format!("read at offset {offset} failed: {source}"),
            },
            other => SeamError::CorruptPage(other),
        }
    }
}

impl From<xb_aria::ReadError> for SeamError {
    fn from(e: xb_aria::ReadError) -> Self {
        use xb_aria::ReadError as E;
        let io = |file: PathBuf, message: String| SeamError::Io {
            path: file.display().to_string(),
            message,
        };
        match e {
            E::Corrupt {
                file,
                page,
                reason,
                tries,
            } => SeamError::CorruptPage(PageReadError::Corrupt {
                file,
                page,
                reason,
                tries,
            }),
            E::Io { file, what, source } => io(file, format!("{what}: {source}")),
            E::Header { file, source } => io(file, source.to_string()),
        }
    }
}

/// A file of the backup written in ranges by several workers at once
/// (a large tablespace), each range in order from its offset.
pub trait PartedOut: Send + Sync {
    /// A writer of the bytes from `offset` on.
    ///
    /// # Errors
    /// As for [`OutFile::write`].
    fn part(&self, offset: u64) -> Result<Box<dyn OutFile>, SeamError>;
    /// Ends the file once every range is closed.
    ///
    /// # Errors
    /// As for [`OutFile::close`].
    fn close(self: Box<Self>) -> Result<(), SeamError>;
}

/// One file being written into the backup.
pub trait OutFile: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// [`SeamError::NoSpace`], or [`SeamError::Sink`] naming the file.
    fn write(&mut self, buf: &[u8]) -> Result<(), SeamError>;
    /// Finishes the file (flushes, emits the stream's end chunk).
    ///
    /// # Errors
    /// As for `write`.
    fn close(self: Box<Self>) -> Result<(), SeamError>;
}

/// The backup target: files are created by their path relative to the
/// backup root (`ibdata1`, `db/t.ibd`, `xtrabackup_checkpoints`).
pub trait Target: Send + Sync {
    /// Creates `rel`. Several files may be open at once, from several threads.
    ///
    /// # Errors
    /// As for [`OutFile::write`].
    fn create(&self, rel: &str, size_hint: u64) -> Result<Box<dyn OutFile>, SeamError>;
    /// Creates `rel` to be written in ranges by several workers at once;
    /// `None` when this target writes each file in order only (a stream,
    /// compression, encryption, object storage). The default is `None`.
    ///
    /// # Errors
    /// As for `create`.
    fn create_parted(
        &self,
        _rel: &str,
        _size: u64,
    ) -> Result<Option<Box<dyn PartedOut>>, SeamError> {
        Ok(None)
    }
    /// Creates the backup's redo file, which must never wait behind data.
    ///
    /// The redo copier has to keep up with the server, which overwrites its
    /// log once a checkpoint passes it: every moment its writes spend
    /// queued behind data-file work (a `--throttle` budget the data copy
    /// uses up, compression workers busy with tablespaces) is lag that can
    /// lose the backup. A target gives this file the same transformation
    /// as data files (so it looks as before) without sharing their limits.
    /// The default is [`Target::create`], for targets that have no such
    /// limits.
    ///
    /// # Errors
    /// As for `create`.
    fn create_log(&self, rel: &str) -> Result<Box<dyn OutFile>, SeamError> {
        self.create(rel, 0)
    }
    /// Creates `rel` untransformed (no compression, encryption or
    /// throttle): an incremental's `.meta` files, which the vendor tools
    /// read as they are. The default is [`Target::create`].
    ///
    /// # Errors
    /// As for `create`.
    fn create_plain(&self, rel: &str) -> Result<Box<dyn OutFile>, SeamError> {
        self.create(rel, 0)
    }
    /// Takes back a file [`Target::create`] wrote as `rel`: a directory
    /// removes it, a stream says so in a `D` chunk that extraction obeys.
    /// `Ok(false)` from a target that cannot.
    ///
    /// # Errors
    /// As for `create`.
    fn remove(&self, rel: &str) -> Result<bool, SeamError>;
    /// Flushes everything (fsync files and directories; stream end).
    ///
    /// # Errors
    /// As for `create`.
    fn finish(&self) -> Result<(), SeamError>;
}

/// Reads one live file in order, chunk by chunk, handing out only bytes it
/// trusts (for InnoDB tablespaces: every page checksum-valid or re-read).
pub trait ChunkReader: Send {
    /// The next chunk, in the reader's own buffer (empty at the end).
    ///
    /// # Errors
    /// [`SeamError::CorruptPage`] or [`SeamError::Io`], naming the file.
    fn next_chunk(&mut self) -> Result<&[u8], SeamError>;
    /// Page retries the reader needed so far (torn reads of hot pages).
    fn retries(&self) -> u64 {
        0
    }
    /// Up to `count` validated pages from page `first` on (a run of a
    /// changed-page list); empty past the end of the file.
    ///
    /// # Errors
    /// As for `next_chunk`; a reader of plain files refuses.
    fn pages_at(&mut self, _first: u64, _count: usize) -> Result<&[u8], SeamError> {
        Err(SeamError::Io {
            path: String::new(),
            message: "this reader cannot read single pages".into(),
        })
    }
    /// What page 0 of a tablespace said (space id, flags, page size); `None`
    /// for other files, or a tablespace whose page 0 is not readable yet.
    fn space(&self) -> Option<xb_innodb::pagecheck::SpaceMeta> {
        None
    }
    /// Device and inode of the file being read, where known.
    fn identity(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Opens readers for live files.
pub trait Reader: Send + Sync {
    /// A reader for an InnoDB tablespace (pages validated).
    ///
    /// # Errors
    /// [`SeamError::Vanished`] when the file no longer exists (dropped since
    /// it was listed), else as for [`ChunkReader::next_chunk`].
    fn tablespace(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError>;
    /// A reader that copies a file as it is (non-InnoDB files).
    ///
    /// # Errors
    /// [`SeamError::Vanished`] when the file no longer exists, else
    /// [`SeamError::Io`] naming the file.
    fn plain(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError>;
    /// A reader for a file of an Aria table the server may be writing
    /// (pages checked, torn reads retried, when the table is
    /// online-backup safe). The default reads it as it is.
    ///
    /// # Errors
    /// As for [`Reader::tablespace`].
    fn aria(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
        self.plain(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_from_the_sink_is_its_own_variant() {
        let full = SeamError::from(SinkError::io(
            "db/t.ibd",
            std::io::Error::from_raw_os_error(28),
        ));
        assert!(matches!(full, SeamError::NoSpace { ref path } if path == "db/t.ibd"));
        let other = SeamError::from(SinkError::io("x", std::io::Error::from_raw_os_error(5)));
        assert!(matches!(other, SeamError::Sink(_)));
    }
}
