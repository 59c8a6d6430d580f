//! Tablespace pages: page size from page 0, and the checksum check a copy
//! thread applies to every page it reads from a live file.
//!
//! | offset | size | field (every page) |
//! |---|---|---|
//! | 0 | 4 | checksum (crc32 / innodb formats) |
//! | 4 | 4 | page number |
//! | 16 | 8 | page LSN |
//! | 24 | 2 | page type |
//! | 34 | 4 | space id |
//! | 54 | 4 | FSP flags (page 0 only) |
//! | size−8 | 4 | old-style checksum; full_crc32: low 32 bits of the LSN |
//! | size−4 | 4 | low 32 bits of the LSN; full_crc32: CRC-32C of bytes 0..size−4 |

use crate::be::{be16, be32};

/// Page type of transparently compressed pages (MySQL).
const PAGE_COMPRESSED: u16 = 14;
/// Page types of encrypted pages.
const PAGE_ENCRYPTED: [u16; 2] = [15, 16];
/// MariaDB page_compressed page types.
const MARIADB_PAGE_COMPRESSED: [u16; 2] = [34354, 37401];

/// What page 0 says about a tablespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceMeta {
    /// Space id.
    pub space_id: u32,
    /// Raw FSP flags.
    pub flags: u32,
    /// Size in bytes of a page on disk (the zip size for ROW_FORMAT=COMPRESSED).
    pub physical_size: usize,
    /// True for MariaDB's `full_crc32` format.
    pub full_crc32: bool,
    /// True for ROW_FORMAT=COMPRESSED.
    pub compressed: bool,
    /// True when pages may be page-compressed (MariaDB PAGE_COMPRESSED=1).
    pub page_compressed: bool,
}

/// Why page 0 could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("page 0: {0}")]
pub struct SpaceMetaError(pub String);

impl SpaceMeta {
    /// Decodes page 0 (at least its first 4096 bytes). `server_page_size` is
    /// used where the flags leave the size implicit (old formats: 0 = 16k).
    ///
    /// # Errors
    /// When the flags hold an impossible page size.
    pub fn from_page0(page0: &[u8], server_page_size: usize) -> Result<Self, SpaceMetaError> {
        if page0.len() < 58 {
            return Err(SpaceMetaError(format!("only {} bytes", page0.len())));
        }
        let space_id = be32(page0, 34);
        let flags = be32(page0, 54);
        let full_crc32 = flags & (1 << 4) != 0;
        if full_crc32 {
            let ssize = flags & 15;
            if !(3..=7).contains(&ssize) {
                return Err(SpaceMetaError(format!(
                    "full_crc32 flags {flags:#x} with page size code {ssize}"
                )));
            }
            return Ok(SpaceMeta {
                space_id,
                flags,
                physical_size: 512 << ssize,
                full_crc32,
                compressed: false,
                page_compressed: flags >> 5 & 7 != 0,
            });
        }
        let zip = (flags >> 1) & 15;
        let ssize = (flags >> 6) & 15;
        let logical = match ssize {
            0 => server_page_size,
            3..=7 => 512 << ssize,
            _ => {
                return Err(SpaceMetaError(format!(
                    "flags {flags:#x} with page size code {ssize}"
                )));
            }
        };
        let physical = match zip {
            0 => logical,
            1..=5 => 512 << zip,
            _ => {
                return Err(SpaceMetaError(format!(
                    "flags {flags:#x} with zip size code {zip}"
                )));
            }
        };
        Ok(SpaceMeta {
            space_id,
            flags,
            physical_size: physical,
            full_crc32: false,
            compressed: zip != 0,
            // MariaDB's PAGE_COMPRESSION flag (bit 16) in the pre-full_crc32 layout.
            page_compressed: flags & (1 << 16) != 0,
        })
    }
}

/// The verdict on one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Checksum valid.
    Valid,
    /// All zero (allocated, never written): valid.
    Zero,
    /// Encrypted or page-compressed: not checked here, copied as is.
    Unchecked,
    /// Not valid; the reason.
    Bad(&'static str),
}

fn fold(bytes: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    for &b in bytes {
        let b = u32::from(b);
        acc = (((acc ^ b ^ 1_653_893_711) << 8).wrapping_add(acc) ^ 1_463_735_687).wrapping_add(b);
    }
    acc
}

/// CRC-32C as old MySQL builds computed it on big-endian machines: single
/// bytes up to an 8-byte boundary of the page, then 8-byte words with their
/// bytes reversed, then the tail. Servers still accept it for crc32 pages.
fn crc32c_legacy_be(data: &[u8], start_offset: usize) -> u32 {
    let head = ((8 - start_offset % 8) % 8).min(data.len());
    let mut crc = crc32c::crc32c(&data[..head]);
    let mut rest = &data[head..];
    while rest.len() >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&rest[..8]);
        w.reverse();
        crc = crc32c::crc32c_append(crc, &w);
        rest = &rest[8..];
    }
    crc32c::crc32c_append(crc, rest)
}

