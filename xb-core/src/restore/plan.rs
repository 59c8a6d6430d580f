//! Which backup file goes where: pure, so every rule is a unit test.
//!
//! The rules are the server's own view of a datadir, as the option file
//! sets it (`datadir`, `innodb_data_home_dir`, `innodb_log_group_home_dir`,
//! `innodb_undo_directory`), plus the tablespaces the source kept outside
//! its datadir, which go back to their original absolute path:
//! - MariaDB keeps a `<db>/<table>.isl` next to such a table's
//!   `<db>/<table>.ibd` in the backup, holding that path; the `.ibd` goes
//!   there and the `.isl` into the datadir, where the server reads it;
//! - MySQL keeps no link file: the backup's `xtrabackup_tablespaces` lists
//!   each one's path, and where the backup keeps it is
//!   [`crate::run::external::backup_rel`], the rule the backup used.
//!
//! Backup-only files stay behind, as XtraBackup and mariadb-backup leave
//! them (`xtrabackup_*`, `backup-my.cnf`, and xb's own `xb_source`, `xb_indexes`,
//! `xb_prepare.log`, `xb_manifest.json`), and so do left-overs of a compressed or encrypted
//! stream (`.qp`, `.zst`, `.lz4`, `.xbcrypt`), of an incremental (`.delta`,
//! `.meta`) or of a vendor's copy (`.pmap`, `.tmp`). `ib_buffer_pool` is
//! restored: the server warms its buffer pool from it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::MARKER;
use super::error::RestoreError;
use crate::run::external;

/// Where the server looks for each kind of file: absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// `datadir`.
    pub datadir: PathBuf,
    /// `innodb_data_home_dir`: the system tablespace (`ibdata1`).
    pub data_home: PathBuf,
    /// `innodb_log_group_home_dir`: `ib_logfile0`, or MySQL's `#innodb_redo/`.
    pub log_home: PathBuf,
    /// `innodb_undo_directory`: `undo001` (MariaDB), `undo_001` (MySQL).
    pub undo_dir: PathBuf,
}

impl Dirs {
    /// The distinct directories of the four, in the order above.
    #[must_use]
    pub fn distinct(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for d in [
            &self.datadir,
            &self.data_home,
            &self.log_home,
            &self.undo_dir,
        ] {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }
}

/// A tablespace the backup's `xtrabackup_tablespaces` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The server's name for it.
    pub name: String,
    /// Its original absolute path.
    pub path: PathBuf,
    /// An undo tablespace.
    pub undo: bool,
}

/// What the backup directory holds, as read by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every file, relative to the backup's root, `/`-separated.
    pub files: Vec<String>,
    /// Directories with no file in them (a schema without tables).
    pub empty_dirs: Vec<String>,
    /// Each `.isl` (relative path) and the path it holds.
    pub isl: Vec<(String, String)>,
    /// `xtrabackup_tablespaces`.
    pub listed: Vec<Listed>,
    /// The system tablespace's files (`innodb_data_file_path`'s names).
    pub system_files: Vec<String>,
}

/// What a planned file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Data: tablespaces, `.frm`, Aria files, everything but the redo.
    Data,
    /// The redo log: written last, under a staging name (see
    /// [`Plan::redo`]).
    Redo,
}

/// One file to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its path relative to the backup's root.
    pub src: String,
    /// Where it goes, absolute.
    pub dest: PathBuf,
    /// Data or redo.
    pub kind: Kind,
}

/// How the redo log is laid out, which decides how a half-restored
/// datadir is kept from starting (found with real servers: see the
/// `restore` module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redo {
    /// MariaDB: `ib_logfile0` in the log directory. MariaDB 10.5 starts
    /// without it (and makes a new one), so a placeholder it refuses sits
    /// there until the real log replaces it by a rename.
    File {
        /// `<log_home>/ib_logfile0`.
        dest: PathBuf,
    },
    /// MySQL 8.0.30+: `#innodb_redo/`. Without that directory MySQL
    /// refuses to start, with an empty one it starts afresh: the log is
    /// written into a staging directory renamed into place at the end.
    Dir {
        /// `<log_home>/#innodb_redo`.
        dest: PathBuf,
    },
    /// No redo in the backup.
    None,
}

/// Suffix of the staging name of the redo file or directory.
pub const STAGING_SUFFIX: &str = ".xb-restore";

