//! The tablespace sizes a MariaDB 10.5+ log sets: each WRITE record that
//! covers `FSP_SIZE` in a page 0 header.
//!
//! Why prepare needs them: a system tablespace (`ibdata1`) that grew while
//! the backup copied it is copied at its smaller size, and the log holds
//! the growth. Recovery extends every data file to the size the log set,
//! but MariaDB 10.5 checks the system tablespace against the size of its
//! files *as opened*, before that, and refuses to start ("The tail of the
//! system tablespace is missing"). Extending the copy beforehand, with the
//! zeros recovery itself would write, is what lets the server recover.
//!
//! Record walk (the encoding of [`crate::redo108_names`]): a record not for
//! the same page as the one before carries the space id and page number;
//! FREE_PAGE, INIT_PAGE and EXTENDED set where the next same-page offset
//! counts from; WRITE, MEMSET and MEMMOVE carry an offset *added* to the
//! end of the previous write on that page, then (WRITE) the bytes, or a
//! length (MEMSET, MEMMOVE), which moves that end on.

use std::collections::HashMap;
use std::path::Path;

use crate::redo::{RedoError, RedoFormat};
use crate::redo108_names::{Edit, record_len, varint_len};

const FREE_PAGE: u8 = 0x00;
const INIT_PAGE: u8 = 0x10;
const EXTENDED: u8 = 0x20;
const WRITE: u8 = 0x30;
const MEMSET: u8 = 0x40;
const MEMMOVE: u8 = 0x50;
/// Where a page's contents start after the FIL header's first fields: the
/// offset an INIT_PAGE or EXTENDED record leaves for the next same-page
/// record (`FIL_PAGE_TYPE`).
const FIL_PAGE_TYPE: usize = 24;
/// `FSP_HEADER_OFFSET + FSP_SIZE`: where page 0 holds the size in pages.
const FSP_SIZE_AT: usize = 38 + 8;

/// A MariaDB varint at `b[0..]`: its value and length, `None` when cut off.
fn varint(b: &[u8]) -> Option<(u32, usize)> {
    let &first = b.first()?;
    let len = varint_len(first);
    let rest = b.get(1..len)?;
    let (mask, add): (u32, u32) = match len {
        1 => (0xff, 0),
        2 => (0x3f, 0x80),
        3 => (0x1f, 0x4080),
        4 => (0x0f, 0x0020_4080),
        _ => (0, 0x1020_4080),
    };
    let mut v = u32::from(first) & mask;
    for &x in rest {
        v = v << 8 | u32::from(x);
    }
    Some((v.wrapping_add(add), len))
}

/// The sizes (space id, pages) that one mini-transaction's records `recs`
/// write into page 0 headers, in record order.
///
/// # Errors
/// A reason when a record is cut off or malformed.
pub fn page0_sizes(recs: &[u8]) -> Result<Vec<(u32, u32)>, String> {
    let mut sizes = Vec::new();
    let mut i = 0usize;
    let mut got_page_op = false;
    let (mut space, mut page, mut last) = (0u32, 0u32, 0usize);
    while i < recs.len() {
        let b = recs[i];
        let (head, total) = record_len(recs, i)?.ok_or("record length cut off")?;
        let end = i + total;
        let body = recs
            .get(i + head..end)
            .ok_or_else(|| format!("record at byte {i} runs past its mini-transaction"))?;
        let cut = || format!("record at byte {i} is cut off");
        let mut p = 0usize;
        if !(b & 0x80 != 0 && got_page_op) {
            let (s, n) = varint(body).ok_or_else(cut)?;
            let (pg, m) = varint(&body[n..]).ok_or_else(cut)?;
            (space, page, p) = (s, pg, n + m);
            last = 0;
            got_page_op = b & 0x80 == 0;
            if !got_page_op {
                i = end; // a file record: no page is written
                continue;
            }
        }
        match b & 0x70 {
            FREE_PAGE => last = 1,
            INIT_PAGE | EXTENDED => last = FIL_PAGE_TYPE,
            kind @ (WRITE | MEMSET | MEMMOVE) => {
                let (off, n) = varint(&body[p..]).ok_or_else(cut)?;
                p += n;
                last += off as usize;
                if kind == WRITE {
                    let data = &body[p..];
                    if page == 0 && last <= FSP_SIZE_AT && last + data.len() >= FSP_SIZE_AT + 4 {
                        let at = FSP_SIZE_AT - last;
                        let v = u32::from_be_bytes([
                            data[at],
                            data[at + 1],
                            data[at + 2],
                            data[at + 3],
                        ]);
                        sizes.push((space, v));
                    }
                    last += data.len();
                } else {
                    let (len, _) = varint(&body[p..]).ok_or_else(cut)?;
                    last += len as usize;
                }
            }
            _ => {} // RESERVED, OPTION: nothing a page keeps
        }
        i = end;
    }
    Ok(sizes)
}

