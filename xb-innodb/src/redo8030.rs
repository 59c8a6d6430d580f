//! MySQL 8.0.30+ redo log (`#innodb_redo/#ib_redoN`): checkpoint lookup
//! across all files, LSN → (file, offset), incremental block scanning, and
//! the file a backup keeps (itself a valid `#ib_redoN`).
//!
//! Every file (`#ib_redoN`; spares are `#ib_redoN_tmp`) starts with:
//!
//! | offset | size | field (big-endian) |
//! |---|---|---|
//! | 0 | 4 | format (6 = 8.0.30) |
//! | 4 | 4 | log uuid |
//! | 8 | 8 | start LSN: the LSN of file offset 2048 |
//! | 16 | 32 | creator |
//! | 48 | 4 | flags (bit value 8: file full) |
//! | 508 | 4 | CRC-32C of 0..508 |
//! | 512, 1536 | 512 | checkpoint blocks: LSN @+8, CRC-32C @+508 (zero unless the checkpoint is in this file) |
//! | 1072 | 3 | encryption magic when the redo is encrypted (refused) |
//! | 2048.. | 512 each | log blocks: `hdr_no` @0 (bit 31 flush flag), `data_len` @4, `first_rec_group` @6, `epoch_no` @8, CRC-32C @508 |
//!
//! LSNs count every byte of the block stream, headers included, so a block
//! at LSN `l` sits at `2048 + (l − start_lsn)` of the file that holds `l`,
//! and its `hdr_no` is `1 + (l / 512 mod 2^30)`.

pub use crate::be::hdr_no;
use crate::be::{be16, be32, be64};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Format id of MySQL 8.0.30+ redo files.
pub const FORMAT_8_0_30: u32 = 6;
/// Size of the file header (header, two checkpoints, encryption block).
pub const HEADER_SIZE: u64 = 2048;
/// Log block size.
pub const BLOCK: u64 = 512;
const CHECKPOINTS: [u64; 2] = [512, 1536];
const FLAG_FULL: u32 = 8;

/// Errors reading MySQL 8.0.30+ redo.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Redo8030Error {
    /// I/O error on a file.
    #[error("{file}: read at offset {offset} failed: {reason}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Where.
        offset: u64,
        /// The OS error.
        reason: String,
    },
    /// A damaged or foreign header.
    #[error("{file}: {reason}")]
    Header {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file holds encryption information: the redo is encrypted.
    #[error("{file}: the redo log is encrypted ({marker}); encrypted redo cannot be read")]
    Encrypted {
        /// The file.
        file: PathBuf,
        /// What says so.
        marker: String,
    },
    /// No redo files, or none with a valid checkpoint.
    #[error("{dir}: {reason}")]
    NoLog {
        /// The `#innodb_redo` directory.
        dir: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The server recycled the file holding log we still needed.
    #[error(
        "{dir}: redo at LSN {needed} was overwritten before it was copied (the oldest redo file starts at LSN {oldest})"
    )]
    Overwritten {
        /// The `#innodb_redo` directory.
        dir: PathBuf,
        /// First LSN we still needed.
        needed: u64,
        /// Start LSN of the oldest file left.
        oldest: u64,
    },
    /// Writing the copy failed (the sink's message).
    #[error("{0}")]
    Out(String),
}

/// One `#ib_redoN` file.
#[derive(Debug)]
pub struct RedoFile {
    /// N of `#ib_redoN`.
    pub id: u64,
    /// Path.
    pub path: PathBuf,
    /// LSN at offset 2048.
    pub start_lsn: u64,
    /// File size.
    pub size: u64,
    /// Creator string.
    pub creator: String,
    /// The file is full (the server moved on to the next one).
    pub full: bool,
    file: File,
}