impl Redo {
    /// Where the redo is written before it is renamed to its place.
    #[must_use]
    pub fn staging(&self) -> Option<PathBuf> {
        match self {
            Redo::File { dest } | Redo::Dir { dest } => {
                let mut s = dest.clone().into_os_string();
                s.push(STAGING_SUFFIX);
                Some(PathBuf::from(s))
            }
            Redo::None => None,
        }
    }
}

/// Every file and directory a restore writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The files, data first, in the backup's order.
    pub items: Vec<Item>,
    /// Empty directories to create.
    pub empty_dirs: Vec<PathBuf>,
    /// Backup-only files left behind.
    pub skipped: Vec<String>,
    /// The redo's layout.
    pub redo: Redo,
    /// The incomplete marker, in the datadir.
    pub marker: PathBuf,
}

impl Plan {
    /// Where a redo item is written first: under [`Redo::staging`].
    #[must_use]
    pub fn staged(&self, item: &Item) -> PathBuf {
        if item.kind == Kind::Data {
            return item.dest.clone();
        }
        match (&self.redo, self.redo.staging()) {
            (Redo::Dir { dest }, Some(stage)) => item
                .dest
                .strip_prefix(dest)
                .map_or_else(|_| item.dest.clone(), |rest| stage.join(rest)),
            (Redo::File { .. }, Some(stage)) => stage,
            _ => item.dest.clone(),
        }
    }

    /// Every path the restore creates as a file or a directory entry of
    /// its own, none of which may exist beforehand: the files, the staging
    /// name, the marker.
    #[must_use]
    pub fn new_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.items.iter().map(|i| i.dest.clone()).collect();
        if let Some(s) = self.redo.staging() {
            out.push(s);
        }
        if let Redo::Dir { dest } = &self.redo {
            out.push(dest.clone());
        }
        out.push(self.marker.clone());
        out.sort();
        out.dedup();
        out
    }

    /// Total number of files.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is nothing to restore.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Backup-only files at the backup's root, by name.
fn backup_only(name: &str) -> bool {
    name.starts_with("xtrabackup_")
        || matches!(
            name,
            "backup-my.cnf" | "xb_source" | "xb_indexes" | "xb_prepare.log" | "xb_manifest.json"
        )
        || name == MARKER
}

