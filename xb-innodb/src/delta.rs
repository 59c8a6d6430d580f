//! The incremental backup's per-tablespace files, as XtraBackup and
//! mariadb-backup write and apply them: `<name>.delta` (the changed pages)
//! and `<name>.meta` (what the apply step needs to know about the space).
//!
//! A `.delta` is a run of blocks of `P`-byte pages (`P` = the tablespace's
//! physical page size). Each block is a header page followed by up to
//! `P/4 − 1` data pages: the header starts with the magic `"xtra"` (or
//! `"XTRA"` on the last block), then the page number of each data page as
//! a big-endian u32, and `0xFFFFFFFF` after the last one when the block is
//! not full. The file always ends with an `"XTRA"` block, even an empty
//! one, which is how the apply step knows the delta is whole. Pages come in
//! increasing page-number order.
//!
//! Pure format code: the writer hands out whole blocks for the caller to
//! write through its sink, and the reader walks bytes the caller read.

use crate::be::be32;

/// Magic of a block that more blocks follow.
pub const MAGIC: [u8; 4] = *b"xtra";
/// Magic of the last block.
pub const MAGIC_LAST: [u8; 4] = *b"XTRA";
/// Ends the page list of a block that is not full.
const LIST_END: u32 = 0xFFFF_FFFF;

/// Why a `.delta` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// A page size no tablespace has.
    #[error("page size {0} is not a tablespace page size (1 KiB to 64 KiB, a power of two)")]
    PageSize(usize),
    /// A block's header does not start with either magic.
    #[error("block at byte {offset} has no \"xtra\"/\"XTRA\" magic")]
    Magic {
        /// Where the block starts.
        offset: usize,
    },
    /// The bytes end inside a block, or before the last block.
    #[error("the delta ends at byte {len} inside a block or before its last (\"XTRA\") block")]
    Truncated {
        /// The length read.
        len: usize,
    },
    /// Page numbers out of order (the writer puts them in increasing order).
    #[error("page {page} follows page {previous}: pages out of order")]
    Order {
        /// The page before.
        previous: u32,
        /// This page.
        page: u32,
    },
    /// Bytes after the last block.
    #[error("{0} bytes follow the last (\"XTRA\") block")]
    Trailing(usize),
    /// Reading the delta failed (streaming reader only).
    #[error("read error at byte {offset}: {reason}")]
    Read {
        /// Where the read started.
        offset: usize,
        /// The I/O error.
        reason: String,
    },
}

fn check_page_size(page_size: usize) -> Result<(), DeltaError> {
    if page_size.is_power_of_two() && (1024..=65_536).contains(&page_size) {
        Ok(())
    } else {
        Err(DeltaError::PageSize(page_size))
    }
}