/// Page LSN (bytes 16..24).
#[must_use]
pub fn page_lsn(page: &[u8]) -> Option<u64> {
    page.get(16..24).map(|b| crate::be::be64(b, 0))
}

/// Page number (bytes 4..8).
#[must_use]
pub fn page_no(page: &[u8]) -> Option<u32> {
    page.get(4..8).map(|b| be32(b, 0))
}

/// Space id (bytes 34..38).
#[must_use]
pub fn space_id(page: &[u8]) -> Option<u32> {
    page.get(34..38).map(|b| be32(b, 0))
}

/// Page type (bytes 24..26).
#[must_use]
pub fn page_type(page: &[u8]) -> Option<u16> {
    page.get(24..26).map(|b| be16(b, 0))
}

/// A page that failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPage {
    /// Its page number.
    pub page_no: u64,
    /// Why.
    pub reason: &'static str,
}

/// Checks every whole page of `buf`, whose first page is `first_page_no`;
/// returns the bad ones. The system tablespace skips the page-number check
/// and its doublewrite area (two extents after the first).
#[must_use]
pub fn check_batch(buf: &[u8], meta: &SpaceMeta, first_page_no: u64, system: bool) -> Vec<BadPage> {
    let ps = meta.physical_size.max(1);
    let extent: u64 = if ps <= 16384 {
        (1 << 20) / ps as u64
    } else {
        64
    };
    buf.chunks_exact(ps)
        .enumerate()
        .filter_map(|(i, page)| {
            let no = first_page_no + i as u64;
            if system && (extent..3 * extent).contains(&no) {
                return None;
            }
            match check_page(page, meta, u32::try_from(no).unwrap_or(u32::MAX), system) {
                Verdict::Bad(reason) => Some(BadPage {
                    page_no: no,
                    reason,
                }),
                _ => None,
            }
        })
        .collect()
}

fn crc_ranges(ranges: &[&[u8]]) -> u32 {
    ranges.iter().fold(0, |acc, r| acc ^ crc32c::crc32c(r))
}

/// Checks one page (`page.len()` = the physical page size).
#[must_use]
pub fn check_page(
    page: &[u8],
    meta: &SpaceMeta,
    expected_page_no: u32,
    system_space: bool,
) -> Verdict {
    let size = page.len();
    if size < 1024 {
        return Verdict::Bad("shorter than the smallest page");
    }
    if page.iter().all(|&b| b == 0) {
        return Verdict::Zero;
    }
    if !system_space && be32(page, 4) != expected_page_no {
        // the page's own number must match where it sits
        return Verdict::Bad("page number does not match its position");
    }
    let ptype = be16(page, 24);
    if meta.full_crc32 {
        if MARIADB_PAGE_COMPRESSED.contains(&ptype) || meta.page_compressed && expected_page_no != 0
        {
            return Verdict::Unchecked;
        }
        return if crc32c::crc32c(&page[..size - 4]) == be32(page, size - 4) {
            Verdict::Valid
        } else {
            Verdict::Bad("full_crc32 checksum mismatch")
        };
    }
    if PAGE_ENCRYPTED.contains(&ptype)
        || ptype == PAGE_COMPRESSED
        || MARIADB_PAGE_COMPRESSED.contains(&ptype)
    {
        return Verdict::Unchecked;
    }
    let field1 = be32(page, 0);
    if meta.compressed {
        let c = crc_ranges(&[&page[4..16], &page[24..26], &page[34..]]);
        if field1 == c
            || field1 == 0xDEAD_BEEF
            || field1 == adler_ranges(&[&page[4..16], &page[24..26], &page[34..]])
        {
            return Verdict::Valid;
        }
        return Verdict::Bad("compressed page checksum mismatch");
    }
    let field2 = be32(page, size - 8);
    if be32(page, size - 4) != be32(page, 20) {
        return Verdict::Bad("LSN in the trailer differs from the header (torn write)");
    }
    let crc = crc_ranges(&[&page[4..26], &page[38..size - 8]]);
    if field1 == crc && field2 == crc {
        return Verdict::Valid;
    }
    let legacy = crc32c_legacy_be(&page[4..26], 4) ^ crc32c_legacy_be(&page[38..size - 8], 38);
    if field1 == legacy && field2 == legacy {
        return Verdict::Valid;
    }
    if field1 == 0xDEAD_BEEF && field2 == 0xDEAD_BEEF {
        return Verdict::Valid;
    }
    let new = fold(&page[4..26]).wrapping_add(fold(&page[38..size - 8]));
    let old = fold(&page[..26]);
    if field1 == new && (field2 == old || field2 == be32(page, 20)) {
        return Verdict::Valid;
    }
    Verdict::Bad("checksum mismatch")
}

