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

/// Where the block at `lsn`'s file position comes from, judged by the
/// `hdr_no` it carries (flush bit already cleared or not: it is masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLap {
    /// The number `lsn` carries: the block of this lap.
    Same,
    /// The number of a later LSN (`lsn` plus one or more laps): the server
    /// wrote a later lap over the block we wanted.
    Newer,
    /// Any other number: an earlier lap, or a block never written (zeros).
    Older,
}

/// Compares the `hdr_no` stored in a block with the one `lsn` would carry.
/// Block numbers count modulo 2^30, so "newer" means ahead by less than
/// 2^29 blocks (256 GiB): every ring smaller than that tells the laps apart.
/// Only a block whose checksum holds is evidence (a zero block's number 0
/// reads as "newer" for half of all LSNs).
#[must_use]
pub fn block_lap(stored: u32, lsn: u64) -> BlockLap {
    match (stored & 0x7FFF_FFFF).wrapping_sub(hdr_no(lsn)) & 0x3FFF_FFFF {
        0 => BlockLap::Same,
        d if d < 1 << 29 => BlockLap::Newer,
        _ => BlockLap::Older,
    }
}
