//! `--incremental-dir`: merge an incremental backup (INC) into a base
//! prepared with `--apply-log-only` (BASE), as XtraBackup and
//! mariadb-backup do, before recovery runs with INC's redo.
//!
//! 1. [`check`] (reads only): INC is `backup_type = incremental`, BASE is
//!    `log-applied`, INC's `from_lsn` is BASE's `to_lsn`, no incomplete
//!    marker in either, and every `X.delta` has a readable `X.meta`;
//! 2. [`apply`]:
//!    * every `X.delta` is written into BASE's `X` page by page at
//!      `page_no * page_size` (streamed, [`DeltaReader`]). When BASE's `X`
//!      holds another tablespace (its page 0 names another space id: the
//!      table was truncated or re-created since the base) or no `X` exists,
//!      `X` becomes a new file of the delta's pages, unless BASE holds the
//!      delta's space id under another `.ibd` name (a rename since the
//!      base): that file is moved to `X` first and the delta applied on it;
//!    * every other file of INC replaces BASE's copy (non-InnoDB tables,
//!      `.frm`, whole tablespaces, `.new`/`.del`/`.ren` markers, binlog
//!      info, the redo: `ib_logfile0`, or `#innodb_redo/` as a whole);
//!    * in schema directories, files of BASE that INC has in no form were
//!      dropped since the base and are deleted (a tablespace, and the
//!      `.frm`/MyISAM files of a dropped table alike: INC copies every
//!      non-InnoDB file whole); a schema directory INC lacks was dropped
//!      and goes too (directories named `#…` are InnoDB's and stay).
//!
//! Why pages of INC older than BASE's may replace them: INC's redo starts
//! at INC's checkpoint (`to_lsn`), which may lie before the end of the log
//! BASE was prepared with (MySQL under load: the same checkpoint as
//! BASE's), so a delta page can be older than BASE's copy of it. Both
//! belong to the source's one log, and recovery applies to each page every
//! record of INC's redo above the page's LSN: a delta page is brought
//! forward by the records it lacks, and a BASE page no delta replaces (the
//! source wrote no newer copy of it) receives exactly the records BASE's
//! own recovery had not applied. That holds only while every page of BASE
//! carries an LSN of the source's log: the reason `--apply-log-only`
//! writes nothing else (`recovery::apply_log_only`).
//!
//! A failure in step 2 leaves BASE half-merged (as with the vendors'
//! tools): BASE's `xtrabackup_checkpoints` then says
//! [`MERGING`], so no later prepare takes it for a usable base.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xb_innodb::delta::{DeltaMeta, DeltaReader};
use xb_innodb::pagecheck::SpaceMeta;

use super::error::{PrepareError, io_err};
use super::{INCOMPLETE_MARKER, LOG_APPLIED};
use crate::checkpoints::Checkpoints;

/// `backup_type` of an incremental backup.
pub const INCREMENTAL: &str = "incremental";
/// `backup_type` BASE carries while an incremental is merged into it.
pub const MERGING: &str = "incremental-merge-in-progress";

/// Suffix of a file being built or moved into place.
const TMP: &str = ".xb-inc-tmp";

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// `.delta` files applied.
    pub deltas: usize,
    /// Pages written from them.
    pub pages: u64,
    /// Of the deltas, those that became a new file (no BASE file of their
    /// space id).
    pub new_spaces: usize,
    /// Of the deltas, those applied on a BASE file of another name (a
    /// rename since the base).
    pub moved: usize,
    /// Other files copied from INC.
    pub copied: usize,
    /// Files and schema directories of BASE deleted as dropped.
    pub removed: usize,
}

fn read_checkpoints(dir: &Path) -> Result<Checkpoints, PrepareError> {
    let file = dir.join("xtrabackup_checkpoints");
    if !file.is_file() {
        return Err(PrepareError::NotABackup {
            dir: dir.to_path_buf(),
        });
    }
    if dir.join(INCOMPLETE_MARKER).exists() {
        return Err(PrepareError::Incomplete {
            dir: dir.to_path_buf(),
        });
    }
    let text = fs::read_to_string(&file).map_err(io_err(&file))?;
    Checkpoints::parse(&text).map_err(|reason| PrepareError::BadCheckpoints { file, reason })
}