impl RedoFile {
    /// First LSN after this file's data.
    #[must_use]
    pub fn end_lsn(&self) -> u64 {
        self.start_lsn + (self.size - HEADER_SIZE)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Redo8030Error> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Redo8030Error::Io {
                file: self.path.clone(),
                offset,
                reason: e.to_string(),
            })
    }

    fn open(path: &Path, id: u64) -> Result<Self, Redo8030Error> {
        let io = |offset, e: std::io::Error| Redo8030Error::Io {
            file: path.to_path_buf(),
            offset,
            reason: e.to_string(),
        };
        let file = File::open(path).map_err(|e| io(0, e))?;
        let size = file.metadata().map_err(|e| io(0, e))?.len();
        let header = |reason: String| Redo8030Error::Header {
            file: path.to_path_buf(),
            reason,
        };
        if size < HEADER_SIZE + BLOCK {
            return Err(header(format!("{size} bytes is too small for a redo file")));
        }
        let mut h = [0u8; 2048];
        file.read_exact_at(&mut h, 0).map_err(|e| io(0, e))?;
        if let Some(magic) = crate::redo_classic::encryption_magic(&h) {
            return Err(Redo8030Error::Encrypted {
                file: path.to_path_buf(),
                marker: format!(
                    "magic \"{magic}\" at offset {}",
                    crate::redo_classic::ENCRYPTION_INFO_OFFSET
                ),
            });
        }
        if crc32c::crc32c(&h[..508]) != be32(&h, 508) {
            return Err(header("header checksum mismatch at offset 508".into()));
        }
        let format = be32(&h, 0);
        if format != FORMAT_8_0_30 {
            return Err(header(format!(
                "format {format} at offset 0 is not MySQL 8.0.30+ (6)"
            )));
        }
        let c = &h[16..48];
        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
        Ok(RedoFile {
            id,
            path: path.to_path_buf(),
            start_lsn: be64(&h, 8),
            size,
            creator: String::from_utf8_lossy(&c[..end]).into_owned(),
            full: be32(&h, 48) & FLAG_FULL != 0,
            file,
        })
    }
}

/// The live `#innodb_redo` directory.
#[derive(Debug)]
pub struct Log8030 {
    dir: PathBuf,
    files: Vec<RedoFile>,
}

/// A checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint8030 {
    /// Checkpoint LSN.
    pub lsn: u64,
    /// The file it was found in.
    pub file_id: u64,
}

/// `N` of `#ib_redoN`, or `None` for spares and anything else.
#[must_use]
pub fn file_id(name: &str) -> Option<u64> {
    name.strip_prefix("#ib_redo")?.parse().ok()
}

impl Log8030 {
    /// Opens the redo directory (`DATADIR/#innodb_redo`).
    ///
    /// # Errors
    /// No files, or a damaged header.
    pub fn open(dir: &Path) -> Result<Self, Redo8030Error> {
        let mut log = Log8030 {
            dir: dir.to_path_buf(),
            files: Vec::new(),
        };
        log.refresh()?;
        Ok(log)
    }

    /// Lists the files again (the server creates, fills and recycles them).
    ///
    /// # Errors
    /// I/O or a damaged header.
    pub fn refresh(&mut self) -> Result<(), Redo8030Error> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Redo8030Error::NoLog {
            dir: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Redo8030Error::NoLog {
                dir: self.dir.clone(),
                reason: e.to_string(),
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = file_id(&name) {
                match RedoFile::open(&e.path(), id) {
                    Ok(f) => files.push(f),
                    // renamed away between listing and opening: recycled
                    Err(Redo8030Error::Io { .. }) if !e.path().exists() => {}
                    Err(err) => return Err(err),
                }
            }
        }
        if files.is_empty() {
            return Err(Redo8030Error::NoLog {
                dir: self.dir.clone(),
                reason: "no #ib_redoN files".into(),
            });
        }
        files.sort_by_key(|f| f.id);
        self.files = files;
        Ok(())
    }

    /// The files, oldest first.
    #[must_use]
    pub fn files(&self) -> &[RedoFile] {
        &self.files
    }

