//! The classic redo log: a group of equal files `ib_logfile0..N` of 512-byte
//! blocks (MySQL 5.7, 8.0.0–8.0.29; MariaDB 10.2–10.4).
//!
//! | where | offset | field (big-endian) |
//! |---|---|---|
//! | every file | 0 | format (0 legacy, 1 = 5.7.9, 2..5 = 8.0.x, 103/104 MariaDB) |
//! | | 8 | start LSN (LSN of file offset 2048) |
//! | | 16 | creator (32 bytes) |
//! | | 508 | CRC-32C of 0..508 |
//! | file 0 | 512, 1536 | checkpoint: number @0, LSN @8, group offset @16, log buffer size @24, CRC-32C @508 |
//! | file 0 | 1072 | encrypted log (MySQL 5.7.11+, Percona): 3-byte magic of the encryption information |
//! | every file | 2048.. | blocks: `hdr_no` @0 (bit 31 flush flag), `data_len` @4, `first_rec_group` @6, checkpoint number @8, checksum @508 |
//!
//! LSNs count block headers and trailers but not the 2 KiB file headers; the
//! group offset of an LSN is found from the checkpoint's (LSN, offset) pair.
//! Block checksums are CRC-32C, the legacy InnoDB sum, or `0xDEADBEEF`
//! when checksums are off; which ones to accept is the caller's choice.

pub use crate::be::hdr_no;
use crate::be::{be16, be32, be64};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// File header size.
pub const HEADER_SIZE: u64 = 2048;
/// Block size.
pub const BLOCK: u64 = 512;
/// Checksum value of blocks written with checksums off.
pub const NO_CHECKSUM: u32 = 0xDEAD_BEEF;
/// Offset in the first redo file of the encryption information MySQL and
/// Percona Server write when the redo is encrypted: the encryption block
/// at 1024, past the 48 bytes of format, LSN and creator (also in every
/// MySQL 8.0.30+ `#ib_redoN`).
pub const ENCRYPTION_INFO_OFFSET: u64 = 1072;
/// Magic strings the encryption information starts with: MySQL's versions
/// 1–3 (`lCA`, `lCB`, `lCC`), Percona Server's keyring redo (`lRK`, `RKB`)
/// and its own versions (`PSA`, `PSB`, `PSC`).
pub const ENCRYPTION_MAGICS: [&[u8; 3]; 8] = [
    b"lCA", b"lCB", b"lCC", b"lRK", b"RKB", b"PSA", b"PSB", b"PSC",
];
/// MariaDB 10.2–10.7 set this bit of the format id when the redo is
/// encrypted (`innodb_encrypt_log=ON`).
pub const FORMAT_ENCRYPTED: u32 = 1 << 31;

/// The encryption magic `block` (at least 1075 bytes of a redo file's
/// start) holds at [`ENCRYPTION_INFO_OFFSET`], if any.
#[must_use]
pub fn encryption_magic(block: &[u8]) -> Option<&'static str> {
    let at = usize::try_from(ENCRYPTION_INFO_OFFSET).ok()?;
    let m = block.get(at..at + 3)?;
    ENCRYPTION_MAGICS
        .iter()
        .find(|&&magic| magic == m)
        // the magics are ASCII
        .map(|m| std::str::from_utf8(*m).unwrap_or("?"))
}

/// Which block checksums to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockChecksum {
    /// CRC-32C only (`innodb_log_checksums=ON`, strict).
    Crc32c,
    /// The legacy InnoDB sum only.
    Innodb,
    /// None (`0xDEADBEEF`) only.
    None,
    /// Any of the three (non-strict, what a reader of unknown settings does).
    #[default]
    Any,
}