/// One `.delta` of INC and where it goes in BASE.
#[derive(Debug)]
struct Delta {
    /// `INC/<rel>.delta`.
    file: PathBuf,
    /// The path relative to both roots, without `.delta` (`db/t.ibd`).
    rel: PathBuf,
    meta: DeltaMeta,
}

/// Checks that INC can be applied onto BASE (whose checkpoints are
/// `base_cps`), reading only; returns INC's checkpoints.
///
/// # Errors
/// [`PrepareError::BaseNotLogApplied`], [`PrepareError::NotIncremental`],
/// [`PrepareError::IncrementalMismatch`], [`PrepareError::BadDelta`] for a
/// `.delta` without a readable `.meta`, and the errors of a directory that
/// is not a complete backup.
pub(super) fn check(
    base: &Path,
    base_cps: &Checkpoints,
    inc: &Path,
) -> Result<Checkpoints, PrepareError> {
    let inc_cps = read_checkpoints(inc)?;
    if inc_cps.backup_type != INCREMENTAL {
        return Err(PrepareError::NotIncremental {
            dir: inc.to_path_buf(),
            backup_type: inc_cps.backup_type,
        });
    }
    if base_cps.backup_type != LOG_APPLIED {
        return Err(PrepareError::BaseNotLogApplied {
            dir: base.to_path_buf(),
            backup_type: base_cps.backup_type.clone(),
        });
    }
    if inc_cps.from_lsn != base_cps.to_lsn {
        return Err(PrepareError::IncrementalMismatch {
            base: base.to_path_buf(),
            base_to_lsn: base_cps.to_lsn,
            inc: inc.to_path_buf(),
            inc_from_lsn: inc_cps.from_lsn,
        });
    }
    if inc_cps.last_lsn < base_cps.last_lsn {
        return Err(PrepareError::IncrementalOutOfOrder {
            base: base.to_path_buf(),
            base_last_lsn: base_cps.last_lsn,
            inc: inc.to_path_buf(),
            inc_last_lsn: inc_cps.last_lsn,
        });
    }
    find_deltas(inc)?;
    Ok(inc_cps)
}

/// The directories of INC that hold tables: the root and every
/// subdirectory not named `#…` (InnoDB's own, such as `#innodb_redo`).
fn schema_dirs(root: &Path) -> Result<Vec<PathBuf>, PrepareError> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).map_err(io_err(root))? {
        let e = e.map_err(io_err(root))?;
        let ty = e.file_type().map_err(io_err(&e.path()))?;
        if ty.is_dir() && !e.file_name().to_string_lossy().starts_with('#') {
            out.push(PathBuf::from(e.file_name()));
        }
    }
    out.sort();
    Ok(out)
}

/// Regular files of `dir`, by name.
fn files_of(dir: &Path) -> Result<Vec<String>, PrepareError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        if e.file_type().map_err(io_err(&e.path()))?.is_file() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Every `.delta` of INC (root and schema directories) with its `.meta`.
fn find_deltas(inc: &Path) -> Result<Vec<Delta>, PrepareError> {
    let mut dirs = vec![PathBuf::new()];
    dirs.extend(schema_dirs(inc)?);
    let mut out = Vec::new();
    for rel_dir in dirs {
        for name in files_of(&inc.join(&rel_dir))? {
            let Some(stem) = name.strip_suffix(".delta") else {
                continue;
            };
            let file = inc.join(&rel_dir).join(&name);
            let meta_file = inc.join(&rel_dir).join(format!("{stem}.meta"));
            let text = fs::read_to_string(&meta_file).map_err(|e| PrepareError::BadDelta {
                file: file.clone(),
                reason: format!("its .meta {} cannot be read: {e}", meta_file.display()),
            })?;
            let meta = DeltaMeta::parse(&text).ok_or_else(|| PrepareError::BadDelta {
                file: meta_file.clone(),
                reason: "no page_size or space_id, or a value that is not a number".into(),
            })?;
            out.push(Delta {
                file,
                rel: rel_dir.join(stem),
                meta,
            });
        }
    }
    Ok(out)
}

