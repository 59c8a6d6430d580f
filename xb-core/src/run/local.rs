//! Readers of live files: positioned reads, never mmap (a live file can
//! shrink under us). Tablespaces go through `xb_innodb`'s page validator;
//! every other file is read as it is.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xb_aria::AriaReader;
use xb_innodb::pagereader::{RetryPolicy, TablespaceReader};

use super::seams::{ChunkReader, Reader, SeamError};
use super::server::ServerFacts;

/// Reads the server's live files for the copy workers, with the server's
/// page size, checksum family and I/O mode.
#[derive(Debug)]
pub struct LiveReader {
    page_size: usize,
    full_crc32: bool,
    direct_io: bool,
    system: Vec<String>,
}

impl LiveReader {
    /// A reader for the files of the server described by `facts`.
    #[must_use]
    pub fn new(facts: &ServerFacts) -> Self {
        LiveReader {
            page_size: facts.page_size,
            full_crc32: facts.checksum_algorithm.starts_with("full_crc32"),
            // read around the page cache when the server does too
            direct_io: facts.flush_method.contains("O_DIRECT"),
            system: super::files::system_files(&facts.data_file_path),
        }
    }
}

struct Tablespace(TablespaceReader);

impl ChunkReader for Tablespace {
    fn next_chunk(&mut self) -> Result<&[u8], SeamError> {
        self.0.next_pages().map_err(SeamError::from)
    }
    fn retries(&self) -> u64 {
        self.0.retries()
    }
    fn pages_at(&mut self, first: u64, count: usize) -> Result<&[u8], SeamError> {
        self.0.pages_at(first, count).map_err(SeamError::from)
    }
    fn space(&self) -> Option<xb_innodb::pagecheck::SpaceMeta> {
        // a guess names no real space id
        self.0.meta().filter(|_| !self.0.meta_is_guessed())
    }
    fn identity(&self) -> Option<(u64, u64)> {
        self.0.file_identity()
    }
}

impl Reader for LiveReader {
    fn tablespace(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let system = self.system.contains(&name);
        let r = TablespaceReader::open_with(
            path,
            self.page_size,
            self.full_crc32,
            system,
            RetryPolicy::default(),
        )?
        .ok_or_else(|| SeamError::Vanished {
            path: path.display().to_string(),
        })?;
        Ok(Box::new(Tablespace(r.with_direct_io(self.direct_io))))
    }

    fn plain(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
        Ok(Box::new(PlainReader::open(path)?))
    }

    fn aria(&self, path: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
        let r = AriaReader::open(path, xb_aria::RetryPolicy::default())?.ok_or_else(|| {
            SeamError::Vanished {
                path: path.display().to_string(),
            }
        })?;
        Ok(Box::new(Aria(r)))
    }
}

struct Aria(AriaReader);

impl ChunkReader for Aria {
    fn next_chunk(&mut self) -> Result<&[u8], SeamError> {
        self.0.next_pages().map_err(SeamError::from)
    }
    fn retries(&self) -> u64 {
        self.0.retries()
    }
    fn identity(&self) -> Option<(u64, u64)> {
        Some(self.0.identity())
    }
}

/// Chunk size of plain reads.
pub const CHUNK: usize = 1 << 20;

/// Reads a file front to back with `pread`, until a read returns 0.
#[derive(Debug)]
pub struct PlainReader {
    file: File,
    path: PathBuf,
    offset: u64,
    buf: Vec<u8>,
}

impl PlainReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`SeamError::Vanished`] if it does not exist (any more), else
    /// [`SeamError::Io`].
    pub fn open(path: &Path) -> Result<PlainReader, SeamError> {
        match File::open(path) {
            Ok(file) => {
                // sized to the file: a 1 MiB buffer for each of 20,000
                // small `.frm` files made the process grow with the table
                // count (glibc keeps freed blocks of that size in its
                // arenas); a file that grows is read in more chunks
                let len = file.metadata().map(|m| m.len()).unwrap_or(CHUNK as u64);
                let len = usize::try_from(len).unwrap_or(CHUNK).clamp(4096, CHUNK);
                Ok(PlainReader {
                    file,
                    path: path.to_path_buf(),
                    offset: 0,
                    buf: vec![0; len.next_multiple_of(4096).min(CHUNK)],
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(SeamError::Vanished {
                path: path.display().to_string(),
            }),
            Err(e) => Err(SeamError::Io {
                path: path.display().to_string(),
                message: format!("cannot open: {e}"),
            }),
        }
    }
}

impl ChunkReader for PlainReader {
    fn next_chunk(&mut self) -> Result<&[u8], SeamError> {
        let buf = &mut self.buf;
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .file
                .read_at(&mut buf[filled..], self.offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(SeamError::Io {
                        path: self.path.display().to_string(),
                        message: format!(
                            "read at offset {} failed: {e}",
                            self.offset + filled as u64
                        ),
                    });
                }
            }
        }
        self.offset += filled as u64;
        Ok(&self.buf[..filled])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_in_chunks_and_reports_missing_files_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let mut r = PlainReader::open(&p).unwrap();
        let mut got = Vec::new();
        loop {
            let chunk = r.next_chunk().unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(chunk);
        }
        assert_eq!(got, data);
        assert!(matches!(
            PlainReader::open(&dir.path().join("gone")),
            Err(SeamError::Vanished { .. })
        ));
    }
}
