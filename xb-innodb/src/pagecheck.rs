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
/// Page types of MySQL's encrypted pages (plain, compressed, R-tree).
const PAGE_ENCRYPTED: [u16; 3] = [15, 16, 17];
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
    let words = &data[head..];
    let whole = words.len() / 8 * 8;
    // reversed words are gathered so the CRC runs over long stretches
    let mut swapped = [0u8; 1024];
    for chunk in words[..whole].chunks(swapped.len()) {
        for (to, from) in swapped.chunks_exact_mut(8).zip(chunk.chunks_exact(8)) {
            to.copy_from_slice(from);
            to.reverse();
        }
        crc = crc32c::crc32c_append(crc, &swapped[..chunk.len()]);
    }
    crc32c::crc32c_append(crc, &words[whole..])
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
///
/// A page passes when the server that wrote it would read it without
/// calling it corrupt. The writer is not known here, so a page any of the
/// servers accepts passes: MySQL 5.6–9.x (`BlockReporter::is_corrupted` in
/// `buf/checksum.cc`, with the default non-strict `crc32` setting) and
/// MariaDB (`buf_page_is_corrupted` in `buf/buf0buf.cc`,
/// `page_zip_verify_checksum` in `page/page0zip.cc`). The page number must
/// also match the page's place, except in the system tablespace and for a
/// page that says it is page 0 of space 0: the servers take that for a
/// page never initialised (`buf_page_io_complete` /
/// `buf_page_t::read_complete`).
///
/// Not checked (the server decrypts or decompresses first): MySQL pages of
/// the encrypted types 15–17 and the transparently compressed type 14, and
/// MariaDB's `page_compressed` types outside the `full_crc32` format.
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
    let stored_no = be32(page, 4);
    let uninitialised = stored_no == 0 && be32(page, 34) == 0;
    if !system_space && stored_no != expected_page_no && !uninitialised {
        // the page's own number must match where it sits
        return Verdict::Bad("page number does not match its position");
    }
    if meta.full_crc32 {
        return check_full_crc32(page);
    }
    let ptype = be16(page, 24);
    if PAGE_ENCRYPTED.contains(&ptype)
        || ptype == PAGE_COMPRESSED
        || MARIADB_PAGE_COMPRESSED.contains(&ptype)
    {
        return Verdict::Unchecked;
    }
    if meta.compressed {
        return check_zip(page);
    }
    if be32(page, size - 4) != be32(page, 20) {
        return Verdict::Bad("LSN in the trailer differs from the header (torn write)");
    }
    let field1 = be32(page, 0);
    let field2 = be32(page, size - 8);
    if field1 == 0 && field2 == 0 && empty_but_flush_lsn(page) {
        // before MySQL 5.7 and MariaDB 10.1.25 the flush LSN was written
        // to page 0 of every system tablespace file, allocated or not
        return Verdict::Zero;
    }
    let same = field1 == field2;
    // crc32, or checksums off
    if same && (field1 == NO_CHECKSUM || field1 == crc_ranges(&[&page[4..26], &page[38..size - 8]]))
    {
        return Verdict::Valid;
    }
    // the "innodb" checksum: the old field holds the old formula, or (written
    // before 4.0.14) the high word of the LSN; the new field the new formula,
    // or 0 (the space id those versions wrote there). MariaDB also takes the
    // no-checksum magic in either field.
    let old_ok = field2 == be32(page, 16) || field2 == NO_CHECKSUM || field2 == fold(&page[..26]);
    if old_ok
        && (field1 == 0
            || field1 == NO_CHECKSUM
            || field1 == fold(&page[4..26]).wrapping_add(fold(&page[38..size - 8])))
    {
        return Verdict::Valid;
    }
    // MySQL only: CRC-32C as big-endian builds computed it before 5.7
    if same
        && field1 == crc32c_legacy_be(&page[4..26], 4) ^ crc32c_legacy_be(&page[38..size - 8], 38)
    {
        return Verdict::Valid;
    }
    Verdict::Bad("checksum mismatch")
}