/// Space id in page 0 of `file`; `None` when it has no readable page 0.
fn space_id_of(file: &Path) -> Option<u32> {
    let f = File::open(file).ok()?;
    let mut page0 = [0u8; 64];
    f.read_exact_at(&mut page0, 0).ok()?;
    SpaceMeta::from_page0(&page0, 16_384)
        .ok()
        .map(|m| m.space_id)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Offset of `FSP_SIZE` in page 0 (`FSP_HEADER_OFFSET` 38 + 8): the
/// tablespace's size in pages.
const FSP_SIZE: usize = 46;

/// Writes every page of `delta` into `out`; returns the pages written.
fn write_pages(delta: &Delta, out: &File, out_path: &Path) -> Result<u64, PrepareError> {
    let bad = |reason: String| PrepareError::BadDelta {
        file: delta.file.clone(),
        reason,
    };
    let page_size = delta.meta.page_size as usize;
    let input = File::open(&delta.file).map_err(io_err(&delta.file))?;
    let mut reader = DeltaReader::new(BufReader::with_capacity(1 << 20, input), page_size)
        .map_err(|e| bad(e.to_string()))?;
    let mut page = vec![0u8; page_size];
    let mut pages = 0u64;
    let mut fsp_size = 0u64;
    while let Some(no) = reader
        .next_page(&mut page)
        .map_err(|e| bad(e.to_string()))?
    {
        let zero = page.iter().all(|&b| b == 0);
        // every page names itself in FIL_PAGE_OFFSET: a page that does not
        // is not what the delta claims (or the delta is garbage); but the
        // system tablespace's doublewrite buffer holds copies of other pages
        if !zero && delta.meta.space_id != 0 && be32(&page, 4) != no {
            return Err(bad(format!(
                "page {no} of the delta calls itself page {} (FIL_PAGE_OFFSET)",
                be32(&page, 4)
            )));
        }
        if no == 0 && !zero {
            fsp_size = u64::from(be32(&page, FSP_SIZE));
        }
        let at = u64::from(no) * page_size as u64;
        out.write_all_at(&page, at).map_err(io_err(out_path))?;
        pages += 1;
    }
    // The file is as long as page 0 says (pages the delta leaves out at the
    // end are free, zero-filled); never for the system tablespace, whose
    // size spans all its data files.
    let want = fsp_size * page_size as u64;
    let len = out.metadata().map_err(io_err(out_path))?.len();
    if delta.meta.space_id != 0 && want > len {
        out.set_len(want).map_err(io_err(out_path))?;
    }
    Ok(pages)
}

/// `FIL_PAGE_TYPE_FSP_HDR`: the type of page 0.
const FSP_HDR: u16 = 8;

/// A page 0 for a new tablespace whose delta holds none, from its `.meta`
/// (what mariadb-backup's `fil_ibd_create` writes for it): the file names
/// its space id and flags, so the recovery server can open it and redo
/// rebuilds the real page 0. Found by experiment on MariaDB 10.5: a table
/// created between two incrementals reaches the second as a delta without
/// page 0 (still unflushed in the source when copied, so zero, LSN 0), and
/// without this the server stops with "Cannot determine the space ID from
/// the first 64 pages". `None` for ROW_FORMAT=COMPRESSED (another page
/// format), which is left to the server.
fn page0_from_meta(meta: &DeltaMeta, size_in_pages: u32) -> Option<Vec<u8>> {
    let size = meta.page_size as usize;
    if meta.zip_size != 0 && meta.zip_size != meta.page_size {
        return None;
    }
    let mut p = vec![0u8; size];
    p[24..26].copy_from_slice(&FSP_HDR.to_be_bytes());
    p[34..38].copy_from_slice(&meta.space_id.to_be_bytes());
    p[38..42].copy_from_slice(&meta.space_id.to_be_bytes());
    p[FSP_SIZE..FSP_SIZE + 4].copy_from_slice(&size_in_pages.to_be_bytes());
    p[54..58].copy_from_slice(&meta.space_flags.to_be_bytes());
    if meta.space_flags & (1 << 4) != 0 {
        // MariaDB full_crc32: CRC-32C of all but the last 4 bytes
        let c = crc32c::crc32c(&p[..size - 4]);
        p[size - 4..].copy_from_slice(&c.to_be_bytes());
    } else {
        // crc32: the same CRC in the header and the trailer
        let c = crc32c::crc32c(&p[4..26]) ^ crc32c::crc32c(&p[38..size - 8]);
        p[0..4].copy_from_slice(&c.to_be_bytes());
        p[size - 8..size - 4].copy_from_slice(&c.to_be_bytes());
    }
    Some(p)
}

/// Pages of a new tablespace file as the source's server creates it
/// (`FIL_IBD_FILE_INITIAL_SIZE`): 4 on MariaDB, 7 on MySQL 8.0+. The
/// server refuses a shorter file ("should be at least 65536" on MariaDB
/// 10.5, "114688" on MySQL 9.7), and a new table's page 0 may say less
/// (MySQL writes `FSP_SIZE` through the redo, after the file).
#[must_use]
pub(super) fn initial_pages(format: xb_innodb::redo::RedoFormat) -> u64 {
    match format {
        xb_innodb::redo::RedoFormat::MySql8030 => 7,
        _ => 4,
    }
}

/// Gives a new file its page 0 from the `.meta` when the delta left it
/// zero (see [`page0_from_meta`]), and at least `min_pages`.
fn ensure_page0(
    meta: &DeltaMeta,
    out: &File,
    out_path: &Path,
    min_pages: u64,
) -> Result<(), PrepareError> {
    let size = meta.page_size as usize;
    let mut page0 = vec![0u8; size];
    let min = min_pages * size as u64;
    if out.metadata().map_err(io_err(out_path))?.len() < min {
        out.set_len(min).map_err(io_err(out_path))?;
    }
    let len = out.metadata().map_err(io_err(out_path))?.len();
    if len >= size as u64 {
        out.read_exact_at(&mut page0, 0).map_err(io_err(out_path))?;
        if page0.iter().any(|&b| b != 0) {
            return Ok(());
        }
    }
    let pages = u32::try_from(len.div_ceil(size as u64).max(1)).unwrap_or(u32::MAX);
    if let Some(p) = page0_from_meta(meta, pages) {
        out.write_all_at(&p, 0).map_err(io_err(out_path))?;
    }
    Ok(())
}

/// Copies `from` over `to` (through a temporary name, so `to` is either the
/// old or the new file).
fn replace_with_copy(from: &Path, to: &Path) -> Result<(), PrepareError> {
    let tmp = tmp_path(to);
    fs::copy(from, &tmp).map_err(io_err(from))?;
    fs::rename(&tmp, to).map_err(io_err(&tmp))
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(TMP);
    PathBuf::from(s)
}

/// Names in a schema directory of BASE that INC keeps: its files, the
/// targets of its deltas, and the tablespace a marker (`t.new`, `t.ren`,
/// `t.del`) or a `t.new.delta` stands for.
fn kept_names(inc_dir: &Path) -> Result<BTreeSet<String>, PrepareError> {
    let mut keep = BTreeSet::new();
    for name in files_of(inc_dir)? {
        let name = name.strip_suffix(".delta").unwrap_or(&name).to_string();
        for marker in [".new", ".ren", ".del"] {
            if let Some(stem) = name.strip_suffix(marker) {
                keep.insert(format!("{stem}.ibd"));
            }
        }
        keep.insert(name);
    }
    Ok(keep)
}

/// Merges INC into BASE (see the module docs). BASE must have passed
/// [`check`].
///
/// # Errors
/// [`PrepareError::BadDelta`] naming a damaged `.delta`,
/// [`PrepareError::Io`] naming the file.
pub(super) fn apply(base: &Path, inc: &Path, min_pages: u64) -> Result<Merged, PrepareError> {
    let deltas = find_deltas(inc)?;
    let mut merged = Merged::default();

    // Where each delta goes: onto BASE's file of the same name and space
    // id, onto BASE's `.ibd` of that space id under another name (moved to
    // a temporary name first, all before any is written), or a new file.
    let mut by_id: Option<HashMap<u32, PathBuf>> = None;
    let mut plan = Vec::with_capacity(deltas.len());
    for d in &deltas {
        let target = base.join(&d.rel);
        if space_id_of(&target) == Some(d.meta.space_id) {
            plan.push((d, target.clone(), target, false));
            continue;
        }
        let index = match &mut by_id {
            Some(index) => index,
            None => by_id.insert(index_spaces(base)?),
        };
        let tmp = tmp_path(&target);
        let fresh = match index.remove(&d.meta.space_id) {
            Some(from) if is_ibd(&target) => {
                tracing::debug!(from = %from.display(), to = %target.display(), space_id = d.meta.space_id, "tablespace renamed since the base");
                fs::rename(&from, &tmp).map_err(io_err(&from))?;
                merged.moved += 1;
                false
            }
            _ => {
                File::create(&tmp).map_err(io_err(&tmp))?;
                merged.new_spaces += 1;
                true
            }
        };
        plan.push((d, tmp, target, fresh));
    }
    for (d, write_to, target, fresh) in &plan {
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .open(write_to)
            .map_err(io_err(write_to))?;
        merged.pages += write_pages(d, &out, write_to)?;
        // a new file: as long as the server makes one, and a page 0
        if *fresh || space_id_of(write_to) != Some(d.meta.space_id) {
            ensure_page0(&d.meta, &out, write_to, min_pages)?;
        }
        out.sync_all().map_err(io_err(write_to))?;
        if write_to != target {
            fs::rename(write_to, target).map_err(io_err(write_to))?;
        }
        merged.deltas += 1;
    }

    // Every other file of INC replaces BASE's.
    let mut dirs = vec![PathBuf::new()];
    dirs.extend(schema_dirs(inc)?);
    for rel in &dirs {
        let names = files_of(&inc.join(rel))?;
        fs::create_dir_all(base.join(rel)).map_err(io_err(&base.join(rel)))?;
        for name in &names {
            let is_delta_part = name.ends_with(".delta")
                || name
                    .strip_suffix(".meta")
                    .is_some_and(|s| names.contains(&format!("{s}.delta")));
            if is_delta_part || (rel.as_os_str().is_empty() && name == "xtrabackup_checkpoints") {
                continue;
            }
            replace_with_copy(&inc.join(rel).join(name), &base.join(rel).join(name))?;
            merged.copied += 1;
        }
    }
    merged.copied += replace_redo(base, inc)?;
    merged.removed += remove_dropped(base, inc, &dirs)?;
    Ok(merged)
}

fn is_ibd(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "ibd")
}