/// A page's `FIL_PAGE_LSN` (bytes 16..24, big-endian): the LSN of its
/// last change, which decides whether it belongs in a delta. 0 for a page
/// too short to hold one.
#[must_use]
pub fn page_lsn(page: &[u8]) -> u64 {
    page.get(16..24)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Data pages in one block of a delta of `page_size`-byte pages: every
/// block but the last holds exactly this many (the vendor tools insist).
#[must_use]
pub fn block_capacity(page_size: usize) -> usize {
    page_size / 4 - 1
}

/// The header page of one block listing `pages` (at most
/// [`block_capacity`]; fewer only in the last block), for a writer that
/// knows a block's pages before it reads them and streams them after the
/// header instead of holding a block (64 MiB at 16 KiB pages) in memory.
///
/// # Errors
/// [`DeltaError::PageSize`] for an impossible page size or too many pages.
pub fn block_header(page_size: usize, pages: &[u32], last: bool) -> Result<Vec<u8>, DeltaError> {
    check_page_size(page_size)?;
    let cap = block_capacity(page_size);
    if pages.len() > cap || (!last && pages.len() != cap) {
        return Err(DeltaError::PageSize(pages.len()));
    }
    let mut h = vec![0u8; page_size];
    h[..4].copy_from_slice(if last { &MAGIC_LAST } else { &MAGIC });
    for (i, p) in pages.iter().enumerate() {
        h[4 * (i + 1)..4 * (i + 2)].copy_from_slice(&p.to_be_bytes());
    }
    if pages.len() < cap {
        let at = 4 * (pages.len() + 1);
        h[at..at + 4].copy_from_slice(&LIST_END.to_be_bytes());
    }
    Ok(h)
}

/// Builds a `.delta` page by page.
#[derive(Debug)]
pub struct DeltaWriter {
    page_size: usize,
    /// The block being filled: the header page, then the data pages.
    block: Vec<u8>,
    /// Data pages in `block`.
    pages: usize,
    last_page: Option<u32>,
}

impl DeltaWriter {
    /// A writer for pages of `page_size` bytes.
    ///
    /// # Errors
    /// [`DeltaError::PageSize`].
    pub fn new(page_size: usize) -> Result<Self, DeltaError> {
        check_page_size(page_size)?;
        Ok(DeltaWriter {
            page_size,
            block: vec![0; page_size],
            pages: 0,
            last_page: None,
        })
    }

    /// Data pages one block holds.
    fn capacity(&self) -> usize {
        self.page_size / 4 - 1
    }

    /// Adds page `page_no` (its `page_size` bytes). When a block is full it
    /// is returned, to be written before the next one.
    ///
    /// # Errors
    /// [`DeltaError::Order`] when `page_no` does not follow the last page
    /// added; [`DeltaError::PageSize`] when `page` is not one page long.
    pub fn push(&mut self, page_no: u32, page: &[u8]) -> Result<Option<Vec<u8>>, DeltaError> {
        if page.len() != self.page_size {
            return Err(DeltaError::PageSize(page.len()));
        }
        if let Some(previous) = self.last_page.filter(|&p| p >= page_no) {
            return Err(DeltaError::Order {
                previous,
                page: page_no,
            });
        }
        self.last_page = Some(page_no);
        self.pages += 1;
        let at = 4 * self.pages;
        self.block[at..at + 4].copy_from_slice(&page_no.to_be_bytes());
        self.block.extend_from_slice(page);
        if self.pages == self.capacity() {
            return Ok(Some(self.take(MAGIC)));
        }
        Ok(None)
    }

    /// The last block (`"XTRA"`, possibly with no pages): the delta is
    /// whole once it is written.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        self.take(MAGIC_LAST)
    }

    fn take(&mut self, magic: [u8; 4]) -> Vec<u8> {
        self.block[..4].copy_from_slice(&magic);
        if self.pages < self.capacity() {
            let at = 4 * (self.pages + 1);
            self.block[at..at + 4].copy_from_slice(&LIST_END.to_be_bytes());
        }
        self.pages = 0;
        std::mem::replace(&mut self.block, vec![0; self.page_size])
    }
}

/// The pages of a whole `.delta`, as `(page number, page bytes)` in file
/// order.
///
/// # Errors
/// [`DeltaError`] naming what is wrong and where.
pub fn read(bytes: &[u8], page_size: usize) -> Result<Vec<(u32, &[u8])>, DeltaError> {
    check_page_size(page_size)?;
    let capacity = page_size / 4 - 1;
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let header = bytes
            .get(at..at + page_size)
            .ok_or(DeltaError::Truncated { len: bytes.len() })?;
        let last = match [header[0], header[1], header[2], header[3]] {
            MAGIC => false,
            MAGIC_LAST => true,
            _ => return Err(DeltaError::Magic { offset: at }),
        };
        let mut n = 0;
        while n < capacity && be32(header, 4 * (n + 1)) != LIST_END {
            n += 1;
        }
        for i in 0..n {
            let page_no = be32(header, 4 * (i + 1));
            let start = at + page_size * (i + 1);
            let page = bytes
                .get(start..start + page_size)
                .ok_or(DeltaError::Truncated { len: bytes.len() })?;
            if let Some(&(previous, _)) = out.last().filter(|(p, _)| *p >= page_no) {
                return Err(DeltaError::Order {
                    previous,
                    page: page_no,
                });
            }
            out.push((page_no, page));
        }
        at += page_size * (n + 1);
        if last {
            return match bytes.len() - at {
                0 => Ok(out),
                extra => Err(DeltaError::Trailing(extra)),
            };
        }
    }
}

/// Reads a `.delta` from a stream, one page at a time: a header page, then
/// its data pages, then the next header page, so a multi-gigabyte delta
/// never sits in memory. Checks what [`read`] checks (magic, order,
/// truncation, trailing bytes), each when the reader reaches it: pages
/// handed out before an error were valid, the error tells the caller the
/// delta as a whole is not.
#[derive(Debug)]
pub struct DeltaReader<R> {
    inner: R,
    page_size: usize,
    /// Page numbers of the current block not handed out yet, in order.
    pending: std::collections::VecDeque<u32>,
    /// The current block is the last one.
    last: bool,
    /// The last block's pages are all out and the end was checked.
    done: bool,
    /// Bytes consumed so far.
    offset: usize,
    previous: Option<u32>,
}

