//! MariaDB 10.8+ redo log (`ib_logfile0`, format "Phys"): checkpoint lookup,
//! LSN → offset, incremental scanning of mini-transactions, and the linear
//! copy a backup keeps.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | format id `0x50687973` ("Phys"), big-endian like every field here |
//! | 8 | 8 | `first_lsn`: LSN stored at offset 12288 |
//! | 16 | 32 | creator, NUL-padded |
//! | 508 | 4 | CRC-32C of bytes 0..508 |
//! | 4096, 8192 | 64 | checkpoint: LSN (8), end LSN (8), 44 zero bytes, CRC-32C of 0..60 |
//! | 12288.. | | ring of mini-transactions, `capacity = size − 12288` |
//!
//! A backup's copy (as xb and mariadb-backup write it) is the same format
//! with a linear log: `first_lsn` is the checkpoint, and the file ends where
//! the copy ended, so its "capacity" is the copy's length, not the server's,
//! and can be a few dozen bytes. Read as a ring it has never wrapped: every
//! sequence byte is 1, and a scan stops at the end of the copy because the
//! bytes after the wrap carry the sequence byte of the wrong lap. This is
//! how the server itself reads such a file, so the same reader serves both.
//!
//! A mini-transaction is records, then a sequence byte (1 on even laps over
//! the ring, 0 on odd ones), then the CRC-32C (4 bytes) of the records. A
//! record starts with a byte whose low nibble is its length (0: a varint
//! length follows); a byte ≤ 1 where a record would start ends the records.

use crate::be::{be32, be64};
use crate::direct::DirectFile;
use std::path::{Path, PathBuf};

/// Format id of MariaDB 10.8+ logs.
pub const FORMAT_10_8: u32 = 0x5068_7973;
/// Offset of the first log byte.
pub const START_OFFSET: u64 = 12_288;
/// Largest mini-transaction the server writes.
pub const MTR_SIZE_MAX: usize = 1 << 20;
const CHECKPOINTS: [u64; 2] = [4096, 8192];

/// Errors reading a MariaDB 10.8+ log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Redo108Error {
    /// I/O error on the file.
    #[error("{file}: read at offset {offset} failed: {reason}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Where.
        offset: u64,
        /// The OS error.
        reason: String,
    },
    /// Not a 10.8+ log, or a damaged header.
    #[error("{file}: {reason}")]
    Header {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Neither checkpoint block is valid.
    #[error("{file}: no valid checkpoint at offsets 4096 or 8192")]
    NoCheckpoint {
        /// The file.
        file: PathBuf,
    },
    /// Writing the copy failed (the sink's message).
    #[error("{0}")]
    Out(String),
    /// The server overwrote log we still needed.
    #[error(
        "{file}: redo at LSN {needed} was overwritten before it was copied (the server's checkpoint is at LSN {checkpoint})"
    )]
    Overwritten {
        /// The file.
        file: PathBuf,
        /// First LSN we still needed.
        needed: u64,
        /// The server's checkpoint when we noticed.
        checkpoint: u64,
    },
}

/// A checkpoint block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint108 {
    /// Everything before this LSN is in the data files.
    pub lsn: u64,
    /// Start LSN of the mini-transaction carrying the FILE_CHECKPOINT record.
    pub end_lsn: u64,
    /// File offset of the block (4096 or 8192).
    pub offset: u64,
}

/// A live `ib_logfile0` in the 10.8+ format.
#[derive(Debug)]
pub struct Log108 {
    /// Read with `O_DIRECT` where possible, as the server writes it: a
    /// page-cache read can keep seeing a block the server has rewritten
    /// (see [`crate::direct`]).
    file: DirectFile,
    path: PathBuf,
    size: u64,
    first_lsn: u64,
    creator: String,
}

