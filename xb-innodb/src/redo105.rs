//! MariaDB 10.5–10.7 redo log (`ib_logfile0`, format "PHYS"): one circular
//! file of 512-byte blocks after a 2 KiB header.
//!
//! | offset | size | field (big-endian) |
//! |---|---|---|
//! | 0 | 4 | format `0x50485953` ("PHYS") |
//! | 4 | 4 | subformat (2) |
//! | 8 | 8 | start LSN: the LSN of file offset 2048 when the file was created |
//! | 16 | 32 | creator |
//! | 508 | 4 | CRC-32C of 0..508 |
//! | 512, 1536 | 512 | checkpoints: number @0, LSN @8, file offset of that LSN @16, log buffer size @24, CRC-32C @508 |
//! | 2048.. | 512 each | blocks: `hdr_no` @0 (bit 31 flush flag), `data_len` @4, `first_rec_group` @6, checkpoint number @8, CRC-32C @508 |
//!
//! LSNs count block headers and trailers, so `offset(lsn) = 2048 + (lsn −
//! start_lsn) mod (size − 2048)` and a block at LSN `l` has `hdr_no = 1 +
//! (l / 512 mod 2^30)`: a block left from the previous lap has another
//! number, which is how the end of the log is found.

pub use crate::be::hdr_no;
use crate::be::{be16, be32, be64};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Format id of MariaDB 10.5–10.7 logs.
pub const FORMAT_10_5: u32 = 0x5048_5953;
/// File header size.
pub const HEADER_SIZE: u64 = 2048;
/// Block size.
pub const BLOCK: u64 = 512;
const CHECKPOINTS: [u64; 2] = [512, 1536];

/// Errors reading a MariaDB 10.5 log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Redo105Error {
    /// I/O error.
    #[error("{file}: read at offset {offset} failed: {reason}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Where.
        offset: u64,
        /// The OS error.
        reason: String,
    },
    /// Not a 10.5 log, or a damaged header.
    #[error("{file}: {reason}")]
    Header {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Neither checkpoint block is valid.
    #[error("{file}: no valid checkpoint at offsets 512 or 1536")]
    NoCheckpoint {
        /// The file.
        file: PathBuf,
    },
    /// The server overwrote log we still needed.
    #[error(
        "{file}: redo at LSN {needed} was overwritten before it was copied (the server's checkpoint is at LSN {checkpoint})"
    )]
    Overwritten {
        /// The file.
        file: PathBuf,
        /// First LSN still needed.
        needed: u64,
        /// The server's checkpoint when we noticed.
        checkpoint: u64,
    },
    /// Writing the copy failed (the sink's message).
    #[error("{0}")]
    Out(String),
}

/// A checkpoint block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint105 {
    /// Checkpoint number (the highest valid one is the latest).
    pub no: u64,
    /// Checkpoint LSN.
    pub lsn: u64,
    /// The whole 512-byte block, kept to write the backup's own.
    pub block: Vec<u8>,
}

/// A live `ib_logfile0` in the 10.5 format.
#[derive(Debug)]
pub struct Log105 {
    file: File,
    path: PathBuf,
    size: u64,
    start_lsn: u64,
    creator: String,
}