fn adler_ranges(ranges: &[&[u8]]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for r in ranges {
        for &x in *r {
            a = (a + u32::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_crc32_page(no: u32, size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size];
        p[4..8].copy_from_slice(&no.to_be_bytes());
        p[24..26].copy_from_slice(&17855u16.to_be_bytes());
        for (i, b) in p[38..size - 8].iter_mut().enumerate() {
            *b = (i % 253) as u8;
        }
        let c = crc32c::crc32c(&p[..size - 4]);
        p[size - 4..].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn crc32_page(no: u32, size: usize) -> Vec<u8> {
        let mut p = full_crc32_page(no, size);
        p[16..24].copy_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
        let lsn_low: Vec<u8> = p[20..24].to_vec();
        p[size - 4..].copy_from_slice(&lsn_low);
        let c = crc_ranges(&[&p[4..26], &p[38..size - 8]]);
        p[0..4].copy_from_slice(&c.to_be_bytes());
        p[size - 8..size - 4].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn valid_pages_pass_and_any_flipped_byte_fails() {
        let meta_f = SpaceMeta {
            space_id: 5,
            flags: 0x15,
            physical_size: 16384,
            full_crc32: true,
            compressed: false,
            page_compressed: false,
        };
        let meta_c = SpaceMeta {
            full_crc32: false,
            flags: 0,
            ..meta_f
        };
        for (page, meta) in [
            (full_crc32_page(3, 16384), meta_f),
            (crc32_page(3, 16384), meta_c),
        ] {
            assert_eq!(check_page(&page, &meta, 3, false), Verdict::Valid);
            assert!(matches!(
                check_page(&page, &meta, 4, false),
                Verdict::Bad(_)
            ));
            // bytes 26..38 (flush LSN, space id) are outside the crc32
            // format's checksum, as in InnoDB itself
            let covered: &[usize] = if meta.full_crc32 {
                &[0, 5, 30, 100, 9000, 16383]
            } else {
                &[0, 5, 100, 9000, 16383]
            };
            for &at in covered {
                let mut bad = page.clone();
                bad[at] ^= 0x40;
                assert!(
                    matches!(check_page(&bad, &meta, 3, false), Verdict::Bad(_)),
                    "flip at {at}"
                );
            }
        }
        assert_eq!(
            check_page(&vec![0u8; 16384], &meta_f, 9, false),
            Verdict::Zero
        );
    }

    #[test]
    fn legacy_big_endian_crc32_pages_pass_and_batches_name_bad_pages() {
        let meta = SpaceMeta {
            space_id: 5,
            flags: 0,
            physical_size: 16384,
            full_crc32: false,
            compressed: false,
            page_compressed: false,
        };
        let mut p = crc32_page(7, 16384);
        let legacy = crc32c_legacy_be(&p[4..26], 4) ^ crc32c_legacy_be(&p[38..16384 - 8], 38);
        assert_ne!(legacy, be32(&p, 0), "the variants differ");
        p[0..4].copy_from_slice(&legacy.to_be_bytes());
        p[16376..16380].copy_from_slice(&legacy.to_be_bytes());
        assert_eq!(check_page(&p, &meta, 7, false), Verdict::Valid);
        assert_eq!((page_no(&p), page_type(&p)), (Some(7), Some(17855)));
        assert_eq!(page_lsn(&p), Some(0x1234_5678_9abc_def0));
        let mut batch = crc32_page(7, 16384);
        let mut second = crc32_page(8, 16384);
        second[9000] ^= 1;
        batch.extend(second);
        assert_eq!(
            check_batch(&batch, &meta, 7, false),
            vec![BadPage {
                page_no: 8,
                reason: "checksum mismatch"
            }]
        );
    }

    #[test]
    fn page0_flags_give_the_page_size() {
        let mut p0 = vec![0u8; 4096];
        p0[54..58].copy_from_slice(&0x15u32.to_be_bytes()); // full_crc32, 16k
        assert_eq!(
            SpaceMeta::from_page0(&p0, 16384).unwrap().physical_size,
            16384
        );
        p0[54..58].copy_from_slice(&0x13u32.to_be_bytes()); // full_crc32, 4k
        assert_eq!(
            SpaceMeta::from_page0(&p0, 16384).unwrap().physical_size,
            4096
        );
        p0[54..58].copy_from_slice(&((4u32 << 1) | 1).to_be_bytes()); // zip 8k
        let m = SpaceMeta::from_page0(&p0, 16384).unwrap();
        assert!(m.compressed);
        assert_eq!(m.physical_size, 8192);
        p0[54..58].copy_from_slice(&(15u32 << 6).to_be_bytes());
        assert!(SpaceMeta::from_page0(&p0, 16384).is_err());
    }
}
