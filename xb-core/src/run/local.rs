//! Plain readers of live files (positioned reads, never mmap: a live file
//! can shrink under us), used for non-InnoDB files and beneath the page
//! validator for tablespaces.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::seams::ChunkReader;

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
    /// Opens `path`; `None` if it does not exist (any more).
    ///
    /// # Errors
    /// A sentence naming the file and the cause.
    pub fn open(path: &Path) -> Result<Option<PlainReader>, String> {
        match File::open(path) {
            Ok(file) => Ok(Some(PlainReader {
                file,
                path: path.to_path_buf(),
                offset: 0,
                buf: vec![0; CHUNK],
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot open {}: {e}", path.display())),
        }
    }
}

impl ChunkReader for PlainReader {
    fn next_chunk(&mut self) -> Result<&[u8], String> {
        let buf = &mut self.buf;
        let mut filled = 0;
        while filled < CHUNK {
            match self
                .file
                .read_at(&mut buf[filled..], self.offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "cannot read {} at offset {}: {e}",
                        self.path.display(),
                        self.offset + filled as u64
                    ));
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
        let mut r = PlainReader::open(&p).unwrap().unwrap();
        let mut got = Vec::new();
        loop {
            let chunk = r.next_chunk().unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(chunk);
        }
        assert_eq!(got, data);
        assert!(
            PlainReader::open(&dir.path().join("gone"))
                .unwrap()
                .is_none()
        );
    }
}
