//! A live Aria table file read front to back, page by page, with
//! positioned reads (never mmap: the server may truncate the file). On a
//! table that is online-backup safe every page is checked; a page that
//! does not check out is read again after a pause, since the server may be
//! writing it, and the copy fails only when it stays bad. Pages of other
//! tables are handed out as read, byte for byte (they are copied while
//! writes to them are blocked).

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::header::{Capabilities, FENCES_LEN, HeaderError, RedoFences};
use crate::page::{check_data_page, check_index_page};

/// Bytes per read: 128 pages of 8 KiB.
const BATCH_BYTES: usize = 1 << 20;

/// Which file of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AriaFile {
    /// `.MAI`: the header, then key pages.
    Index,
    /// `.MAD`: bitmap and row pages.
    Data,
}

impl AriaFile {
    /// The kind of `path`, by its extension; `None` for other files.
    #[must_use]
    pub fn of(path: &Path) -> Option<AriaFile> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("MAI") => Some(AriaFile::Index),
            Some("MAD") => Some(AriaFile::Data),
            _ => None,
        }
    }
}

/// How hard to try on a page that does not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Reads of a page before giving up (default 10).
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

/// Why a live Aria file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS refused a read or an open.
    #[error("{file}: {what}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The table's index header is not understood.
    #[error("{file}: {source}")]
    Header {
        /// The index file.
        file: PathBuf,
        /// Why.
        source: HeaderError,
    },
    /// A page stayed bad after every read.
    #[error("{file}: page {page} is corrupt ({reason}) after {tries} reads")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Page number.
        page: u64,
        /// The check's verdict on the last read.
        reason: &'static str,
        /// Reads made.
        tries: u32,
    },
}

/// Reads one file of a live Aria table.
#[derive(Debug)]
pub struct AriaReader {
    file: File,
    path: PathBuf,
    which: AriaFile,
    cap: Capabilities,
    policy: RetryPolicy,
    /// Bytes handed out so far (whole pages, on a page-checked table).
    offset: u64,
    buf: Vec<u8>,
    retries: u64,
    identity: (u64, u64),
}

impl AriaReader {
    /// Opens `path` (a `.MAI` or `.MAD`), reading the table's capabilities
    /// from its index file. `Ok(None)` when either file is gone (the table
    /// was dropped or renamed since it was listed).
    ///
    /// # Errors
    /// [`ReadError::Io`] for a name that is not an Aria file or an OS
    /// error, [`ReadError::Header`] for an index header not understood.
    pub fn open(path: &Path, policy: RetryPolicy) -> Result<Option<AriaReader>, ReadError> {
        let io = |what: &str, source| ReadError::Io {
            file: path.to_path_buf(),
            what: what.into(),
            source,
        };
        let Some(which) = AriaFile::of(path) else {
            return Err(io(
                "not an Aria table file",
                std::io::Error::from(ErrorKind::InvalidInput),
            ));
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot open", e)),
        };
        let index_path = path.with_extension("MAI");
        let cap = if which == AriaFile::Index {
            capabilities(&file, &index_path)?
        } else {
            let Some(index) = open_index(&index_path)? else {
                return Ok(None);
            };
            capabilities(&index, &index_path)?
        };
        let meta = file.metadata().map_err(|e| io("cannot stat", e))?;
        let block = cap.block_size as usize;
        Ok(Some(AriaReader {
            file,
            path: path.to_path_buf(),
            which,
            cap,
            policy,
            offset: 0,
            buf: vec![0; BATCH_BYTES.max(block) / block * block],
            retries: 0,
            identity: (meta.dev(), meta.ino()),
        }))
    }

    /// What the table's index header says.
    #[must_use]
    pub fn capabilities(&self) -> &Capabilities {
        &self.cap
    }

    /// Page re-reads made so far.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Device and inode of the open file.
    #[must_use]
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// The next run of whole, checked pages; empty at the end of the file.
    /// A file that ends inside a page is read again until the server has
    /// finished extending it.
    ///
    /// # Errors
    /// [`ReadError::Io`], or [`ReadError::Corrupt`] for a page that stayed
    /// bad after [`RetryPolicy::tries`] reads.
    pub fn next_pages(&mut self) -> Result<&[u8], ReadError> {
        if !self.cap.online_backup_safe() {
            // not page-checked (and a FIXED or DYNAMIC table's data file
            // is no run of pages): the bytes as they are
            let filled = self.read_at(0, self.buf.len(), self.offset)?;
            self.offset += filled as u64;
            return Ok(&self.buf[..filled]);
        }
        let block = self.cap.block_size as usize;
        let first_page = self.offset / block as u64;
        let mut filled = self.read_at(0, self.buf.len(), self.offset)?;
        let mut tries = 1;
        while filled % block != 0 && filled < block {
            // the last page is being appended: wait for the rest of it
            if tries >= self.policy.tries {
                return Err(ReadError::Corrupt {
                    file: self.path.clone(),
                    page: first_page,
                    reason: "the file ends inside this page",
                    tries,
                });
            }
            std::thread::sleep(self.policy.delay);
            self.retries += 1;
            tries += 1;
            filled = self.read_at(0, self.buf.len(), self.offset)?;
        }
        let whole = filled / block;
        let mut good = 0;
        while good < whole {
            let page_no = first_page + good as u64;
            if !self.page_is_good(good, page_no)? {
                // the file was cut short under us (TRUNCATE): it ends here
                break;
            }
            good += 1;
        }
        self.offset += (good * block) as u64;
        Ok(&self.buf[..good * block])
    }