impl Log105 {
    /// Opens and checks the header.
    ///
    /// # Errors
    /// I/O, or not a 10.5 log.
    pub fn open(path: &Path) -> Result<Self, Redo105Error> {
        let io = |offset, e: std::io::Error| Redo105Error::Io {
            file: path.to_path_buf(),
            offset,
            reason: e.to_string(),
        };
        let file = File::open(path).map_err(|e| io(0, e))?;
        let size = file.metadata().map_err(|e| io(0, e))?.len();
        let header = |reason: String| Redo105Error::Header {
            file: path.to_path_buf(),
            reason,
        };
        if size < HEADER_SIZE + BLOCK {
            return Err(header(format!("{size} bytes is too small for a redo log")));
        }
        let mut h = [0u8; 512];
        file.read_exact_at(&mut h, 0).map_err(|e| io(0, e))?;
        let format = be32(&h, 0);
        if format != FORMAT_10_5 {
            return Err(header(format!(
                "format id {format:#010x} at offset 0 is not MariaDB 10.5 ({FORMAT_10_5:#010x})"
            )));
        }
        if crc32c::crc32c(&h[..508]) != be32(&h, 508) {
            return Err(header("header checksum mismatch at offset 508".into()));
        }
        let c = &h[16..48];
        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
        Ok(Log105 {
            file,
            path: path.to_path_buf(),
            size,
            start_lsn: be64(&h, 8),
            creator: String::from_utf8_lossy(&c[..end]).into_owned(),
        })
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Redo105Error> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Redo105Error::Io {
                file: self.path.clone(),
                offset,
                reason: e.to_string(),
            })
    }

    /// Creator string.
    #[must_use]
    pub fn creator(&self) -> &str {
        &self.creator
    }

    /// Bytes of log the ring holds.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.size - HEADER_SIZE
    }

    /// File offset of `lsn`.
    #[must_use]
    pub fn offset_of(&self, lsn: u64) -> u64 {
        HEADER_SIZE + lsn.saturating_sub(self.start_lsn) % self.capacity()
    }

    /// The latest valid checkpoint (highest number), re-read each call.
    ///
    /// # Errors
    /// I/O, or no valid checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Checkpoint105, Redo105Error> {
        let mut best: Option<Checkpoint105> = None;
        for off in CHECKPOINTS {
            let mut b = vec![0u8; 512];
            self.read_at(&mut b, off)?;
            let no = be64(&b, 0);
            let lsn = be64(&b, 8);
            if crc32c::crc32c(&b[..508]) == be32(&b, 508)
                && lsn >= self.start_lsn
                && best.as_ref().is_none_or(|c| no > c.no)
            {
                best = Some(Checkpoint105 { no, lsn, block: b });
            }
        }
        best.ok_or_else(|| Redo105Error::NoCheckpoint {
            file: self.path.clone(),
        })
    }
}

/// The data length of `b` when it is a valid block of `lsn` (its number,
/// its checksum, a length that fits), `None` otherwise.
pub(crate) fn block_ok(b: &[u8], lsn: u64) -> Option<u16> {
    let len = be16(b, 4);
    ((be32(b, 0) & 0x7FFF_FFFF) == hdr_no(lsn)
        && crc32c::crc32c(&b[..508]) == be32(b, 508)
        && (12..=512).contains(&len))
    .then_some(len)
}

/// Follows the log block by block from a checkpoint; whole blocks are
/// handed out at once, the partly written last one by [`Scanner105::tail`].
#[derive(Debug)]
pub struct Scanner105 {
    next: u64,
    end: u64,
    partial: Option<Vec<u8>>,
    buf: Vec<u8>,
    /// Why the last poll stopped where it did.
    pub stop: crate::be::BlockStop,
}

/// Bytes one read fills; a poll reads as many windows as the log holds.
const WINDOW: u64 = 4 << 20;

impl Scanner105 {
    /// Starts at the block holding `lsn`.
    #[must_use]
    pub fn new(lsn: u64) -> Self {
        Scanner105 {
            next: lsn / BLOCK * BLOCK,
            end: lsn,
            partial: None,
            buf: Vec::new(),
            stop: crate::be::BlockStop::End,
        }
    }

