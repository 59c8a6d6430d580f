//! The file-copy seam. The orchestrator implements [`FileCopier`] with its
//! datasinks (local directory, xbstream, compression…); this crate only
//! decides which files go when, and on how many threads.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Copies one live file into the backup.
///
/// Called from several threads at once during the data-file step, hence
/// `Sync`. `rel` is the file's `/`-separated name inside the backup.
pub trait FileCopier: Send + Sync {
    /// Copy `src` to `rel`; returns the number of bytes written.
    fn copy(&self, src: &Path, rel: &str) -> io::Result<u64>;
}

/// Copies into a plain local directory; for tests, examples and simple tools.
#[derive(Debug, Clone)]
pub struct LocalDirCopier {
    root: PathBuf,
}

impl LocalDirCopier {
    /// Copy into `root` (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The target directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl FileCopier for LocalDirCopier {
    fn copy(&self, src: &Path, rel: &str) -> io::Result<u64> {
        let dst = self.root.join(rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(src, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_copier_creates_subdirectories() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.tokudb"), b"abc").unwrap();
        let c = LocalDirCopier::new(dst.path());
        let n = c.copy(&src.path().join("a.tokudb"), "db/a.tokudb").unwrap();
        assert_eq!(n, 3);
        assert_eq!(fs::read(dst.path().join("db/a.tokudb")).unwrap(), b"abc");
    }
}
