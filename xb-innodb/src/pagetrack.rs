//! MySQL's changed-page lists (`component_mysqlbackup`,
//! `mysqlbackup_page_track_get_changed_pages`): the server writes
//! `<datadir>/#meb/<backup id>.idx`, a run of 8-byte records, each a space
//! id and a page number (both big-endian u32), one per page changed in the
//! asked LSN range. Pure format code: the caller reads the bytes.

use std::collections::{HashMap, HashSet};

/// Why a changed-page list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a changed-page list of {len} bytes is not a whole number of 8-byte records")]
pub struct PageListError {
    /// The list's length.
    pub len: usize,
}

/// The changed pages of each tablespace, by space id, in increasing page
/// order without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedPages {
    by_space: HashMap<u32, Vec<u32>>,
    /// Spaces the list cannot speak for (see [`ChangedPages::uncover`]).
    uncovered: HashSet<u32>,
}

impl ChangedPages {
    /// Parses a list the server wrote.
    ///
    /// # Errors
    /// [`PageListError`] when the bytes are not whole records.
    pub fn parse(bytes: &[u8]) -> Result<Self, PageListError> {
        if bytes.len() % 8 != 0 {
            return Err(PageListError { len: bytes.len() });
        }
        let mut by_space: HashMap<u32, Vec<u32>> = HashMap::new();
        for rec in bytes.chunks_exact(8) {
            let space = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let page = u32::from_be_bytes([rec[4], rec[5], rec[6], rec[7]]);
            by_space.entry(space).or_default().push(page);
        }
        for pages in by_space.values_mut() {
            pages.sort_unstable();
            pages.dedup();
        }
        Ok(ChangedPages {
            by_space,
            uncovered: HashSet::new(),
        })
    }

    /// Marks `space` as one whose changes the list may not name: pages the
    /// server writes without redo (a bulk index build) are not filed
    /// reliably, so a space that had an index built is read whole.
    pub fn uncover(&mut self, space: u32) {
        self.uncovered.insert(space);
    }

    /// True when the list names every changed page of `space`.
    #[must_use]
    pub fn covers(&self, space: u32) -> bool {
        !self.uncovered.contains(&space)
    }

    /// The changed pages of `space` (none: nothing changed in it).
    #[must_use]
    pub fn of(&self, space: u32) -> &[u32] {
        self.by_space.get(&space).map_or(&[], Vec::as_slice)
    }

    /// Pages in the list.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_space.values().map(Vec::len).sum()
    }

    /// True when nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Splits sorted page numbers into runs of consecutive pages of at most
/// `max` pages: `(first page, count)`.
#[must_use]
pub fn runs(pages: &[u32], max: usize) -> Vec<(u32, usize)> {
    let mut out: Vec<(u32, usize)> = Vec::new();
    for &p in pages {
        match out.last_mut() {
            Some((first, n))
                if *n < max.max(1) && u64::from(*first) + *n as u64 == u64::from(p) =>
            {
                *n += 1;
            }
            _ => out.push((p, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(space: u32, page: u32) -> Vec<u8> {
        let mut v = space.to_be_bytes().to_vec();
        v.extend_from_slice(&page.to_be_bytes());
        v
    }

    #[test]
    fn a_list_groups_pages_by_space_sorted_without_repeats() {
        let bytes: Vec<u8> = [
            rec(0xFFFF_FFEE, 0x86),
            rec(2, 5),
            rec(0, 5),
            rec(2, 3),
            rec(2, 5),
            rec(0xFFFF_FFFE, 0x24d),
        ]
        .concat();
        let c = ChangedPages::parse(&bytes).unwrap();
        assert_eq!(c.of(2), &[3, 5]);
        assert_eq!(c.of(0), &[5]);
        assert_eq!(c.of(0xFFFF_FFFE), &[0x24d]);
        assert_eq!(c.of(7), &[] as &[u32]);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn a_torn_list_is_refused() {
        assert_eq!(
            ChangedPages::parse(&[0; 12]),
            Err(PageListError { len: 12 })
        );
        assert!(ChangedPages::parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn runs_join_consecutive_pages_up_to_a_limit() {
        assert_eq!(
            runs(&[1, 2, 3, 7, 8, 10], 64),
            vec![(1, 3), (7, 2), (10, 1)]
        );
        assert_eq!(runs(&[1, 2, 3, 4, 5], 2), vec![(1, 2), (3, 2), (5, 1)]);
        assert!(runs(&[], 4).is_empty());
    }
}