    /// End of valid log seen so far.
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.end
    }

    /// Reads on from where the last call stopped, window after window,
    /// until the end of valid log: a backlog of any size (up to the ring's
    /// capacity) is copied in one call.
    ///
    /// The log is declared overwritten only on evidence that the block we
    /// need now belongs to a later lap: the server's checkpoint (it has
    /// written at least that far) is more than `capacity` past the block, or
    /// the block at our position carries a valid checksum and the number of
    /// a later LSN. A reader merely behind the checkpoint reads on.
    ///
    /// # Errors
    /// I/O, [`Redo105Error::Overwritten`], or `out`'s error.
    pub fn poll(
        &mut self,
        log: &Log105,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, Redo105Error> {
        // Already lapped? Then nothing at our position is worth reading.
        self.check_write_position(log, &log.latest_checkpoint()?)?;
        loop {
            let start = self.next;
            let off = log.offset_of(start);
            let len = (log.size - off).min(WINDOW);
            self.buf.resize(usize::try_from(len).unwrap_or(0), 0);
            log.read_at(&mut self.buf, off)?;
            let mut full = 0usize;
            let mut partial = None;
            for (i, b) in self.buf.chunks_exact(512).enumerate() {
                let lsn = start + i as u64 * BLOCK;
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
                                file: log.path.clone(),
                                offset: off + i as u64 * BLOCK,
                            }
                        } else {
                            crate::be::BlockStop::End
                        };
                        break;
                    }
                }
            }
            // Every block handed out carried its own LSN's number and a good
            // checksum: it is the log of this lap, wherever the server is now.
            if full > 0 {
                out(&self.buf[..full * 512]).map_err(Redo105Error::Out)?;
                self.next += full as u64 * BLOCK;
                self.end = self.end.max(self.next);
            }
            if let Some((b, end)) = partial {
                self.partial = Some(b);
                self.end = self.end.max(end);
                return Ok(self.end);
            }
            self.partial = None;
            if full * 512 == self.buf.len() && full > 0 {
                continue; // the window (or the file) ended in valid log: read on
            }
            // Stopped at the block of `self.next`: the end of the log, a torn
            // block, or a later lap. Only the last is an error.
            let Some(at) = self.buf.get(full * 512..(full + 1) * 512) else {
                return Ok(self.end); // the file ends in less than a block
            };
            let cp = log.latest_checkpoint()?;
            if crc32c::crc32c(&at[..508]) == be32(at, 508)
                && crate::be::block_lap(be32(at, 0), self.next) == crate::be::BlockLap::Newer
            {
                return Err(self.overwritten(log, &cp));
            }
            self.check_write_position(log, &cp)?;
            return Ok(self.end);
        }
    }

    /// The server has written at least up to its checkpoint, so a checkpoint
    /// more than one capacity past the next block means the ring already
    /// holds a later lap there.
    fn check_write_position(&self, log: &Log105, cp: &Checkpoint105) -> Result<(), Redo105Error> {
        if cp.lsn > self.next + log.capacity() {
            return Err(self.overwritten(log, cp));
        }
        Ok(())
    }

    fn overwritten(&self, log: &Log105, cp: &Checkpoint105) -> Redo105Error {
        Redo105Error::Overwritten {
            file: log.path.clone(),
            needed: self.next,
            checkpoint: cp.lsn,
        }
    }

    /// Hands out the partly written last block.
    ///
    /// # Errors
    /// `out`'s error.
    pub fn tail(
        &mut self,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), Redo105Error> {
        if let Some(b) = self.partial.take() {
            out(&b).map_err(Redo105Error::Out)?;
        }
        Ok(())
    }
}

