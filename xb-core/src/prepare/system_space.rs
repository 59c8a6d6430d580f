//! The system tablespace grown, before recovery, to the size recovery will
//! give it.
//!
//! A backup reads each data file up to its size when the copy opened it
//! (xb and mariadb-backup alike), so an `ibdata1` the server extended
//! during the copy is copied short; the extension is in the copied redo,
//! and may already be in the copied page 0 (flushed between the open and
//! the read of page 0). Recovery extends data files to the size the log
//! gives them, but MariaDB 10.5 first compares the `FSP_SIZE` of page 0
//! with the size of the files *as opened* and refuses to start ("The tail
//! of the system tablespace is missing"). So prepare writes the zeros
//! recovery would write, beforehand: the last system data file is extended
//! to the larger of page 0's size and the log's.
//!
//! Why zeros are right: the extension happened after the copy opened the
//! file, so after the backup's checkpoint, and every page used in it since
//! is initialised by a redo record recovery applies.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xb_innodb::redo::RedoFormat;
use xb_innodb::redo_sizes::recovered_sizes;

use super::error::{PrepareError, io_err};
use crate::optfile;

/// `FSP_HEADER_OFFSET + FSP_SIZE`: page 0's size in pages.
const FSP_SIZE_AT: u64 = 38 + 8;

/// A system data file extended before recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grown {
    /// The file extended (the last system data file).
    pub file: PathBuf,
    /// Pages of the whole system tablespace before.
    pub from_pages: u64,
    /// Pages after: what page 0 or the log says it has.
    pub to_pages: u64,
}

/// The system tablespace layout `backup-my.cnf` gives: the data files'
/// names (`innodb_data_file_path`) and the page size.
fn layout(dir: &Path) -> Result<(Vec<String>, u64), PrepareError> {
    let cnf = dir.join("backup-my.cnf");
    let opts = optfile::read_groups(&cnf, &["mysqld"]).map_err(|e| match e {
        optfile::OptionFileError::Read { path, source } => PrepareError::Io { path, source },
        other => PrepareError::BadSettings {
            file: cnf.clone(),
            reason: other.to_string(),
        },
    })?;
    let names = crate::run::files::system_file_names(
        &opts.get("innodb_data_file_path").unwrap_or_default(),
    );
    let page_size = match opts.get("innodb_page_size") {
        None => 16_384,
        Some(v) => parse_page_size(&v).ok_or_else(|| PrepareError::BadSettings {
            file: cnf.clone(),
            reason: format!("innodb_page_size={v} is not a page size"),
        })?,
    };
    Ok((names, page_size))
}

/// `16384` or `16k` (4k to 64k).
fn parse_page_size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let n = match v.strip_suffix('k') {
        Some(k) => k.parse::<u64>().ok()? << 10,
        None => v.parse().ok()?,
    };
    (n.is_power_of_two() && (4096..=65_536).contains(&n)).then_some(n)
}

/// Grows the system tablespace of the backup in `dir` when page 0, or the
/// copied log in `redo_dir` (in `format`), gives it more pages than its
/// files hold. Returns what was grown, `None` when nothing needed to be.
///
/// # Errors
/// [`PrepareError::Io`] when a file cannot be read or extended,
/// [`PrepareError::BadSettings`] for a `backup-my.cnf` that cannot be
/// read as options, [`PrepareError::UnsupportedLog`] when the log cannot
/// be walked.
pub(super) fn grow(
    dir: &Path,
    redo_dir: &Path,
    format: RedoFormat,
) -> Result<Option<Grown>, PrepareError> {
    let log = redo_dir.join("ib_logfile0");
    let logged = match format {
        RedoFormat::MariaDb105 | RedoFormat::MariaDb108 => recovered_sizes(&log, format)
            .map_err(|e| PrepareError::UnsupportedLog {
                file: log.clone(),
                reason: e.to_string(),
            })?
            .get(&0)
            .copied(),
        RedoFormat::Classic | RedoFormat::MySql8030 => None,
    };
    let (names, page_size) = layout(dir)?;
    grow_to(dir, &names, page_size, logged.map(u64::from))
}