impl Log108 {
    /// Opens and checks the header of `path`.
    ///
    /// # Errors
    /// [`Redo108Error`] naming the file.
    pub fn open(path: &Path) -> Result<Self, Redo108Error> {
        let file = DirectFile::open(path).map_err(|e| Redo108Error::Io {
            file: path.to_path_buf(),
            offset: 0,
            reason: e.to_string(),
        })?;
        let size = file
            .file()
            .metadata()
            .map_err(|e| Redo108Error::Io {
                file: path.to_path_buf(),
                offset: 0,
                reason: e.to_string(),
            })?
            .len();
        let header_err = |reason: String| Redo108Error::Header {
            file: path.to_path_buf(),
            reason,
        };
        // Any log after the header is a valid ring: a backup's linear copy
        // of an idle server holds one mini-transaction of a few dozen bytes.
        // An empty ring holds no LSN at all (and `offset_of` divides by it).
        if size <= START_OFFSET {
            return Err(header_err(format!(
                "{size} bytes is too small for a redo log (no log after the {START_OFFSET}-byte header)"
            )));
        }
        let mut log = Log108 {
            file,
            path: path.to_path_buf(),
            size,
            first_lsn: 0,
            creator: String::new(),
        };
        let mut hdr = [0u8; 512];
        log.read_exact_at(&mut hdr, 0)?;
        let format = be32(&hdr, 0);
        if format != FORMAT_10_8 {
            return Err(header_err(format!(
                "format id {format:#010x} at offset 0 is not MariaDB 10.8+ ({FORMAT_10_8:#010x})"
            )));
        }
        if crc32c::crc32c(&hdr[..508]) != be32(&hdr, 508) {
            return Err(header_err("header checksum mismatch at offset 508".into()));
        }
        log.first_lsn = be64(&hdr, 8);
        if log.first_lsn < START_OFFSET {
            return Err(header_err(format!(
                "first_lsn {} below {START_OFFSET}",
                log.first_lsn
            )));
        }
        let c = &hdr[16..48];
        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
        log.creator = String::from_utf8_lossy(&c[..end]).into_owned();
        Ok(log)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Redo108Error> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Redo108Error::Io {
                file: self.path.clone(),
                offset,
                reason: e.to_string(),
            })
    }

    /// Creator string of the header ("MariaDB 10.11.18").
    #[must_use]
    pub fn creator(&self) -> &str {
        &self.creator
    }

    /// File size (`innodb_log_file_size`).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of log the ring holds (for a backup's linear copy: the length
    /// of the copy).
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.size - START_OFFSET
    }

    /// LSN at offset 12288.
    #[must_use]
    pub fn first_lsn(&self) -> u64 {
        self.first_lsn
    }

    /// File offset of `lsn` (the ring wraps to 12288).
    #[must_use]
    pub fn offset_of(&self, lsn: u64) -> u64 {
        START_OFFSET + (lsn.saturating_sub(self.first_lsn)) % self.capacity()
    }

    /// The sequence byte expected at `lsn` (1 on even laps, 0 on odd).
    #[must_use]
    pub fn seq_of(&self, lsn: u64) -> u8 {
        u8::from((lsn.saturating_sub(self.first_lsn) / self.capacity()) % 2 == 0)
    }

    /// The latest valid checkpoint, re-read from the file on every call.
    ///
    /// # Errors
    /// I/O, or [`Redo108Error::NoCheckpoint`].
    pub fn latest_checkpoint(&self) -> Result<Checkpoint108, Redo108Error> {
        let mut best: Option<Checkpoint108> = None;
        for off in CHECKPOINTS {
            let mut b = [0u8; 64];
            self.read_exact_at(&mut b, off)?;
            let lsn = be64(&b, 0);
            let end_lsn = be64(&b, 8);
            let valid = crc32c::crc32c(&b[..60]) == be32(&b, 60)
                && b[16..60].iter().all(|&x| x == 0)
                && lsn >= self.first_lsn
                && end_lsn >= lsn;
            if valid && best.is_none_or(|c| lsn > c.lsn) {
                best = Some(Checkpoint108 {
                    lsn,
                    end_lsn,
                    offset: off,
                });
            }
        }
        best.ok_or_else(|| Redo108Error::NoCheckpoint {
            file: self.path.clone(),
        })
    }

    /// Reads `len` log bytes starting at `lsn`, across the wrap.
    fn read_ring(&self, lsn: u64, buf: &mut [u8]) -> Result<(), Redo108Error> {
        let off = self.offset_of(lsn);
        let first = usize::try_from((self.size - off).min(buf.len() as u64)).unwrap_or(buf.len());
        self.read_exact_at(&mut buf[..first], off)?;
        if first < buf.len() {
            let rest = &mut buf[first..];
            self.read_exact_at(rest, START_OFFSET)?;
        }
        Ok(())
    }
}

/// Length in bytes of the mini-transaction starting at `buf[0]` whose first
/// byte is at `lsn`, if it is complete and valid in `buf`:
/// `Ok(Some(len))` valid; `Ok(None)` end of log (or not enough bytes, see
/// `need_more`); the flag says whether more bytes might complete it.
/// Why valid log ends where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop108 {
    /// The next byte starts no mini-transaction: the clean end of what the
    /// server has written.
    End,
    /// The bytes read end in the middle of a mini-transaction (the read
    /// window ended, or the server is still writing it).
    Incomplete,
    /// A mini-transaction whose sequence bit belongs to the previous lap
    /// over the ring: old log, not new.
    StaleLap,
    /// A mini-transaction whose CRC-32C does not match: torn or corrupt.
    BadChecksum,
    /// A malformed record or a mini-transaction over 1 MiB.
    Corrupt,
}

pub(crate) fn parse_mtr(log: &Log108, lsn: u64, buf: &[u8]) -> Result<usize, Stop108> {
    let mut p = 0usize;
    match buf.first() {
        None => return Err(Stop108::Incomplete),
        Some(&b) if b <= 1 => return Err(Stop108::End),
        Some(_) => {}
    }
    loop {
        let Some(&b) = buf.get(p) else {
            return Err(Stop108::Incomplete);
        };
        if b <= 1 {
            break;
        }
        let l = usize::from(b & 15);
        let rec = if l != 0 {
            1 + l
        } else {
            let Some(&v0) = buf.get(p + 1) else {
                return Err(Stop108::Incomplete);
            };
            let (n, vlen) = if v0 & 0x80 == 0 {
                (usize::from(v0), 1)
            } else if v0 & 0xc0 == 0x80 {
                let Some(&v1) = buf.get(p + 2) else {
                    return Err(Stop108::Incomplete);
                };
                ((usize::from(v0 & 0x3f) << 8 | usize::from(v1)) + 0x80, 2)
            } else if v0 & 0xe0 == 0xc0 {
                let (Some(&v1), Some(&v2)) = (buf.get(p + 2), buf.get(p + 3)) else {
                    return Err(Stop108::Incomplete);
                };
                (
                    (usize::from(v0 & 0x1f) << 16 | usize::from(v1) << 8 | usize::from(v2))
                        + 0x4080,
                    3,
                )
            } else {
                return Err(Stop108::Corrupt);
            };
            let _ = vlen;
            16 + n
        };
        p += rec;
        if p > MTR_SIZE_MAX {
            return Err(Stop108::Corrupt);
        }
    }
    // buf[p] is the sequence byte
    if buf[p] != log.seq_of(lsn + p as u64) {
        return Err(Stop108::StaleLap);
    }
    if buf.len() < p + 5 {
        return Err(Stop108::Incomplete);
    }
    let want = be32(buf, p + 1);
    if crc32c::crc32c(&buf[..p]) != want {
        return Err(Stop108::BadChecksum);
    }
    Ok(p + 5)
}

