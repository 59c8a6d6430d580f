//! What a backup copies from a datadir, sorted into the stages that copy it.
//!
//! Files are picked by name: the InnoDB system and undo tablespaces, every
//! `*.ibd` in a database directory, the non-InnoDB table files by their
//! suffixes, and the Aria control file and logs. Everything else (binlogs,
//! the server's redo, temporary tablespaces, pid files, ...) is left out by
//! construction.

use std::path::{Path, PathBuf};

use super::data_copy::{Job, Kind};
use super::seams::SeamError;
use super::server::ServerFacts;
use crate::error::BackupError;

/// Suffixes of non-transactional table files and table metadata, copied
/// while DDL and non-transactional writes are blocked.
const NON_INNODB: &[&str] = &[
    "frm", "isl", "MYD", "MYI", "MRG", "TRG", "TRN", "ARM", "ARZ", "CSM", "CSV", "opt", "par",
    "sdi",
];
/// Aria table files: crash-safe. Transactional ones are copied while
/// written (MariaDB), the rest once writes to them are blocked.
const ARIA: &[&str] = &["MAD", "MAI"];

/// Which tables a partial backup keeps (`--databases`, `--tables`). The
/// system schemas (`mysql`, `performance_schema`, `sys`) are always kept,
/// so the backup can still be started as a server.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `db` or `db.table` names; `None` keeps every database.
    pub databases: Option<Vec<String>>,
    /// Pattern matched against `db.table`; `None` keeps every table.
    pub tables: Option<regex::Regex>,
}

const SYSTEM_SCHEMAS: &[&str] = &["mysql", "performance_schema", "sys"];

impl Filter {
    /// True when nothing is filtered out.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.databases.is_none() && self.tables.is_none()
    }

    /// Does the backup keep file `file` of database directory `db`?
    #[must_use]
    pub fn keeps(&self, db: &str, file: &str) -> bool {
        if SYSTEM_SCHEMAS.contains(&db) {
            return true;
        }
        // table name: up to the partition marker or the extension
        let table = file.split("#P#").next().unwrap_or(file);
        let table = table.rsplit_once('.').map_or(table, |(t, _)| t);
        let qualified = format!("{db}.{table}");
        let by_db = self.databases.as_ref().is_none_or(|list| {
            list.iter().any(|d| {
                d == db || *d == qualified || (file == "db.opt" && d.split('.').next() == Some(db))
            })
        });
        let by_table = file == "db.opt"
            || self
                .tables
                .as_ref()
                .is_none_or(|re| re.is_match(&qualified));
        by_db && by_table
    }
}

/// The copy list of one datadir.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// InnoDB tablespaces.
    pub innodb: Vec<Job>,
    /// Non-InnoDB tables and metadata (MyISAM, CSV, ARCHIVE, .frm, ...).
    pub non_innodb: Vec<Job>,
    /// Aria tables, `aria_log_control` and `aria_log.*`.
    pub aria: Vec<Job>,
}

impl Manifest {
    /// Bytes of every listed file, as listed (for the progress total).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.innodb
            .iter()
            .chain(&self.non_innodb)
            .chain(&self.aria)
            .map(|j| j.size)
            .sum()
    }
}

/// A copy of `src` into the backup as `rel`, sized as the file is now.
pub(super) fn job(src: PathBuf, rel: String, kind: Kind) -> Job {
    let size = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
    Job {
        src,
        rel,
        kind,
        size,
    }
}

fn ext(p: &Path) -> Option<&str> {
    p.extension().and_then(|e| e.to_str())
}

