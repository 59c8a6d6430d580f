//! Big-endian field reads (every InnoDB on-disk integer is big-endian) and
//! the block number every 512-byte-block redo format shares.
//!
//! Callers check lengths before reading fields; these helpers index directly.

/// `u16` at `at`.
#[must_use]
pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// `u32` at `at`.
#[must_use]
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `u64` at `at`.
#[must_use]
pub fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// The `hdr_no` a 512-byte redo block at `lsn` carries:
/// `1 + (lsn / 512 mod 2^30)` (MySQL classic and 8.0.30+, MariaDB 10.2–10.7).
#[must_use]
pub fn hdr_no(lsn: u64) -> u32 {
    // masked to 30 bits, so the cast cannot truncate
    1 + ((lsn / 512) & 0x3FFF_FFFF) as u32
}

/// Why a scan of 512-byte blocks stopped where it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockStop {
    /// The next block holds no newer log: never written, or left from an
    /// earlier lap (its block number belongs to an older LSN).
    End,
    /// The last block is only partly written yet (kept back until the end).
    Partial,
    /// The next block has the right number but a bad checksum (torn or
    /// corrupt), at this file and offset.
    BadChecksum {
        /// The file.
        file: std::path::PathBuf,
        /// Offset of the block in it.
        offset: u64,
    },
}