impl<R: std::io::Read> DeltaReader<R> {
    /// A reader of pages of `page_size` bytes (the `.meta`'s `page_size`).
    ///
    /// # Errors
    /// [`DeltaError::PageSize`].
    pub fn new(inner: R, page_size: usize) -> Result<Self, DeltaError> {
        check_page_size(page_size)?;
        Ok(DeltaReader {
            inner,
            page_size,
            pending: std::collections::VecDeque::new(),
            last: false,
            done: false,
            offset: 0,
            previous: None,
        })
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of input
    /// (nothing read), [`DeltaError::Truncated`] inside `buf`.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, DeltaError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(DeltaError::Truncated {
                        len: self.offset + got,
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(DeltaError::Read {
                        offset: self.offset + got,
                        reason: e.to_string(),
                    });
                }
            }
        }
        self.offset += got;
        Ok(true)
    }

    /// Reads the next header page into `pending`.
    fn next_block(&mut self, scratch: &mut [u8]) -> Result<(), DeltaError> {
        let at = self.offset;
        if !self.fill(scratch)? {
            return Err(DeltaError::Truncated { len: at });
        }
        self.last = match [scratch[0], scratch[1], scratch[2], scratch[3]] {
            MAGIC => false,
            MAGIC_LAST => true,
            _ => return Err(DeltaError::Magic { offset: at }),
        };
        let capacity = self.page_size / 4 - 1;
        for i in 1..=capacity {
            let no = be32(scratch, 4 * i);
            if no == LIST_END {
                break;
            }
            self.pending.push_back(no);
        }
        Ok(())
    }

    /// The next page: its number, with its bytes in `page` (which must be
    /// one page long); `None` after the last page of a whole delta.
    ///
    /// # Errors
    /// [`DeltaError`] naming what is wrong and where; [`DeltaError::PageSize`]
    /// when `page` is not one page long.
    pub fn next_page(&mut self, page: &mut [u8]) -> Result<Option<u32>, DeltaError> {
        if page.len() != self.page_size {
            return Err(DeltaError::PageSize(page.len()));
        }
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(no) = self.pending.pop_front() {
                if let Some(previous) = self.previous.filter(|&p| p >= no) {
                    return Err(DeltaError::Order { previous, page: no });
                }
                self.previous = Some(no);
                if !self.fill(page)? {
                    return Err(DeltaError::Truncated { len: self.offset });
                }
                return Ok(Some(no));
            }
            if self.last {
                let mut extra = 0usize;
                let mut probe = [0u8; 4096];
                loop {
                    match self.inner.read(&mut probe) {
                        Ok(0) => break,
                        Ok(n) => extra += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(DeltaError::Read {
                                offset: self.offset + extra,
                                reason: e.to_string(),
                            });
                        }
                    }
                }
                if extra != 0 {
                    return Err(DeltaError::Trailing(extra));
                }
                self.done = true;
                continue;
            }
            // the header is read through `page`, which the caller gets
            // back only with a data page in it
            self.next_block(page)?;
        }
    }
}

/// The `.meta` beside a `.delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaMeta {
    /// Physical page size of the tablespace.
    pub page_size: u32,
    /// The compressed page size of a ROW_FORMAT=COMPRESSED table, else 0.
    pub zip_size: u32,
    /// The tablespace id: the apply step tells a table re-created since the
    /// base (another id under the same name) from the same one.
    pub space_id: u32,
    /// The tablespace's FSP flags.
    pub space_flags: u32,
}

impl DeltaMeta {
    /// The text XtraBackup writes: `key = value` lines.
    #[must_use]
    pub fn render(&self) -> String {
        format!(
            "page_size = {}\nzip_size = {}\nspace_id = {}\nspace_flags = {}\n",
            self.page_size, self.zip_size, self.space_id, self.space_flags
        )
    }

