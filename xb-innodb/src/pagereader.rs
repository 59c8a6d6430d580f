//! Reading a live tablespace page by page: every page is checked, and a
//! batch with a bad page is read again (the server may have been writing it:
//! a torn read, repaired later by the redo), up to a bounded number of tries.
//! Only when the page stays bad is the copy failed, naming file and page.

use std::cell::RefCell;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::iobuf::IoBuf;
use crate::pagecheck::{SpaceMeta, Verdict, check_page};

/// Errors reading a tablespace.
#[derive(Debug, thiserror::Error)]
pub enum PageReadError {
    /// I/O error.
    #[error("{file}: read at offset {offset} failed: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Where.
        offset: u64,
        /// The error.
        source: std::io::Error,
    },
    /// Page 0 is not understood.
    #[error("{file}: {reason}")]
    Meta {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A page stayed invalid after every re-read.
    #[error("{file}: page {page} is corrupt ({reason}) after {tries} reads")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Page number.
        page: u64,
        /// The checksum verdict.
        reason: &'static str,
        /// Reads made.
        tries: u32,
    },
}

/// How hard to try on a bad page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Reads of a batch before giving up (default 10).
    pub tries: u32,
    /// Pause between reads (default 100 ms).
    pub delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            tries: 10,
            delay: Duration::from_millis(100),
        }
    }
}

/// Bytes per read batch: one huge page (see [`crate::iobuf`]), 128 pages
/// of 16 KiB. Larger batches measured no faster and cost memory per worker.
pub const BATCH_BYTES: usize = 2 << 20;

// a batch holds at least one page of the largest size (64 KiB)
const _: () = assert!(BATCH_BYTES >= 65536);

thread_local! {
    /// The read buffer of the last reader this thread dropped: a copy
    /// worker opens one file after another, and a fresh huge-page mapping
    /// per file would cost a mapping and a zeroed page each time.
    static SPARE: RefCell<Option<IoBuf>> = const { RefCell::new(None) };
}

/// A read buffer of at least `len` bytes: this thread's spare, or a new one.
fn take_buffer(len: usize) -> IoBuf {
    SPARE
        .with(|s| s.borrow_mut().take())
        .filter(|b| b.len() >= len)
        .unwrap_or_else(|| IoBuf::new(len))
}

/// A live tablespace being read in order.
#[derive(Debug)]
pub struct TablespaceReader {
    file: File,
    path: PathBuf,
    meta: Option<SpaceMeta>,
    /// Page 0 was still all zeros at open (a table just created: the server
    /// writes its page 0 later), so `meta` is the server's default until
    /// page 0 shows up written.
    meta_guessed: bool,
    system: bool,
    offset: u64,
    /// The file's size when opened: [`Self::next_pages`] reads no further.
    /// Pages past it were created since, so the redo copied from before
    /// the open initialises them (a file growing as fast as the copy reads
    /// would otherwise be chased without end); mariadb-backup and
    /// XtraBackup stop there too.
    end: u64,
    /// At most this many bytes in the next batch (a run of changed pages).
    batch_limit: Option<usize>,
    policy: RetryPolicy,
    retries: u64,
    /// The same file opened with `O_DIRECT`, when asked for and possible:
    /// reads then skip the page cache copy (the server also bypasses it).
    direct: Option<File>,
    buf: IoBuf,
}

impl TablespaceReader {
    /// Opens `path`; `None` when it does not exist (dropped). `system` marks
    /// the system tablespace (page numbers not checked, doublewrite skipped).
    ///
    /// # Errors
    /// I/O, or a page 0 that cannot be decoded.
    pub fn open(
        path: &Path,
        server_page_size: usize,
        system: bool,
        policy: RetryPolicy,
    ) -> Result<Option<Self>, PageReadError> {
        Self::open_with(path, server_page_size, false, system, policy)
    }