/// Names of the system tablespace files in `innodb_data_file_path`
/// (`ibdata1:12M;ibdata2:50M:autoextend`).
#[must_use]
pub fn system_files(data_file_path: &str) -> Vec<String> {
    data_file_path
        .split(';')
        .filter_map(|spec| spec.split(':').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The names the system tablespace's files have inside a backup (which
/// keeps them at its top, whatever directory the source kept them in):
/// the last component of each file in `innodb_data_file_path`, `ibdata1`
/// when it names none.
#[must_use]
pub fn system_file_names(data_file_path: &str) -> Vec<String> {
    let names: Vec<String> = system_files(data_file_path)
        .iter()
        .filter_map(|n| n.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        vec!["ibdata1".into()]
    } else {
        names
    }
}

/// Why directory `d` could not be listed.
fn unlistable(d: &Path, e: std::io::Error) -> BackupError {
    BackupError::Read(SeamError::Io {
        path: d.display().to_string(),
        message: format!("cannot list: {e}"),
    })
}

/// The entries of directory `d`.
///
/// # Errors
/// [`BackupError::Read`] naming `d` when it cannot be listed.
pub(super) fn read_dir(d: &Path) -> Result<std::fs::ReadDir, BackupError> {
    std::fs::read_dir(d).map_err(|e| unlistable(d, e))
}

/// Lists what to copy from the server's datadir.
///
/// # Errors
/// [`BackupError::Read`] when the datadir (or a database directory) cannot
/// be listed.
pub fn list(facts: &ServerFacts, filter: &Filter) -> Result<Manifest, BackupError> {
    list_only(facts, filter, Want::ALL)
}

/// Which of a datadir's files a listing holds. The phases after the first
/// listing each want one kind: with 100,000 tables, listing the others
/// again only to drop them cost 20 MB at the peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// InnoDB tablespaces.
    pub innodb: bool,
    /// Non-InnoDB tables and metadata.
    pub non_innodb: bool,
    /// Aria tables and logs.
    pub aria: bool,
}

impl Want {
    /// Every kind: the first listing.
    pub const ALL: Want = Want {
        innodb: true,
        non_innodb: true,
        aria: true,
    };
    /// The tablespaces alone.
    pub const INNODB: Want = Want {
        innodb: true,
        non_innodb: false,
        aria: false,
    };
    /// What is copied once DDL is blocked: non-InnoDB and Aria files.
    pub const NON_INNODB: Want = Want {
        innodb: false,
        non_innodb: true,
        aria: true,
    };
    /// The non-InnoDB files without Aria.
    pub const PLAIN: Want = Want {
        innodb: false,
        non_innodb: true,
        aria: false,
    };
    /// Aria files alone.
    pub const ARIA: Want = Want {
        innodb: false,
        non_innodb: false,
        aria: true,
    };
}

/// Lists the files of the kinds `want` names, the others left empty.
///
/// # Errors
/// As [`list`].
pub fn list_only(
    facts: &ServerFacts,
    filter: &Filter,
    want: Want,
) -> Result<Manifest, BackupError> {
    let datadir = Path::new(&facts.datadir);
    let mut m = Manifest::default();
    if want.innodb {
        let home = if facts.data_home_dir.is_empty() {
            datadir.to_path_buf()
        } else {
            datadir.join(&facts.data_home_dir)
        };
        for f in system_files(&facts.data_file_path) {
            m.innodb
                .push(job(home.join(&f), f.clone(), Kind::Tablespace));
        }
        let undo_dir = datadir.join(facts.undo_directory.trim_start_matches("./"));
        for e in read_dir(&undo_dir)? {
            let e = e.map_err(|e| unlistable(&undo_dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_numbered_undo(&name) {
                m.innodb.push(job(e.path(), name, Kind::Tablespace));
            }
        }
    }
    for e in read_dir(datadir)? {
        let e = e.map_err(|e| unlistable(datadir, e))?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_file() && (name == "aria_log_control" || name.starts_with("aria_log.")) {
            if want.aria {
                m.aria.push(job(path, name, Kind::Plain));
            }
            continue;
        }
        // tablespaces in the datadir itself: MySQL's mysql.ibd, general tablespaces
        if path.is_file() && ext(&path) == Some("ibd") {
            if want.innodb {
                m.innodb.push(job(path, name, Kind::Tablespace));
            }
            continue;
        }
        if !path.is_dir() || name.starts_with('#') || name.starts_with('.') || name == "lost+found"
        {
            continue;
        }
        for f in read_dir(&path)? {
            let f = f.map_err(|e| unlistable(&path, e))?;
            let fp = f.path();
            // by name first: a stat of every file to drop most of them
            // again is what a listing of one kind saves
            let list = match ext(&fp) {
                Some("ibd") if want.innodb => &mut m.innodb,
                Some(x) if ARIA.contains(&x) && want.aria => &mut m.aria,
                Some(x) if NON_INNODB.contains(&x) && want.non_innodb => &mut m.non_innodb,
                _ => continue,
            };
            let file_name = f.file_name().to_string_lossy().into_owned();
            if !fp.is_file() || !filter.keeps(&name, &file_name) {
                continue;
            }
            let kind = if ext(&fp) == Some("ibd") {
                Kind::Tablespace
            } else {
                Kind::Plain
            };
            list.push(job(fp, format!("{name}/{file_name}"), kind));
        }
    }
    Ok(m)
}

/// The table a file in a schema directory belongs to, by the names the
/// server uses in SQL: `None` for a file outside a schema directory
/// (system, general, undo tablespaces), `Some(None)` for a name xb cannot
/// decode.
pub(super) fn table_of(rel: &str) -> Option<Option<(String, String)>> {
    let (dir, file) = rel.split_once('/')?;
    if file.contains('/') {
        return None;
    }
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    // `t#p#p0`, `t#P#p0#SP#s0`: a literal '#' only starts a partition
    // suffix, since the server writes '#' in a name as @0023
    let table = stem.split('#').next().unwrap_or(stem);
    Some(decode(dir).zip(decode(table)))
}

/// Undoes the server's file-name encoding for names that use only its
/// four-hex-digit form (`@002d` for '-'); `None` for anything else.
fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 1..at + 5)?;
        let code = u32::from_str_radix(hex, 16).ok()?;
        out.push(char::from_u32(code)?);
        rest = &rest[at + 5..];
    }
    out.push_str(rest);
    Some(out)
}