/// Errors reading a classic log group.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassicError {
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
    /// A damaged or foreign header, or a group that does not fit together.
    #[error("{file}: {reason}")]
    Header {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The log is encrypted: its blocks cannot be read without the key, so
    /// it is refused rather than reported as corrupt.
    #[error("{file}: the redo log is encrypted ({marker}); encrypted redo cannot be read")]
    Encrypted {
        /// `ib_logfile0`.
        file: PathBuf,
        /// What says so: the magic at offset 1072, or the format flag.
        marker: String,
    },
    /// Neither checkpoint block of `ib_logfile0` is valid.
    #[error("{file}: no valid checkpoint at offsets 512 or 1536")]
    NoCheckpoint {
        /// `ib_logfile0`.
        file: PathBuf,
    },
    /// The server overwrote log we still needed.
    #[error(
        "redo at LSN {needed} was overwritten before it was copied (the server's checkpoint is at LSN {checkpoint})"
    )]
    Overwritten {
        /// First LSN still needed.
        needed: u64,
        /// The server's checkpoint when we noticed.
        checkpoint: u64,
    },
    /// Writing the copy failed (the sink's message).
    #[error("{0}")]
    Out(String),
}

/// The legacy InnoDB block checksum (pre-5.7.9 default).
#[must_use]
pub fn innodb_sum(bytes: &[u8]) -> u32 {
    let mut sum: u32 = 1;
    let mut sh = 0u32;
    for &b in bytes {
        sum &= 0x7FFF_FFFF;
        sum = sum.wrapping_add(u32::from(b));
        sum = sum.wrapping_add(u32::from(b) << sh);
        sh += 1;
        if sh > 24 {
            sh = 0;
        }
    }
    sum
}

/// Does the block's stored checksum match under `mode`?
#[must_use]
pub fn checksum_ok(block: &[u8], mode: BlockChecksum) -> bool {
    if block.len() < 512 {
        return false;
    }
    let stored = be32(block, 508);
    let crc = || crc32c::crc32c(&block[..508]) == stored;
    let sum = || innodb_sum(&block[..508]) == stored;
    match mode {
        BlockChecksum::Crc32c => crc(),
        BlockChecksum::Innodb => sum(),
        BlockChecksum::None => stored == NO_CHECKSUM,
        BlockChecksum::Any => stored == NO_CHECKSUM || crc() || sum(),
    }
}

/// A checkpoint of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointClassic {
    /// Checkpoint number.
    pub no: u64,
    /// Checkpoint LSN.
    pub lsn: u64,
    /// Offset of that LSN in the group (file headers included).
    pub offset: u64,
}

/// Where an LSN lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Index of `ib_logfileN`.
    pub file: usize,
    /// Offset in that file.
    pub offset: u64,
}

/// A live classic log group.
#[derive(Debug)]
pub struct LogClassic {
    files: Vec<(PathBuf, File)>,
    file_size: u64,
    format: u32,
    start_lsn: u64,
    creator: String,
    mode: BlockChecksum,
}

impl LogClassic {
    /// Opens `ib_logfile0..N` in `dir`.
    ///
    /// # Errors
    /// No `ib_logfile0`, files of unequal size, a damaged header.
    pub fn open(dir: &Path, mode: BlockChecksum) -> Result<Self, ClassicError> {
        let mut files = Vec::new();
        for n in 0..100 {
            let p = dir.join(format!("ib_logfile{n}"));
            match File::open(&p) {
                Ok(f) => files.push((p, f)),
                Err(_) if n > 0 => break,
                Err(e) => {
                    return Err(ClassicError::Io {
                        file: p,
                        offset: 0,
                        reason: e.to_string(),
                    });
                }
            }
        }
        let (p0, f0) = &files[0];
        let header = |file: &Path, reason: String| ClassicError::Header {
            file: file.to_path_buf(),
            reason,
        };
        let size = |p: &Path, f: &File| {
            f.metadata().map(|m| m.len()).map_err(|e| ClassicError::Io {
                file: p.to_path_buf(),
                offset: 0,
                reason: e.to_string(),
            })
        };
        let file_size = size(p0, f0)?;
        if file_size < HEADER_SIZE + BLOCK || file_size % BLOCK != 0 {
            return Err(header(
                p0,
                format!("size {file_size} is not a redo file size"),
            ));
        }
        for (p, f) in &files[1..] {
            let s = size(p, f)?;
            if s != file_size {
                return Err(header(
                    p,
                    format!("size {s} differs from ib_logfile0's {file_size}"),
                ));
            }
        }
        let mut h = [0u8; 2048];
        f0.read_exact_at(&mut h, 0).map_err(|e| ClassicError::Io {
            file: p0.clone(),
            offset: 0,
            reason: e.to_string(),
        })?;
        let format = be32(&h, 0);
        let encrypted = |marker: String| ClassicError::Encrypted {
            file: p0.clone(),
            marker,
        };
        if matches!(format & !FORMAT_ENCRYPTED, 103 | 104) && format & FORMAT_ENCRYPTED != 0 {
            return Err(encrypted(format!(
                "MariaDB format {format:#010x} at offset 0"
            )));
        }
        if let Some(magic) = encryption_magic(&h) {
            return Err(encrypted(format!(
                "magic \"{magic}\" at offset {ENCRYPTION_INFO_OFFSET}"
            )));
        }
        if !matches!(format, 1..=5 | 103 | 104) {
            return Err(header(
                p0,
                format!("unknown redo format {format} at offset 0"),
            ));
        }
        if crc32c::crc32c(&h[..508]) != be32(&h, 508) {
            return Err(header(p0, "header checksum mismatch at offset 508".into()));
        }
        let c = &h[16..48];
        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
        Ok(LogClassic {
            start_lsn: be64(&h, 8),
            creator: String::from_utf8_lossy(&c[..end]).into_owned(),
            files,
            file_size,
            format,
            mode,
        })
    }