    /// Reads a `.meta`; `None` when `page_size` or `space_id` is missing
    /// or a value is not a number (`zip_size` and `space_flags` default to
    /// 0, as older writers left them out).
    #[must_use]
    pub fn parse(text: &str) -> Option<DeltaMeta> {
        let mut meta = DeltaMeta {
            page_size: 0,
            zip_size: 0,
            space_id: u32::MAX,
            space_flags: 0,
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once('=')?;
            let value: u32 = value.trim().parse().ok()?;
            match key.trim() {
                "page_size" => meta.page_size = value,
                "zip_size" => meta.zip_size = value,
                "space_id" => meta.space_id = value,
                "space_flags" => meta.space_flags = value,
                _ => {}
            }
        }
        (meta.page_size != 0 && meta.space_id != u32::MAX).then_some(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_written_ahead_match_the_page_by_page_writer() {
        let ps = 4096;
        let cap = block_capacity(ps);
        let page = vec![7u8; ps];
        let mut w = DeltaWriter::new(ps).unwrap();
        let mut blocks = Vec::new();
        for no in 0..(cap as u32 + 3) {
            if let Some(b) = w.push(no, &page).unwrap() {
                blocks.push(b);
            }
        }
        blocks.push(w.finish());
        let first: Vec<u32> = (0..cap as u32).collect();
        assert_eq!(block_header(ps, &first, false).unwrap(), blocks[0][..ps]);
        let rest = [cap as u32, cap as u32 + 1, cap as u32 + 2];
        assert_eq!(block_header(ps, &rest, true).unwrap(), blocks[1][..ps]);
        assert_eq!(
            block_header(ps, &[], true).unwrap()[..8],
            *b"XTRA\xff\xff\xff\xff"
        );
        // only the last block may be short
        assert!(block_header(ps, &rest, false).is_err());
    }

    const P: usize = 16_384;

    fn page(no: u32) -> Vec<u8> {
        let mut p = vec![0u8; P];
        p[..4].copy_from_slice(&no.to_be_bytes());
        p[P - 1] = 0xAB;
        p
    }

    /// The whole delta of `pages`, as a writer emits it.
    fn delta_of(pages: &[u32]) -> Vec<u8> {
        let mut w = DeltaWriter::new(P).unwrap();
        let mut out = Vec::new();
        for &n in pages {
            if let Some(block) = w.push(n, &page(n)).unwrap() {
                out.extend(block);
            }
        }
        out.extend(w.finish());
        out
    }

    #[test]
    fn an_empty_delta_is_one_xtra_header_page_with_an_empty_list() {
        let d = delta_of(&[]);
        assert_eq!(d.len(), P);
        assert_eq!(&d[..4], b"XTRA");
        assert_eq!(&d[4..8], &[0xFF; 4]);
        assert!(d[8..].iter().all(|&b| b == 0));
        assert!(read(&d, P).unwrap().is_empty());
    }

    #[test]
    fn blocks_hold_a_quarter_page_of_slots_and_only_the_last_says_xtra() {
        // 4095 data pages fill one block of a 16 KiB tablespace; one more
        // starts the next
        let pages: Vec<u32> = (0..4096).map(|i| i * 3).collect();
        let d = delta_of(&pages);
        assert_eq!(d.len(), P * (4096 + 2), "two header pages");
        assert_eq!(&d[..4], b"xtra");
        assert_eq!(
            be32(&d, 4 * 4095),
            4094 * 3,
            "the last slot of a full block"
        );
        let second = P * 4096;
        assert_eq!(&d[second..second + 4], b"XTRA");
        assert_eq!(be32(&d, second + 4), 4095 * 3);
        assert_eq!(be32(&d, second + 8), LIST_END);
        let got = read(&d, P).unwrap();
        assert_eq!(got.len(), pages.len());
        for ((no, bytes), want) in got.iter().zip(&pages) {
            assert_eq!(no, want);
            assert_eq!(*bytes, page(*want).as_slice());
        }
    }

    #[test]
    fn a_full_last_block_has_no_list_end() {
        let pages: Vec<u32> = (0..4095).collect();
        let mut w = DeltaWriter::new(P).unwrap();
        let mut blocks = Vec::new();
        for &n in &pages {
            blocks.extend(w.push(n, &page(n)).unwrap());
        }
        // the full block went out as "xtra"; the last block is empty
        assert_eq!(blocks.len(), 1);
        let last = w.finish();
        assert_eq!(&last[..8], b"XTRA\xFF\xFF\xFF\xFF");
        let d = [blocks.concat(), last].concat();
        assert_eq!(read(&d, P).unwrap().len(), 4095);
    }

    #[test]
    fn damaged_deltas_are_named() {
        let d = delta_of(&[1, 2, 3]);
        assert_eq!(
            read(&d[..d.len() - 1], P),
            Err(DeltaError::Truncated { len: d.len() - 1 })
        );
        let mut bad = d.clone();
        bad[0] = b'Y';
        assert_eq!(read(&bad, P), Err(DeltaError::Magic { offset: 0 }));
        let mut more = d.clone();
        more.extend([0u8; 7]);
        assert_eq!(read(&more, P), Err(DeltaError::Trailing(7)));
        let mut swapped = d.clone();
        swapped[8..12].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            read(&swapped, P),
            Err(DeltaError::Order {
                previous: 9,
                page: 3
            })
        );
        // the writer refuses what the reader would
        let mut w = DeltaWriter::new(P).unwrap();
        w.push(5, &page(5)).unwrap();
        assert_eq!(
            w.push(5, &page(5)),
            Err(DeltaError::Order {
                previous: 5,
                page: 5
            })
        );
        assert_eq!(w.push(6, &[0; 10]), Err(DeltaError::PageSize(10)));
        assert_eq!(
            DeltaWriter::new(3000).unwrap_err(),
            DeltaError::PageSize(3000)
        );
    }

    /// Every page of `d` through the streaming reader, fed `chunk` bytes
    /// at a time.
    fn stream(d: &[u8], chunk: usize) -> Result<Vec<(u32, Vec<u8>)>, DeltaError> {
        struct Chunks<'a>(&'a [u8], usize);
        impl std::io::Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = DeltaReader::new(Chunks(d, chunk), P)?;
        let mut out = Vec::new();
        let mut page = vec![0u8; P];
        while let Some(no) = r.next_page(&mut page)? {
            out.push((no, page.clone()));
        }
        // a finished reader stays finished
        assert_eq!(r.next_page(&mut page), Ok(None));
        Ok(out)
    }

