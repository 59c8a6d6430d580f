//! The two places a backup goes: a local directory, or an xbstream on any
//! writer (stdout for `--stream=xbstream`), byte-compatible with
//! xbstream/mbstream.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::seams::{OutFile, Target};

/// Turns an I/O error into a sentence; a full disk says so plainly.
fn describe(e: &std::io::Error, what: &str) -> String {
    if e.raw_os_error() == Some(28) || e.kind() == ErrorKind::StorageFull {
        format!("no space left on device while writing {what}")
    } else {
        format!("{what}: {e}")
    }
}

/// Refuses absolute paths and `..` so nothing is written outside the target.
fn safe_rel(rel: &str) -> Result<&Path, String> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("refusing unsafe path {rel:?} in the backup"));
    }
    Ok(p)
}

/// A local directory target. It must be empty or absent; it is created.
#[derive(Debug)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Creates (or takes over an empty) `root`.
    ///
    /// # Errors
    /// When `root` is not empty or cannot be created.
    pub fn create(root: &Path) -> Result<Self, String> {
        if root.exists() {
            let mut entries =
                fs::read_dir(root).map_err(|e| describe(&e, &root.display().to_string()))?;
            if entries.next().is_some() {
                return Err(format!("target directory {} is not empty", root.display()));
            }
        } else {
            fs::create_dir_all(root).map_err(|e| describe(&e, &root.display().to_string()))?;
        }
        Ok(LocalDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[derive(Debug)]
struct LocalFile {
    file: File,
    path: PathBuf,
}

impl OutFile for LocalFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), String> {
        self.file
            .write_all(buf)
            .map_err(|e| describe(&e, &self.path.display().to_string()))
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| describe(&e, &self.path.display().to_string()))
    }
}

impl Target for LocalDir {
    fn create(&self, rel: &str, _size_hint: u64) -> Result<Box<dyn OutFile>, String> {
        let path = self.root.join(safe_rel(rel)?);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| describe(&e, &parent.display().to_string()))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| describe(&e, &path.display().to_string()))?;
        Ok(Box::new(LocalFile { file, path }))
    }

    fn remove(&self, rel: &str) -> Result<bool, String> {
        let path = self.root.join(safe_rel(rel)?);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) => Err(describe(&e, &path.display().to_string())),
        }
    }

    fn finish(&self) -> Result<(), String> {
        // fsync every directory, so the new names survive a crash
        let mut dirs = vec![self.root.clone()];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(&d).map_err(|e| describe(&e, &d.display().to_string()))? {
                let p = e
                    .map_err(|e| describe(&e, &d.display().to_string()))?
                    .path();
                if p.is_dir() {
                    dirs.push(p);
                }
            }
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| describe(&e, &d.display().to_string()))?;
        }
        Ok(())
    }
}

/// An xbstream on a writer. Chunks of concurrently written files interleave;
/// each chunk's header and payload are written under one lock.
pub struct XbStream {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for XbStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XbStream")
    }
}

impl XbStream {
    /// A stream written to `out`.
    #[must_use]
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        XbStream {
            out: Arc::new(Mutex::new(out)),
        }
    }
}

const MAGIC: &[u8; 8] = b"XBSTCK01";

fn chunk_header(kind: u8, path: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(40 + path.len());
    h.extend_from_slice(MAGIC);
    h.push(0);
    h.push(kind);
    h.extend_from_slice(&u32::try_from(path.len()).unwrap_or(u32::MAX).to_le_bytes());
    h.extend_from_slice(path.as_bytes());
    h
}

struct StreamFile {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    path: String,
    offset: u64,
}

impl StreamFile {
    fn emit(&self, parts: &[&[u8]]) -> Result<(), String> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for p in parts {
            out.write_all(p)
                .map_err(|e| describe(&e, &format!("the stream (file {})", self.path)))?;
        }
        Ok(())
    }
}

impl OutFile for StreamFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), String> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut h = chunk_header(b'P', &self.path);
        h.extend_from_slice(&(buf.len() as u64).to_le_bytes());
        h.extend_from_slice(&self.offset.to_le_bytes());
        h.extend_from_slice(&crc32fast::hash(buf).to_le_bytes());
        self.emit(&[&h, buf])?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        self.emit(&[&chunk_header(b'E', &self.path)])
    }
}

impl Target for XbStream {
    fn create(&self, rel: &str, _size_hint: u64) -> Result<Box<dyn OutFile>, String> {
        safe_rel(rel)?;
        if rel.len() >= 512 {
            return Err(format!(
                "path {rel:?} is too long for xbstream (512 bytes at most)"
            ));
        }
        Ok(Box::new(StreamFile {
            out: Arc::clone(&self.out),
            path: rel.to_string(),
            offset: 0,
        }))
    }

    fn remove(&self, _rel: &str) -> Result<bool, String> {
        Ok(false)
    }

    fn finish(&self) -> Result<(), String> {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.flush().map_err(|e| describe(&e, "the stream"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn stream_chunks_have_the_xbstream_layout() {
        let buf = Shared::default();
        let s = XbStream::new(Box::new(buf.clone()));
        let mut f = s.create("db/t.ibd", 0).unwrap();
        f.write(b"hello").unwrap();
        f.close().unwrap();
        s.finish().unwrap();
        let bytes = buf.0.lock().unwrap().clone();
        let mut want = b"XBSTCK01\0P".to_vec();
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(b"db/t.ibd");
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&crc32fast::hash(b"hello").to_le_bytes());
        want.extend_from_slice(b"hello");
        want.extend_from_slice(b"XBSTCK01\0E");
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(b"db/t.ibd");
        assert_eq!(bytes, want);
    }

    #[test]
    fn unsafe_paths_and_non_empty_targets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalDir::create(&dir.path().join("b")).unwrap();
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            assert!(t.create(bad, 0).is_err(), "{bad}");
        }
        t.create("ok/f", 0).unwrap().close().unwrap();
        let err = LocalDir::create(&dir.path().join("b")).unwrap_err();
        assert!(err.contains("is not empty"), "{err}");
    }
}
