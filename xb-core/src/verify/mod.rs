//! `xb-cli verify`: a backup checked without a server. Every failed check
//! is a [`Problem`] naming the file; only a backup that cannot be read at
//! all is an error.
//!
//! A directory: the incomplete marker; every file against
//! `xb_manifest.json` (present, size, XXH3-128 of its bytes; nothing extra);
//! every page of every InnoDB data file (checksum and place, as the
//! servers judge them); the copied redo continuous from its start to
//! `last_lsn`; the manifest's LSNs against `xtrabackup_checkpoints`; an
//! incremental's `from_lsn` against its base's `to_lsn`. Compressed or
//! encrypted files are checked against the manifest only. A stream: every
//! chunk's CRC-32 (the reader), every file against the manifest the
//! stream carries, a stream cut short.
//!
//! Check a backup as taken: `prepare` changes its files.
//!
//! A chain (a full and its incrementals, in order): each backup as above,
//! the first a full one, each next one continuing the one before it. And
//! with [`restore_test`], the chain prepared in a scratch copy by the
//! matching server, which then checks every table.

mod restore_test;

pub use restore_test::{RestoreTest, restore_test};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use xb_innodb::pagecheck::{SpaceMeta, check_batch};
use xb_sink::manifest::{Digester, MANIFEST, Manifest};
use xb_sink::xbstream::{ChunkKind, XbStreamReader};

use crate::checkpoints::Checkpoints;
use crate::prepare::{INCOMPLETE_MARKER, log_extent, log_path};

/// One check that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file (backup-relative), or `.` for the backup as a whole.
    pub file: String,
    /// What is wrong with it.
    pub what: String,
}

/// What a verification checked and found.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Files held against the manifest.
    pub files: u64,
    /// Bytes read for that.
    pub bytes: u64,
    /// InnoDB pages checked.
    pub pages: u64,
    /// The redo was checked up to this LSN (0: not checked).
    pub redo_checked_to: u64,
    /// Failed checks; empty when the backup is sound.
    pub problems: Vec<Problem>,
    /// Checks that could not run, and why (a compressed file's pages).
    pub notes: Vec<String>,
    /// Tables the restore test had the server check (`None`: no restore
    /// test ran to that point).
    pub tables_checked: Option<usize>,
}

impl Report {
    fn problem(&mut self, file: &str, what: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_string(),
            what: what.into(),
        });
    }
}

/// Why a verification could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The directory cannot be read.
    #[error("cannot read {path}: {source}\nhint: give the directory of a backup, or --stream FILE")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Bad pages listed per file before the rest are only counted.
const PAGES_SHOWN: usize = 5;

/// Verifies the backup in `dir`; with `base`, also that it continues the
/// backup there (an incremental's chain).
///
/// # Errors
/// [`VerifyError`] when `dir` cannot be read at all.
pub fn verify_dir(dir: &Path, base: Option<&Path>) -> Result<Report, VerifyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    let mut r = Report::default();
    let present = list_files(dir).map_err(io(dir))?;
    if present.contains(INCOMPLETE_MARKER) {
        r.problem(
            INCOMPLETE_MARKER,
            "the backup did not complete (its marker is there)",
        );
    }
    let manifest = match std::fs::read(dir.join(MANIFEST)) {
        Ok(raw) => Manifest::from_json(&raw).or_else(|| {
            r.problem(MANIFEST, "is not a manifest xb wrote (damaged or replaced)");
            None
        }),
        Err(_) => {
            r.problem(
                MANIFEST,
                "is missing: the files cannot be held against their checksums",
            );
            None
        }
    };
    if let Some(m) = &manifest {
        check_files(dir, m, &present, &mut r);
    }
    let cps = match std::fs::read_to_string(dir.join("xtrabackup_checkpoints")) {
        Ok(t) => Checkpoints::parse(&t)
            .map_err(|e| r.problem("xtrabackup_checkpoints", e))
            .ok(),
        Err(_) => {
            r.problem("xtrabackup_checkpoints", "is missing");
            None
        }
    };
    check_pages(dir, &present, &mut r);
    if let Some(cps) = &cps {
        check_redo(dir, cps, &present, &mut r);
        if let Some(m) = &manifest {
            check_meta(m, cps, &mut r);
        }
        if let Some(base) = base {
            check_chain(base, cps, &mut r);
        }
    }
    Ok(r)
}