    #[test]
    fn the_streaming_reader_reads_what_read_reads() {
        for pages in [
            vec![],
            vec![7],
            (0..4096).map(|i| i * 2).collect::<Vec<u32>>(),
        ] {
            let d = delta_of(&pages);
            let want: Vec<(u32, Vec<u8>)> = read(&d, P)
                .unwrap()
                .into_iter()
                .map(|(n, p)| (n, p.to_vec()))
                .collect();
            assert_eq!(stream(&d, 1000).unwrap(), want);
            assert_eq!(stream(&d, P * 3).unwrap(), want);
        }
    }

    #[test]
    fn the_streaming_reader_names_damage_like_read() {
        let d = delta_of(&[1, 2, 3]);
        for cut in [0, 5, P, P + 100, d.len() - 1] {
            assert_eq!(
                stream(&d[..cut], 777),
                Err(DeltaError::Truncated { len: cut }),
                "cut at {cut}"
            );
        }
        let mut bad = d.clone();
        bad[0] = b'Y';
        assert_eq!(stream(&bad, 777), Err(DeltaError::Magic { offset: 0 }));
        let mut more = d.clone();
        more.extend([0u8; 7]);
        assert_eq!(stream(&more, 777), Err(DeltaError::Trailing(7)));
        let mut swapped = d.clone();
        swapped[8..12].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            stream(&swapped, 777),
            Err(DeltaError::Order {
                previous: 9,
                page: 3
            })
        );
        // a non-final block must be followed by another
        let mut early = d.clone();
        early[..4].copy_from_slice(&MAGIC);
        assert_eq!(
            stream(&early, 777),
            Err(DeltaError::Truncated { len: d.len() })
        );
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut r = DeltaReader::new(Broken, P).unwrap();
        assert_eq!(
            r.next_page(&mut vec![0; P]),
            Err(DeltaError::Read {
                offset: 0,
                reason: "disk on fire".into()
            })
        );
        assert_eq!(r.next_page(&mut [0; 10]), Err(DeltaError::PageSize(10)));
        assert!(DeltaReader::new(Broken, 100).is_err());
    }

    #[test]
    fn meta_renders_as_xtrabackup_writes_it_and_parses_back() {
        let m = DeltaMeta {
            page_size: 16_384,
            zip_size: 0,
            space_id: 42,
            space_flags: 21,
        };
        let text = m.render();
        assert_eq!(
            text,
            "page_size = 16384\nzip_size = 0\nspace_id = 42\nspace_flags = 21\n"
        );
        assert_eq!(DeltaMeta::parse(&text), Some(m));
        // older writers: no zip_size / space_flags
        assert_eq!(
            DeltaMeta::parse("page_size = 4096\nspace_id = 7\n"),
            Some(DeltaMeta {
                page_size: 4096,
                zip_size: 0,
                space_id: 7,
                space_flags: 0
            })
        );
        assert_eq!(DeltaMeta::parse("page_size = 4096\n"), None, "no space id");
        assert_eq!(DeltaMeta::parse("page_size = x\nspace_id = 1\n"), None);
    }
}
