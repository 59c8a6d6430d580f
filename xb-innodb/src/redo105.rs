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

fn block_ok(b: &[u8], lsn: u64) -> Option<u16> {
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

    /// Reads on from where the last call stopped.
    ///
    /// # Errors
    /// I/O, [`Redo105Error::Overwritten`], or `out`'s error.
    pub fn poll(
        &mut self,
        log: &Log105,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, Redo105Error> {
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
            // still this lap? (the server never writes past checkpoint + capacity,
            // and log from us up to its checkpoint is complete)
            let cp = log.latest_checkpoint()?;
            let parsed_to = start
                + full as u64 * BLOCK
                + partial
                    .as_ref()
                    .map_or(0, |(_, e)| e - (start + full as u64 * BLOCK));
            if cp.lsn > start + log.capacity() || (cp.lsn > start && parsed_to < cp.lsn) {
                return Err(Redo105Error::Overwritten {
                    file: log.path.clone(),
                    needed: start,
                    checkpoint: cp.lsn,
                });
            }
            if full > 0 {
                out(&self.buf[..full * 512]).map_err(Redo105Error::Out)?;
                self.next += full as u64 * BLOCK;
                self.end = self.end.max(self.next);
            }
            match partial {
                Some((b, end)) => {
                    self.partial = Some(b);
                    self.end = self.end.max(end);
                    return Ok(self.end);
                }
                None if full * 512 == self.buf.len() && full > 0 => {
                    self.partial = None;
                }
                None => {
                    self.partial = None;
                    return Ok(self.end);
                }
            }
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