/// The 2048-byte header of a backup's `ib_logfile0` in the 10.5 format: a
/// linear log whose offset 2048 holds the block of the checkpoint, with the
/// source's checkpoint block (its number and LSN) pointing there.
#[must_use]
pub fn backup_log_header(checkpoint: &Checkpoint105, creator: &str) -> Vec<u8> {
    let start = checkpoint.lsn / BLOCK * BLOCK;
    let mut h = vec![0u8; 2048];
    h[0..4].copy_from_slice(&FORMAT_10_5.to_be_bytes());
    h[4..8].copy_from_slice(&2u32.to_be_bytes());
    h[8..16].copy_from_slice(&start.to_be_bytes());
    let c = creator.as_bytes();
    let n = c.len().min(31);
    h[16..16 + n].copy_from_slice(&c[..n]);
    let crc = crc32c::crc32c(&h[..508]);
    h[508..512].copy_from_slice(&crc.to_be_bytes());
    let mut cp = checkpoint.block.clone();
    cp.resize(512, 0);
    let lsn_offset = HEADER_SIZE + (checkpoint.lsn - start);
    cp[16..24].copy_from_slice(&lsn_offset.to_be_bytes());
    let crc = crc32c::crc32c(&cp[..508]);
    cp[508..512].copy_from_slice(&crc.to_be_bytes());
    h[512..1024].copy_from_slice(&cp);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `LOG_START_LSN`: the LSN of offset 2048 in a fresh log.
    const START: u64 = 8192;
    const W: u64 = WINDOW;

    /// A log file of `cap` bytes after the header, every block zero.
    fn ring(cap: u64) -> Vec<u8> {
        let mut v = vec![0u8; usize::try_from(HEADER_SIZE + cap).unwrap()];
        v[0..4].copy_from_slice(&FORMAT_10_5.to_be_bytes());
        v[4..8].copy_from_slice(&2u32.to_be_bytes());
        v[8..16].copy_from_slice(&START.to_be_bytes());
        v[16..20].copy_from_slice(b"test");
        let crc = crc32c::crc32c(&v[..508]);
        v[508..512].copy_from_slice(&crc.to_be_bytes());
        v
    }

    /// The block of `lsn` holding `len` bytes, sealed.
    fn put_block(v: &mut [u8], lsn: u64, len: u16) {
        let cap = v.len() as u64 - HEADER_SIZE;
        let at = usize::try_from(HEADER_SIZE + (lsn - START) % cap).unwrap();
        let b = &mut v[at..at + 512];
        b.fill(0);
        b[0..4].copy_from_slice(&hdr_no(lsn).to_be_bytes());
        b[4..6].copy_from_slice(&len.to_be_bytes());
        b[6..8].copy_from_slice(&12u16.to_be_bytes());
        for (j, x) in b[12..usize::from(len).min(508)].iter_mut().enumerate() {
            *x = (j as u64 ^ lsn) as u8;
        }
        let crc = crc32c::crc32c(&b[..508]);
        b[508..512].copy_from_slice(&crc.to_be_bytes());
    }

    /// Full blocks for `[from, to)`.
    fn put_blocks(v: &mut [u8], from: u64, to: u64) {
        for lsn in (from..to).step_by(512) {
            put_block(v, lsn, 512);
        }
    }

    /// The server's checkpoint `no` at `lsn` (written where `no` says).
    fn put_checkpoint(v: &mut [u8], no: u64, lsn: u64) {
        let cap = v.len() as u64 - HEADER_SIZE;
        let at = if no % 2 == 0 { 512 } else { 1536 };
        let b = &mut v[at..at + 512];
        b.fill(0);
        b[0..8].copy_from_slice(&no.to_be_bytes());
        b[8..16].copy_from_slice(&lsn.to_be_bytes());
        b[16..24].copy_from_slice(&(HEADER_SIZE + (lsn - START) % cap).to_be_bytes());
        let crc = crc32c::crc32c(&b[..508]);
        b[508..512].copy_from_slice(&crc.to_be_bytes());
    }

    /// One poll from `from`: its result, the bytes handed out, the stop.
    fn poll(v: &[u8], from: u64) -> (Result<u64, Redo105Error>, Vec<u8>, crate::be::BlockStop) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ib_logfile0");
        std::fs::write(&p, v).unwrap();
        let log = Log105::open(&p).unwrap();
        let mut s = Scanner105::new(from);
        let mut out = Vec::new();
        let r = s.poll(&log, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        });
        (r, out, s.stop)
    }

    #[test]
    fn a_backlog_of_several_windows_is_copied_in_one_poll() {
        let mut v = ring(4 * W);
        let end = START + 3 * W + 10 * 512;
        put_blocks(&mut v, START, end);
        put_block(&mut v, end, 100);
        put_checkpoint(&mut v, 1, START);
        let (r, out, stop) = poll(&v, START);
        assert_eq!(r, Ok(end + 100));
        assert_eq!(out.len() as u64, end - START);
        assert_eq!(stop, crate::be::BlockStop::Partial);
    }

    #[test]
    fn a_checkpoint_far_ahead_of_the_reader_is_no_overwrite() {
        // the server checkpointed three windows past the reader, but it has
        // written less than one capacity past it: every block is still there
        let mut v = ring(4 * W);
        let end = START + 3 * W + 10 * 512;
        put_blocks(&mut v, START, end);
        put_checkpoint(&mut v, 7, START + 3 * W);
        let (r, out, stop) = poll(&v, START);
        assert_eq!(r, Ok(end));
        assert_eq!(out.len() as u64, end - START);
        assert_eq!(stop, crate::be::BlockStop::End);
    }

    #[test]
    fn a_reader_one_capacity_behind_the_write_position_copies_the_whole_ring() {
        // the server wrote a full lap and 1 MiB of the next; a reader at
        // the oldest block still in the ring reads up to the write position
        let cap = 4 * W;
        let mut v = ring(cap);
        let w = START + cap + (1 << 20);
        put_blocks(&mut v, START, w);
        put_checkpoint(&mut v, 9, START + cap / 2);
        let from = START + (1 << 20);
        let (r, out, stop) = poll(&v, from);
        assert_eq!(r, Ok(w));
        assert_eq!(out.len() as u64, cap);
        assert_eq!(
            stop,
            crate::be::BlockStop::End,
            "the next block is a lap older"
        );
        for (i, b) in out.chunks_exact(512).enumerate() {
            assert_eq!(be32(b, 0), hdr_no(from + i as u64 * 512), "block {i}");
        }
    }

    #[test]
    fn a_lapped_reader_gets_overwritten_never_the_newer_blocks() {
        let cap = 4 * W;
        let mut v = ring(cap);
        let w = START + cap + (1 << 20);
        put_blocks(&mut v, START, w);

        // evidence 1: the checkpoint is more than one capacity past the reader
        put_checkpoint(&mut v, 10, START + cap + 4096);
        let (r, out, _) = poll(&v, START);
        assert!(
            matches!(
                r,
                Err(Redo105Error::Overwritten { needed: START, checkpoint, .. })
                    if checkpoint == START + cap + 4096
            ),
            "{r:?}"
        );
        assert!(out.is_empty());

        // evidence 2: the checkpoint allows it, but the block at the
        // reader's position carries the number of a later lap
        put_checkpoint(&mut v, 11, START + cap / 2);
        let (r, out, _) = poll(&v, START + 512);
        assert!(
            matches!(r, Err(Redo105Error::Overwritten { needed, .. }) if needed == START + 512),
            "{r:?}"
        );
        assert!(out.is_empty());

        // a later lap's block still being written (bad checksum) is no
        // evidence yet: the reader waits, and sees it on a later poll
        let at = usize::try_from(HEADER_SIZE + 512 + 100).unwrap();
        v[at] ^= 0xFF;
        let (r, out, stop) = poll(&v, START + 512);
        assert_eq!(
            (r, out.len(), stop),
            (Ok(START + 512), 0, crate::be::BlockStop::End)
        );
    }

    #[test]
    fn a_file_that_ends_in_part_of_a_block_is_read_to_its_last_whole_block() {
        let mut v = ring(4 * 512);
        put_blocks(&mut v, START, START + 4 * 512);
        put_checkpoint(&mut v, 1, START);
        v.extend([0u8; 100]);
        let (r, out, _) = poll(&v, START);
        assert_eq!((r, out.len()), (Ok(START + 4 * 512), 4 * 512));
    }

    #[test]
    fn block_numbers_tell_a_later_lap_from_an_earlier_one() {
        use crate::be::{BlockLap, block_lap};
        let cap = 16 << 20;
        for lsn in [START, 1 << 40, (1 << 39) - 512, 0x3FFF_FFFF * 512] {
            assert_eq!(block_lap(hdr_no(lsn), lsn), BlockLap::Same);
            assert_eq!(block_lap(hdr_no(lsn) | 1 << 31, lsn), BlockLap::Same);
            assert_eq!(block_lap(hdr_no(lsn + cap), lsn), BlockLap::Newer);
            assert_eq!(block_lap(hdr_no(lsn + 7 * cap), lsn), BlockLap::Newer);
            if lsn > cap {
                assert_eq!(block_lap(hdr_no(lsn - cap), lsn), BlockLap::Older);
            }
        }
    }
}