    /// Checks page `i` of the buffer, re-reading it while it does not
    /// check out. `Ok(false)` when the file no longer reaches it.
    fn page_is_good(&mut self, i: usize, page_no: u64) -> Result<bool, ReadError> {
        let block = self.cap.block_size as usize;
        let at = i * block;
        let mut tries = 1;
        loop {
            let page = &self.buf[at..at + block];
            let verdict = match self.which {
                AriaFile::Data => check_data_page(&self.cap, page_no, page),
                AriaFile::Index => check_index_page(&self.cap, page_no, page),
            };
            let Err(reason) = verdict else {
                return Ok(true);
            };
            if tries >= self.policy.tries {
                return Err(ReadError::Corrupt {
                    file: self.path.clone(),
                    page: page_no,
                    reason,
                    tries,
                });
            }
            std::thread::sleep(self.policy.delay);
            self.retries += 1;
            tries += 1;
            if self.read_at(at, block, page_no * block as u64)? < block {
                return Ok(false);
            }
        }
    }

    /// Reads `len` bytes at file offset `offset` into the buffer at `at`,
    /// up to the end of the file; returns the bytes read.
    fn read_at(&mut self, at: usize, len: usize, offset: u64) -> Result<usize, ReadError> {
        read_upto(&self.file, &mut self.buf[at..at + len], offset).map_err(|e| ReadError::Io {
            file: self.path.clone(),
            what: format!("read at offset {offset}"),
            source: e,
        })
    }
}

/// The capabilities of the table whose index file is `index`; `Ok(None)`
/// when the file is gone.
///
/// # Errors
/// As for [`AriaReader::open`].
pub fn read_capabilities(index: &Path) -> Result<Option<Capabilities>, ReadError> {
    let Some(f) = open_index(index)? else {
        return Ok(None);
    };
    capabilities(&f, index).map(Some)
}

/// The redo fences in the header of the index file `index`; `Ok(None)`
/// when the file is gone.
///
/// # Errors
/// As for [`AriaReader::open`].
pub fn read_fences(index: &Path) -> Result<Option<RedoFences>, ReadError> {
    let Some(f) = open_index(index)? else {
        return Ok(None);
    };
    let head = read_head(&f, index, FENCES_LEN)?;
    RedoFences::read(&head)
        .map(Some)
        .map_err(|source| ReadError::Header {
            file: index.to_path_buf(),
            source,
        })
}

/// Opens an index file; `Ok(None)` when it is gone.
fn open_index(index: &Path) -> Result<Option<File>, ReadError> {
    match File::open(index) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadError::Io {
            file: index.to_path_buf(),
            what: "cannot open".into(),
            source: e,
        }),
    }
}

/// Reads the capabilities from an open index file.
fn capabilities(index: &File, path: &Path) -> Result<Capabilities, ReadError> {
    let header = |source| ReadError::Header {
        file: path.to_path_buf(),
        source,
    };
    let probe = read_head(index, path, Capabilities::PROBE)?;
    let len = Capabilities::header_len(&probe).map_err(header)?;
    Capabilities::parse(&read_head(index, path, len)?).map_err(header)
}