    /// The file holding `lsn`.
    #[must_use]
    pub fn file_of(&self, lsn: u64) -> Option<&RedoFile> {
        self.files
            .iter()
            .find(|f| f.start_lsn <= lsn && lsn < f.end_lsn())
    }

    /// The latest valid checkpoint across all files (it is written only into
    /// the file that holds it, so every file is searched).
    ///
    /// # Errors
    /// I/O, or no valid checkpoint.
    pub fn latest_checkpoint(&mut self) -> Result<Checkpoint8030, Redo8030Error> {
        self.refresh()?;
        let mut best: Option<Checkpoint8030> = None;
        for f in &self.files {
            for off in CHECKPOINTS {
                let mut b = [0u8; 512];
                f.read_at(&mut b, off)?;
                let lsn = be64(&b, 8);
                let valid = lsn != 0
                    && crc32c::crc32c(&b[..508]) == be32(&b, 508)
                    && f.start_lsn <= lsn
                    && lsn < f.end_lsn();
                if valid && best.is_none_or(|c| lsn > c.lsn) {
                    best = Some(Checkpoint8030 { lsn, file_id: f.id });
                }
            }
        }
        best.ok_or_else(|| Redo8030Error::NoLog {
            dir: self.dir.clone(),
            reason: "no valid checkpoint in any #ib_redoN file".into(),
        })
    }
}

/// Is `b` the valid block for `lsn`? Returns its `data_len`.
fn block_ok(b: &[u8], lsn: u64) -> Option<u16> {
    let no = be32(b, 0) & 0x7FFF_FFFF;
    let len = be16(b, 4);
    (no == hdr_no(lsn) && crc32c::crc32c(&b[..508]) == be32(b, 508) && (12..=512).contains(&len))
        .then_some(len)
}

/// Follows the log block by block from a checkpoint. Whole blocks are handed
/// out as soon as they are complete; the last, partly written block is kept
/// back until [`Scanner8030::tail`] (it is still growing).
#[derive(Debug)]
pub struct Scanner8030 {
    /// LSN of the next block to read (block aligned).
    next: u64,
    /// End of valid log seen (inside the partial block, if any).
    end: u64,
    partial: Option<Vec<u8>>,
    buf: Vec<u8>,
    /// Why the last poll stopped where it did.
    pub stop: crate::be::BlockStop,
}

const WINDOW: u64 = 4 << 20;

impl Scanner8030 {
    /// Starts at the block holding `lsn`.
    #[must_use]
    pub fn new(lsn: u64) -> Self {
        let start = lsn / BLOCK * BLOCK;
        Scanner8030 {
            next: start,
            end: lsn,
            partial: None,
            buf: Vec::new(),
            stop: crate::be::BlockStop::End,
        }
    }

    /// LSN of the first block handed out.
    #[must_use]
    pub fn block_start(lsn: u64) -> u64 {
        lsn / BLOCK * BLOCK
    }