/// Checksum value of pages written with `innodb_checksum_algorithm=none`.
const NO_CHECKSUM: u32 = 0xDEAD_BEEF;
/// Bytes 26..34: the flush LSN (system tablespace page 0 only, before
/// MySQL 5.7 / MariaDB 10.1.25); MariaDB also keeps the key version there.
const FLUSH_LSN: std::ops::Range<usize> = 26..34;
/// Page-type bit of a MariaDB `full_crc32` page-compressed page; the other
/// bits give its stored size in units of 256 bytes.
const FULL_CRC32_COMPRESSED: u16 = 1 << 15;

/// All zero but the flush LSN field.
fn empty_but_flush_lsn(page: &[u8]) -> bool {
    page[..FLUSH_LSN.start].iter().all(|&b| b == 0) && page[FLUSH_LSN.end..].iter().all(|&b| b == 0)
}

/// MariaDB's `full_crc32` format (`buf_page_is_corrupted`,
/// `buf_page_full_crc32_size`): CRC-32C of the page (of its stored part
/// when page-compressed) in its last 4 bytes, and, on pages neither
/// compressed nor encrypted, the low LSN word at `size − 8`.
fn check_full_crc32(page: &[u8]) -> Verdict {
    let size = page.len();
    let ptype = be16(page, 24);
    let (len, compressed) = if ptype & FULL_CRC32_COMPRESSED == 0 {
        (size, false)
    } else {
        let len = usize::from(ptype & !FULL_CRC32_COMPRESSED) << 8;
        if len >= size || len < 64 {
            return Verdict::Bad("page-compressed size does not fit the page");
        }
        (len, true)
    };
    if crc32c::crc32c(&page[..len - 4]) != be32(page, len - 4) {
        return Verdict::Bad("full_crc32 checksum mismatch");
    }
    // a non-zero key version at 0 marks an encrypted page, whose LSN
    // words are not compared
    if !compressed && be32(page, 0) == 0 && be32(page, 20) != be32(page, size - 8) {
        return Verdict::Bad("LSN in the trailer differs from the header (torn write)");
    }
    Verdict::Valid
}

/// ROW_FORMAT=COMPRESSED pages (MySQL `BlockReporter::verify_zip_checksum`,
/// MariaDB `page_zip_verify_checksum`): one checksum at 0 over bytes 4..16,
/// 24..26 and 34.., as CRC-32C, the "innodb" Adler-32 (started from 0, as
/// zlib's `adler32(0, …)` does) or the no-checksum magic. (MySQL 8.0 asks
/// for a legacy big-endian variant here too, but computes the plain
/// CRC-32C for it.) A zero checksum with a zero LSN is only accepted on an
/// all-zero page.
fn check_zip(page: &[u8]) -> Verdict {
    let stored = be32(page, 0);
    let ranges: [&[u8]; 3] = [&page[4..16], &page[24..26], &page[34..]];
    if stored == 0 && crate::be::be64(page, 16) == 0 {
        // an all-zero page returned earlier
        return Verdict::Bad("compressed page with a zero checksum and LSN is not empty");
    }
    if stored == crc_ranges(&ranges)
        || stored == NO_CHECKSUM
        || stored == adler32_from_zero(&ranges)
    {
        return Verdict::Valid;
    }
    Verdict::Bad("compressed page checksum mismatch")
}

