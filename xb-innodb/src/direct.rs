//! Positioned reads that go around the page cache where the file system
//! allows it, at any offset and length.
//!
//! Why: MariaDB 10.8+ writes `ib_logfile0` with `O_DIRECT`
//! (`innodb_log_file_buffering = OFF`, its default wherever the device's
//! block size is known), and the kernel keeps the page cache coherent with
//! direct writes only on a best-effort basis: a read through the page cache
//! that races a direct write can leave the page's old contents cached after
//! the write. Seen on MariaDB 10.11 under a write load: the redo copier read
//! a 4 KiB page of the log as zeros (the end of the log) again and again,
//! while the server's checkpoint, which it writes only once the log is on
//! disk, was already past it; the backup failed as "overwritten". Reading
//! the log with `O_DIRECT` as well reads what is on disk.
//!
//! Direct I/O wants offsets, lengths and memory aligned to the device's
//! block; callers read headers of 64 or 512 bytes and windows starting at
//! any LSN, so every read goes through an aligned scratch buffer covering
//! the aligned range around it. A file system that refuses `O_DIRECT`
//! (tmpfs, some overlay set-ups) is read through the page cache instead,
//! which is coherent there because the server cannot bypass it either.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use crate::iobuf::IoBuf;

/// Alignment of every direct read (the largest logical block in use).
const ALIGN: u64 = 4096;
/// Bytes one direct read moves.
const SCRATCH: usize = 1 << 20;

/// A file read by `O_DIRECT` when possible, through the page cache when not.
#[derive(Debug)]
pub struct DirectFile {
    buffered: File,
    direct: Mutex<Option<Direct>>,
}

#[derive(Debug)]
struct Direct {
    file: File,
    scratch: IoBuf,
}

impl DirectFile {
    /// Opens `path` for reading, with a direct-I/O handle beside the
    /// ordinary one when the file system accepts `O_DIRECT`.
    ///
    /// # Errors
    /// Opening the file failed.
    pub fn open(path: &Path) -> io::Result<Self> {
        let buffered = File::open(path)?;
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(path)
            .ok()
            .map(|file| Direct {
                file,
                scratch: IoBuf::heap(SCRATCH),
            });
        Ok(DirectFile {
            buffered,
            direct: Mutex::new(direct),
        })
    }

    /// The ordinary handle (for metadata).
    #[must_use]
    pub fn file(&self) -> &File {
        &self.buffered
    }

    /// True while reads bypass the page cache.
    #[must_use]
    pub fn is_direct(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Direct>> {
        self.direct
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fills `buf` from `offset`, as [`FileExt::read_exact_at`].
    ///
    /// # Errors
    /// I/O errors; `UnexpectedEof` when the file ends before `buf` is full.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut guard = self.lock();
        if let Some(d) = guard.as_mut() {
            match d.read_exact_at(buf, offset) {
                Ok(()) => return Ok(()),
                // EINVAL: this file system refuses direct reads after all;
                // the page cache is coherent there
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => *guard = None,
                Err(e) => return Err(e),
            }
        }
        drop(guard);
        self.buffered.read_exact_at(buf, offset)
    }
}

impl Direct {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let want = offset + done as u64;
            let start = want - want % ALIGN;
            let skip = usize::try_from(want - start).unwrap_or(0);
            // only the aligned range around what is still wanted: a 64-byte
            // checkpoint read moves one 4 KiB block, not the whole scratch
            let span = (skip + buf.len() - done).next_multiple_of(ALIGN as usize);
            let scratch = &mut self.scratch.as_mut_slice()[..span.min(SCRATCH)];
            let n = read_some(&self.file, scratch, start)?;
            if n <= skip {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("file ends before offset {}", offset + buf.len() as u64),
                ));
            }
            let take = (n - skip).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&scratch[skip..skip + take]);
            done += take;
        }
        Ok(())
    }
}

/// One positioned read, retried on `EINTR`; `Ok(0)` at the end of the file.
fn read_some(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A directory on a disk file system (O_DIRECT works there; on tmpfs
    /// the same reads go through the page cache).
    fn disk_dir() -> tempfile::TempDir {
        tempfile::tempdir_in("/var/tmp").unwrap_or_else(|_| tempfile::tempdir().unwrap())
    }

    #[test]
    fn reads_any_offset_and_length_across_the_scratch_buffer() {
        let dir = disk_dir();
        let path = dir.path().join("log");
        let data = pattern(3 * SCRATCH + 12_345);
        std::fs::write(&path, &data).unwrap();
        let f = DirectFile::open(&path).unwrap();
        for (off, len) in [
            (0, 64),
            (4096, 64),
            (8192 - 3, 10),
            (12_288, SCRATCH + 4097),
            (1, 2 * SCRATCH),
            (data.len() as u64 - 5, 5),
        ] {
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, off).unwrap();
            let off = usize::try_from(off).unwrap();
            assert_eq!(buf, data[off..off + len], "offset {off} length {len}");
        }
        let mut past = vec![0u8; 10];
        let err = f
            .read_exact_at(&mut past, data.len() as u64 - 5)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_direct_write_behind_the_reader_is_read_as_it_is_now() {
        let dir = disk_dir();
        let path = dir.path().join("log");
        std::fs::write(&path, vec![1u8; 8192]).unwrap();
        let f = DirectFile::open(&path).unwrap();
        let mut buf = [0u8; 16];
        f.read_exact_at(&mut buf, 4000).unwrap();
        assert_eq!(buf, [1u8; 16]);
        // the server's way of writing: O_DIRECT from an aligned buffer
        let w = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&path)
            .or_else(|_| std::fs::OpenOptions::new().write(true).open(&path))
            .unwrap();
        let mut block = IoBuf::heap(8192);
        block.as_mut_slice().fill(2);
        w.write_all_at(block.as_slice(), 0).unwrap();
        f.read_exact_at(&mut buf, 4000).unwrap();
        assert_eq!(buf, [2u8; 16]);
    }
}