/// Follows the log from an LSN, handing out whole validated
/// mini-transactions with their sequence byte rewritten to 1 (the linear
/// copy a backup keeps never wraps, so every byte is on the "first lap").
#[derive(Debug)]
pub struct Scanner108 {
    lsn: u64,
    window: Vec<u8>,
    /// Ends of the mini-transactions parsed in the current window.
    ends: Vec<usize>,
    /// Log below this LSN is final: the server said it wrote it.
    trusted: u64,
    /// Bytes the next read takes: small while the server writes little
    /// (the log is read with `O_DIRECT`, so every byte read is a device
    /// read), growing up to [`WINDOW`] while a backlog is copied.
    read_len: usize,
    /// Why the last poll stopped where it did.
    pub stop: Stop108,
}

/// The unit in which the server rewrites the end of its log. The server
/// writes whole blocks of its write size (512 bytes up to 4 KiB); the block
/// holding the end of the log is written again with every write after it,
/// and until then holds, after the end, whatever was in the server's
/// buffer. Left-over log from an earlier use of that buffer is valid
/// mini-transactions of the same lap (the CRC-32C covers no LSN), so the
/// last block can read as more log than the server has written, which it
/// later replaces. Only the last block can hold such bytes: every write
/// starts at the block the previous one ended in.
const REWRITTEN: u64 = 4096;

/// Most bytes one read fills; a poll reads as many windows as the log holds.
const WINDOW: usize = 4 << 20;
/// Fewest bytes one read fills.
const MIN_READ: usize = 64 << 10;

impl Scanner108 {
    /// Starts at `lsn` (must be the start of a mini-transaction, e.g. a
    /// checkpoint LSN).
    #[must_use]
    pub fn new(lsn: u64) -> Self {
        Scanner108 {
            lsn,
            window: Vec::new(),
            ends: Vec::new(),
            trusted: 0,
            read_len: MIN_READ,
            stop: Stop108::End,
        }
    }

    /// The server has written and flushed its log up to `lsn` (e.g. an LSN
    /// it reported before `FLUSH ENGINE LOGS`): mini-transactions ending
    /// there or before are final even in the last block.
    pub fn trust_up_to(&mut self, lsn: u64) {
        self.trusted = self.trusted.max(lsn);
    }

    /// How many bytes of the chain parsed from `start` (`ends`, ascending)
    /// are final: those ending before the block that holds the chain's
    /// last byte, or at an LSN the server vouched for before they were read
    /// (`trusted`, its `checkpoint`).
    ///
    /// The block of the last *byte*, not of the end: a chain ending exactly
    /// on a block boundary may be left-over bytes that happen to end there
    /// (seen on MariaDB 10.11 under load: the copy took them, the server
    /// then wrote its real log over them, and the next mini-transaction
    /// "started" inside a real one and failed its CRC-32C at every re-read
    /// until the backup gave up).
    fn settled(&self, log: &Log108, start: u64, checkpoint: u64) -> usize {
        let Some(&last) = self.ends.last() else {
            return 0;
        };
        let last_byte = start + last as u64 - 1;
        let block_start = last_byte - (log.offset_of(last_byte) % REWRITTEN);
        let safe = block_start.max(self.trusted).max(checkpoint);
        let idx = self.ends.partition_point(|&e| start + e as u64 <= safe);
        idx.checked_sub(1).map_or(0, |i| self.ends[i])
    }