/// Adler-32 of the concatenated ranges, started from 0 rather than the
/// usual 1 (InnoDB calls zlib's `adler32(0L, …)`).
fn adler32_from_zero(ranges: &[&[u8]]) -> u32 {
    let (mut a, mut b) = (0u32, 0u32);
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

    fn meta(physical_size: usize) -> SpaceMeta {
        SpaceMeta {
            space_id: 5,
            flags: 0,
            physical_size,
            full_crc32: false,
            compressed: false,
            page_compressed: false,
        }
    }

    /// A 16k page with data, number `no` and LSN 0x0000_0007_0000_1234,
    /// checksum fields still zero.
    fn unstamped(no: u32) -> Vec<u8> {
        let mut p = crc32_page(no, 16384);
        p[16..24].copy_from_slice(&0x0000_0007_0000_1234u64.to_be_bytes());
        p[16380..].copy_from_slice(&0x1234u32.to_be_bytes());
        p[0..4].fill(0);
        p[16376..16380].fill(0);
        p
    }

    fn stamp(p: &mut [u8], field1: u32, field2: u32) {
        let n = p.len();
        p[0..4].copy_from_slice(&field1.to_be_bytes());
        p[n - 8..n - 4].copy_from_slice(&field2.to_be_bytes());
    }

    fn innodb_new(p: &[u8]) -> u32 {
        let n = p.len();
        fold(&p[4..26]).wrapping_add(fold(&p[38..n - 8]))
    }

    #[test]
    fn pages_from_before_4_0_14_carry_the_lsn_high_word_and_a_zero_checksum() {
        // buf_page_is_checksum_valid_innodb (MariaDB),
        // BlockReporter::is_checksum_valid_innodb (MySQL): the old field may
        // hold the LSN's high word (bytes 16..20), the new one 0
        let meta = meta(16384);
        let mut p = unstamped(3);
        let new = innodb_new(&p);
        stamp(&mut p, 0, 7);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        stamp(&mut p, new, 7);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        // the low word is no checksum any server takes
        stamp(&mut p, new, 0x1234);
        assert_eq!(
            check_page(&p, &meta, 3, false),
            Verdict::Bad("checksum mismatch")
        );
        stamp(&mut p, 0, 0x1234);
        assert_eq!(
            check_page(&p, &meta, 3, false),
            Verdict::Bad("checksum mismatch")
        );
        // MariaDB takes the no-checksum magic in either field with the
        // "innodb" formula or the LSN word in the other
        let old = {
            stamp(&mut p, new, 0);
            fold(&p[..26])
        };
        stamp(&mut p, new, old);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        stamp(&mut p, NO_CHECKSUM, 7);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        stamp(&mut p, new, NO_CHECKSUM);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        stamp(&mut p, new.wrapping_add(1), 7);
        assert_eq!(
            check_page(&p, &meta, 3, false),
            Verdict::Bad("checksum mismatch")
        );
    }

    #[test]
    fn a_page_empty_but_for_the_flush_lsn_is_an_empty_page() {
        // buf_page_is_corrupted (MariaDB), BlockReporter::is_corrupted
        // (MySQL): both checksum fields zero and nothing else set but
        // bytes 26..34; page 0 of space 0 is taken for a page never
        // initialised wherever it sits (buf_page_t::read_complete,
        // buf_page_io_complete)
        let mut p = vec![0u8; 16384];
        p[26..34].copy_from_slice(&0x0000_0001_2345_6789u64.to_be_bytes());
        assert_eq!(check_page(&p, &meta(16384), 0, true), Verdict::Zero);
        assert_eq!(check_page(&p, &meta(16384), 64, true), Verdict::Zero);
        assert_eq!(check_page(&p, &meta(16384), 5, false), Verdict::Zero);
        // with anything else set the page is checked: zero checksum fields
        // and LSN on a page with data fail MySQL's empty-page test but pass
        // MariaDB's "innodb" rule (new field 0, old field the LSN high word)
        p[200] = 1;
        assert_eq!(check_page(&p, &meta(16384), 5, false), Verdict::Valid);
        p[16383] = 1;
        assert_eq!(
            check_page(&p, &meta(16384), 5, false),
            Verdict::Bad("LSN in the trailer differs from the header (torn write)")
        );
        // a numbered page in the wrong place still fails
        let q = crc32_page(9, 16384);
        assert_eq!(
            check_page(&q, &meta(16384), 5, false),
            Verdict::Bad("page number does not match its position")
        );
    }

    /// An 8k ROW_FORMAT=COMPRESSED page with data, stamped with `sum`.
    fn zip_page(sum: impl Fn(&[&[u8]]) -> u32) -> Vec<u8> {
        let mut p = vec![0u8; 8192];
        p[4..8].copy_from_slice(&3u32.to_be_bytes());
        p[16..24].copy_from_slice(&0x4_0000_1000u64.to_be_bytes());
        p[24..26].copy_from_slice(&17855u16.to_be_bytes());
        for (i, b) in p[38..3000].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let c = sum(&[&p[4..16], &p[24..26], &p[34..]]);
        p[0..4].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn compressed_pages_take_the_adler32_started_from_zero() {
        // BlockReporter::calc_zip_checksum (MySQL), page_zip_calc_checksum
        // (MariaDB): zlib's adler32(0, ...), not the usual start of 1
        assert_eq!(adler32_from_zero(&[b"Wikipedia"]), 0x11DD_0397);
        let meta = SpaceMeta {
            compressed: true,
            ..meta(8192)
        };
        let p = zip_page(adler32_from_zero);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        let from_one = |r: &[&[u8]]| {
            let (mut a, mut b) = (1u32, 0u32);
            for &x in r.iter().flat_map(|r| r.iter()) {
                a = (a + u32::from(x)) % 65_521;
                b = (b + a) % 65_521;
            }
            (b << 16) | a
        };
        assert_eq!(
            check_page(&zip_page(from_one), &meta, 3, false),
            Verdict::Bad("compressed page checksum mismatch")
        );
        for p in [zip_page(crc_ranges), zip_page(|_| NO_CHECKSUM)] {
            assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        }
        // a zero checksum and LSN pass only on a page all zero
        let mut p = zip_page(|_| 0);
        p[16..24].fill(0);
        assert_eq!(
            check_page(&p, &meta, 3, false),
            Verdict::Bad("compressed page with a zero checksum and LSN is not empty")
        );
    }

    #[test]
    fn encrypted_and_transparently_compressed_mysql_pages_are_left_unchecked() {
        for ptype in [14u16, 15, 16, 17] {
            let mut p = crc32_page(3, 16384);
            p[24..26].copy_from_slice(&ptype.to_be_bytes());
            assert_eq!(
                check_page(&p, &meta(16384), 3, false),
                Verdict::Unchecked,
                "{ptype}"
            );
        }
    }

    #[test]
    fn full_crc32_pages_follow_mariadb() {
        // buf_page_is_corrupted, buf_page_full_crc32_size
        let meta = SpaceMeta {
            full_crc32: true,
            flags: 0x15,
            ..meta(16384)
        };
        let mut p = full_crc32_page(3, 16384);
        // the low LSN word sits at size - 8, under the checksum
        p[16..24].copy_from_slice(&0x1_0000_0022u64.to_be_bytes());
        let restamp = |p: &mut Vec<u8>| {
            let c = crc32c::crc32c(&p[..16380]);
            p[16380..].copy_from_slice(&c.to_be_bytes());
        };
        restamp(&mut p);
        assert_eq!(
            check_page(&p, &meta, 3, false),
            Verdict::Bad("LSN in the trailer differs from the header (torn write)")
        );
        p[16376..16380].copy_from_slice(&0x22u32.to_be_bytes());
        restamp(&mut p);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        // an encrypted page (key version at 0) is not held to its LSN words
        p[0..4].copy_from_slice(&7u32.to_be_bytes());
        p[16376..16380].fill(0xAB);
        restamp(&mut p);
        assert_eq!(check_page(&p, &meta, 3, false), Verdict::Valid);
        // page-compressed: the type gives the stored size in 256-byte
        // units, and the checksum closes those bytes, in any tablespace
        let mut z = vec![0u8; 16384];
        z[4..8].copy_from_slice(&3u32.to_be_bytes());
        z[24..26].copy_from_slice(&(0x8000u16 | 12).to_be_bytes());
        z[40..2000].fill(0x5A);
        let c = crc32c::crc32c(&z[..3068]);
        z[3068..3072].copy_from_slice(&c.to_be_bytes());
        for page_compressed in [false, true] {
            let m = SpaceMeta {
                page_compressed,
                ..meta
            };
            assert_eq!(check_page(&z, &m, 3, false), Verdict::Valid);
            z[1000] ^= 1;
            assert_eq!(
                check_page(&z, &m, 3, false),
                Verdict::Bad("full_crc32 checksum mismatch")
            );
            z[1000] ^= 1;
        }
        // a size past the page (such as a pre-full_crc32 page_compressed type)
        z[24..26].copy_from_slice(&34354u16.to_be_bytes());
        assert_eq!(
            check_page(&z, &meta, 3, false),
            Verdict::Bad("page-compressed size does not fit the page")
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