    /// Format number of the header.
    #[must_use]
    pub fn format(&self) -> u32 {
        self.format
    }

    /// Creator string.
    #[must_use]
    pub fn creator(&self) -> &str {
        &self.creator
    }

    /// Number of files.
    #[must_use]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// LSN of offset 2048 of `ib_logfile0` when it was created.
    #[must_use]
    pub fn start_lsn(&self) -> u64 {
        self.start_lsn
    }

    /// Bytes of log the group holds.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.files.len() as u64 * (self.file_size - HEADER_SIZE)
    }

    fn read_at(&self, idx: usize, buf: &mut [u8], offset: u64) -> Result<(), ClassicError> {
        let (p, f) = &self.files[idx];
        f.read_exact_at(buf, offset).map_err(|e| ClassicError::Io {
            file: p.clone(),
            offset,
            reason: e.to_string(),
        })
    }

    /// The latest valid checkpoint (highest number).
    ///
    /// # Errors
    /// I/O, or no valid checkpoint.
    pub fn latest_checkpoint(&self) -> Result<CheckpointClassic, ClassicError> {
        let mut h = [0u8; 2048];
        self.read_header(&mut h)?;
        self.checkpoint_in(&h)
    }

    /// Reads the first 2048 bytes of `ib_logfile0` (its header and both
    /// checkpoint blocks) into `buf`.
    pub(crate) fn read_header(&self, buf: &mut [u8]) -> Result<(), ClassicError> {
        self.read_at(0, buf, 0)
    }

    /// The newest valid checkpoint in `header` (a copy of the first 2048
    /// bytes of `ib_logfile0`), checked against this group's size.
    pub(crate) fn checkpoint_in(&self, header: &[u8]) -> Result<CheckpointClassic, ClassicError> {
        checkpoint_of(header, self.files.len() as u64 * self.file_size).ok_or_else(|| {
            ClassicError::NoCheckpoint {
                file: self.files[0].0.clone(),
            }
        })
    }

    /// Where `lsn` lives, calibrated by `cp` (the group wraps from the end of
    /// the last file to offset 2048 of the first).
    #[must_use]
    pub fn locate(&self, cp: &CheckpointClassic, lsn: u64) -> Location {
        let f = self.file_size;
        let data = f - HEADER_SIZE;
        let cap = self.capacity();
        let strip = |real: u64| real - HEADER_SIZE * (1 + real / f);
        let s0 = strip(cp.offset);
        let d = if lsn >= cp.lsn {
            (lsn - cp.lsn) % cap
        } else {
            cap - ((cp.lsn - lsn) % cap)
        };
        let s = (s0 + d) % cap;
        let real = s + HEADER_SIZE * (1 + s / data);
        Location {
            file: usize::try_from(real / f).unwrap_or(0),
            offset: real % f,
        }
    }

    fn block_ok(&self, b: &[u8], lsn: u64) -> Option<u16> {
        let len = be16(b, 4);
        ((be32(b, 0) & 0x7FFF_FFFF) == hdr_no(lsn)
            && checksum_ok(b, self.mode)
            && (12..=512).contains(&len))
        .then_some(len)
    }
}

