//! The local-directory terminus: files under a new (or empty) directory,
//! synced when closed, directories synced at finish so the names survive a
//! crash.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::paths::prepare_path;
use crate::{Datasink, SinkError, SinkFile};

/// A local directory target. It must be empty or absent; it is created.
#[derive(Debug)]
pub struct LocalDir {
    root: PathBuf,
    sync: bool,
}

impl LocalDir {
    /// Creates (or takes over an empty) `root`. Files are fsynced on close.
    ///
    /// # Errors
    /// [`SinkError::NotEmpty`] when `root` holds anything; I/O errors when it
    /// cannot be created.
    pub fn create(root: &Path) -> Result<Self, SinkError> {
        match fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(SinkError::NotEmpty {
                        dir: root.display().to_string(),
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(|e| SinkError::io(root.display(), e))?;
            }
            Err(e) => return Err(SinkError::io(root.display(), e)),
        }
        Ok(LocalDir {
            root: root.to_path_buf(),
            sync: true,
        })
    }

    /// Turns the per-file and per-directory fsyncs off (tests, benches, or
    /// when the caller syncs the file system itself).
    #[must_use]
    pub fn without_sync(mut self) -> Self {
        self.sync = false;
        self
    }

    /// The directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
}

struct LocalFile {
    file: File,
    path: PathBuf,
    sync: bool,
    /// Bytes written so far, and where writeback was last started.
    written: u64,
    kicked: u64,
}

/// Start writeback every this many bytes, so the final fsync finds most of
/// the file already on its way to disk instead of all of it.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl SinkFile for LocalFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        self.file
            .write_all(buf)
            .map_err(|e| SinkError::io(self.path.display(), e))?;
        self.written += buf.len() as u64;
        if self.sync && self.written - self.kicked >= WRITEBACK_EVERY {
            // POSIX_FADV_DONTNEED starts writeback of the dirty range (and
            // keeps the backup from crowding the server's page cache); a
            // failure only loses that hint, never data
            let (off, len) = (self.kicked, self.written - self.kicked);
            let _ = nix::fcntl::posix_fadvise(
                &self.file,
                i64::try_from(off).unwrap_or(0),
                i64::try_from(len).unwrap_or(0),
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
            self.kicked = self.written;
        }
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        if self.sync {
            self.file
                .sync_data()
                .map_err(|e| SinkError::io(self.path.display(), e))?;
        }
        Ok(())
    }
}

impl Datasink for LocalDir {
    fn open(&self, path: &str, _size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        let full = prepare_path(&self.root, path)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .map_err(|e| SinkError::io(full.display(), e))?;
        Ok(Box::new(LocalFile {
            file,
            path: full,
            sync: self.sync,
            written: 0,
            kicked: 0,
        }))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        let full = prepare_path(&self.root, path)?;
        match fs::remove_file(&full) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) => Err(SinkError::io(full.display(), e)),
        }
    }

    fn finish(&self) -> Result<(), SinkError> {
        if !self.sync {
            return Ok(());
        }
        sync_tree(&self.root)
    }
}

/// fsyncs every directory under `root` (not following symlinks).
pub(crate) fn sync_tree(root: &Path) -> Result<(), SinkError> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).map_err(|e| SinkError::io(d.display(), e))? {
            let e = e.map_err(|e| SinkError::io(d.display(), e))?;
            let ft = e
                .file_type()
                .map_err(|err| SinkError::io(d.display(), err))?;
            if ft.is_dir() {
                dirs.push(e.path());
            }
        }
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| SinkError::io(d.display(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_under_the_root_and_non_empty_targets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalDir::create(&dir.path().join("b")).unwrap();
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            assert!(t.open(bad, 0).is_err(), "{bad}");
        }
        let mut f = t.open("db/t.ibd", 0).unwrap();
        f.write(b"abc").unwrap();
        f.close().unwrap();
        t.finish().unwrap();
        assert_eq!(fs::read(dir.path().join("b/db/t.ibd")).unwrap(), b"abc");
        let err = LocalDir::create(&dir.path().join("b")).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
    }
}