    /// End of valid log seen so far.
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.end
    }

    /// Reads on from where the last call stopped.
    ///
    /// # Errors
    /// I/O; [`Redo8030Error::Overwritten`] when the file with the next
    /// needed block was recycled; `out`'s error as [`Redo8030Error::Out`].
    pub fn poll(
        &mut self,
        log: &mut Log8030,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, Redo8030Error> {
        log.refresh()?;
        loop {
            let Some(f) = log.file_of(self.next) else {
                let oldest = log.files.first().map_or(0, |f| f.start_lsn);
                if self.next < oldest {
                    return Err(Redo8030Error::Overwritten {
                        dir: log.dir.clone(),
                        needed: self.next,
                        oldest,
                    });
                }
                return Ok(self.end); // the next file does not exist yet
            };
            let avail = f.end_lsn() - self.next;
            let len = usize::try_from(avail.min(WINDOW)).unwrap_or(0);
            self.buf.resize(len, 0);
            f.read_at(&mut self.buf, HEADER_SIZE + (self.next - f.start_lsn))?;
            // recycled while we read? then the header now names other LSNs
            let mut h = [0u8; 16];
            f.read_at(&mut h, 0)?;
            if be64(&h, 8) != f.start_lsn {
                return Err(Redo8030Error::Overwritten {
                    dir: log.dir.clone(),
                    needed: self.next,
                    oldest: be64(&h, 8),
                });
            }
            let mut full = 0usize;
            let mut partial = None;
            for (i, b) in self.buf.chunks_exact(512).enumerate() {
                let lsn = self.next + (i as u64) * BLOCK;
                match block_ok(b, lsn) {
                    Some(512) => full = i + 1,
                    Some(n) => {
                        partial = Some((b.to_vec(), lsn + u64::from(n)));
                        self.stop = crate::be::BlockStop::Partial;
                        break;
                    }
                    None => {
                        self.stop = if (be32(b, 0) & 0x7FFF_FFFF) == hdr_no(lsn) {
                            crate::be::BlockStop::BadChecksum {
                                file: f.path.clone(),
                                offset: HEADER_SIZE + (self.next - f.start_lsn) + i as u64 * BLOCK,
                            }
                        } else {
                            crate::be::BlockStop::End
                        };
                        break;
                    }
                }
            }
            if full > 0 {
                out(&self.buf[..full * 512]).map_err(Redo8030Error::Out)?;
                self.next += full as u64 * BLOCK;
                self.end = self.end.max(self.next);
            }
            match partial {
                Some((b, end)) => {
                    self.partial = Some(b);
                    self.end = self.end.max(end);
                    return Ok(self.end);
                }
                None if full * 512 == len && len > 0 => {
                    self.partial = None;
                    continue; // window or file exhausted with valid blocks: read on
                }
                None => {
                    self.partial = None;
                    return Ok(self.end);
                }
            }
        }
    }

    /// Hands out the partly written last block (at the end of a copy).
    ///
    /// # Errors
    /// `out`'s error.
    pub fn tail(
        &mut self,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), Redo8030Error> {
        if let Some(b) = self.partial.take() {
            out(&b).map_err(Redo8030Error::Out)?;
        }
        Ok(())
    }
}

/// The 2048-byte header of the backup's redo file: a `#ib_redoN` whose
/// data starts at `start_lsn` (block aligned) with one checkpoint at
/// `checkpoint_lsn`. The copied blocks follow, so the file is a valid redo
/// file the server recovers from.
#[must_use]
pub fn backup_file_header(
    start_lsn: u64,
    checkpoint_lsn: u64,
    log_uuid: u32,
    creator: &str,
) -> Vec<u8> {
    let mut h = vec![0u8; 2048];
    h[0..4].copy_from_slice(&FORMAT_8_0_30.to_be_bytes());
    h[4..8].copy_from_slice(&log_uuid.to_be_bytes());
    h[8..16].copy_from_slice(&start_lsn.to_be_bytes());
    let c = creator.as_bytes();
    let n = c.len().min(31);
    h[16..16 + n].copy_from_slice(&c[..n]);
    let crc = crc32c::crc32c(&h[..508]);
    h[508..512].copy_from_slice(&crc.to_be_bytes());
    for (i, off) in CHECKPOINTS.iter().enumerate() {
        let o = usize::try_from(*off).unwrap_or(512);
        if i == 0 {
            h[o + 8..o + 16].copy_from_slice(&checkpoint_lsn.to_be_bytes());
        }
        let crc = crc32c::crc32c(&h[o..o + 508]);
        h[o + 508..o + 512].copy_from_slice(&crc.to_be_bytes());
    }
    // encryption block (1024..1536) stays zero with its checksum
    let crc = crc32c::crc32c(&h[1024..1024 + 508]);
    h[1024 + 508..1024 + 512].copy_from_slice(&crc.to_be_bytes());
    h
}

/// The log uuid of a redo file header.
#[must_use]
pub fn log_uuid(header: &[u8]) -> u32 {
    if header.len() < 8 { 0 } else { be32(header, 4) }
}