    /// [`Self::open`], saying whether the server creates tablespaces in
    /// MariaDB's `full_crc32` format (`innodb_checksum_algorithm`), which is
    /// assumed while page 0 of a new table is still unwritten.
    ///
    /// # Errors
    /// I/O, or a page 0 that cannot be decoded.
    pub fn open_with(
        path: &Path,
        server_page_size: usize,
        server_full_crc32: bool,
        system: bool,
        policy: RetryPolicy,
    ) -> Result<Option<Self>, PageReadError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PageReadError::Io {
                    file: path.to_path_buf(),
                    offset: 0,
                    source,
                });
            }
        };
        let end = file.metadata().map_or(u64::MAX, |m| m.len());
        let mut head = vec![0u8; 4096];
        let n = read_full(&file, &mut head, 0).map_err(|source| PageReadError::Io {
            file: path.to_path_buf(),
            offset: 0,
            source,
        })?;
        // A file shorter than a page (being created) is copied as it is.
        let unwritten = n == head.len() && head.iter().all(|&b| b == 0);
        let meta = if n < head.len() {
            None
        } else if unwritten {
            Some(default_meta(server_page_size, server_full_crc32))
        } else {
            Some(SpaceMeta::from_page0(&head, server_page_size).map_err(|e| {
                PageReadError::Meta {
                    file: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?)
        };
        Ok(Some(TablespaceReader {
            file,
            path: path.to_path_buf(),
            meta,
            meta_guessed: unwritten,
            system,
            offset: 0,
            end,
            batch_limit: None,
            policy,
            retries: 0,
            direct: None,
            buf: take_buffer(BATCH_BYTES),
        }))
    }

    /// Reads with `O_DIRECT` from now on, if the file system allows it (a
    /// server that uses `O_DIRECT` keeps no useful copy in the page cache,
    /// and reading around it saves a memory copy per byte).
    #[must_use]
    pub fn with_direct_io(mut self, on: bool) -> Self {
        if on {
            use std::os::unix::fs::OpenOptionsExt;
            self.direct = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
                .open(&self.path)
                .ok();
        }
        self
    }

    /// Positioned read into the aligned buffer, by `O_DIRECT` when open.
    fn read_into(&mut self, len: usize) -> Result<usize, PageReadError> {
        let offset = self.offset;
        let buf = &mut self.buf.as_mut_slice()[..len];
        if let Some(d) = &self.direct {
            match read_full(d, buf, offset) {
                Ok(n) => return Ok(n),
                // EINVAL: this file system or offset refuses O_DIRECT; read buffered
                Err(e) if e.raw_os_error() == Some(22) => self.direct = None,
                Err(source) => {
                    return Err(PageReadError::Io {
                        file: self.path.clone(),
                        offset,
                        source,
                    });
                }
            }
        }
        read_full(&self.file, buf, offset).map_err(|source| PageReadError::Io {
            file: self.path.clone(),
            offset,
            source,
        })
    }

    /// Reads up to `count` pages from page `first` on (fewer at the end of
    /// the file or of one batch), validated and re-read like
    /// [`Self::next_pages`]: the pages a changed-page list names. Reading
    /// goes on in order after them.
    ///
    /// # Errors
    /// As for [`Self::next_pages`].
    pub fn pages_at(&mut self, first: u64, count: usize) -> Result<&[u8], PageReadError> {
        let ps = self.meta.map_or(1, |m| m.physical_size);
        self.offset = first * ps as u64;
        self.batch_limit = Some(count.max(1) * ps);
        self.next_pages()
    }

    /// Page re-reads so far.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// What page 0 said.
    #[must_use]
    pub fn meta(&self) -> Option<SpaceMeta> {
        self.meta
    }

    /// True while page 0 has not been seen written (a table just created):
    /// [`Self::meta`] is then the server's default format, and its space id
    /// is not the table's.
    #[must_use]
    pub fn meta_is_guessed(&self) -> bool {
        self.meta_guessed
    }

    /// The device and inode of the open file: which file was read, however
    /// it was renamed or replaced since.
    #[must_use]
    pub fn file_identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().ok().map(|m| (m.dev(), m.ino()))
    }

    fn doublewrite(&self, page: u64, size: usize) -> bool {
        let extent: u64 = if size <= 16384 {
            (1 << 20) / size as u64
        } else {
            64
        };
        self.system && (extent..3 * extent).contains(&page)
    }

    /// Reads the next batch of whole pages into `buf`; returns its length
    /// (0 at the end of the file).
    ///
    /// # Errors
    /// I/O, or a page still corrupt after [`RetryPolicy::tries`] reads.
    pub fn next_chunk(&mut self, buf: &mut Vec<u8>) -> Result<usize, PageReadError> {
        let chunk = self.next_pages()?;
        buf.clear();
        buf.extend_from_slice(chunk);
        Ok(buf.len())
    }

    /// Reads the next batch of whole pages; returns them (empty at the end
    /// of the file). The slice lives in the reader's own aligned buffer.
    ///
    /// # Errors
    /// I/O, or a page still corrupt after [`RetryPolicy::tries`] reads.
    pub fn next_pages(&mut self) -> Result<&[u8], PageReadError> {
        let left = usize::try_from(self.end.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let Some(mut meta) = self.meta else {
            let n = self.read_into(BATCH_BYTES.min(left))?;
            self.offset += n as u64;
            let all: &[u8] = self.buf.as_slice();
            return Ok(&all[..n]);
        };
        let ps = meta.physical_size;
        let limit = self.batch_limit.take().unwrap_or(BATCH_BYTES);
        let batch = (BATCH_BYTES.min(limit) / ps).max(1) * ps;
        // the open-time size, in whole pages
        let batch = batch.min(left / ps * ps);
        if batch == 0 {
            return Ok(&[]);
        }
        let mut tries = 0u32;
        loop {
            tries += 1;
            let n = self.read_into(batch)?;
            // whole pages only: a partial last page is a file being extended
            let n = n / ps * ps;
            let first = self.offset / ps as u64;
            let buf: &[u8] = self.buf.as_slice();
            if self.meta_guessed && first == 0 && n >= ps && buf[..ps].iter().any(|&b| b != 0) {
                if let Ok(m) = SpaceMeta::from_page0(&buf[..ps], meta.physical_size) {
                    if m.physical_size == ps {
                        meta = m;
                        self.meta = Some(m);
                        self.meta_guessed = false;
                    }
                }
            }
            let bad = (0..n / ps).find_map(|i| {
                let no = first + i as u64;
                if self.doublewrite(no, ps) {
                    return None;
                }
                let page = &buf[i * ps..(i + 1) * ps];
                let expected = u32::try_from(no).unwrap_or(u32::MAX);
                match check_page(page, &meta, expected, self.system) {
                    Verdict::Bad(reason) => Some((no, reason)),
                    _ => None,
                }
            });
            match bad {
                None => {
                    self.offset += n as u64;
                    let all: &[u8] = self.buf.as_slice();
                    return Ok(&all[..n]);
                }
                Some((page, reason)) if tries >= self.policy.tries => {
                    return Err(PageReadError::Corrupt {
                        file: self.path.clone(),
                        page,
                        reason,
                        tries,
                    });
                }
                Some((page, reason)) => {
                    self.retries += 1;
                    tracing::debug!(file = %self.path.display(), page, reason, tries, "bad page, reading the batch again");
                    std::thread::sleep(self.policy.delay);
                }
            }
        }
    }
}

impl Drop for TablespaceReader {
    fn drop(&mut self) {
        let buf = std::mem::replace(&mut self.buf, IoBuf::heap(0));
        // a thread being torn down has no spare slot any more: the buffer
        // is simply freed
        let _ = SPARE.try_with(|s| *s.borrow_mut() = Some(buf));
    }
}

/// What a tablespace of this server looks like before its page 0 exists.
fn default_meta(page_size: usize, full_crc32: bool) -> SpaceMeta {
    let ssize = (page_size.max(4096).trailing_zeros()).saturating_sub(9);
    SpaceMeta {
        space_id: 0,
        flags: if full_crc32 { (1 << 4) | ssize } else { 0 },
        physical_size: page_size,
        full_crc32,
        compressed: false,
        page_compressed: false,
    }
}

/// `pread` until `buf` is full or the file ends; returns bytes read.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_growing_during_the_copy_is_read_only_to_its_size_at_open() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.ibd");
        std::fs::write(&p, vec![0u8; 8 * 16384]).unwrap();
        let mut r = TablespaceReader::open(&p, 16384, false, RetryPolicy::default())
            .unwrap()
            .unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&vec![0u8; 200 * 16384]).unwrap();
        let mut read = 0;
        loop {
            let n = r.next_pages().unwrap().len();
            if n == 0 {
                break;
            }
            read += n;
        }
        assert_eq!(read, 8 * 16384);
    }

    #[test]
    fn a_thread_reuses_the_read_buffer_of_the_reader_it_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.ibd"), dir.path().join("b.ibd"));
        // pages not written yet (all zero) are valid; a short file is copied raw
        std::fs::write(&a, vec![0u8; 8 * 16384]).unwrap();
        std::fs::write(&b, b"short").unwrap();
        let open = |p: &Path| {
            TablespaceReader::open(p, 16384, false, RetryPolicy::default())
                .unwrap()
                .unwrap()
        };
        let mut r = open(&a);
        let first = r.buf.as_slice().as_ptr();
        assert_eq!(r.next_pages().unwrap().len(), 8 * 16384);
        assert!(r.next_pages().unwrap().is_empty());
        drop(r);
        // were the buffer freed, this mapping could take its address
        let _hold = IoBuf::new(BATCH_BYTES);
        let mut r = open(&b);
        assert_eq!(
            r.buf.as_slice().as_ptr(),
            first,
            "a new buffer was allocated"
        );
        assert_eq!(r.next_pages().unwrap(), b"short");
        // another thread has its own
        let other = std::thread::scope(|s| {
            s.spawn(|| open(&a).buf.as_slice().as_ptr() as usize)
                .join()
                .unwrap()
        });
        assert_ne!(other, first as usize);
    }
}
