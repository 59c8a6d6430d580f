//! A backup's copy of a classic redo group, `xtrabackup_logfile`, in the
//! layout XtraBackup 2.4 and 8.0 (before 8.0.30) write and their
//! `--prepare` reads:
//!
//! | offset | what |
//! |---|---|
//! | 0..2048 | `ib_logfile0`'s header as the server had it when the copy began, its creator replaced by `xtrabkup …` (prepare refuses any other creator: it takes the file for one already prepared) |
//! | 2048.. | the server's 512-byte blocks in LSN order from the block holding the checkpoint LSN: no wrap, no per-file headers; the last block may be partly filled |
//!
//! The header's checkpoint blocks stay as the server wrote them (prepare
//! rewrites them); the copy starts at the block of the newest one, so the
//! header is copied first and the checkpoint taken *from that copy*: a
//! checkpoint the server writes between the two reads cannot make them
//! disagree.
//!
//! [`BackupLogfile::parse`] reads such a file back, checking every block's
//! number and checksum: what a restore (or a test) relies on before handing
//! the file to a prepare.

use crate::be::{be16, be32, hdr_no};
use crate::redo_classic::{
    BLOCK, BlockChecksum, CheckpointClassic, ClassicError, HEADER_SIZE, LogClassic, checksum_ok,
};

/// What XtraBackup's prepare wants a backup's log creator to start with.
pub const CREATOR_PREFIX: &str = "xtrabkup";

/// Bytes of the block header (`hdr_no`, `data_len`, `first_rec_group`,
/// checkpoint number) in front of each block's log payload.
pub const BLOCK_HEADER: usize = 12;

/// The 2048-byte header of a backup's `xtrabackup_logfile`, and the
/// checkpoint it holds (where the copy starts): `ib_logfile0`'s header
/// with `creator` (`xtrabkup yymmdd hh:mm:ss` for XtraBackup's prepare;
/// cut to 31 bytes) at offset 16.
///
/// # Errors
/// I/O, or neither checkpoint block in the header is valid.
pub fn backup_logfile_header(
    log: &LogClassic,
    creator: &str,
) -> Result<(Vec<u8>, CheckpointClassic), ClassicError> {
    let mut h = vec![0u8; usize::try_from(HEADER_SIZE).unwrap_or(2048)];
    log.read_header(&mut h)?;
    let cp = log.checkpoint_in(&h)?;
    h[16..48].fill(0);
    let c = creator.as_bytes();
    let n = c.len().min(31);
    h[16..16 + n].copy_from_slice(&c[..n]);
    Ok((h, cp))
}

/// Why a backup's `xtrabackup_logfile` does not read back.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackupLogfileError {
    /// Shorter than its header and one block.
    #[error(
        "{len} bytes is too short for xtrabackup_logfile (a 2048-byte header and one 512-byte block at least)"
    )]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// Neither checkpoint block (offsets 512, 1536) has a valid CRC-32C.
    #[error("no valid checkpoint at offsets 512 or 1536")]
    NoCheckpoint,
    /// A block that is not the one the LSN order wants there.
    #[error("the block at offset {offset} (LSN {lsn}): {reason}")]
    Block {
        /// Its offset in the file.
        offset: u64,
        /// The LSN it should start.
        lsn: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// A backup's `xtrabackup_logfile`, checked block by block.
#[derive(Debug)]
pub struct BackupLogfile<'a> {
    /// The newest valid checkpoint in the header.
    pub checkpoint: CheckpointClassic,
    /// The header's creator string.
    pub creator: String,
    /// LSN of the first block (the checkpoint's, rounded down to 512).
    pub start_lsn: u64,
    /// LSN just past the last byte of log the blocks hold.
    pub end_lsn: u64,
    blocks: &'a [u8],
}

impl<'a> BackupLogfile<'a> {
    /// Reads `bytes` (a whole `xtrabackup_logfile`): each block must carry
    /// the number of its LSN and a valid checksum under `mode`, and only the
    /// last may be partly filled. Zero blocks after the log (a file padded
    /// for a prepare) end it.
    ///
    /// # Errors
    /// [`BackupLogfileError`] naming the first block that does not fit.
    pub fn parse(bytes: &'a [u8], mode: BlockChecksum) -> Result<Self, BackupLogfileError> {
        let header = usize::try_from(HEADER_SIZE).unwrap_or(2048);
        let block = usize::try_from(BLOCK).unwrap_or(512);
        if bytes.len() < header + block {
            return Err(BackupLogfileError::TooShort { len: bytes.len() });
        }
        let checkpoint = crate::redo_classic::checkpoint_of(&bytes[..header], u64::MAX)
            .ok_or(BackupLogfileError::NoCheckpoint)?;
        let c = &bytes[16..48];
        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
        let creator = String::from_utf8_lossy(&c[..end]).into_owned();
        let start_lsn = checkpoint.lsn / BLOCK * BLOCK;
        let mut end_lsn = start_lsn;
        let mut used = 0usize;
        for (i, b) in bytes[header..].chunks(block).enumerate() {
            let lsn = start_lsn + i as u64 * BLOCK;
            let offset = HEADER_SIZE + i as u64 * BLOCK;
            let bad = |reason: String| BackupLogfileError::Block {
                offset,
                lsn,
                reason,
            };
            if b.iter().all(|&x| x == 0) && i > 0 {
                break;
            }
            if used != 0 && used < block {
                return Err(bad(format!(
                    "a block after a partly filled one (the previous block holds {used} bytes)"
                )));
            }
            if b.len() < block {
                return Err(bad(format!(
                    "only {} bytes, the file ends inside the block",
                    b.len()
                )));
            }
            let no = be32(b, 0) & 0x7FFF_FFFF;
            if no != hdr_no(lsn) {
                return Err(bad(format!("block number {no}, expected {}", hdr_no(lsn))));
            }
            if !checksum_ok(b, mode) {
                return Err(bad("checksum mismatch".into()));
            }
            let len = usize::from(be16(b, 4));
            if !(BLOCK_HEADER..=block).contains(&len) {
                return Err(bad(format!("data length {len} outside 12..=512")));
            }
            used = len;
            end_lsn = lsn + len as u64;
        }
        if end_lsn < checkpoint.lsn {
            return Err(BackupLogfileError::Block {
                offset: HEADER_SIZE,
                lsn: start_lsn,
                reason: format!(
                    "the log ends at LSN {end_lsn}, before its checkpoint at LSN {}",
                    checkpoint.lsn
                ),
            });
        }
        let blocks_len = usize::try_from(end_lsn - start_lsn)
            .unwrap_or(0)
            .next_multiple_of(block);
        Ok(BackupLogfile {
            checkpoint,
            creator,
            start_lsn,
            end_lsn,
            blocks: &bytes[header..header + blocks_len],
        })
    }

    /// The log records' bytes block by block: `(LSN of the first byte,
    /// bytes)`, headers and trailers left out, from the first block on.
    pub fn payload(&self) -> impl Iterator<Item = (u64, &'a [u8])> + '_ {
        let blocks: &'a [u8] = self.blocks;
        blocks
            .chunks_exact(usize::try_from(BLOCK).unwrap_or(512))
            .enumerate()
            .map(move |(i, b)| {
                let len = usize::from(be16(b, 4)).clamp(BLOCK_HEADER, b.len() - 4);
                let lsn = self.start_lsn + i as u64 * BLOCK + BLOCK_HEADER as u64;
                (lsn, &b[BLOCK_HEADER..len])
            })
    }
}