/// The size each tablespace has once the log at `path` (a backup's copy,
/// in `format`) is applied from its latest checkpoint, for the spaces
/// whose size the log sets: the last size written wins, as in recovery.
/// Formats without physical records (classic, MySQL) give nothing.
///
/// # Errors
/// [`RedoError`] when the log cannot be read or a record is malformed.
pub fn recovered_sizes(path: &Path, format: RedoFormat) -> Result<HashMap<u32, u32>, RedoError> {
    let mut sizes = HashMap::new();
    let mut note = |recs: &[u8]| -> Result<Vec<Edit>, String> {
        sizes.extend(page0_sizes(recs)?);
        Ok(Vec::new())
    };
    match format {
        RedoFormat::MariaDb105 => {
            crate::redo105_names::edit_mtrs(path, &mut note, crate::redo105_names::WINDOW)?;
        }
        RedoFormat::MariaDb108 => {
            crate::redo108_names::edit_mtrs(path, &mut note)?;
        }
        RedoFormat::Classic | RedoFormat::MySql8030 => {}
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_in_each_length() {
        assert_eq!(varint(&[0x7f]), Some((0x7f, 1)));
        assert_eq!(varint(&[0x80, 0x00]), Some((0x80, 2)));
        assert_eq!(varint(&[0xbf, 0xff]), Some((0x407f, 2)));
        assert_eq!(varint(&[0xc0, 0, 0]), Some((0x4080, 3)));
        assert_eq!(varint(&[0xe0, 0, 0, 0]), Some((0x0020_4080, 4)));
        assert_eq!(varint(&[0xf0, 0, 0, 0, 1]), Some((0x1020_4081, 5)));
        assert_eq!(varint(&[0xc0, 0]), None);
    }

    /// A record of `kind` with `body` (a length that fits the type byte).
    fn rec(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind | u8::try_from(body.len()).unwrap()];
        r.extend(body);
        r
    }

    #[test]
    fn a_write_over_fsp_size_on_page_0_gives_the_size() {
        // WRITE space 0 page 0 at offset 46: 4 bytes 0x1300 = 4864 pages
        let mut recs = rec(WRITE, &[0, 0, 46, 0, 0, 0x13, 0x00]);
        // the same on page 3 of space 7: not a header
        recs.extend(rec(WRITE, &[7, 3, 46, 0, 0, 0x20, 0x00]));
        assert_eq!(page0_sizes(&recs).unwrap(), [(0, 4864)]);
    }

    #[test]
    fn same_page_offsets_count_from_the_end_of_the_last_write() {
        // space 5 page 0: WRITE at 40 of 2 bytes (ends at 42), then a
        // same-page WRITE 4 further on: at 46, the size 0x0140 = 320
        let mut recs = rec(WRITE, &[5, 0, 40, 0xaa, 0xbb]);
        recs.extend(rec(0x80 | WRITE, &[4, 0, 0, 0x01, 0x40]));
        assert_eq!(page0_sizes(&recs).unwrap(), [(5, 320)]);
        // a MEMSET of 6 bytes from 40 moves the end the same way
        let mut recs = rec(MEMSET, &[5, 0, 40, 6, 0]);
        recs.extend(rec(0x80 | WRITE, &[0, 0, 0, 0x02, 0x00]));
        assert_eq!(page0_sizes(&recs).unwrap(), [(5, 512)]);
        // after INIT_PAGE the next same-page offset counts from 24
        let mut recs = rec(INIT_PAGE, &[5, 0]);
        recs.extend(rec(0x80 | WRITE, &[22, 0, 0, 0x00, 0x40]));
        assert_eq!(page0_sizes(&recs).unwrap(), [(5, 64)]);
    }

    #[test]
    fn a_write_that_covers_only_part_of_the_size_gives_nothing() {
        let recs = rec(WRITE, &[0, 0, 47, 0, 0, 0x13, 0x00]);
        assert_eq!(page0_sizes(&recs).unwrap(), []);
        let recs = rec(WRITE, &[0, 0, 44, 0, 0, 0x13]);
        assert_eq!(page0_sizes(&recs).unwrap(), []);
    }

    #[test]
    fn file_records_are_skipped_and_cut_records_refused() {
        // FILE_MODIFY (0xb0) for space 5: a name, no page write
        let mut recs = rec(0xb0, b"\x05\x00./d/t.ibd");
        recs.extend(rec(WRITE, &[0, 0, 46, 0, 0, 0x01, 0x00]));
        assert_eq!(page0_sizes(&recs).unwrap(), [(0, 256)]);
        assert!(page0_sizes(&recs[..recs.len() - 1]).is_err());
        assert!(page0_sizes(&[WRITE | 2, 0xc0, 0]).is_err());
    }
}
