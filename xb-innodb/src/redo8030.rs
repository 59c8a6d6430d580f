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

/// The valid block `b` for `lsn`, ended at `limit` inside it: `None` when
/// `b` is not valid or its log does not reach `limit` yet.
fn cut_block(b: &[u8], lsn: u64, limit: u64) -> Option<Vec<u8>> {
    let keep = usize::try_from(limit.checked_sub(lsn)?).ok()?;
    let len = usize::from(block_ok(b, lsn)?);
    if !(12..=508).contains(&keep) || len < keep {
        return None;
    }
    let mut cut = b.to_vec();
    cut[keep..508].fill(0);
    cut[4..6].copy_from_slice(&u16::try_from(keep).ok()?.to_be_bytes());
    // no record group starts in what is left past the cut
    if usize::from(be16(&cut, 6)) >= keep {
        cut[6..8].copy_from_slice(&0u16.to_be_bytes());
    }
    let crc = crc32c::crc32c(&cut[..508]);
    cut[508..512].copy_from_slice(&crc.to_be_bytes());
    Some(cut)
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
    /// The LSN the copy ends at, once known ([`Scanner8030::stop_at`]).
    limit: Option<u64>,
    /// Why the last poll stopped where it did.
    pub stop: crate::be::BlockStop,
}