/// What a file is and when it last changed. Equal stamps before a copy and
/// later mean nobody wrote, truncated, replaced or renamed it in between
/// (a rename changes the inode's ctime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The [`Stamp`] of `path`; `None` when it is not there (or not readable).
pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

/// Which file a path names: device, inode and birth time. The same
/// identity later means no DDL replaced, renamed or rebuilt the file,
/// though the server may have written it (an Aria table copied while
/// written). The birth time tells a new file from a dropped one whose
/// inode it reused; where the file system keeps none, inodes alone decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity {
    dev: u64,
    ino: u64,
    born: Option<std::time::SystemTime>,
}

impl Identity {
    /// Device and inode alone: what a reader's open file reports.
    pub(super) fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// The [`Identity`] of `path`; `None` when it is not there.
pub(super) fn identity(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Identity {
        dev: m.dev(),
        ino: m.ino(),
        born: m.created().ok(),
    })
}

/// An undo tablespace, by its name in the backup: `undo_001` (MySQL's
/// implicit ones), `undo001` (MariaDB), or a MySQL `.ibu` file.
#[must_use]
pub fn is_undo(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.ends_with(".ibu") || is_numbered_undo(name)
}

/// The undo tablespaces a server makes by itself, found by the walk:
/// MariaDB's `undo001`, MySQL's `undo_001`.
fn is_numbered_undo(name: &str) -> bool {
    let digits = name
        .strip_prefix("undo_")
        .or_else(|| name.strip_prefix("undo"));
    digits.is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decode_from_the_servers_file_encoding() {
        assert_eq!(decode("t@002d1").as_deref(), Some("t-1"));
        assert_eq!(decode("plain_name").as_deref(), Some("plain_name"));
        assert_eq!(decode("a@0023b").as_deref(), Some("a#b"));
        assert_eq!(decode("bad@0G"), None);
        assert_eq!(
            table_of("my@002ddb/t#p#p0.ibd"),
            Some(Some(("my-db".into(), "t".into())))
        );
        assert_eq!(table_of("ibdata1"), None);
        assert_eq!(table_of("mysql.ibd"), None);
        assert_eq!(table_of("db/x@0G.ibd"), Some(None));
        assert_eq!(
            table_of("db/m#P#p1.MYD"),
            Some(Some(("db".into(), "m".into())))
        );
    }

    #[test]
    fn undo_tablespaces_are_told_by_name() {
        for u in [
            "undo_001",
            "undo001",
            "undo_002.ibu",
            "x/undo_9.ibu",
            "undo_99",
        ] {
            assert!(is_undo(u), "{u}");
        }
        for n in [
            "ibdata1",
            "db/undo_t.ibd",
            "undo_",
            "mysql.ibd",
            "db/undo001x.ibd",
        ] {
            assert!(!is_undo(n), "{n}");
        }
    }

    #[test]
    fn partial_backups_keep_the_named_tables_and_the_system_schemas() {
        let f = Filter {
            databases: Some(vec!["shop".into(), "crm.users".into()]),
            tables: None,
        };
        assert!(f.keeps("shop", "orders.ibd"));
        assert!(f.keeps("shop", "p#P#p0.ibd"));
        assert!(f.keeps("crm", "users.frm"));
        assert!(f.keeps("crm", "db.opt"));
        assert!(!f.keeps("crm", "leads.ibd"));
        assert!(!f.keeps("other", "t.ibd"));
        assert!(f.keeps("mysql", "user.MAI"));
        let t = Filter {
            databases: None,
            tables: Some(regex::Regex::new("^shop[.]o").unwrap()),
        };
        assert!(t.keeps("shop", "orders.ibd"));
        assert!(!t.keeps("shop", "items.ibd"));
        assert!(t.keeps("shop", "db.opt"));
        assert!(Filter::default().is_full());
    }

    #[test]
    fn system_tablespace_names_in_a_backup() {
        assert_eq!(
            system_file_names("/data/sys/ibdata1:12M;ibdata2:50M:autoextend"),
            ["ibdata1", "ibdata2"]
        );
        assert_eq!(system_file_names(""), ["ibdata1"]);
    }

    #[test]
    fn system_tablespace_names() {
        assert_eq!(system_files("ibdata1:12M:autoextend"), ["ibdata1"]);
        assert_eq!(
            system_files("ibdata1:12M;ibdata2:50M:autoextend"),
            ["ibdata1", "ibdata2"]
        );
    }

    #[test]
    fn files_are_sorted_into_stages_and_the_rest_is_left_out() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "ibdata1",
            "undo001",
            "ib_logfile0",
            "ibtmp1",
            "binlog.000001",
            "binlog.index",
            "aria_log_control",
            "aria_log.00000001",
            "ib_buffer_pool",
            "db/t.ibd",
            "db/t.frm",
            "db/m.MYD",
            "db/m.MYI",
            "db/a.MAD",
            "db/a.MAI",
            "db/db.opt",
            "#rocksdb/x.sst",
            "db/#sql-1.frm.tmp",
            "mysql.ibd",
            "undo_002",
            "#ib_16384_0.dblwr",
            "#innodb_redo/#ib_redo5",
            "#innodb_temp/temp_1.ibt",
            "db/m_123.sdi",
            "auto.cnf",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let facts = ServerFacts {
            version: "10.11.18-MariaDB".into(),
            version_num: (10, 11, 18),
            mariadb: true,
            datadir: root.display().to_string(),
            log_dir: root.display().to_string(),
            page_size: 16384,
            data_file_path: "ibdata1:12M:autoextend".into(),
            data_home_dir: String::new(),
            undo_directory: "./".into(),
            undo_tablespaces: 1,
            log_file_size: 0,
            redo_capacity: 0,
            checksum_algorithm: "full_crc32".into(),
            compression_level: "6".into(),
            log_bin: false,
            flush_method: "O_DIRECT".into(),
            tokudb: None,
            redo_log_enabled: true,
        };
        let m = list(&facts, &Filter::default()).unwrap();
        let rels = |v: &[Job]| {
            let mut r: Vec<String> = v.iter().map(|j| j.rel.clone()).collect();
            r.sort();
            r
        };
        assert_eq!(
            rels(&m.innodb),
            ["db/t.ibd", "ibdata1", "mysql.ibd", "undo001", "undo_002"]
        );
        assert_eq!(
            rels(&m.non_innodb),
            [
                "db/db.opt",
                "db/m.MYD",
                "db/m.MYI",
                "db/m_123.sdi",
                "db/t.frm"
            ]
        );
        assert_eq!(
            rels(&m.aria),
            [
                "aria_log.00000001",
                "aria_log_control",
                "db/a.MAD",
                "db/a.MAI"
            ]
        );
        // the listing again once DDL is blocked: the same non-InnoDB files,
        // no tablespaces
        let again = list_only(&facts, &Filter::default(), Want::NON_INNODB).unwrap();
        assert!(again.innodb.is_empty(), "{:?}", rels(&again.innodb));
        assert_eq!(rels(&again.non_innodb), rels(&m.non_innodb));
        assert_eq!(rels(&again.aria), rels(&m.aria));
        // each kind alone is what the whole listing holds of it
        let only = |w| list_only(&facts, &Filter::default(), w).unwrap();
        assert_eq!(rels(&only(Want::INNODB).innodb), rels(&m.innodb));
        assert!(only(Want::INNODB).non_innodb.is_empty());
        assert_eq!(rels(&only(Want::ARIA).aria), rels(&m.aria));
        assert!(only(Want::ARIA).non_innodb.is_empty());
        assert_eq!(rels(&only(Want::PLAIN).non_innodb), rels(&m.non_innodb));
        assert!(only(Want::PLAIN).aria.is_empty());
    }
}