/// The checkpoint block (at 512 or 1536 of `header`, the first 2048 bytes
/// of `ib_logfile0`) with a valid CRC-32C, a group offset inside
/// `group_size` and the higher number.
pub(crate) fn checkpoint_of(header: &[u8], group_size: u64) -> Option<CheckpointClassic> {
    let mut best: Option<CheckpointClassic> = None;
    for off in [512usize, 1536] {
        let b = header.get(off..off + 512)?;
        let cp = CheckpointClassic {
            no: be64(b, 0),
            lsn: be64(b, 8),
            offset: be64(b, 16),
        };
        if crc32c::crc32c(&b[..508]) == be32(b, 508)
            && cp.offset < group_size
            && best.is_none_or(|c| cp.no > c.no)
        {
            best = Some(cp);
        }
    }
    best
}

const WINDOW: u64 = 1 << 20;

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopClassic {
    /// The next block holds no newer log (clean end, or a block from the
    /// previous lap: its number belongs to an older LSN).
    End,
    /// The next block has the right number but a bad checksum: a torn or
    /// corrupt block, at this location.
    BadChecksum(Location),
}

/// Follows the group block by block from a checkpoint.
#[derive(Debug)]
pub struct ScannerClassic {
    next: u64,
    end: u64,
    partial: Option<Vec<u8>>,
    /// Why the last poll stopped.
    pub stop: StopClassic,
}

impl ScannerClassic {
    /// Starts at the block holding `lsn`.
    #[must_use]
    pub fn new(lsn: u64) -> Self {
        ScannerClassic {
            next: lsn / BLOCK * BLOCK,
            end: lsn,
            partial: None,
            stop: StopClassic::End,
        }
    }

