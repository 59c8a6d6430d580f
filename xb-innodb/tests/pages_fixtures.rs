//! Every page of the real tablespaces in `../shared/fixtures/innodb` (files
//! written by MySQL 5.0–9.1, Percona Server 5.7/8.0 and MariaDB ≤ 10.4 that
//! no test here can start) passes [`check_page`], also when stamped again
//! with the checksums older servers wrote; and the encrypted redo of the
//! Percona fixture is refused as encrypted.
//!
//! The fixtures are read where they are and never copied into the
//! repository; zips are unpacked into a temporary directory with `unzip`.
//! Without the fixture directory the tests print why and pass.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xb_innodb::pagecheck::{SpaceMeta, Verdict, check_batch, check_page};
use xb_innodb::redo::{RedoError, RedoLog};
use xb_innodb::redo_classic::{BlockChecksum, ClassicError, LogClassic};
use xb_testing::fixtures::{root as fixtures, unzip};

fn is_tablespace(p: &Path) -> bool {
    let name = p.file_name().unwrap().to_string_lossy();
    name.ends_with(".ibd")
        || name.ends_with(".ibu")
        || name.starts_with("ibdata")
        || name.starts_with("undo_")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if is_tablespace(&p) {
            out.push(p);
        }
    }
}

/// What one file's pages came to.
#[derive(Debug, Default)]
struct Count {
    physical_size: usize,
    compressed: bool,
    valid: u64,
    zero: u64,
    unchecked: u64,
    bad: Vec<(u64, &'static str)>,
    /// Valid pages stamped again with a checksum older servers wrote (the
    /// "innodb" Adler-32 for compressed pages, the pre-4.0.14 LSN word and
    /// zero for the others) that still validate.
    restamped: u64,
}

impl Count {
    fn pages(&self) -> u64 {
        self.valid + self.zero + self.unchecked + self.bad.len() as u64
    }
}

/// Adler-32 started from 0, as InnoDB calls zlib (`adler32(0, …)`).
fn adler32_from_zero(bytes: impl Iterator<Item = u8>) -> u32 {
    let (mut a, mut b) = (0u32, 0u32);
    for x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// `page` with the checksum an older server would have written: the
/// "innodb" Adler-32 of a compressed page (bytes 4..16, 24..26, 34..), or
/// the pre-4.0.14 fields of any other (0, and the LSN's high word).
fn restamp(page: &[u8], compressed: bool) -> Vec<u8> {
    let mut p = page.to_vec();
    let n = p.len();
    if compressed {
        let covered = p[4..16].iter().chain(&p[24..26]).chain(&p[34..]).copied();
        let sum = adler32_from_zero(covered);
        p[0..4].copy_from_slice(&sum.to_be_bytes());
    } else {
        p[0..4].fill(0);
        let high: [u8; 4] = p[16..20].try_into().unwrap();
        p[n - 8..n - 4].copy_from_slice(&high);
    }
    p
}

fn check_file(path: &Path) -> Count {
    let data = std::fs::read(path).unwrap();
    let meta =
        SpaceMeta::from_page0(&data, 16384).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ps = meta.physical_size;
    assert_eq!(data.len() % ps, 0, "{}: not whole pages", path.display());
    let system = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("ibdata");
    let mut c = Count {
        physical_size: ps,
        compressed: meta.compressed,
        ..Count::default()
    };
    for (no, page) in data.chunks_exact(ps).enumerate() {
        let no32 = u32::try_from(no).unwrap();
        match check_page(page, &meta, no32, system) {
            Verdict::Valid => {
                c.valid += 1;
                if !meta.full_crc32 {
                    let old = restamp(page, meta.compressed);
                    assert_eq!(
                        check_page(&old, &meta, no32, system),
                        Verdict::Valid,
                        "{} page {no} restamped",
                        path.display()
                    );
                    c.restamped += 1;
                }
            }
            Verdict::Zero => c.zero += 1,
            Verdict::Unchecked => c.unchecked += 1,
            Verdict::Bad(reason) => c.bad.push((no as u64, reason)),
        }
    }
    // the batch check a copy thread runs agrees (it skips the doublewrite
    // area of the system tablespace, whose pages are checked above)
    if c.bad.is_empty() {
        assert_eq!(
            check_batch(&data, &meta, 0, system),
            vec![],
            "{}",
            path.display()
        );
    }
    c
}

/// Every tablespace of the fixtures, loose or zipped; the zips unpacked
/// under `tmp`. Keys are `folder/file` or `folder/zip!member`.
fn tablespaces(root: &Path, tmp: &Path) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".zip") {
                let into = tmp.join(&folder).join(&name);
                unzip(&p, &into, &["*.ibd", "*.ibu", "*ibdata*", "*undo_0*"]);
                let mut found = Vec::new();
                walk(&into, &mut found);
                for f in found {
                    let member = f.strip_prefix(&into).unwrap().display().to_string();
                    files.insert(format!("{folder}/{name}!{member}"), f);
                }
            } else if is_tablespace(&p) {
                files.insert(format!("{folder}/{name}"), p);
            }
        }
    }
    files
}