/// [`grow`] once the log's size for the system tablespace (`logged`) is
/// known: the files `names` in `dir`, pages of `page_size` bytes.
fn grow_to(
    dir: &Path,
    names: &[String],
    page_size: u64,
    logged: Option<u64>,
) -> Result<Option<Grown>, PrepareError> {
    let (Some(first), Some(last)) = (names.first(), names.last()) else {
        return Ok(None);
    };
    let first = dir.join(first);
    let mut size_field = [0u8; 4];
    let f = fs::File::open(&first).map_err(io_err(&first))?;
    f.read_exact_at(&mut size_field, FSP_SIZE_AT)
        .map_err(io_err(&first))?;
    let in_page0 = u64::from(u32::from_be_bytes(size_field));
    let mut bytes = 0u64;
    for n in names {
        let p = dir.join(n);
        bytes += fs::metadata(&p).map_err(io_err(&p))?.len();
    }
    let have = bytes / page_size;
    let want = in_page0.max(logged.unwrap_or(0));
    if want <= have {
        return Ok(None);
    }
    let last = dir.join(last);
    let last_len = fs::metadata(&last).map_err(io_err(&last))?.len();
    let file = OpenOptions::new()
        .write(true)
        .open(&last)
        .map_err(io_err(&last))?;
    file.set_len(last_len + (want - have) * page_size)
        .map_err(io_err(&last))?;
    file.sync_all().map_err(io_err(&last))?;
    Ok(Some(Grown {
        file: last,
        from_pages: have,
        to_pages: want,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 16_384;

    /// A system data file of `pages` pages whose page 0 says `size`.
    fn data_file(dir: &Path, name: &str, pages: u64, size: u32) {
        let mut b = vec![0u8; usize::try_from(pages * PAGE).unwrap()];
        b[46..50].copy_from_slice(&size.to_be_bytes());
        fs::write(dir.join(name), b).unwrap();
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn a_page0_larger_than_the_file_grows_the_file() {
        let d = tempfile::tempdir().unwrap();
        data_file(d.path(), "ibdata1", 768, 4864);
        let g = grow_to(d.path(), &names(&["ibdata1"]), PAGE, None)
            .unwrap()
            .unwrap();
        assert_eq!((g.from_pages, g.to_pages), (768, 4864));
        let len = fs::metadata(d.path().join("ibdata1")).unwrap().len();
        assert_eq!(len, 4864 * PAGE);
        // page 0 is untouched, the tail is zeros
        let b = fs::read(d.path().join("ibdata1")).unwrap();
        assert_eq!(&b[46..50], &4864u32.to_be_bytes());
        assert!(b[768 * 16_384..].iter().all(|&x| x == 0));
        // a second prepare finds nothing to do
        assert_eq!(
            grow_to(d.path(), &names(&["ibdata1"]), PAGE, None).unwrap(),
            None
        );
    }

    #[test]
    fn the_log_size_wins_when_larger_and_the_last_file_takes_the_growth() {
        let d = tempfile::tempdir().unwrap();
        data_file(d.path(), "ibdata1", 64, 100);
        data_file(d.path(), "ibdata2", 36, 0);
        let g = grow_to(d.path(), &names(&["ibdata1", "ibdata2"]), PAGE, Some(160))
            .unwrap()
            .unwrap();
        assert_eq!((g.from_pages, g.to_pages), (100, 160));
        assert_eq!(g.file, d.path().join("ibdata2"));
        let len = |n: &str| fs::metadata(d.path().join(n)).unwrap().len() / PAGE;
        assert_eq!((len("ibdata1"), len("ibdata2")), (64, 96));
    }

    #[test]
    fn a_copy_as_large_as_both_sizes_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        data_file(d.path(), "ibdata1", 768, 768);
        assert_eq!(
            grow_to(d.path(), &names(&["ibdata1"]), PAGE, Some(700)).unwrap(),
            None
        );
        assert_eq!(
            fs::metadata(d.path().join("ibdata1")).unwrap().len(),
            768 * PAGE
        );
    }

    #[test]
    fn layout_reads_names_and_page_size_from_backup_my_cnf() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("backup-my.cnf"),
            "[mysqld]\ninnodb_data_file_path=ibdata1:12M;/abs/ibdata2:10M:autoextend\n\
             innodb_page_size=4k\n",
        )
        .unwrap();
        let (n, p) = layout(d.path()).unwrap();
        assert_eq!((n, p), (names(&["ibdata1", "ibdata2"]), 4096));
        assert_eq!(parse_page_size("16384"), Some(16_384));
        assert_eq!(parse_page_size("3000"), None);
        fs::write(
            d.path().join("backup-my.cnf"),
            "[mysqld]\ninnodb_page_size=x\n",
        )
        .unwrap();
        assert!(matches!(
            layout(d.path()),
            Err(PrepareError::BadSettings { .. })
        ));
    }
}
