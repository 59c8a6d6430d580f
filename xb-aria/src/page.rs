//! Page checksums of Aria tables with `PAGE_CHECKSUM=1`.
//!
//! The last 4 bytes of a page (little-endian) hold a CRC-32 (zlib's, seeded
//! with the page number) of the page's content: the whole page before the
//! CRC for data pages, the used part for key pages. Two values are never a
//! CRC and mean "no checksum": `0xffffffff` on normal pages, `0xfffffffe`
//! on bitmap pages (a computed CRC that would collide is stored as
//! `0xfffffffd`). A data page whose content is all zero has never been
//! written and is accepted, as MariaDB's own backup reader accepts it.

use crate::header::{CRC_SIZE, Capabilities};

/// "No checksum" on a data or key page.
pub const NO_CRC_NORMAL: u32 = 0xffff_ffff;
/// "No checksum" on a bitmap page.
pub const NO_CRC_BITMAP: u32 = 0xffff_fffe;

/// Why a page does not check out (as read: it may be torn, or half written).
pub type Verdict = Result<(), &'static str>;

/// The CRC the server stores for `data` on page `page_no`.
#[must_use]
pub fn crc(page_no: u64, data: &[u8]) -> u32 {
    // the server takes the page number as a 32-bit seed
    #[allow(clippy::cast_possible_truncation)]
    let mut h = crc32fast::Hasher::new_with_initial(page_no as u32);
    h.update(data);
    let c = h.finalize();
    if c >= NO_CRC_BITMAP {
        NO_CRC_BITMAP - 1
    } else {
        c
    }
}

fn stored(page: &[u8]) -> u32 {
    let at = page.len() - CRC_SIZE;
    u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
}

fn check(page: &[u8], page_no: u64, no_crc: u32, len: usize) -> Verdict {
    let want = stored(page);
    if want >= NO_CRC_BITMAP {
        return if want == no_crc {
            Ok(())
        } else {
            Err("wrong no-checksum marker")
        };
    }
    if crc(page_no, &page[..len]) == want {
        Ok(())
    } else {
        Err("checksum mismatch")
    }
}

/// Checks page `page_no` of a data file (`.MAD`); `page` is one block.
pub fn check_data_page(cap: &Capabilities, page_no: u64, page: &[u8]) -> Verdict {
    let len = page.len() - CRC_SIZE;
    if page[..len].iter().all(|&b| b == 0) {
        return Ok(());
    }
    let no_crc = if page_no % cap.bitmap_pages_covered() == 0 {
        NO_CRC_BITMAP
    } else {
        NO_CRC_NORMAL
    };
    check(page, page_no, no_crc, len)
}

/// Checks block `page_no` of an index file (`.MAI`); the header blocks
/// carry no checksum and always pass.
pub fn check_index_page(cap: &Capabilities, page_no: u64, page: &[u8]) -> Verdict {
    if page_no < cap.header_blocks() || page.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let at = cap.keypage_header;
    let used = usize::from(u16::from_be_bytes([page[at - 2], page[at - 1]]));
    if used > page.len() - CRC_SIZE {
        return Err("used length past the checksum");
    }
    check(page, page_no, NO_CRC_NORMAL, used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::tests::{TRANSACTIONAL, unhex};

    pub(crate) fn cap() -> Capabilities {
        let mut head = unhex(TRANSACTIONAL);
        head.resize(524, 0);
        Capabilities::parse(&head).unwrap()
    }

    /// A data page as the server writes it: content, then its CRC.
    pub(crate) fn data_page(page_no: u64, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; 8192];
        let c = crc(page_no, &p[..8188]);
        p[8188..].copy_from_slice(&c.to_le_bytes());
        p
    }

    #[test]
    fn data_pages_check_by_crc_and_torn_ones_do_not() {
        let cap = cap();
        let p = data_page(7, 0x5a);
        assert_eq!(check_data_page(&cap, 7, &p), Ok(()));
        // the same bytes read as another page number
        assert!(check_data_page(&cap, 8, &p).is_err());
        // half new, half old
        let mut torn = p.clone();
        torn[4096..8188].fill(0x11);
        assert_eq!(check_data_page(&cap, 7, &torn), Err("checksum mismatch"));
        // never written
        assert_eq!(check_data_page(&cap, 9, &[0u8; 8192]), Ok(()));
    }

    #[test]
    fn the_no_checksum_markers_belong_to_their_kind_of_page() {
        let cap = cap();
        let mut bitmap = vec![1u8; 8192];
        bitmap[8188..].copy_from_slice(&NO_CRC_BITMAP.to_le_bytes());
        // page 0 and every bitmap_pages_covered-th page are bitmaps
        assert_eq!(check_data_page(&cap, 0, &bitmap), Ok(()));
        assert_eq!(check_data_page(&cap, 21_825, &bitmap), Ok(()));
        assert!(check_data_page(&cap, 1, &bitmap).is_err());
        let mut normal = vec![1u8; 8192];
        normal[8188..].copy_from_slice(&NO_CRC_NORMAL.to_le_bytes());
        assert_eq!(check_data_page(&cap, 1, &normal), Ok(()));
        assert!(check_data_page(&cap, 0, &normal).is_err());
    }

    #[test]
    fn key_pages_check_their_used_part_only() {
        let cap = cap();
        let mut p = vec![0u8; 8192];
        p[..17].copy_from_slice(&[9; 17]);
        // used length: 100 bytes
        p[15..17].copy_from_slice(&100u16.to_be_bytes());
        p[17..100].fill(0x33);
        let c = crc(3, &p[..100]);
        p[8188..].copy_from_slice(&c.to_le_bytes());
        assert_eq!(check_index_page(&cap, 3, &p), Ok(()));
        // bytes past the used part are not covered
        p[4000] = 0xee;
        assert_eq!(check_index_page(&cap, 3, &p), Ok(()));
        p[50] ^= 1;
        assert!(check_index_page(&cap, 3, &p).is_err());
        // the header block is not checked
        assert_eq!(check_index_page(&cap, 0, &p), Ok(()));
        p[15..17].copy_from_slice(&9000u16.to_be_bytes());
        assert_eq!(
            check_index_page(&cap, 3, &p),
            Err("used length past the checksum")
        );
    }

    #[test]
    fn a_crc_that_would_read_as_a_marker_is_stored_one_below() {
        // the seed makes any value reachable; find a page number whose CRC
        // of an empty content is a marker: crc32 of nothing is the seed
        assert_eq!(crc(0xffff_fffe, &[]), NO_CRC_BITMAP - 1);
        assert_eq!(crc(0xffff_ffff, &[]), NO_CRC_BITMAP - 1);
        assert_eq!(crc(5, &[]), 5);
    }
}