    /// The LSN reached.
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Reads from the current LSN to the end of valid log, window after
    /// window, and passes each chunk of whole mini-transactions to `out`:
    /// a backlog of any size (up to the ring's capacity) is copied in one
    /// call. Returns the LSN reached.
    ///
    /// The log is declared overwritten only on evidence that the bytes we
    /// need belong to a later lap. The server has written at least up to its
    /// checkpoint and never more than a capacity past it, so:
    /// - a checkpoint more than one capacity past the next LSN we need means
    ///   the ring holds a later lap there (checked before a window is read
    ///   and again after, which also rules out a lap two ahead, whose
    ///   sequence bit would look like ours);
    /// - where the log ends (a terminator or the other lap's sequence bit)
    ///   at an LSN below a checkpoint read before those bytes were, our
    ///   lap's mini-transaction had been written there and was replaced.
    ///
    /// A reader merely behind the checkpoint reads on.
    ///
    /// The mini-transactions in the last 4 KiB block a window reads (where
    /// the log ends, or where only the window does) are held back (see
    /// [`REWRITTEN`]), also when they end exactly on its boundary, unless a checkpoint read *before* the
    /// bytes were, or [`Self::trust_up_to`], vouches for them; the next
    /// poll reads them again, as the server has rewritten them by then. (A
    /// checkpoint read after the bytes vouches for what the server wrote
    /// by then, not for what the read saw: a busy server can write the
    /// block again and checkpoint past it in between.)
    ///
    /// # Errors
    /// I/O, [`Redo108Error::Overwritten`], or `out`'s error as
    /// [`Redo108Error::Out`].
    pub fn poll(
        &mut self,
        log: &Log108,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, Redo108Error> {
        self.poll_with(log, out, &mut || log.latest_checkpoint())
    }

    /// [`Self::poll`], reading the server's checkpoint with `checkpoint`
    /// (tests stand in for a server that moves on between two reads).
    fn poll_with(
        &mut self,
        log: &Log108,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
        checkpoint: &mut dyn FnMut() -> Result<Checkpoint108, Redo108Error>,
    ) -> Result<u64, Redo108Error> {
        let max_len = WINDOW.min(usize::try_from(log.capacity()).unwrap_or(WINDOW));
        let mut before = checkpoint()?;
        loop {
            let start = self.lsn;
            let len = self.read_len.clamp(MIN_READ.min(max_len), max_len);
            self.window.resize(len, 0);
            self.check_write_position(log, before, start)?;
            log.read_ring(start, &mut self.window)?;
            let mut p = 0usize;
            self.ends.clear();
            loop {
                let n = match parse_mtr(log, start + p as u64, &self.window[p..]) {
                    Ok(n) => n,
                    Err(why) => {
                        self.stop = why;
                        break;
                    }
                };
                let seq_at = p + n - 5;
                self.window[seq_at] = 1;
                p += n;
                self.ends.push(p);
            }
            // Where could the server have been writing while we read? At
            // most a capacity past this checkpoint, read after the data.
            let after = checkpoint()?;
            self.check_write_position(log, after, start)?;
            let ran_out = matches!(self.stop, Stop108::Incomplete);
            if ran_out && len < max_len {
                // a backlog (or one mtr longer than the read): read more at once
                self.read_len = (len * 4).min(max_len);
                if p == 0 {
                    before = after;
                    continue;
                }
            } else if !ran_out && p < len / 4 {
                self.read_len = (len / 2).max(MIN_READ);
            }
            let cut = ran_out && p > 0 && len - p <= MTR_SIZE_MAX + 5;
            // Whether the log ends in this window or only the window does,
            // its last block is not final: the window may end just past the
            // server's end, in left-over bytes that parse as log.
            p = self.settled(log, start, before.lsn);
            if p > 0 {
                out(&self.window[..p]).map_err(Redo108Error::Out)?;
                self.lsn = start + p as u64;
            }
            match self.stop {
                // the window cut a mini-transaction: read on from it
                _ if cut && p > 0 => {}
                Stop108::End | Stop108::StaleLap if self.lsn < before.lsn => {
                    return Err(Redo108Error::Overwritten {
                        file: log.path.clone(),
                        needed: self.lsn,
                        checkpoint: before.lsn,
                    });
                }
                _ => return Ok(self.lsn),
            }
            before = after;
        }
    }

    /// Overwritten if the server's checkpoint `cp` is more than one
    /// capacity past `needed` (its write position is at least `cp`).
    fn check_write_position(
        &self,
        log: &Log108,
        cp: Checkpoint108,
        needed: u64,
    ) -> Result<(), Redo108Error> {
        if cp.lsn > needed + log.capacity() {
            return Err(Redo108Error::Overwritten {
                file: log.path.clone(),
                needed,
                checkpoint: cp.lsn,
            });
        }
        Ok(())
    }
}

/// The 12288-byte header of a backup's `ib_logfile0` in the server's own
/// format: `first_lsn` = the checkpoint the copy starts at, checkpoint block
/// 1 = (that checkpoint, its end LSN), block 2 empty. The copied
/// mini-transactions follow, linear, so offset 12288 holds `first_lsn`.
#[must_use]
pub fn backup_log_header(checkpoint: Checkpoint108, creator: &str) -> Vec<u8> {
    let mut h = vec![0u8; usize::try_from(START_OFFSET).unwrap_or(12_288)];
    h[0..4].copy_from_slice(&FORMAT_10_8.to_be_bytes());
    h[8..16].copy_from_slice(&checkpoint.lsn.to_be_bytes());
    let c = creator.as_bytes();
    let n = c.len().min(31);
    h[16..16 + n].copy_from_slice(&c[..n]);
    let crc = crc32c::crc32c(&h[..508]);
    h[508..512].copy_from_slice(&crc.to_be_bytes());
    let cp = 4096;
    h[cp..cp + 8].copy_from_slice(&checkpoint.lsn.to_be_bytes());
    h[cp + 8..cp + 16].copy_from_slice(&checkpoint.end_lsn.to_be_bytes());
    let crc = crc32c::crc32c(&h[cp..cp + 60]);
    h[cp + 60..cp + 64].copy_from_slice(&crc.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `capacity` bytes whose checkpoint is at `first_lsn`.
    fn log_file(capacity: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let cp = Checkpoint108 {
            lsn: START_OFFSET,
            end_lsn: START_OFFSET,
            offset: 4096,
        };
        let mut v = backup_log_header(cp, "test");
        v.resize(usize::try_from(START_OFFSET + capacity).unwrap(), 0);
        let p = d.path().join("ib_logfile0");
        (d, p, v)
    }

    /// One mini-transaction of `records` 16-byte WRITE records at `lsn`.
    fn mtr(records: usize, seq: u8, salt: u8) -> Vec<u8> {
        let mut m = Vec::new();
        for r in 0..records {
            m.push(0x30 | 15);
            m.extend((0..15u8).map(|i| (i ^ salt).wrapping_add(r as u8).max(2)));
        }
        let crc = crc32c::crc32c(&m);
        m.push(seq);
        m.extend(crc.to_be_bytes());
        m
    }

    fn put(v: &mut [u8], capacity: u64, lsn: u64, bytes: &[u8]) {
        let at = usize::try_from(START_OFFSET + (lsn - START_OFFSET) % capacity).unwrap();
        let end = usize::try_from(START_OFFSET + capacity).unwrap();
        let first = bytes.len().min(end - at);
        v[at..at + first].copy_from_slice(&bytes[..first]);
        let rest = &bytes[first..];
        let start = usize::try_from(START_OFFSET).unwrap();
        v[start..start + rest.len()].copy_from_slice(rest);
    }

    /// A scan of a file no server writes any more (every byte final).
    fn scan(p: &Path, from: u64) -> (u64, Stop108, Vec<u8>) {
        let log = Log108::open(p).unwrap();
        let mut s = Scanner108::new(from);
        s.trust_up_to(u64::MAX);
        let mut out = Vec::new();
        let end = s
            .poll(&log, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        (end, s.stop, out)
    }

    #[test]
    fn a_clean_end_a_torn_mtr_and_a_stale_lap_are_told_apart() {
        let cap = 64 * 1024;
        let (_d, p, mut v) = log_file(cap);
        let a = mtr(3, 1, 1);
        let b = mtr(2, 1, 2);
        put(&mut v, cap, START_OFFSET, &a);
        put(&mut v, cap, START_OFFSET + a.len() as u64, &b);
        std::fs::write(&p, &v).unwrap();
        let (end, stop, out) = scan(&p, START_OFFSET);
        assert_eq!(
            (end, stop),
            (START_OFFSET + (a.len() + b.len()) as u64, Stop108::End)
        );
        assert_eq!(out.len(), a.len() + b.len());

        // torn: the second mtr's payload changes after its CRC was written
        let mut torn = v.clone();
        torn[usize::try_from(START_OFFSET).unwrap() + a.len() + 3] ^= 0x20;
        std::fs::write(&p, &torn).unwrap();
        let (end, stop, _) = scan(&p, START_OFFSET);
        assert_eq!(
            (end, stop),
            (START_OFFSET + a.len() as u64, Stop108::BadChecksum)
        );

        // stale: what follows carries the sequence bit of the previous lap
        let mut stale = v.clone();
        put(
            &mut stale,
            cap,
            START_OFFSET + (a.len() + b.len()) as u64,
            &mtr(1, 0, 3),
        );
        std::fs::write(&p, &stale).unwrap();
        let (_, stop, _) = scan(&p, START_OFFSET);
        assert_eq!(stop, Stop108::StaleLap);
    }

    #[test]
    fn the_scan_follows_the_wrap_and_rewrites_the_sequence_bit() {
        let cap = 4096;
        let (_d, p, mut v) = log_file(cap);
        // fill the first lap, then one mtr that straddles the wrap (second lap: seq 0)
        let mut lsn = START_OFFSET;
        let filler = mtr(10, 1, 9); // 165 bytes
        while lsn + filler.len() as u64 <= START_OFFSET + cap - 40 {
            put(&mut v, cap, lsn, &filler);
            lsn += filler.len() as u64;
        }
        let small = mtr(1, 1, 7); // 21 bytes
        while START_OFFSET + cap - lsn > 60 {
            put(&mut v, cap, lsn, &small);
            lsn += small.len() as u64;
        }
        let from = lsn;
        let across = mtr(5, 0, 4); // 85 bytes: crosses offset START_OFFSET + cap
        // its sequence byte sits past the wrap, so it belongs to lap 2
        assert!(lsn + 80 >= START_OFFSET + cap);
        put(&mut v, cap, lsn, &across);
        std::fs::write(&p, &v).unwrap();
        let (end, stop, out) = scan(&p, from);
        assert_eq!(end, from + across.len() as u64, "{stop:?}");
        assert_eq!(out[out.len() - 5], 1, "the copy's sequence byte is 1");
    }

    #[test]
    fn the_last_block_is_held_back_until_the_server_has_written_past_it() {
        // What a busy MariaDB 10.11 did (found by comparing a copy with the
        // server's log afterwards): its last block held, after the end of
        // the log, left-over valid mini-transactions from its buffer, which
        // a later write of that block replaced with different ones.
        let cap = 64 * 1024;
        let (_d, p, mut v) = log_file(cap);
        let real: Vec<Vec<u8>> = (0..16).map(|i| mtr(20, 1, i)).collect(); // 325 bytes each
        let at = |i: usize| START_OFFSET + (325 * i) as u64;
        for (i, m) in real[..8].iter().enumerate() {
            put(&mut v, cap, at(i), m);
        }
        // the end of the log is at 2600, in the block at 0..4096 of the
        // ring; left-over bytes follow it in that block
        let leftover = mtr(30, 1, 99);
        put(&mut v, cap, at(8), &leftover);
        std::fs::write(&p, &v).unwrap();
        let log = Log108::open(&p).unwrap();
        let mut s = Scanner108::new(START_OFFSET);
        let mut out = Vec::new();
        let poll = |s: &mut Scanner108, out: &mut Vec<u8>| {
            s.poll(&log, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap()
        };
        assert_eq!(
            poll(&mut s, &mut out),
            START_OFFSET,
            "nothing below the last block"
        );
        assert!(out.is_empty());

        // the server writes on: the block is rewritten with the real log,
        // which goes on into the next block
        for (i, m) in real.iter().enumerate() {
            put(&mut v, cap, at(i), m);
        }
        std::fs::write(&p, &v).unwrap();
        let end = at(16);
        let reached = poll(&mut s, &mut out);
        assert_eq!(reached, at(12), "up to the last block (at 4096..)");
        assert_eq!(
            out,
            real[..12].concat(),
            "the real log, none of the left-over"
        );

        // the server says it wrote and flushed up to the end: all of it
        s.trust_up_to(end);
        assert_eq!(poll(&mut s, &mut out), end);
        assert_eq!(out, real.concat());

        // a checkpoint vouches for the log below it as well
        let mut s = Scanner108::new(START_OFFSET);
        put_checkpoint(&mut v, end);
        std::fs::write(&p, &v).unwrap();
        let mut out = Vec::new();
        assert_eq!(poll(&mut s, &mut out), end);
    }

    #[test]
    fn left_over_bytes_ending_exactly_on_a_block_boundary_are_held_back() {
        // The backup_throttled_redo stall: left-over mini-transactions
        // after the end of the log ended exactly where the block did. Held
        // back as "the block the chain ends in" (an empty one), they were
        // copied; the server then wrote its real log there, and the copy
        // stood at that boundary, inside a real mini-transaction, failing
        // its CRC-32C at every re-read until the backup gave up.
        let cap = 64 * 1024;
        let (_d, p, mut v) = log_file(cap);
        let real: Vec<Vec<u8>> = (0..16).map(|i| mtr(20, 1, i)).collect(); // 325 bytes each
        let at = |i: usize| START_OFFSET + (325 * i) as u64;
        for (i, m) in real[..8].iter().enumerate() {
            put(&mut v, cap, at(i), m);
        }
        // 1496 bytes of left-overs from 2600: up to 4096, the block's end
        let mut leftover: Vec<u8> = (0..7).flat_map(|j| mtr(11, 1, 100 + j)).collect();
        leftover.extend(mtr(14, 1, 107));
        assert_eq!(at(8) + leftover.len() as u64, START_OFFSET + 4096);
        put(&mut v, cap, at(8), &leftover);
        std::fs::write(&p, &v).unwrap();
        let log = Log108::open(&p).unwrap();
        let mut s = Scanner108::new(START_OFFSET);
        let mut out = Vec::new();
        let poll = |s: &mut Scanner108, out: &mut Vec<u8>| {
            s.poll(&log, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap()
        };
        assert_eq!(
            poll(&mut s, &mut out),
            START_OFFSET,
            "the whole block waits"
        );
        assert!(out.is_empty());
        // the server's real log replaces them and goes on
        for (i, m) in real.iter().enumerate() {
            put(&mut v, cap, at(i), m);
        }
        std::fs::write(&p, &v).unwrap();
        assert_eq!(poll(&mut s, &mut out), at(12));
        assert_eq!(
            out,
            real[..12].concat(),
            "the real log, none of the left-overs"
        );
    }

    #[test]
    fn a_window_ending_in_left_over_bytes_holds_its_last_block_back() {
        // A window that stops inside a mini-transaction normally cuts a
        // backlog; but it may end just past the server's end, inside the
        // block the server is still writing, in left-over bytes (no
        // terminator between them and the log): its last block waits too.
        let cap = 256 * 1024;
        let (_d, p, mut v) = log_file(cap);
        let real = |i: u64| mtr(20, 1, u8::try_from(i % 200).unwrap()); // 325 bytes
        // from LSN 12613 the first window (64 KiB) ends at 78149, inside
        // the block 77824..81920; the server's log ends at 77938 in it
        for i in 0..202 {
            put(&mut v, cap, START_OFFSET + i * 325, &real(i));
        }
        let end = START_OFFSET + 202 * 325;
        assert_eq!(end, 77_938);
        // left-overs: three whole ones, then one the window cuts
        for k in 0..4 {
            put(&mut v, cap, end + k * 53, &mtr(3, 1, 250));
        }
        std::fs::write(&p, &v).unwrap();
        let log = Log108::open(&p).unwrap();
        let mut s = Scanner108::new(START_OFFSET + 325);
        let mut out = Vec::new();
        s.poll(&log, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert!(
            s.lsn() <= 77_824,
            "the copy took up to {}, into the block the server writes",
            s.lsn()
        );
        let whole = (s.lsn() - START_OFFSET) / 325;
        assert_eq!(out, (1..whole).flat_map(real).collect::<Vec<u8>>());
    }

    #[test]
    fn a_checkpoint_read_after_the_bytes_does_not_vouch_for_them() {
        // The backup_throttled_redo failure: the window's last block held
        // left-over mini-transactions; before the checkpoint was read
        // again, the server rewrote that block and checkpointed past it.
        // Taking the leftovers as log put the reader off the chain of
        // mini-transactions, and the next poll called the log overwritten.
        let cap = 64 * 1024;
        let (_d, p, mut v) = log_file(cap);
        let real: Vec<Vec<u8>> = (0..8).map(|i| mtr(20, 1, i)).collect();
        let at = |i: usize| START_OFFSET + (325 * i) as u64;
        for (i, m) in real.iter().enumerate() {
            put(&mut v, cap, at(i), m);
        }
        put(&mut v, cap, at(8), &mtr(30, 1, 99));
        std::fs::write(&p, &v).unwrap();
        let log = Log108::open(&p).unwrap();
        let cp = |lsn| Checkpoint108 {
            lsn,
            end_lsn: lsn,
            offset: 4096,
        };
        // the checkpoint before the read is where the copy starts; the one
        // after it is past the left-over bytes
        let mut reads = [cp(START_OFFSET), cp(at(12))].into_iter().cycle();
        let mut s = Scanner108::new(START_OFFSET);
        let mut out = Vec::new();
        let reached = s
            .poll_with(
                &log,
                &mut |b| {
                    out.extend_from_slice(b);
                    Ok(())
                },
                &mut || Ok(reads.next().unwrap()),
            )
            .unwrap();
        assert_eq!(reached, START_OFFSET, "the last block is held back");
        assert!(out.is_empty());
    }

    #[test]
    fn a_backups_linear_copy_of_any_length_reads_to_its_end() {
        // a copy starts at the source's checkpoint, far from 12288, and
        // its file is as long as the log copied (here far below 512 bytes)
        let cp = Checkpoint108 {
            lsn: 6_982_855,
            end_lsn: 6_982_900,
            offset: 4096,
        };
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ib_logfile0");
        let a = mtr(1, 1, 5);
        let b = mtr(2, 1, 6);
        let mut v = backup_log_header(cp, "Backup 10.11.18");
        v.extend_from_slice(&a);
        std::fs::write(&p, &v).unwrap();
        let mut log = crate::redo::RedoLog::open(d.path()).unwrap();
        assert_eq!(log.format(), crate::redo::RedoFormat::MariaDb108);
        let from = log.latest_checkpoint().unwrap();
        assert_eq!(from, cp.lsn);
        let mut sc = log.scanner(from);
        sc.trust_up_to(u64::MAX);
        let end = sc.poll(&mut log, &mut |_| Ok(())).unwrap();
        assert_eq!(end, cp.lsn + a.len() as u64, "one mtr, the whole file");

        // more log: the scan reads all of it and stops at the wrap
        v.extend_from_slice(&b);
        std::fs::write(&p, &v).unwrap();
        let (end, stop, out) = scan(&p, cp.lsn);
        assert_eq!(end, cp.lsn + (a.len() + b.len()) as u64);
        assert_eq!((stop, out.len()), (Stop108::StaleLap, a.len() + b.len()));

        // a copy cut inside its last mtr ends after the last whole one
        std::fs::write(&p, &v[..v.len() - 3]).unwrap();
        let (end, _, _) = scan(&p, cp.lsn);
        assert_eq!(end, cp.lsn + a.len() as u64);

        // a header with no log after it holds no LSN: refused, named
        std::fs::write(&p, &v[..12_288]).unwrap();
        let e = Log108::open(&p).unwrap_err().to_string();
        assert!(
            e.contains("ib_logfile0") && e.contains("12288 bytes is too small"),
            "{e}"
        );
    }

    #[test]
    fn unknown_format_and_short_files_are_named() {
        let (_d, p, mut v) = log_file(8192);
        v[0..4].copy_from_slice(&103u32.to_be_bytes());
        std::fs::write(&p, &v).unwrap();
        let e = Log108::open(&p).unwrap_err().to_string();
        assert!(
            e.contains("ib_logfile0") && e.contains("format id 0x00000067 at offset 0"),
            "{e}"
        );
        std::fs::write(&p, &v[..5000]).unwrap();
        let e = Log108::open(&p).unwrap_err().to_string();
        assert!(e.contains("5000 bytes is too small"), "{e}");
    }

    /// One window's worth of bytes, and a mini-transaction size that
    /// divides the test rings exactly, so every lap's mtrs start at the
    /// same offsets (a later lap replaces whole mtrs of an earlier one).
    const W: u64 = WINDOW as u64;
    const MTR: u64 = 16 * 63 + 5;
    /// A ring of just over four windows.
    const CAP: u64 = MTR * (4 * W / MTR + 1);

    /// The server's checkpoint (block 2) at `lsn`.
    fn put_checkpoint(v: &mut [u8], lsn: u64) {
        let b = &mut v[8192..8192 + 64];
        b.fill(0);
        b[0..8].copy_from_slice(&lsn.to_be_bytes());
        b[8..16].copy_from_slice(&lsn.to_be_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_be_bytes());
    }

    /// What the server writes from `from` (an mtr boundary) to `to`: mtrs of
    /// `MTR` bytes, each with the sequence byte of its lap; `salt` tells
    /// one lap's payload from another's.
    fn write_log(v: &mut [u8], from: u64, to: u64, salt: u8) {
        let lap_seq = |lsn: u64| u8::from(((lsn - START_OFFSET) / CAP) % 2 == 0);
        let mut lsn = from;
        while lsn + MTR <= to {
            let m = mtr(63, lap_seq(lsn + MTR - 5), salt);
            put(v, CAP, lsn, &m);
            lsn += MTR;
        }
    }

    /// One poll from `from`: its result, the bytes handed out, the stop.
    fn poll_once(v: &[u8], from: u64) -> (Result<u64, Redo108Error>, Vec<u8>, Stop108) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ib_logfile0");
        std::fs::write(&p, v).unwrap();
        let log = Log108::open(&p).unwrap();
        let mut s = Scanner108::new(from);
        s.trust_up_to(u64::MAX);
        let mut out = Vec::new();
        let r = s.poll(&log, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        });
        (r, out, s.stop)
    }

    #[test]
    fn a_backlog_of_several_windows_is_copied_in_one_poll() {
        let (_d, _p, mut v) = log_file(CAP);
        let end = START_OFFSET + (3 * W / MTR + 7) * MTR;
        write_log(&mut v, START_OFFSET, end, 1);
        let (r, out, stop) = poll_once(&v, START_OFFSET);
        assert_eq!(r, Ok(end));
        assert_eq!((out.len() as u64, stop), (end - START_OFFSET, Stop108::End));
    }

    #[test]
    fn a_checkpoint_far_ahead_of_the_reader_is_no_overwrite() {
        // the server checkpointed three windows past the reader, but wrote
        // less than one capacity past it: every byte it needs is there
        let (_d, _p, mut v) = log_file(CAP);
        let end = START_OFFSET + (3 * W / MTR + 7) * MTR;
        write_log(&mut v, START_OFFSET, end, 1);
        put_checkpoint(&mut v, START_OFFSET + 3 * W);
        let (r, out, stop) = poll_once(&v, START_OFFSET);
        assert_eq!(r, Ok(end));
        assert_eq!((out.len() as u64, stop), (end - START_OFFSET, Stop108::End));
    }

    #[test]
    fn a_reader_one_capacity_behind_the_write_position_copies_the_whole_ring() {
        // a full lap, then 1 MiB of the next one (sequence byte 0)
        let (_d, _p, mut v) = log_file(CAP);
        let w = START_OFFSET + CAP + (1 << 20) / MTR * MTR;
        write_log(&mut v, START_OFFSET, w, 1);
        put_checkpoint(&mut v, START_OFFSET + CAP / 2);
        let from = w - CAP; // the oldest mtr the ring still holds
        let (r, out, stop) = poll_once(&v, from);
        assert_eq!(r, Ok(w));
        assert_eq!((out.len() as u64, stop), (CAP, Stop108::StaleLap));
        assert!(
            out.chunks_exact(1013).all(|m| m[1008] == 1),
            "copy is lap 1"
        );
    }

    #[test]
    fn a_lapped_reader_gets_overwritten_never_the_newer_bytes() {
        let (_d, _p, mut v) = log_file(CAP);
        let w = START_OFFSET + CAP + (1 << 20) / MTR * MTR;
        write_log(&mut v, START_OFFSET, w, 1);
        let over = |r: &Result<u64, Redo108Error>| match r {
            Err(Redo108Error::Overwritten {
                needed, checkpoint, ..
            }) => Some((*needed, *checkpoint)),
            _ => None,
        };

        // evidence 1: the checkpoint is more than one capacity past the reader
        let cp = START_OFFSET + CAP + 4096;
        put_checkpoint(&mut v, cp);
        let (r, out, _) = poll_once(&v, START_OFFSET);
        assert_eq!(over(&r), Some((START_OFFSET, cp)), "{r:?}");
        assert!(out.is_empty());

        // evidence 2: the log ends, below a checkpoint, where our lap's mtr
        // was: the next lap's sequence byte, or its end-of-log marker
        let cp = START_OFFSET + CAP / 2;
        put_checkpoint(&mut v, cp);
        let (r, out, _) = poll_once(&v, START_OFFSET + MTR);
        assert_eq!(over(&r), Some((START_OFFSET + MTR, cp)), "{r:?}");
        assert!(out.is_empty());
        let mut zero = v.clone();
        put(&mut zero, CAP, START_OFFSET + MTR, &[0]);
        let (r, out, _) = poll_once(&zero, START_OFFSET + MTR);
        assert_eq!(over(&r), Some((START_OFFSET + MTR, cp)), "{r:?}");
        assert!(out.is_empty());

        // our mtr torn by the next lap's write in progress (its head new,
        // its tail and sequence byte ours) is no evidence yet: the reader
        // stops and waits, and sees the next lap on a later poll
        let mut torn = v.clone();
        put(&mut torn, CAP, START_OFFSET + MTR, &mtr(63, 1, 1));
        put(&mut torn, CAP, START_OFFSET + MTR, &mtr(63, 0, 2)[..600]);
        let (r, out, stop) = poll_once(&torn, START_OFFSET + MTR);
        assert_eq!(
            (r, out.len(), stop),
            (Ok(START_OFFSET + MTR), 0, Stop108::BadChecksum)
        );

        // two laps ahead: the sequence byte at the reader's position is 1
        // again and the mtrs parse, but they are a later lap's; the
        // checkpoint (more than a capacity past the reader) gives it away
        let w3 = START_OFFSET + 2 * CAP + (1 << 20) / MTR * MTR;
        write_log(&mut v, w, w3, 3);
        let cp = w3 - CAP + 4096;
        put_checkpoint(&mut v, cp);
        let (r, out, _) = poll_once(&v, START_OFFSET + MTR);
        assert_eq!(over(&r), Some((START_OFFSET + MTR, cp)), "{r:?}");
        assert!(out.is_empty(), "no byte of the later lap is handed out");
    }
}