/// Verifies a chain: `chain[0]` a full backup, each next one an
/// incremental on the one before it. Each backup's problems name it
/// (`DIR/file`).
///
/// # Errors
/// [`VerifyError`] when a backup cannot be read at all.
pub fn verify_chain(chain: &[PathBuf]) -> Result<Report, VerifyError> {
    let mut all = Report::default();
    for (i, dir) in chain.iter().enumerate() {
        let base = i.checked_sub(1).map(|b| chain[b].as_path());
        let r = verify_dir(dir, base)?;
        if i == 0 {
            let full = std::fs::read_to_string(dir.join("xtrabackup_checkpoints"))
                .ok()
                .and_then(|t| Checkpoints::parse(&t).ok())
                .is_none_or(|c| c.from_lsn == 0);
            if !full {
                all.problem(
                    &dir.display().to_string(),
                    "is an incremental: a chain starts with a full backup",
                );
            }
        }
        all.files += r.files;
        all.bytes += r.bytes;
        all.pages += r.pages;
        all.redo_checked_to = r.redo_checked_to;
        for p in r.problems {
            let file = if p.file == "." {
                dir.display().to_string()
            } else {
                format!("{}/{}", dir.display(), p.file)
            };
            all.problem(&file, p.what);
        }
        all.notes.extend(
            r.notes
                .into_iter()
                .map(|n| format!("{}: {n}", dir.display())),
        );
    }
    Ok(all)
}

/// Every regular file under `dir`, `/`-separated and relative.
pub(crate) fn list_files(dir: &Path) -> std::io::Result<std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let t = e.file_type()?;
            if t.is_dir() {
                todo.push((e.path(), r));
            } else if t.is_file() {
                out.insert(r);
            }
        }
    }
    Ok(out)
}

fn check_files(
    dir: &Path,
    m: &Manifest,
    present: &std::collections::BTreeSet<String>,
    r: &mut Report,
) {
    let mut decoded = 0;
    for e in &m.files {
        if !present.contains(&e.path) {
            if present.contains(decoded_name(&e.path)) {
                // extracted with --decompress/--decrypt: its bytes changed form
                decoded += 1;
            } else {
                r.problem(&e.path, "is missing");
            }
            continue;
        }
        // a file written in parts is held range by range against them
        let ranges: Vec<(u64, &str)> = if e.parts.is_empty() {
            vec![(u64::MAX, e.xxh3.as_str())]
        } else {
            e.parts.iter().map(|p| (p.size, p.xxh3.as_str())).collect()
        };
        let read = std::fs::File::open(dir.join(&e.path)).and_then(|f| digest_ranges(f, &ranges));
        r.files += 1;
        let (size, digests) = match read {
            Ok(d) => d,
            Err(err) => {
                r.problem(&e.path, format!("cannot be read: {err}"));
                continue;
            }
        };
        r.bytes += size;
        if size != e.size {
            r.problem(
                &e.path,
                format!("has {size} bytes, the manifest says {}", e.size),
            );
            continue;
        }
        for (i, (got, (_, want))) in digests.iter().zip(&ranges).enumerate() {
            if got != want {
                let which = if e.parts.is_empty() {
                    String::new()
                } else {
                    format!(" of the range at offset {}", e.parts[i].offset)
                };
                r.problem(
                    &e.path,
                    format!("XXH3-128{which} {got}, the manifest says {want}"),
                );
            }
        }
    }
    let encoded: std::collections::BTreeSet<&str> =
        m.files.iter().map(|e| decoded_name(&e.path)).collect();
    for p in present {
        if p != MANIFEST
            && p != INCOMPLETE_MARKER
            && m.entry(p).is_none()
            && !encoded.contains(p.as_str())
        {
            r.problem(p, "is not in the manifest (added after the backup?)");
        }
    }
    if decoded > 0 {
        r.notes.push(format!(
            "{decoded} files were decompressed or decrypted on extraction: their checksums are of the stored form and were not compared (their pages and the redo still are)"
        ));
    }
}

/// Reads `f` in consecutive ranges of the given lengths (`u64::MAX`: to
/// the end) and returns the bytes read and each range's XXH3-128.
fn digest_ranges(
    mut f: std::fs::File,
    ranges: &[(u64, &str)],
) -> std::io::Result<(u64, Vec<String>)> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    let mut out = Vec::with_capacity(ranges.len());
    for &(len, _) in ranges {
        let mut d = Digester::default();
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
            left -= n as u64;
        }
        let (n, digest) = d.finish();
        total += n;
        out.push(digest);
    }
    // bytes past the last range make the size differ
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok((total, out))
}