/// Bytes one read fills; a poll reads as many windows as the log holds.
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
            limit: None,
            stop: crate::be::BlockStop::End,
        }
    }

    /// Ends the copy at `lsn`, the backup's consistent point: log past it
    /// is not handed out, and the block holding it ends there (its
    /// `data_len` cut, the rest zeroed, its checksum made again), so the
    /// server's recovery stops exactly there.
    ///
    /// MySQL keeps committing while a backup reads its consistent point
    /// (`performance_schema.log_status`); the binlog position and GTID set
    /// recorded are those of that LSN, and a transaction committed in log
    /// copied past it would be in the restored data but not in those
    /// coordinates (a replica set up from them fails on it; a binlog
    /// replay applies it twice). `lsn` must not be behind what was handed
    /// out already, and is an mtr boundary (log_status reports one).
    pub fn stop_at(&mut self, lsn: u64) {
        self.limit = Some(lsn);
        if let Some(b) = self.partial.take() {
            // the kept-back block may already reach past the limit
            let start = self.end / BLOCK * BLOCK;
            self.partial = Some(match cut_block(&b, start, lsn) {
                Some(cut) => {
                    self.end = self.end.min(lsn);
                    cut
                }
                None => b,
            });
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

    /// Reads on from where the last call stopped, window after window and
    /// file after file, to the end of valid log: a backlog of any size is
    /// copied in one call.
    ///
    /// The log is declared overwritten only on evidence that the file that
    /// held the next block was recycled: no file holds that LSN any more and
    /// every file left starts after it, or the scan stopped in a file whose
    /// header now names other LSNs. Blocks that carry their own LSN's number
    /// and a good checksum are handed out, wherever the checkpoint is.
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
        // the LSN at which the files were last listed for want of a file
        let mut relisted_at = None;
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
                if relisted_at == Some(self.next) {
                    return Ok(self.end); // the next file does not exist yet
                }
                // the server may have started it since the files were listed
                relisted_at = Some(self.next);
                log.refresh()?;
                continue;
            };
            let avail = f.end_lsn() - self.next;
            let len = usize::try_from(avail.min(WINDOW)).unwrap_or(0);
            self.buf.resize(len, 0);
            let offset = HEADER_SIZE + (self.next - f.start_lsn);
            f.read_at(&mut self.buf, offset)?;
            let mut full = 0usize;
            let mut partial = None;
            for (i, b) in self.buf.chunks_exact(512).enumerate() {
                let lsn = self.next + (i as u64) * BLOCK;
                if let Some(limit) = self.limit.filter(|&l| l < lsn + BLOCK) {
                    // the block that holds the end point: kept back, cut
                    // there once the log reaches it
                    if let Some(cut) = (limit > lsn).then(|| cut_block(b, lsn, limit)).flatten() {
                        partial = Some((cut, limit));
                        self.stop = crate::be::BlockStop::Partial;
                    } else if let Some(n) = block_ok(b, lsn) {
                        partial = Some((b.to_vec(), lsn + u64::from(n)));
                        self.stop = crate::be::BlockStop::Partial;
                    } else {
                        self.stop = crate::be::BlockStop::End;
                    }
                    break;
                }
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
                                offset: offset + i as u64 * BLOCK,
                            }
                        } else {
                            crate::be::BlockStop::End
                        };
                        break;
                    }
                }
            }
            // Every block handed out carried its own LSN's number and a good
            // checksum: it is the log we need, even if the file has been
            // recycled since.
            if full > 0 {
                out(&self.buf[..full * 512]).map_err(Redo8030Error::Out)?;
                self.next += full as u64 * BLOCK;
                self.end = self.end.max(self.next);
            }
            if let Some((b, end)) = partial {
                self.partial = Some(b);
                self.end = self.end.max(end);
                return Ok(self.end);
            }
            self.partial = None;
            if full * 512 == len && len > 0 {
                continue; // window or file exhausted with valid blocks: read on
            }
            // Stopped inside the file: its end of log, or the file was
            // recycled under us (its header now names other LSNs).
            let mut h = [0u8; 16];
            f.read_at(&mut h, 0)?;
            if be64(&h, 8) != f.start_lsn {
                return Err(Redo8030Error::Overwritten {
                    dir: log.dir.clone(),
                    needed: self.next,
                    oldest: be64(&h, 8),
                });
            }
            return Ok(self.end);
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

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = WINDOW;
    /// LSN at offset 2048 of the first file.
    const S: u64 = 16_384;
    /// Log bytes in each file: a window and a bit.
    const DATA: u64 = W + (1 << 20);

    /// The block of `lsn` holding `len` bytes, sealed.
    fn block(lsn: u64, len: u16) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(&hdr_no(lsn).to_be_bytes());
        b[4..6].copy_from_slice(&len.to_be_bytes());
        b[6..8].copy_from_slice(&12u16.to_be_bytes());
        for (j, x) in b[12..usize::from(len).min(508)].iter_mut().enumerate() {
            *x = (j as u64 ^ lsn) as u8;
        }
        let crc = crc32c::crc32c(&b[..508]);
        b[508..512].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// `#ib_redo{id}` holding `[start, start + DATA)`, full blocks written
    /// up to `upto` (then one block of `tail` bytes if `tail > 0`), with
    /// the checkpoint `cp` if it lies in this file.
    fn write_file(dir: &Path, id: u64, start: u64, upto: u64, tail: u16, cp: u64) {
        let end = start + DATA;
        let in_file = (start..end).contains(&cp);
        let mut v = backup_file_header(start, if in_file { cp } else { 0 }, 7, "test");
        for lsn in (start..upto.min(end)).step_by(512) {
            v.extend(block(lsn, 512));
        }
        if tail > 0 && upto < end {
            v.extend(block(upto, tail));
        }
        v.resize(usize::try_from(HEADER_SIZE + DATA).unwrap(), 0);
        std::fs::write(dir.join(format!("#ib_redo{id}")), v).unwrap();
    }

    /// Files 1..=n, full up to `upto`, a partial block of 100 bytes there.
    fn redo_dir(n: u64, upto: u64, cp: u64) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for id in 1..=n {
            write_file(d.path(), id, S + (id - 1) * DATA, upto, 100, cp);
        }
        d
    }

    /// Rewrites the header of `#ib_redo{id}` as the server does when it
    /// reuses the file for later log (the blocks are left as they were).
    fn recycle_header(dir: &Path, id: u64, new_start: u64) {
        let p = dir.join(format!("#ib_redo{id}"));
        let mut v = std::fs::read(&p).unwrap();
        let h = backup_file_header(new_start, 0, 7, "test");
        v[..2048].copy_from_slice(&h);
        std::fs::write(&p, v).unwrap();
    }

    fn poll_with(
        dir: &Path,
        from: u64,
        mut on_out: impl FnMut(usize),
    ) -> (Result<u64, Redo8030Error>, Vec<u8>, crate::be::BlockStop) {
        let mut log = Log8030::open(dir).unwrap();
        let mut s = Scanner8030::new(from);
        let mut out = Vec::new();
        let mut calls = 0;
        let r = s.poll(&mut log, &mut |b| {
            out.extend_from_slice(b);
            calls += 1;
            on_out(calls);
            Ok(())
        });
        (r, out, s.stop)
    }

    #[test]
    fn a_copy_stopped_at_the_end_point_ends_inside_its_block() {
        // log runs three blocks past the end point, which is 200 bytes
        // into its block
        let point = S + 4 * 512 + 200;
        let d = redo_dir(1, S + 8 * 512, S);
        let mut log = Log8030::open(d.path()).unwrap();
        let mut s = Scanner8030::new(S);
        s.stop_at(point);
        let mut out = Vec::new();
        let reached = s
            .poll(&mut log, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        assert_eq!(reached, point);
        assert_eq!(out.len(), 4 * 512, "only the blocks before the end point's");
        s.tail(&mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len(), 5 * 512);
        let last = &out[4 * 512..];
        assert_eq!(
            block_ok(last, S + 4 * 512),
            Some(200),
            "cut, and its checksum good"
        );
        assert!(
            last[200..508].iter().all(|&b| b == 0),
            "nothing past the point"
        );
    }

    #[test]
    fn a_kept_back_block_past_the_end_point_is_cut_too() {
        // the last poll kept back a block written past the point
        let point = S + 2 * 512 + 50;
        let d = redo_dir(1, S + 2 * 512, S); // then a block of 100 bytes
        let mut log = Log8030::open(d.path()).unwrap();
        let mut s = Scanner8030::new(S);
        let mut out = Vec::new();
        s.poll(&mut log, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        s.stop_at(point);
        assert_eq!(s.lsn(), point);
        s.tail(&mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(block_ok(&out[2 * 512..], S + 2 * 512), Some(50));
    }

    #[test]
    fn a_backlog_across_files_is_copied_in_one_poll() {
        let end = S + 2 * DATA + W / 2;
        let d = redo_dir(3, end, S);
        let (r, out, stop) = poll_with(d.path(), S, |_| ());
        assert_eq!(r, Ok(end + 100));
        assert_eq!(out.len() as u64, end - S, "more than three windows");
        assert_eq!(stop, crate::be::BlockStop::Partial);
        for (i, b) in out.chunks_exact(512).enumerate() {
            assert_eq!(be32(b, 0), hdr_no(S + i as u64 * 512), "block {i}");
        }
    }

    #[test]
    fn a_checkpoint_far_ahead_of_the_reader_is_no_overwrite() {
        // the checkpoint is two files on; the files the reader needs are
        // still there, so it copies them
        let end = S + 2 * DATA + W / 2;
        let d = redo_dir(3, end, S + 2 * DATA + 4096);
        let mut log = Log8030::open(d.path()).unwrap();
        assert_eq!(log.latest_checkpoint().unwrap().file_id, 3);
        let (r, out, _) = poll_with(d.path(), S, |_| ());
        assert_eq!(r, Ok(end + 100));
        assert_eq!(out.len() as u64, end - S);
    }

    #[test]
    fn a_file_the_server_starts_during_the_poll_is_read_in_the_same_poll() {
        let end = S + 2 * DATA + 4096;
        let d = redo_dir(2, end, S);
        let dir = d.path().to_path_buf();
        let (r, out, _) = poll_with(d.path(), S, |call| {
            if call == 2 {
                write_file(&dir, 3, S + 2 * DATA, end, 100, S);
            }
        });
        assert_eq!(r, Ok(end + 100));
        assert_eq!(out.len() as u64, end - S);
    }

    #[test]
    fn blocks_still_intact_in_a_recycled_file_are_copied() {
        // the server reassigns file 1 after the reader read its first
        // window, but has not written over the rest yet
        let end = S + DATA + 4096;
        let d = redo_dir(2, end, S + DATA);
        let dir = d.path().to_path_buf();
        let (r, out, _) = poll_with(d.path(), S, |call| {
            if call == 1 {
                recycle_header(&dir, 1, S + 4 * DATA);
            }
        });
        assert_eq!(r, Ok(end + 100));
        assert_eq!(out.len() as u64, end - S);
    }

    #[test]
    fn a_lapped_reader_gets_overwritten_never_the_newer_blocks() {
        let end = S + DATA + 4096;
        let over = |r: &Result<u64, Redo8030Error>| match r {
            Err(Redo8030Error::Overwritten { needed, oldest, .. }) => Some((*needed, *oldest)),
            _ => None,
        };

        // the file holding the next block is gone (renamed to a spare)
        let d = redo_dir(2, end, S + DATA);
        std::fs::rename(d.path().join("#ib_redo1"), d.path().join("#ib_redo1_tmp")).unwrap();
        let (r, out, _) = poll_with(d.path(), S, |_| ());
        assert_eq!(over(&r), Some((S, S + DATA)), "{r:?}");
        assert!(out.is_empty());

        // file 1 reused for later log while the reader is in it: header
        // and the blocks after the first window rewritten
        let d = redo_dir(2, end, S + DATA);
        let dir = d.path().to_path_buf();
        let later = S + 4 * DATA;
        let (r, out, _) = poll_with(d.path(), S, |call| {
            if call == 1 {
                recycle_header(&dir, 1, later);
                let p = dir.join("#ib_redo1");
                let mut v = std::fs::read(&p).unwrap();
                for lsn in (later + W..later + W + 8192).step_by(512) {
                    let at = usize::try_from(HEADER_SIZE + lsn - later).unwrap();
                    v[at..at + 512].copy_from_slice(&block(lsn, 512));
                }
                std::fs::write(&p, v).unwrap();
            }
        });
        assert_eq!(over(&r), Some((S + W, later)), "{r:?}");
        assert_eq!(out.len() as u64, W, "only the first window, read intact");
    }
}