/// Space id → `.ibd` file of BASE (root and schema directories).
fn index_spaces(base: &Path) -> Result<HashMap<u32, PathBuf>, PrepareError> {
    let mut index = HashMap::new();
    let mut dirs = vec![PathBuf::new()];
    dirs.extend(schema_dirs(base)?);
    for rel in dirs {
        for name in files_of(&base.join(&rel))? {
            let p = base.join(&rel).join(&name);
            if is_ibd(&p) {
                if let Some(id) = space_id_of(&p) {
                    index.entry(id).or_insert(p);
                }
            }
        }
    }
    Ok(index)
}

/// BASE's redo goes where INC brings its own: `ib_logfile*` files when INC
/// has `ib_logfile0` (copied with the other files), `#innodb_redo/` as a
/// whole. Returns the files copied here.
fn replace_redo(base: &Path, inc: &Path) -> Result<usize, PrepareError> {
    if inc.join("ib_logfile0").is_file() {
        for name in files_of(base)? {
            if name.starts_with("ib_logfile") && !inc.join(&name).exists() {
                let p = base.join(&name);
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
    }
    let inc_redo = inc.join("#innodb_redo");
    if !inc_redo.is_dir() {
        return Ok(0);
    }
    let base_redo = base.join("#innodb_redo");
    if base_redo.exists() {
        fs::remove_dir_all(&base_redo).map_err(io_err(&base_redo))?;
    }
    fs::create_dir(&base_redo).map_err(io_err(&base_redo))?;
    let names = files_of(&inc_redo)?;
    for name in &names {
        fs::copy(inc_redo.join(name), base_redo.join(name))
            .map_err(io_err(&inc_redo.join(name)))?;
    }
    Ok(names.len())
}

/// Deletes what was dropped since the base: files of BASE's schema
/// directories that INC keeps in no form, and schema directories INC
/// lacks. Returns how many files and directories went.
fn remove_dropped(base: &Path, inc: &Path, inc_dirs: &[PathBuf]) -> Result<usize, PrepareError> {
    let mut removed = 0;
    for rel in schema_dirs(base)? {
        let dir = base.join(&rel);
        if !inc_dirs.contains(&rel) {
            tracing::debug!(dir = %dir.display(), "schema dropped since the base");
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            removed += 1;
            continue;
        }
        let keep = kept_names(&inc.join(&rel))?;
        for name in files_of(&dir)? {
            if !keep.contains(&name) {
                let p = dir.join(&name);
                tracing::debug!(file = %p.display(), "dropped since the base");
                fs::remove_file(&p).map_err(io_err(&p))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xb_innodb::delta::DeltaWriter;
    use xb_innodb::pagecheck::{Verdict, check_page};

    const P: usize = 16_384;

    fn meta(space_id: u32, flags: u32) -> DeltaMeta {
        DeltaMeta {
            page_size: P as u32,
            zip_size: 0,
            space_id,
            space_flags: flags,
        }
    }

    #[test]
    fn a_page0_made_from_meta_passes_the_servers_checksum() {
        for flags in [0x15, 0x21] {
            let p = page0_from_meta(&meta(42, flags), 4).unwrap();
            let sm = SpaceMeta::from_page0(&p, P).unwrap();
            assert_eq!((sm.space_id, sm.flags), (42, flags));
            assert_eq!(check_page(&p, &sm, 0, false), Verdict::Valid, "{flags:#x}");
            assert_eq!(be32(&p, FSP_SIZE), 4);
        }
    }

    /// A page that names itself `no` in space `space`.
    fn page(no: u32, space: u32) -> Vec<u8> {
        let mut p = vec![0u8; P];
        p[4..8].copy_from_slice(&no.to_be_bytes());
        p[34..38].copy_from_slice(&space.to_be_bytes());
        p[100] = 0xAB;
        p
    }

    fn write_delta(dir: &Path, rel: &str, space: u32, pages: &[(u32, Vec<u8>)]) {
        let mut w = DeltaWriter::new(P).unwrap();
        let mut bytes = Vec::new();
        for (no, p) in pages {
            bytes.extend(w.push(*no, p).unwrap().unwrap_or_default());
        }
        bytes.extend(w.finish());
        fs::write(dir.join(format!("{rel}.delta")), bytes).unwrap();
        fs::write(dir.join(format!("{rel}.meta")), meta(space, 0x15).render()).unwrap();
    }

    fn backup(dir: &Path, ty: &str, from: u64, to: u64) {
        let text =
            format!("backup_type = {ty}\nfrom_lsn = {from}\nto_lsn = {to}\nlast_lsn = {to}\n");
        fs::write(dir.join("xtrabackup_checkpoints"), text).unwrap();
    }

    #[test]
    fn deltas_land_on_the_same_space_a_new_file_or_the_renamed_one() {
        let base = tempfile::tempdir().unwrap();
        let inc = tempfile::tempdir().unwrap();
        let (b, i) = (base.path(), inc.path());
        for d in [b, i] {
            fs::create_dir(d.join("db")).unwrap();
        }
        backup(b, "log-applied", 0, 100);
        backup(i, "incremental", 100, 200);
        // same space: pages overwritten, the file grows
        fs::write(b.join("db/same.ibd"), [page(0, 5), page(1, 5)].concat()).unwrap();
        write_delta(i, "db/same.ibd", 5, &[(1, page(1, 5)), (3, page(3, 5))]);
        // re-created: another space id under the old name
        fs::write(b.join("db/trunc.ibd"), [page(0, 6), page(1, 6)].concat()).unwrap();
        write_delta(i, "db/trunc.ibd", 9, &[(2, page(2, 9))]);
        // renamed since the base: old.ibd holds space 7, the delta is new.ibd
        fs::write(b.join("db/old.ibd"), [page(0, 7), page(1, 7)].concat()).unwrap();
        write_delta(i, "db/new.ibd", 7, &[(1, page(1, 7))]);
        // dropped since the base, with its .frm
        fs::write(b.join("db/gone.ibd"), page(0, 8)).unwrap();
        fs::write(b.join("db/gone.frm"), "frm").unwrap();
        // whole files replace the base's
        fs::write(b.join("db/same.frm"), "old").unwrap();
        fs::write(i.join("db/same.frm"), "new").unwrap();
        fs::write(i.join("ib_logfile0"), "inc log").unwrap();
        fs::write(b.join("ib_logfile0"), "base log").unwrap();
        fs::write(b.join("ib_logfile101"), "stale").unwrap();
        // a schema dropped since the base
        fs::create_dir(b.join("olddb")).unwrap();
        fs::write(b.join("olddb/t.frm"), "x").unwrap();

        let cps =
            Checkpoints::parse(&fs::read_to_string(b.join("xtrabackup_checkpoints")).unwrap())
                .unwrap();
        check(b, &cps, i).unwrap();
        let m = apply(b, i, 4).unwrap();
        assert_eq!((m.deltas, m.pages, m.new_spaces, m.moved), (3, 4, 1, 1));
        let same = fs::read(b.join("db/same.ibd")).unwrap();
        assert_eq!(same.len(), 4 * P);
        assert_eq!(&same[3 * P..4 * P], page(3, 5).as_slice());
        assert_eq!(&same[..P], page(0, 5).as_slice(), "page 0 kept");
        let trunc = fs::read(b.join("db/trunc.ibd")).unwrap();
        assert_eq!(trunc.len(), 4 * P, "a new file has at least 4 pages");
        assert_eq!(
            space_id_of(&b.join("db/trunc.ibd")),
            Some(9),
            "page 0 made from the .meta"
        );
        assert!(trunc[P..2 * P].iter().all(|&x| x == 0));
        let new = fs::read(b.join("db/new.ibd")).unwrap();
        assert_eq!(
            &new[..P],
            page(0, 7).as_slice(),
            "the renamed file, not a new one"
        );
        assert!(!b.join("db/old.ibd").exists());
        assert!(!b.join("db/gone.ibd").exists() && !b.join("db/gone.frm").exists());
        assert!(!b.join("olddb").exists());
        assert_eq!(fs::read_to_string(b.join("db/same.frm")).unwrap(), "new");
        assert_eq!(
            fs::read_to_string(b.join("ib_logfile0")).unwrap(),
            "inc log"
        );
        assert!(!b.join("ib_logfile101").exists());
        assert!(!b.join("db/same.ibd.delta").exists() && !b.join("db/same.ibd.meta").exists());
    }

    #[test]
    fn what_does_not_fit_is_refused_before_anything_changes() {
        let base = tempfile::tempdir().unwrap();
        let inc = tempfile::tempdir().unwrap();
        let (b, i) = (base.path(), inc.path());
        backup(b, "full-prepared", 0, 100);
        backup(i, "incremental", 100, 200);
        let cps = |d: &Path| {
            Checkpoints::parse(&fs::read_to_string(d.join("xtrabackup_checkpoints")).unwrap())
                .unwrap()
        };
        let e = check(b, &cps(b), i).unwrap_err();
        assert!(matches!(e, PrepareError::BaseNotLogApplied { .. }), "{e}");
        assert_eq!(e.code(), 37);
        backup(b, "log-applied", 0, 90);
        let e = check(b, &cps(b), i).unwrap_err();
        assert!(
            e.to_string().contains("from_lsn 100") && e.to_string().contains("to_lsn 90"),
            "{e}"
        );
        backup(b, "log-applied", 0, 100);
        backup(i, "full-backuped", 0, 200);
        let e = check(b, &cps(b), i).unwrap_err();
        assert!(matches!(e, PrepareError::NotIncremental { .. }), "{e}");
        backup(i, "incremental", 100, 200);
        fs::write(i.join(INCOMPLETE_MARKER), "").unwrap();
        assert!(matches!(
            check(b, &cps(b), i),
            Err(PrepareError::Incomplete { .. })
        ));
        fs::remove_file(i.join(INCOMPLETE_MARKER)).unwrap();
        // the LSNs link (the checkpoint stood still), but the incremental
        // ends before what the base already holds: taken earlier
        let applied = "backup_type = log-applied\nfrom_lsn = 0\nto_lsn = 100\nlast_lsn = 300\n";
        fs::write(b.join("xtrabackup_checkpoints"), applied).unwrap();
        let e = check(b, &cps(b), i).unwrap_err();
        assert!(
            matches!(e, PrepareError::IncrementalOutOfOrder { .. }),
            "{e}"
        );
        assert_eq!(e.code(), 37);
        backup(b, "log-applied", 0, 100);
        // a .delta without its .meta
        fs::write(i.join("ibdata1.delta"), "x").unwrap();
        let e = check(b, &cps(b), i).unwrap_err();
        assert!(matches!(e, PrepareError::BadDelta { .. }), "{e}");
        assert!(e.to_string().contains("ibdata1.delta"), "{e}");
        assert_eq!(e.code(), 31);
    }

    #[test]
    fn damaged_deltas_are_named_never_a_panic() {
        let base = tempfile::tempdir().unwrap();
        let inc = tempfile::tempdir().unwrap();
        let (b, i) = (base.path(), inc.path());
        fs::create_dir(i.join("db")).unwrap();
        fs::create_dir(b.join("db")).unwrap();
        write_delta(i, "db/t.ibd", 5, &[(1, page(1, 5)), (2, page(2, 5))]);
        let full = fs::read(i.join("db/t.ibd.delta")).unwrap();
        let run = |bytes: &[u8], meta_text: &str| {
            fs::write(i.join("db/t.ibd.delta"), bytes).unwrap();
            fs::write(i.join("db/t.ibd.meta"), meta_text).unwrap();
            let e = apply(b, i, 4).unwrap_err();
            assert!(matches!(e, PrepareError::BadDelta { .. }), "{e}");
            assert!(e.to_string().contains("db/t.ibd."), "{e}");
            e.to_string()
        };
        let good_meta = meta(5, 0x15).render();
        assert!(run(&full[..full.len() - 10], &good_meta).contains("ends at byte"));
        let mut bad = full.clone();
        bad[0] = b'Q';
        assert!(run(&bad, &good_meta).contains("magic"));
        let mut liar = full.clone();
        liar[P + 4..P + 8].copy_from_slice(&77u32.to_be_bytes());
        assert!(run(&liar, &good_meta).contains("calls itself page 77"));
        assert!(run(&full, "page_size = 16384\n").contains("no page_size or space_id"));
        assert!(run(&full, "page_size = 1000\nspace_id = 5\n").contains("page size 1000"));
    }
}