/// The name a stored file has once decrypted and decompressed.
fn decoded_name(stored: &str) -> &str {
    let s = stored.strip_suffix(".xbcrypt").unwrap_or(stored);
    s.strip_suffix(".zst")
        .or_else(|| s.strip_suffix(".lz4"))
        .unwrap_or(s)
}

/// InnoDB data files by name: tablespaces, the system and undo spaces.
fn innodb_file(rel: &str) -> Option<bool> {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if base.strip_prefix("ibdata").is_some_and(digits) {
        Some(true)
    } else if rel.ends_with(".ibd") || base.strip_prefix("undo").is_some_and(digits) {
        Some(false)
    } else {
        None
    }
}

fn check_pages(dir: &Path, present: &std::collections::BTreeSet<String>, r: &mut Report) {
    let page_size = std::fs::read_to_string(dir.join("backup-my.cnf"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("innodb_page_size=")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
        })
        .unwrap_or(16384);
    let mut skipped = 0;
    for rel in present {
        if rel.ends_with(".zst") || rel.ends_with(".lz4") || rel.ends_with(".xbcrypt") {
            skipped += usize::from(innodb_file(decoded_name(rel)).is_some());
            continue;
        }
        let Some(system) = innodb_file(rel) else {
            continue;
        };
        if let Err(e) = check_space(dir, rel, page_size, system, r) {
            r.problem(rel, format!("cannot be read: {e}"));
        }
    }
    if skipped > 0 {
        r.notes.push(format!(
            "{skipped} compressed or encrypted InnoDB files were held against the manifest only: extract them (--decompress, --decrypt) to check their pages"
        ));
    }
}