/// Left-overs that no server reads, anywhere in the backup.
fn leftover(name: &str) -> bool {
    [
        ".qp", ".zst", ".lz4", ".xbcrypt", ".delta", ".meta", ".pmap", ".tmp",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// `undo001` (MariaDB) or `undo_001` (MySQL).
fn is_undo(name: &str) -> bool {
    let digits = name
        .strip_prefix("undo_")
        .or_else(|| name.strip_prefix("undo"));
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        || name.ends_with(".ibu")
}

/// `ib_logfileN`.
fn is_redo_file(name: &str) -> bool {
    name.strip_prefix("ib_logfile")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// An original path a restore may write to: absolute, no `..`.
fn checked_abs(path: &Path, file: &str) -> Result<PathBuf, RestoreError> {
    let bad = |reason: String| RestoreError::BadBackup {
        file: PathBuf::from(file),
        reason,
    };
    if !path.is_absolute() {
        return Err(bad(format!(
            "names the relative path {path:?}, expected an absolute one"
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad(format!(
            "names the path {path:?}, which climbs with '..'"
        )));
    }
    if path.file_name().is_none() {
        return Err(bad(format!(
            "names the path {path:?}, which has no file name"
        )));
    }
    Ok(path.to_path_buf())
}

/// Plans the restore of `listing` into `dirs` (see the module docs).
///
/// # Errors
/// [`RestoreError::BadBackup`] when an `.isl` or the tablespace list names a
/// path that is not absolute, climbs with `..`, or cannot be kept in a
/// backup.
pub fn plan(listing: &Listing, dirs: &Dirs) -> Result<Plan, RestoreError> {
    let mut external: Vec<(String, PathBuf)> = Vec::new();
    for l in &listing.listed {
        let rel = external::backup_rel(&l.name, &l.path, l.undo).ok_or_else(|| {
            RestoreError::BadBackup {
                file: PathBuf::from(external::LIST_FILE),
                reason: format!(
                    "tablespace {:?} at {:?} has no place in a backup",
                    l.name, l.path
                ),
            }
        })?;
        external.push((rel, checked_abs(&l.path, external::LIST_FILE)?));
    }
    for (isl, target) in &listing.isl {
        let ibd = format!("{}.ibd", isl.trim_end_matches(".isl"));
        let path = checked_abs(Path::new(target.trim()), isl)?;
        external.push((ibd, path));
    }
    let system: BTreeSet<&str> = listing.system_files.iter().map(String::as_str).collect();
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let mut redo = Redo::None;
    for rel in &listing.files {
        let (top, name) = match rel.rsplit_once('/') {
            Some((dir, name)) => (Some(dir), name),
            None => (None, rel.as_str()),
        };
        if leftover(name) || (top.is_none() && backup_only(name)) {
            skipped.push(rel.clone());
            continue;
        }
        let (dest, kind) = if let Some((_, path)) = external.iter().find(|(r, _)| r == rel) {
            (path.clone(), Kind::Data)
        } else if top == Some("#innodb_redo") {
            let dir = dirs.log_home.join("#innodb_redo");
            redo = Redo::Dir { dest: dir.clone() };
            (dir.join(name), Kind::Redo)
        } else if top.is_some() {
            (dirs.datadir.join(rel), Kind::Data)
        } else if is_redo_file(name) {
            let dest = dirs.log_home.join(name);
            if name == "ib_logfile0" {
                redo = Redo::File { dest: dest.clone() };
            }
            (dest, Kind::Redo)
        } else if system.contains(name) {
            (dirs.data_home.join(name), Kind::Data)
        } else if is_undo(name) {
            (dirs.undo_dir.join(name), Kind::Data)
        } else {
            (dirs.datadir.join(name), Kind::Data)
        };
        items.push(Item {
            src: rel.clone(),
            dest,
            kind,
        });
    }
    // a MariaDB backup keeps one log file; others of an older layout would
    // have no staging name
    if let Redo::File { .. } = redo {
        let (keep, old): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|i| i.kind == Kind::Data || i.src == "ib_logfile0");
        items = keep;
        skipped.extend(old.into_iter().map(|i| i.src));
    }
    items.sort_by_key(|i| i.kind == Kind::Redo);
    Ok(Plan {
        items,
        empty_dirs: listing
            .empty_dirs
            .iter()
            .map(|d| dirs.datadir.join(d))
            .collect(),
        skipped,
        redo,
        marker: dirs.datadir.join(MARKER),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Dirs {
        Dirs {
            datadir: "/d".into(),
            data_home: "/ibdata".into(),
            log_home: "/logs".into(),
            undo_dir: "/undo".into(),
        }
    }

    fn listing(files: &[&str]) -> Listing {
        Listing {
            files: files.iter().map(|f| (*f).to_string()).collect(),
            system_files: vec!["ibdata1".into()],
            ..Listing::default()
        }
    }

    fn dest_of<'a>(p: &'a Plan, src: &str) -> Option<&'a Item> {
        p.items.iter().find(|i| i.src == src)
    }

    #[test]
    fn each_file_goes_where_the_server_looks_for_it() {
        let l = listing(&[
            "ib_logfile0",
            "ibdata1",
            "undo001",
            "undo_002",
            "aria_log.00000001",
            "ib_buffer_pool",
            "mysql/user.frm",
            "db/t.ibd",
            "#rocksdb/000001.sst",
        ]);
        let p = plan(&l, &dirs()).unwrap();
        let d = |s| dest_of(&p, s).unwrap().dest.clone();
        assert_eq!(d("ibdata1"), Path::new("/ibdata/ibdata1"));
        assert_eq!(d("undo001"), Path::new("/undo/undo001"));
        assert_eq!(d("undo_002"), Path::new("/undo/undo_002"));
        assert_eq!(d("aria_log.00000001"), Path::new("/d/aria_log.00000001"));
        assert_eq!(d("ib_buffer_pool"), Path::new("/d/ib_buffer_pool"));
        assert_eq!(d("mysql/user.frm"), Path::new("/d/mysql/user.frm"));
        assert_eq!(d("db/t.ibd"), Path::new("/d/db/t.ibd"));
        assert_eq!(
            d("#rocksdb/000001.sst"),
            Path::new("/d/#rocksdb/000001.sst")
        );
        assert_eq!(
            p.redo,
            Redo::File {
                dest: "/logs/ib_logfile0".into()
            }
        );
        assert_eq!(
            p.staged(dest_of(&p, "ib_logfile0").unwrap()),
            Path::new("/logs/ib_logfile0.xb-restore")
        );
        let ibdata = dest_of(&p, "ibdata1").unwrap();
        assert_eq!(p.staged(ibdata), ibdata.dest);
        // the redo comes last
        assert_eq!(p.items.last().unwrap().kind, Kind::Redo);
        assert!(p.items[..p.len() - 1].iter().all(|i| i.kind == Kind::Data));
        assert_eq!(p.marker, Path::new("/d/xb_restore_incomplete"));
    }

    #[test]
    fn backup_only_files_and_leftovers_stay_behind() {
        let l = listing(&[
            "xtrabackup_checkpoints",
            "xtrabackup_info",
            "xtrabackup_binlog_info",
            "xtrabackup_tablespaces",
            "backup-my.cnf",
            "xb_source",
            "xb_indexes",
            "xb_prepare.log",
            "xb_manifest.json",
            "db/t.ibd.zst",
            "db/t.ibd.qp",
            "db/t.ibd.delta",
            "db/t.ibd.meta",
            "ibdata1.xbcrypt",
            "db/xtrabackup_not_top_level",
        ]);
        let p = plan(&l, &dirs()).unwrap();
        assert_eq!(p.len(), 1, "{:?}", p.items);
        assert_eq!(p.items[0].src, "db/xtrabackup_not_top_level");
        assert_eq!(p.skipped.len(), 14);
        assert_eq!(p.redo, Redo::None);
    }

    #[test]
    fn mysql_redo_is_staged_as_a_directory() {
        let l = listing(&["#innodb_redo/#ib_redo9", "#innodb_redo/#ib_redo10_tmp"]);
        let p = plan(&l, &dirs()).unwrap();
        assert_eq!(
            p.redo,
            Redo::Dir {
                dest: "/logs/#innodb_redo".into()
            }
        );
        let item = dest_of(&p, "#innodb_redo/#ib_redo9").unwrap();
        assert_eq!(item.dest, Path::new("/logs/#innodb_redo/#ib_redo9"));
        assert_eq!(
            p.staged(item),
            Path::new("/logs/#innodb_redo.xb-restore/#ib_redo9")
        );
        let new = p.new_paths();
        assert!(new.contains(&PathBuf::from("/logs/#innodb_redo")));
        assert!(new.contains(&PathBuf::from("/logs/#innodb_redo.xb-restore")));
    }

    #[test]
    fn external_tablespaces_go_back_to_their_original_paths() {
        let mut l = listing(&["db/r.ibd", "db/r.isl", "db/m.ibd", "gen.ibd", "u1.ibu"]);
        l.isl = vec![("db/r.isl".into(), "/ext/db/r.ibd\n".into())];
        l.listed = vec![
            Listed {
                name: "db/m".into(),
                path: "/ext2/db/m.ibd".into(),
                undo: false,
            },
            Listed {
                name: "gen".into(),
                path: "/ext3/general.ibd".into(),
                undo: false,
            },
        ];
        let p = plan(&l, &dirs()).unwrap();
        let d = |s| dest_of(&p, s).unwrap().dest.clone();
        assert_eq!(d("db/r.ibd"), Path::new("/ext/db/r.ibd"));
        assert_eq!(d("db/r.isl"), Path::new("/d/db/r.isl"));
        assert_eq!(d("db/m.ibd"), Path::new("/ext2/db/m.ibd"));
        assert_eq!(d("gen.ibd"), Path::new("/ext3/general.ibd"));
        assert_eq!(d("u1.ibu"), Path::new("/undo/u1.ibu"));
    }

    #[test]
    fn an_external_path_that_could_write_anywhere_is_refused() {
        for bad in ["rel/db/t.ibd", "/ext/../etc/db/t.ibd", "/"] {
            let mut l = listing(&["db/t.ibd", "db/t.isl"]);
            l.isl = vec![("db/t.isl".into(), bad.into())];
            let e = plan(&l, &dirs()).unwrap_err();
            assert!(matches!(e, RestoreError::BadBackup { .. }), "{bad}: {e}");
            assert!(e.to_string().starts_with("db/t.isl: "), "{e}");
        }
        let mut l = listing(&[]);
        l.listed = vec![Listed {
            name: "..".into(),
            path: "/x/y.ibd".into(),
            undo: false,
        }];
        let e = plan(&l, &dirs()).unwrap_err();
        assert_eq!(e.code(), 41);
    }

    #[test]
    fn the_four_directories_are_listed_once_each() {
        let mut d = dirs();
        d.log_home = d.datadir.clone();
        d.undo_dir = d.datadir.clone();
        assert_eq!(d.distinct(), [Path::new("/d"), Path::new("/ibdata")]);
    }
}
