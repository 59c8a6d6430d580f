//! The seams between the orchestration and the crates that do the I/O:
//! where the backup writes (a datasink chain), and how a live file is read
//! (pages validated, torn reads retried). The orchestration only sees these
//! traits, so every phase can be tested with plain in-memory doubles.

use std::path::Path;

/// One file being written into the backup.
pub trait OutFile: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// A sentence naming the file and the cause (e.g. no space left).
    fn write(&mut self, buf: &[u8]) -> Result<(), String>;
    /// Finishes the file (flushes, emits the stream's end chunk).
    ///
    /// # Errors
    /// As for `write`.
    fn close(self: Box<Self>) -> Result<(), String>;
}

/// The backup target: files are created by their path relative to the
/// backup root (`ibdata1`, `db/t.ibd`, `xtrabackup_checkpoints`).
pub trait Target: Send + Sync {
    /// Creates `rel`. Several files may be open at once, from several threads.
    ///
    /// # Errors
    /// A sentence naming the file and the cause.
    fn create(&self, rel: &str, size_hint: u64) -> Result<Box<dyn OutFile>, String>;
    /// Removes `rel` if the target can (a directory can; a stream cannot and
    /// returns `Ok(false)`).
    ///
    /// # Errors
    /// As for `create`.
    fn remove(&self, rel: &str) -> Result<bool, String>;
    /// Flushes everything (fsync files and directories; stream end).
    ///
    /// # Errors
    /// As for `create`.
    fn finish(&self) -> Result<(), String>;
}

/// Reads one live file in order, chunk by chunk, handing out only bytes it
/// trusts (for InnoDB tablespaces: every page checksum-valid or re-read).
pub trait ChunkReader: Send {
    /// The next chunk, in the reader's own buffer (empty at the end).
    ///
    /// # Errors
    /// A sentence naming the file, the page or offset, and the cause.
    fn next_chunk(&mut self) -> Result<&[u8], String>;
    /// Page retries the reader needed so far (torn reads of hot pages).
    fn retries(&self) -> u64 {
        0
    }
}

/// Opens readers for live files.
pub trait Reader: Send + Sync {
    /// A reader for an InnoDB tablespace (pages validated); `None` when the
    /// file no longer exists (dropped since it was listed).
    ///
    /// # Errors
    /// A sentence naming the file and the cause.
    fn tablespace(&self, path: &Path) -> Result<Option<Box<dyn ChunkReader>>, String>;
    /// A reader that copies a file as it is (non-InnoDB files); `None` when
    /// the file no longer exists.
    ///
    /// # Errors
    /// A sentence naming the file and the cause.
    fn plain(&self, path: &Path) -> Result<Option<Box<dyn ChunkReader>>, String>;
}