#[test]
fn every_page_of_every_fixture_tablespace_validates() {
    let Some(root) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let files = tablespaces(&root, tmp.path());
    let mut total = Count::default();
    let mut restamped_zip = 0u64;
    let mut sizes: BTreeMap<(usize, bool), u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, path) in &files {
        let c = check_file(path);
        println!(
            "{name}: {} pages of {} bytes{}: {} valid, {} zero, {} unchecked, {} bad",
            c.pages(),
            c.physical_size,
            if c.compressed { " (compressed)" } else { "" },
            c.valid,
            c.zero,
            c.unchecked,
            c.bad.len()
        );
        assert!(c.pages() > 0, "{name}: no pages");
        assert!(c.valid > 0, "{name}: no page validated by its checksum");
        *sizes.entry((c.physical_size, c.compressed)).or_default() += c.pages();
        if !c.bad.is_empty() {
            failures.push(format!("{name}: {:?}", &c.bad[..c.bad.len().min(5)]));
        }
        total.valid += c.valid;
        total.zero += c.zero;
        total.unchecked += c.unchecked;
        total.restamped += c.restamped;
        if c.compressed {
            restamped_zip += c.restamped;
        }
    }
    println!(
        "{} files: {} valid ({} restamped, {} of them compressed), {} zero, {} unchecked pages; \
         by (page size, compressed): {sizes:?}",
        files.len(),
        total.valid,
        total.restamped,
        restamped_zip,
        total.zero,
        total.unchecked
    );
    assert!(
        failures.is_empty(),
        "pages the servers accept were refused:\n{}",
        failures.join("\n")
    );
    // every page size the fixtures hold was seen (a fixture silently
    // missing would otherwise pass)
    for kind in [(4096, false), (16384, false), (4096, true), (8192, true)] {
        assert!(
            sizes.contains_key(&kind),
            "no {kind:?} pages among {sizes:?}"
        );
    }
    // both older stampings were tried on real pages
    assert!(
        restamped_zip > 0 && total.restamped > restamped_zip,
        "{restamped_zip} compressed of {} restamped",
        total.restamped
    );
}

/// Unpacks the Percona 8.0.18 datadir whose redo is encrypted (keyring v1).
fn encrypted_redo(root: &Path, tmp: &Path) -> PathBuf {
    let zip = root.join("percona-server-std_data/data_redo_log_keyring_v1_encrypted.zip");
    unzip(&zip, tmp, &["*/ib_logfile*"]);
    let dir = tmp.join("data_redo_log_keyring_v1_encrypted/data");
    assert!(dir.join("ib_logfile0").is_file(), "{}", dir.display());
    dir
}

#[test]
fn the_percona_keyring_encrypted_redo_is_refused_as_encrypted() {
    let Some(root) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = encrypted_redo(&root, tmp.path());
    let err = LogClassic::open(&dir, BlockChecksum::Any).unwrap_err();
    assert!(
        matches!(&err, ClassicError::Encrypted { file, .. } if file.ends_with("ib_logfile0")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("encrypted") && text.contains("lRK"), "{text}");
    let err = RedoLog::open(&dir).unwrap_err();
    assert!(matches!(err, RedoError::Encrypted { .. }), "{err:?}");
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[test]
fn unencrypted_fixture_redo_still_opens() {
    let Some(root) = fixtures() else { return };
    let std_data = root.join("mysql-server-std_data");
    for (zip, dir) in [
        ("log_corruption__5_7_9_clean.zip", ""),
        ("log_corruption__8_0_19_clean.zip", ""),
        (
            "data80036_with_externally_stored_tablespaces.zip",
            "data_dir",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        unzip(
            &std_data.join(zip),
            tmp.path(),
            &["ib_logfile*", "*#ib_redo6"],
        );
        let mut log = RedoLog::open(&tmp.path().join(dir)).unwrap_or_else(|e| panic!("{zip}: {e}"));
        assert!(log.latest_checkpoint().unwrap() > 0, "{zip}");
    }
}