    /// End of valid log seen so far.
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.end
    }

    /// Reads on; whole blocks go to `out`, the partial last one is kept.
    ///
    /// # Errors
    /// I/O, [`ClassicError::Overwritten`], `out`'s error.
    pub fn poll(
        &mut self,
        log: &LogClassic,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, ClassicError> {
        let mut pending: Vec<u8> = Vec::new();
        let start = self.next;
        self.partial = None;
        let cp0 = log.latest_checkpoint()?;
        let mut buf = vec![0u8; 0];
        'read: loop {
            let loc = log.locate(&cp0, self.next);
            let len = (log.file_size - loc.offset).min(WINDOW);
            buf.resize(usize::try_from(len).unwrap_or(0), 0);
            log.read_at(loc.file, &mut buf, loc.offset)?;
            let mut full = 0usize;
            for (i, block) in buf.chunks_exact(512).enumerate() {
                let lsn = self.next + i as u64 * BLOCK;
                match log.block_ok(block, lsn) {
                    Some(512) => full = i + 1,
                    Some(n) => {
                        self.end = self.end.max(lsn + u64::from(n));
                        self.partial = Some(block.to_vec());
                        self.stop = StopClassic::End;
                        break;
                    }
                    None => {
                        let right_no = (be32(block, 0) & 0x7FFF_FFFF) == hdr_no(lsn);
                        self.stop = if right_no {
                            StopClassic::BadChecksum(Location {
                                file: loc.file,
                                offset: loc.offset + i as u64 * BLOCK,
                            })
                        } else {
                            StopClassic::End
                        };
                        break;
                    }
                }
            }
            if full > 0 {
                // checked below against the checkpoint before it is handed out
                pending.extend_from_slice(&buf[..full * 512]);
                self.next += full as u64 * BLOCK;
                self.end = self.end.max(self.next);
            }
            if full * 512 < buf.len() || self.partial.is_some() || full == 0 {
                break 'read;
            }
            if pending.len() >= 4 << 20 {
                break 'read;
            }
        }
        let cp = log.latest_checkpoint()?;
        if cp.lsn > start + log.capacity() || (cp.lsn > start && self.end < cp.lsn) {
            return Err(ClassicError::Overwritten {
                needed: start,
                checkpoint: cp.lsn,
            });
        }
        if !pending.is_empty() {
            out(&pending).map_err(ClassicError::Out)?;
        }
        Ok(self.end)
    }

    /// Hands out the partly written last block.
    ///
    /// # Errors
    /// `out`'s error.
    pub fn tail(
        &mut self,
        out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), ClassicError> {
        if let Some(b) = self.partial.take() {
            out(&b).map_err(ClassicError::Out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes synthetic classic log groups.
    struct Group {
        dir: tempfile::TempDir,
        file_size: u64,
        files: u64,
        start_lsn: u64,
    }

    impl Group {
        fn new(files: u64, blocks_per_file: u64) -> Self {
            let g = Group {
                dir: tempfile::tempdir().unwrap(),
                file_size: HEADER_SIZE + blocks_per_file * BLOCK,
                files,
                start_lsn: 8192,
            };
            for n in 0..files {
                let mut h = vec![0u8; usize::try_from(g.file_size).unwrap()];
                h[0..4].copy_from_slice(&1u32.to_be_bytes());
                h[8..16].copy_from_slice(
                    &(g.start_lsn + n * (g.file_size - HEADER_SIZE)).to_be_bytes(),
                );
                h[16..27].copy_from_slice(b"MySQL 5.7.9");
                let crc = crc32c::crc32c(&h[..508]);
                h[508..512].copy_from_slice(&crc.to_be_bytes());
                std::fs::write(g.dir.path().join(format!("ib_logfile{n}")), h).unwrap();
            }
            g
        }
        fn real(&self, lsn: u64) -> (u64, u64) {
            let data = self.file_size - HEADER_SIZE;
            let s = (lsn - self.start_lsn) % (self.files * data);
            let real = s + HEADER_SIZE * (1 + s / data);
            (real / self.file_size, real % self.file_size)
        }
        fn put(&self, file: u64, offset: u64, bytes: &[u8]) {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(self.dir.path().join(format!("ib_logfile{file}")))
                .unwrap();
            f.seek(SeekFrom::Start(offset)).unwrap();
            f.write_all(bytes).unwrap();
        }
        fn block(&self, lsn: u64, data_len: u16, mode: BlockChecksum) -> Vec<u8> {
            let mut b = vec![0u8; 512];
            b[0..4].copy_from_slice(&hdr_no(lsn).to_be_bytes());
            b[4..6].copy_from_slice(&data_len.to_be_bytes());
            for (i, x) in b[12..508].iter_mut().enumerate() {
                *x = (lsn as usize + i) as u8;
            }
            let sum = match mode {
                BlockChecksum::Crc32c | BlockChecksum::Any => crc32c::crc32c(&b[..508]),
                BlockChecksum::Innodb => innodb_sum(&b[..508]),
                BlockChecksum::None => NO_CHECKSUM,
            };
            b[508..512].copy_from_slice(&sum.to_be_bytes());
            b
        }
        fn write_log(&self, from: u64, blocks: u64, last_len: u16, mode: BlockChecksum) {
            for i in 0..blocks {
                let lsn = from + i * BLOCK;
                let len = if i + 1 == blocks { last_len } else { 512 };
                let (f, o) = self.real(lsn);
                self.put(f, o, &self.block(lsn, len, mode));
            }
        }
        fn checkpoint(&self, no: u64, lsn: u64) {
            let mut b = vec![0u8; 512];
            b[0..8].copy_from_slice(&no.to_be_bytes());
            b[8..16].copy_from_slice(&lsn.to_be_bytes());
            let (f, o) = self.real(lsn);
            b[16..24].copy_from_slice(&(f * self.file_size + o).to_be_bytes());
            let crc = crc32c::crc32c(&b[..508]);
            b[508..512].copy_from_slice(&crc.to_be_bytes());
            self.put(0, if no % 2 == 0 { 512 } else { 1536 }, &b);
        }
        fn open(&self, mode: BlockChecksum) -> LogClassic {
            LogClassic::open(self.dir.path(), mode).unwrap()
        }
    }

    fn scan(log: &LogClassic, from: u64) -> (ScannerClassic, Result<u64, ClassicError>, u64) {
        let mut s = ScannerClassic::new(from);
        let mut n = 0u64;
        let r = s.poll(log, &mut |b| {
            n += b.len() as u64;
            Ok(())
        });
        (s, r, n)
    }

    #[test]
    fn every_checksum_mode_scans_to_the_clean_end() {
        for mode in [
            BlockChecksum::Crc32c,
            BlockChecksum::Innodb,
            BlockChecksum::None,
        ] {
            let g = Group::new(2, 8);
            g.write_log(8192, 5, 300, mode);
            g.checkpoint(7, 8192 + 100);
            for accept in [mode, BlockChecksum::Any] {
                let log = g.open(accept);
                assert_eq!(log.latest_checkpoint().unwrap().lsn, 8292);
                let (s, r, n) = scan(&log, 8292);
                assert_eq!(r.unwrap(), 8192 + 4 * 512 + 300, "{mode:?}");
                assert_eq!(n, 4 * 512, "whole blocks handed out, the partial one kept");
                assert_eq!(s.stop, StopClassic::End);
            }
        }
    }

    #[test]
    fn a_strict_mode_refuses_another_algorithm() {
        let g = Group::new(2, 8);
        g.write_log(8192, 3, 512, BlockChecksum::Innodb);
        g.checkpoint(1, 8192);
        let log = g.open(BlockChecksum::Crc32c);
        let (s, r, _) = scan(&log, 8192);
        assert_eq!(r.unwrap(), 8192);
        assert_eq!(
            s.stop,
            StopClassic::BadChecksum(Location {
                file: 0,
                offset: 2048
            })
        );
    }

    #[test]
    fn the_scan_follows_the_wrap_from_the_last_file_to_the_first() {
        let g = Group::new(2, 4); // 8 blocks of capacity
        g.write_log(8192, 8, 512, BlockChecksum::Crc32c); // first lap
        g.write_log(8192 + 8 * 512, 3, 512, BlockChecksum::Crc32c); // wraps into file 0
        g.checkpoint(3, 8192 + 6 * 512);
        let log = g.open(BlockChecksum::Crc32c);
        let (_, r, n) = scan(&log, 8192 + 6 * 512);
        assert_eq!(r.unwrap(), 8192 + 11 * 512);
        assert_eq!(n, 5 * 512);
        let cp = log.latest_checkpoint().unwrap();
        assert_eq!(
            log.locate(&cp, 8192 + 8 * 512),
            Location {
                file: 0,
                offset: 2048
            }
        );
    }

    #[test]
    fn a_block_from_the_previous_lap_ends_the_log() {
        let g = Group::new(2, 4);
        g.write_log(8192, 8, 512, BlockChecksum::Crc32c);
        g.write_log(8192 + 8 * 512, 2, 512, BlockChecksum::Crc32c);
        g.checkpoint(2, 8192 + 8 * 512);
        let log = g.open(BlockChecksum::Crc32c);
        // block 10 still holds lap 1's block 2: valid checksum, older number
        let (s, r, _) = scan(&log, 8192 + 8 * 512);
        assert_eq!(r.unwrap(), 8192 + 10 * 512);
        assert_eq!(s.stop, StopClassic::End);
    }

    #[test]
    fn a_torn_last_block_is_reported_where_it_is() {
        let g = Group::new(2, 8);
        g.write_log(8192, 4, 512, BlockChecksum::Crc32c);
        let (f, o) = g.real(8192 + 3 * 512);
        g.put(f, o + 100, &[0xFF; 8]); // half-written
        g.checkpoint(1, 8192);
        let log = g.open(BlockChecksum::Crc32c);
        let (s, r, _) = scan(&log, 8192);
        assert_eq!(r.unwrap(), 8192 + 3 * 512);
        assert_eq!(
            s.stop,
            StopClassic::BadChecksum(Location { file: 0, offset: o })
        );
    }

    #[test]
    fn a_lapped_reader_is_told_its_log_was_overwritten() {
        let g = Group::new(2, 4);
        g.write_log(8192, 8, 512, BlockChecksum::Crc32c);
        g.write_log(8192 + 8 * 512, 8, 512, BlockChecksum::Crc32c);
        g.write_log(8192 + 16 * 512, 2, 512, BlockChecksum::Crc32c);
        g.checkpoint(9, 8192 + 17 * 512);
        let log = g.open(BlockChecksum::Crc32c);
        let (_, r, n) = scan(&log, 8192);
        assert!(
            matches!(r, Err(ClassicError::Overwritten { needed: 8192, .. })),
            "{r:?}"
        );
        assert_eq!(n, 0, "nothing from the wrong lap is handed out");
    }

    #[test]
    fn broken_headers_are_named() {
        let g = Group::new(2, 4);
        g.put(0, 0, &[0, 0, 0, 99]);
        let err = LogClassic::open(g.dir.path(), BlockChecksum::Any).unwrap_err();
        assert!(
            err.to_string().contains("ib_logfile0")
                && err
                    .to_string()
                    .contains("unknown redo format 99 at offset 0"),
            "{err}"
        );
        let g = Group::new(1, 4);
        std::fs::write(g.dir.path().join("ib_logfile0"), [0u8; 1000]).unwrap();
        let err = LogClassic::open(g.dir.path(), BlockChecksum::Any).unwrap_err();
        assert!(err.to_string().contains("size 1000"), "{err}");
        let g = Group::new(2, 4);
        std::fs::write(g.dir.path().join("ib_logfile1"), vec![0u8; 8192]).unwrap();
        let err = LogClassic::open(g.dir.path(), BlockChecksum::Any).unwrap_err();
        assert!(
            err.to_string().contains("ib_logfile1") && err.to_string().contains("differs"),
            "{err}"
        );
        let g = Group::new(2, 4);
        let err = g.open(BlockChecksum::Any).latest_checkpoint().unwrap_err();
        assert!(matches!(err, ClassicError::NoCheckpoint { .. }));
    }

    #[test]
    fn an_encrypted_group_is_refused_as_encrypted() {
        // MySQL 5.7.11+ and Percona write the encryption information of an
        // encrypted log at 1072 of ib_logfile0 (log_read_encryption)
        for magic in ENCRYPTION_MAGICS {
            let g = Group::new(2, 4);
            g.put(0, ENCRYPTION_INFO_OFFSET, magic);
            let err = LogClassic::open(g.dir.path(), BlockChecksum::Any).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, ClassicError::Encrypted { file, .. } if file.ends_with("ib_logfile0")),
                "{err:?}"
            );
            assert!(
                text.contains("the redo log is encrypted")
                    && text.contains(std::str::from_utf8(magic).unwrap())
                    && text.contains("offset 1072"),
                "{text}"
            );
        }
        // MariaDB 10.2–10.4: the format id with bit 31 (innodb_encrypt_log)
        let g = Group::new(2, 4);
        g.put(0, 0, &(104 | FORMAT_ENCRYPTED).to_be_bytes());
        let err = LogClassic::open(g.dir.path(), BlockChecksum::Any).unwrap_err();
        assert!(matches!(err, ClassicError::Encrypted { .. }), "{err:?}");
        assert!(err.to_string().contains("0x80000068"), "{err}");
        // a plain group has nothing there
        assert_eq!(encryption_magic(&[0u8; 2048]), None);
        assert_eq!(encryption_magic(&[0u8; 100]), None);
    }

    #[test]
    fn innodb_sum_matches_a_hand_computed_value() {
        // sum starts at 1; byte 1 adds 1 + (1 << 0) = 2; byte 2 adds 2 + (2 << 1) = 6
        assert_eq!(innodb_sum(&[1, 2]), 9);
    }
}