/// The first `len` bytes of `file` (fewer if it is shorter).
fn read_head(file: &File, path: &Path, len: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0u8; len];
    let n = read_upto(file, &mut buf, 0).map_err(|e| ReadError::Io {
        file: path.to_path_buf(),
        what: "cannot read the header".into(),
        source: e,
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// Fills `buf` from `offset` on, up to the end of the file; returns the
/// bytes read.
fn read_upto(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
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
    use crate::header::tests::{TRANSACTIONAL, unhex};
    use crate::page::crc;

    /// Long enough for a writer thread to step in.
    fn patient() -> RetryPolicy {
        RetryPolicy {
            tries: 50,
            delay: Duration::from_millis(10),
        }
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            tries: 3,
            delay: Duration::from_millis(1),
        }
    }

    /// A table `t` in `dir`: the real transactional header, one key page,
    /// and `pages` data pages (page 0 a bitmap without checksum).
    fn table(dir: &Path, pages: u64) -> (PathBuf, PathBuf) {
        let mut mai = unhex(TRANSACTIONAL);
        mai.resize(8192, 0);
        let mut key = vec![0u8; 8192];
        key[15..17].copy_from_slice(&40u16.to_be_bytes());
        key[17..40].fill(0x42);
        let c = crc(1, &key[..40]);
        key[8188..].copy_from_slice(&c.to_le_bytes());
        mai.extend_from_slice(&key);
        let mut mad = Vec::new();
        for n in 0..pages {
            let mut p = vec![u8::try_from(n % 200).unwrap() + 1; 8192];
            let c = if n == 0 {
                crate::page::NO_CRC_BITMAP
            } else {
                crc(n, &p[..8188])
            };
            p[8188..].copy_from_slice(&c.to_le_bytes());
            mad.extend_from_slice(&p);
        }
        let (i, d) = (dir.join("t.MAI"), dir.join("t.MAD"));
        std::fs::write(&i, mai).unwrap();
        std::fs::write(&d, mad).unwrap();
        (i, d)
    }

    fn read_all(r: &mut AriaReader) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        loop {
            let chunk = r.next_pages()?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(chunk);
        }
    }

    #[test]
    fn both_files_of_a_table_read_whole_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (mai, mad) = table(dir.path(), 300);
        for p in [&mai, &mad] {
            let mut r = AriaReader::open(p, quick()).unwrap().unwrap();
            assert!(r.capabilities().online_backup_safe());
            assert_eq!(read_all(&mut r).unwrap(), std::fs::read(p).unwrap());
            assert_eq!(r.retries(), 0);
        }
    }

    #[test]
    fn a_page_that_stays_bad_fails_the_read_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mad) = table(dir.path(), 200);
        let mut bytes = std::fs::read(&mad).unwrap();
        bytes[150 * 8192 + 10] ^= 0xff;
        std::fs::write(&mad, bytes).unwrap();
        let mut r = AriaReader::open(&mad, quick()).unwrap().unwrap();
        match read_all(&mut r) {
            Err(ReadError::Corrupt { page, tries, .. }) => {
                assert_eq!((page, tries), (150, 3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.retries(), 2);
    }

    #[test]
    fn a_page_being_written_is_read_again_until_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mad) = table(dir.path(), 10);
        let good = std::fs::read(&mad).unwrap();
        let mut torn = good.clone();
        torn[5 * 8192..5 * 8192 + 4096].fill(0xaa);
        std::fs::write(&mad, &torn).unwrap();
        let mut r = AriaReader::open(&mad, patient()).unwrap().unwrap();
        // the "server" finishes its write while the reader waits
        let path = mad.clone();
        let fix = good.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .write_all_at(&fix[5 * 8192..6 * 8192], 5 * 8192)
                .unwrap();
        });
        let got = read_all(&mut r).unwrap();
        writer.join().unwrap();
        assert_eq!(got, good);
        assert!(r.retries() >= 1);
    }

    #[test]
    fn a_file_cut_short_under_the_reader_ends_where_it_was_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mad) = table(dir.path(), 10);
        let mut bytes = std::fs::read(&mad).unwrap();
        bytes[7 * 8192 + 1] ^= 1;
        std::fs::write(&mad, &bytes).unwrap();
        let mut r = AriaReader::open(&mad, patient()).unwrap().unwrap();
        // TRUNCATE TABLE while the reader waits on the bad page
        let path = mad.clone();
        let cut = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(7 * 8192).unwrap();
        });
        let got = read_all(&mut r).unwrap();
        cut.join().unwrap();
        assert_eq!(got, bytes[..7 * 8192]);
    }

    #[test]
    fn a_table_that_is_not_page_checked_reads_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut mai = unhex(TRANSACTIONAL);
        mai.resize(8192, 0);
        // born_transactional off (base info at 263)
        mai[263 + 106] = 0;
        std::fs::write(dir.path().join("d.MAI"), &mai).unwrap();
        // a DYNAMIC table's data file: any length, no page checksums
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8).collect();
        std::fs::write(dir.path().join("d.MAD"), &data).unwrap();
        let mut r = AriaReader::open(&dir.path().join("d.MAD"), quick())
            .unwrap()
            .unwrap();
        assert!(!r.capabilities().online_backup_safe());
        assert_eq!(read_all(&mut r).unwrap(), data);
    }

    #[test]
    fn a_dropped_table_is_none_and_other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            AriaReader::open(&dir.path().join("gone.MAD"), quick())
                .unwrap()
                .is_none()
        );
        let (_, mad) = table(dir.path(), 2);
        std::fs::remove_file(dir.path().join("t.MAI")).unwrap();
        assert!(AriaReader::open(&mad, quick()).unwrap().is_none());
        assert!(matches!(
            AriaReader::open(&dir.path().join("t.MYD"), quick()),
            Err(ReadError::Io { .. })
        ));
        std::fs::write(dir.path().join("x.MAI"), b"short").unwrap();
        assert!(matches!(
            AriaReader::open(&dir.path().join("x.MAI"), quick()),
            Err(ReadError::Header { .. })
        ));
    }
}