fn check_space(
    dir: &Path,
    rel: &str,
    page_size: usize,
    system: bool,
    r: &mut Report,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(dir.join(rel))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut first = 0u64;
    let mut meta = None;
    let mut bad = Vec::new();
    loop {
        let mut n = 0;
        while n < buf.len() {
            let got = f.read(&mut buf[n..])?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n == 0 {
            break;
        }
        let m = match meta {
            Some(m) => m,
            None => match SpaceMeta::from_page0(&buf[..n], page_size) {
                Ok(m) => *meta.insert(m),
                Err(e) => {
                    r.problem(rel, e.to_string());
                    return Ok(());
                }
            },
        };
        let ps = m.physical_size.max(1);
        if n % ps != 0 && n < buf.len() {
            r.problem(
                rel,
                format!(
                    "ends inside a page ({} bytes past the last whole page)",
                    n % ps
                ),
            );
        }
        bad.extend(check_batch(&buf[..n - n % ps], &m, first, system));
        r.pages += (n / ps) as u64;
        first += (n / ps) as u64;
        if n < buf.len() {
            break;
        }
    }
    for b in bad.iter().take(PAGES_SHOWN) {
        r.problem(rel, format!("page {}: {}", b.page_no, b.reason));
    }
    if bad.len() > PAGES_SHOWN {
        r.problem(
            rel,
            format!("… and {} more bad pages", bad.len() - PAGES_SHOWN),
        );
    }
    Ok(())
}

fn check_redo(
    dir: &Path,
    cps: &Checkpoints,
    present: &std::collections::BTreeSet<String>,
    r: &mut Report,
) {
    let log = log_path(dir);
    let rel = log
        .strip_prefix(dir)
        .map_or_else(|_| log.display().to_string(), |p| p.display().to_string());
    if !present.contains(&rel) && present.iter().any(|p| p.starts_with(&format!("{rel}."))) {
        r.notes.push(format!(
            "{rel} is compressed or encrypted: extract it to check the redo"
        ));
        return;
    }
    match log_extent(dir) {
        Ok((_, _, end)) if end >= cps.last_lsn => r.redo_checked_to = end,
        Ok((_, start, end)) => r.problem(
            &rel,
            format!(
                "the copied redo is whole only from LSN {start} to {end}, short of last_lsn {}: damaged or cut",
                cps.last_lsn
            ),
        ),
        Err(e) => r.problem(&rel, e.to_string()),
    }
}

fn check_meta(m: &Manifest, cps: &Checkpoints, r: &mut Report) {
    for (key, want) in [
        ("from_lsn", cps.from_lsn),
        ("to_lsn", cps.to_lsn),
        ("last_lsn", cps.last_lsn),
    ] {
        match m.meta.get(key).and_then(serde_json::Value::as_u64) {
            Some(got) if got == want => {}
            Some(got) => r.problem(
                MANIFEST,
                format!("says {key} = {got}, xtrabackup_checkpoints says {want}"),
            ),
            None => r.problem(MANIFEST, format!("has no {key}")),
        }
    }
}

fn check_chain(base: &Path, cps: &Checkpoints, r: &mut Report) {
    let theirs = std::fs::read_to_string(base.join("xtrabackup_checkpoints"))
        .ok()
        .and_then(|t| Checkpoints::parse(&t).ok());
    match theirs {
        None => r.problem(
            ".",
            format!(
                "the base {} has no readable xtrabackup_checkpoints",
                base.display()
            ),
        ),
        Some(b) if b.to_lsn != cps.from_lsn => r.problem(
            ".",
            format!(
                "from_lsn {} does not continue the base {} (its to_lsn is {})",
                cps.from_lsn,
                base.display(),
                b.to_lsn
            ),
        ),
        Some(b) if cps.last_lsn < b.last_lsn => r.problem(
            ".",
            format!(
                "ends at LSN {}, before the base {} (LSN {}): it was taken before its base",
                cps.last_lsn,
                base.display(),
                b.last_lsn
            ),
        ),
        Some(_) => {}
    }
}

/// Verifies an xbstream: every chunk's CRC-32, every file against the
/// manifest the stream carries, and a stream cut short.
///
/// # Errors
/// None today: a stream that cannot be read is a [`Problem`].
pub fn verify_stream(input: impl Read) -> Result<Report, VerifyError> {
    let mut r = Report::default();
    let mut reader = XbStreamReader::new(input);
    let mut open: BTreeMap<String, Digester> = BTreeMap::new();
    let mut done: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest_raw: Option<Vec<u8>> = None;
    loop {
        let chunk = match reader.next_chunk() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                r.problem(".", format!("the stream cannot be read on: {e}"));
                break;
            }
        };
        match chunk.kind {
            ChunkKind::Payload { data, .. } => {
                r.bytes += data.len() as u64;
                if chunk.path == MANIFEST {
                    manifest_raw
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&data);
                } else {
                    open.entry(chunk.path).or_default().update(&data);
                }
            }
            ChunkKind::Eof => {
                if let Some(d) = open.remove(&chunk.path) {
                    done.insert(chunk.path, d.finish());
                } else if chunk.path != MANIFEST {
                    done.insert(chunk.path, Digester::default().finish());
                }
            }
            ChunkKind::Delete => {
                open.remove(&chunk.path);
                done.remove(&chunk.path);
            }
            ChunkKind::Seek { .. } | ChunkKind::Rename { .. } => {
                r.notes.push(format!(
                    "{}: a seek or rename in the stream; its checksum is not comparable",
                    chunk.path
                ));
            }
        }
    }
    for p in open.keys() {
        r.problem(p, "has no end in the stream (cut short?)");
    }
    let Some(m) = manifest_raw.as_deref().and_then(Manifest::from_json) else {
        r.problem(
            MANIFEST,
            if manifest_raw.is_some() {
                "is not a manifest xb wrote (damaged or replaced)"
            } else {
                "is not in the stream (cut short, or not written by xb)"
            },
        );
        return Ok(r);
    };
    for e in &m.files {
        r.files += 1;
        match done.get(&e.path) {
            None => r.problem(&e.path, "is missing from the stream"),
            Some((size, _)) if *size != e.size => r.problem(
                &e.path,
                format!("has {size} bytes, the manifest says {}", e.size),
            ),
            Some((_, sha)) if *sha != e.xxh3 => r.problem(
                &e.path,
                format!("XXH3-128 {sha}, the manifest says {}", e.xxh3),
            ),
            Some(_) => {}
        }
    }
    for p in done.keys() {
        if m.entry(p).is_none() {
            r.problem(p, "is not in the manifest");
        }
    }
    r.notes
        .push("pages and redo are checked in a directory: extract the stream first".into());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innodb_files_and_decoded_names_are_known_by_name() {
        assert_eq!(innodb_file("ibdata1"), Some(true));
        assert_eq!(innodb_file("db/t.ibd"), Some(false));
        assert_eq!(innodb_file("undo001"), Some(false));
        assert_eq!(innodb_file("ibdata"), None);
        assert_eq!(innodb_file("db/t.frm"), None);
        assert_eq!(decoded_name("db/t.ibd.zst.xbcrypt"), "db/t.ibd");
        assert_eq!(decoded_name("ib_logfile0.lz4"), "ib_logfile0");
        assert_eq!(
            decoded_name("xtrabackup_checkpoints"),
            "xtrabackup_checkpoints"
        );
    }
}
