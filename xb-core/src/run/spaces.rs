//! Every tablespace the server has, as the server itself reports it, held
//! against what the backup copies.
//!
//! Walking the datadir ([`super::files`]) finds tablespaces by where the
//! server puts them by default. A server can keep them elsewhere (`DATA
//! DIRECTORY`, `ADD DATAFILE '/abs/path'`, `CREATE UNDO TABLESPACE … '.ibu'`,
//! `innodb_directories`), and a backup that silently leaves one out restores
//! to a server missing a table. So the server's own list is read
//! (`information_schema`) and reconciled with the walk before the copy:
//! a tablespace inside the datadir the walk missed is added. One outside it
//! is copied too: on MariaDB when the server itself links it from the
//! datadir (see [`linked_rel`]), on MySQL where XtraBackup keeps it (see
//! [`super::external`]). Any other, or two that would share a name in the
//! backup, stops the backup before anything is copied, naming the files,
//! since this version cannot restore them. After the InnoDB
//! copy, with DDL blocked, the list is read again and everything in it must
//! have been copied.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::data_copy::{Job, Kind};
use super::external::{self, External};
use super::files::Filter;
use super::server::ServerFacts;
use crate::error::BackupError;

/// One tablespace file the server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpace {
    /// The tablespace's name (`db/table`, `innodb_system`, a general
    /// tablespace's name).
    pub name: String,
    /// The file, absolute (relative paths are resolved against the datadir).
    pub path: PathBuf,
    /// An undo tablespace (MySQL's `FILE_TYPE = 'UNDO LOG'`; MariaDB's
    /// lists name none).
    pub undo: bool,
    /// The space id, as the server reports it.
    pub id: Option<u32>,
}

/// MariaDB's id of its temporary tablespace (`ibtmp1`), never backed up.
const MARIADB_TEMP_SPACE: u64 = 0xFFFF_FFFE;

/// The server's tablespace files, temporary ones left out.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn list(conn: &mut Conn, facts: &ServerFacts) -> Result<Vec<ServerSpace>, BackupError> {
    let sql = if !facts.mariadb {
        "SELECT TABLESPACE_NAME, FILE_NAME, FILE_TYPE = 'UNDO LOG', FILE_ID FROM information_schema.FILES \
         WHERE ENGINE = 'InnoDB' AND FILE_TYPE <> 'TEMPORARY'"
            .to_string()
    } else if facts.version_num >= (10, 6, 0) {
        format!(
            "SELECT NAME, FILENAME, 0, SPACE FROM information_schema.INNODB_SYS_TABLESPACES \
             WHERE SPACE <> {MARIADB_TEMP_SPACE}"
        )
    } else {
        // 10.5 keeps the file names of file-per-table and general
        // tablespaces in SYS_DATAFILES; system and undo come from the walk
        "SELECT t.NAME, d.PATH, 0, SPACE FROM information_schema.INNODB_SYS_DATAFILES d \
         JOIN information_schema.INNODB_SYS_TABLESPACES t USING (SPACE)"
            .to_string()
    };
    // name, file, undo?, space id
    type Row = (Option<String>, Option<String>, Option<i64>, Option<u64>);
    let rows: Vec<Row> = conn
        .query(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    let datadir = Path::new(&facts.datadir);
    Ok(rows
        .into_iter()
        .filter_map(|(name, file, undo, id)| {
            let file = file.filter(|f| !f.is_empty())?;
            let path = Path::new(&file);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                datadir.join(file.trim_start_matches("./"))
            };
            if transient(&path) {
                return None;
            }
            Some(ServerSpace {
                name: name.unwrap_or_default(),
                path,
                undo: undo.unwrap_or(0) != 0,
                id: id.and_then(|i| u32::try_from(i).ok()),
            })
        })
        .collect())
}

/// Files the server keeps only for the life of a statement or a session,
/// which a restore never needs:
/// - session temporary tablespaces (MySQL `#innodb_temp/*.ibt`);
/// - `#sql…` tablespaces: the intermediate copy of an `ALTER TABLE` still
///   running (MariaDB lets an online ALTER's copy phase run under
///   `BLOCK_DDL`; its rename waits for the backup's release, so the backup
///   holds the table as it was) and tables renamed for a pending drop. A
///   starting server deletes them. A user table's file name never starts
///   with `#`: the server writes `#` in table names as `@0023`.
fn transient(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "ibt")
        || path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("#sql"))
}

/// The tablespaces a backup holds, each by a 128-bit digest (XXH3) of its
/// canonical source path (see [`canonical`]): the paths themselves, with
/// 100,000 tables, were the largest thing a backup kept while it copied.
/// Two paths sharing a digest is a 2^-128 event per pair.
#[derive(Debug, Default)]
pub struct Copied(HashSet<u128>);

fn digest(p: &Path) -> u128 {
    use std::os::unix::ffi::OsStrExt;
    xxhash_rust::xxh3::xxh3_128(p.as_os_str().as_bytes())
}

impl Copied {
    /// Adds the tablespace at `p` (a canonical path).
    pub fn insert(&mut self, p: &Path) {
        self.0.insert(digest(p));
    }

    /// Takes the tablespace at `p` back out (it vanished before its copy).
    pub fn remove(&mut self, p: &Path) {
        self.0.remove(&digest(p));
    }

    /// Whether the tablespace at `p` (a canonical path) is held.
    #[must_use]
    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(&digest(p))
    }
}

impl FromIterator<PathBuf> for Copied {
    fn from_iter<I: IntoIterator<Item = PathBuf>>(iter: I) -> Self {
        Copied(iter.into_iter().map(|p| digest(&p)).collect())
    }
}

/// The path the comparison uses: canonical where the file exists (links and
/// `./` resolved). Where it is gone, its directory resolved and its own
/// name joined to that: the name it had while there, unless it was itself
/// a link. Where its directory is gone too, as given.
#[must_use]
pub fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        match (p.parent().map(std::fs::canonicalize), p.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => p.to_path_buf(),
        }
    })
}

/// Does a partial backup keep this tablespace? Judged as the walk judges
/// files: by database directory and file name.
pub(super) fn kept(name: &str, path: &Path, datadir: &Path, filter: &Filter) -> bool {
    let rel = path.strip_prefix(datadir).unwrap_or(path);
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    match (parts.last(), name.split_once('/')) {
        // <datadir>/<db>/<table>.ibd, or a remote file-per-table file
        (Some(db), _) if rel != path => filter.keeps(db, &file),
        (_, Some((db, _))) => filter.keeps(db, &file),
        // system, undo and general tablespaces are always kept
        _ => true,
    }
}

/// What the server reports and the walk did not list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Copy them too: inside the datadir at their datadir-relative path, a
    /// MariaDB `DATA DIRECTORY` file at the path [`linked_rel`] gives, a
    /// MySQL one outside the datadir where [`external::backup_rel`] puts it.
    pub extra: Vec<Job>,
    /// The MySQL tablespaces among `extra` that are outside the datadir,
    /// for [`external::LIST_FILE`].
    pub external: Vec<External>,
    /// Outside the datadir and nowhere to keep them in the backup (a
    /// MariaDB file no `.isl` links, a MySQL name no file can have): this
    /// version cannot restore them.
    pub outside: Vec<PathBuf>,
    /// Two files the backup would store under one name: the name, and the
    /// files (canonical), the one already placed first.
    pub clashes: Vec<(String, Vec<PathBuf>)>,
}

/// Where the backup keeps a MariaDB table created with `DATA DIRECTORY`:
/// at `<db>/<table>.ibd`, where a local table's file would be, as
/// mariadb-backup keeps it. MariaDB puts such a file at
/// `<dir>/<db>/<table>.ibd` and writes that path into
/// `<datadir>/<db>/<table>.isl`, which the backup copies with the table's
/// other metadata; a restore reads the `.isl` to learn where the file
/// belongs. `None` unless the `.isl` is there and names `path` (canonical):
/// a file outside the datadir nothing links to is not one a restore could
/// place.
#[must_use]
pub fn linked_rel(path: &Path, datadir: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let db = path.parent()?.file_name()?.to_str()?;
    let stem = file.strip_suffix(".ibd")?;
    let isl = datadir.join(db).join(format!("{stem}.isl"));
    let named = std::fs::read_to_string(isl).ok()?;
    (canonical(Path::new(named.trim_end())) == path).then(|| format!("{db}/{file}"))
}

/// Where the backup keeps the server's tablespace `s` (whose file is at
/// `path`, canonical; `datadir` canonical too): its datadir-relative path,
/// a MariaDB `DATA DIRECTORY` file where [`linked_rel`] puts it, a MySQL
/// one outside the datadir where [`external::backup_rel`] puts it (with
/// the entry for [`external::LIST_FILE`]). `None` when a restore could not
/// place it.
#[must_use]
pub fn backup_rel(
    s: &ServerSpace,
    path: &Path,
    datadir: &Path,
    mariadb: bool,
) -> Option<(String, Option<External>)> {
    if let Ok(rel) = path.strip_prefix(datadir) {
        return Some((rel.to_string_lossy().into_owned(), None));
    }
    if mariadb {
        return linked_rel(path, datadir).map(|rel| (rel, None));
    }
    let rel = external::backup_rel(&s.name, path, s.undo)?;
    let ext = External {
        name: s.name.clone(),
        path: path.to_path_buf(),
        undo: s.undo,
        rel: rel.clone(),
    };
    Some((rel, Some(ext)))
}

/// Holds the server's list against the walk's tablespace jobs.
#[must_use]
pub fn reconcile(
    spaces: &[ServerSpace],
    walked: &[Job],
    facts: &ServerFacts,
    filter: &Filter,
) -> Reconciled {
    let datadir = canonical(Path::new(&facts.datadir));
    let known: HashSet<PathBuf> = walked.iter().map(|j| canonical(&j.src)).collect();
    // every name the backup stores a tablespace under, and whose it is
    let mut placed: HashMap<String, PathBuf> = walked
        .iter()
        .map(|j| (j.rel.clone(), canonical(&j.src)))
        .collect();
    let mut r = Reconciled::default();
    for s in spaces {
        let path = canonical(&s.path);
        // a file the server names but that is not there (a discarded
        // tablespace) has nothing to copy
        if known.contains(&path) || !path.is_file() || !kept(&s.name, &path, &datadir, filter) {
            continue;
        }
        let Some((rel, external)) = backup_rel(s, &path, &datadir, facts.mariadb) else {
            r.outside.push(path);
            continue;
        };
        if let Some(first) = placed.get(&rel) {
            if *first != path {
                r.clashes.push((rel, vec![first.clone(), path]));
            }
            continue;
        }
        placed.insert(rel.clone(), path.clone());
        r.external.extend(external);
        r.extra.push(Job {
            size: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            rel,
            src: path.clone(),
            kind: Kind::Tablespace,
        });
    }
    r
}

/// The server's tablespaces that are not among `copied` (canonical source
/// paths of the tablespaces the backup holds).
#[must_use]
pub fn missing(
    spaces: &[ServerSpace],
    copied: &Copied,
    facts: &ServerFacts,
    filter: &Filter,
) -> Vec<PathBuf> {
    let datadir = canonical(Path::new(&facts.datadir));
    let mut out: Vec<PathBuf> = spaces
        .iter()
        .map(|s| (s, canonical(&s.path)))
        .filter(|(s, p)| kept(&s.name, p, &datadir, filter))
        .map(|(_, p)| p)
        .filter(|p| p.is_file() && !copied.contains(p))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(datadir: &Path) -> ServerFacts {
        ServerFacts {
            version: "9.7.4".into(),
            version_num: (9, 7, 4),
            mariadb: false,
            datadir: datadir.display().to_string(),
            log_dir: datadir.display().to_string(),
            page_size: 16384,
            data_file_path: "ibdata1:12M:autoextend".into(),
            data_home_dir: String::new(),
            undo_directory: "./".into(),
            undo_tablespaces: 2,
            log_file_size: 0,
            redo_capacity: 0,
            checksum_algorithm: "crc32".into(),
            compression_level: "6".into(),
            log_bin: false,
            flush_method: "O_DIRECT".into(),
            tokudb: None,
            redo_log_enabled: true,
        }
    }

    /// A temporary `data/` (the datadir) and `remote/` with one-byte
    /// `files` (paths relative to the temporary directory).
    fn tree(files: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let (data, remote) = (d.path().join("data"), d.path().join("remote"));
        (d, data, remote)
    }

    #[test]
    fn a_file_gone_keeps_the_canonical_name_it_had() {
        // a datadir reached through a link: the name the backup took as
        // copied must be the one it takes back when the file vanished
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir_all(real.join("db")).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let via_link = d.path().join("link/db/t.ibd");
        std::fs::write(&via_link, b"x").unwrap();
        let while_there = canonical(&via_link);
        assert_eq!(while_there, canonical(&real.join("db/t.ibd")));
        std::fs::remove_file(&via_link).unwrap();
        assert_eq!(canonical(&via_link), while_there);
        // with its directory gone too, the path as given
        let nowhere = d.path().join("link/gone/t.ibd");
        assert_eq!(canonical(&nowhere), nowhere);
    }

    #[test]
    fn in_flight_alter_copies_and_session_temp_files_are_not_tablespaces_to_back_up() {
        for p in [
            "/d/xbload/#sql-alter-1dc9-9.ibd",
            "/d/db/#sql-ib1234-5678.ibd",
            "/d/#innodb_temp/temp_1.ibt",
        ] {
            assert!(transient(Path::new(p)), "{p}");
        }
        for p in ["/d/db/@0023sql.ibd", "/d/db/t.ibd", "/d/undo_001.ibu"] {
            assert!(!transient(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn server_spaces_the_walk_missed_are_added_inside_and_refused_outside() {
        let (_d, data, remote) = tree(&[
            "data/db/t.ibd",
            "data/u1.ibu",
            "data/other/x.ibd",
            "remote/db/r.ibd",
        ]);
        let facts = facts(&data);
        let walked = vec![Job {
            src: data.join("db/t.ibd"),
            rel: "db/t.ibd".into(),
            kind: Kind::Tablespace,
            size: 1,
        }];
        let space = |name: &str, path: PathBuf| ServerSpace {
            name: name.into(),
            path,
            undo: false,
            id: None,
        };
        let spaces = vec![
            space("db/t", data.join("./db/t.ibd")),
            space("u1", data.join("u1.ibu")),
            space("db/r", remote.join("db/r.ibd")),
            space("db/gone", data.join("db/gone.ibd")),
            space("other/x", data.join("other/x.ibd")),
        ];
        let r = reconcile(&spaces, &walked, &facts, &Filter::default());
        let rels: Vec<&str> = r.extra.iter().map(|j| j.rel.as_str()).collect();
        // MySQL: a DATA DIRECTORY table is kept where a local one would be
        assert_eq!(rels, ["u1.ibu", "db/r.ibd", "other/x.ibd"]);
        assert!(r.outside.is_empty());
        // MariaDB: without its .isl it is refused
        let maria = ServerFacts {
            mariadb: true,
            ..facts.clone()
        };
        let r = reconcile(&spaces, &walked, &maria, &Filter::default());
        let rels: Vec<&str> = r.extra.iter().map(|j| j.rel.as_str()).collect();
        assert_eq!(rels, ["u1.ibu", "other/x.ibd"]);
        assert_eq!(r.outside, [canonical(&remote.join("db/r.ibd"))]);
        // a partial backup of `db` neither adds nor misses `other`
        let only_db = Filter {
            databases: Some(vec!["db".into()]),
            tables: None,
        };
        let r = reconcile(&spaces, &walked, &maria, &only_db);
        let rels: Vec<&str> = r.extra.iter().map(|j| j.rel.as_str()).collect();
        assert_eq!(rels, ["u1.ibu"]);
        // after the copy: what was copied is not missing, the rest is
        let copied: Copied = [data.join("db/t.ibd"), data.join("u1.ibu")]
            .iter()
            .map(|p| canonical(p))
            .collect();
        assert_eq!(
            missing(&spaces, &copied, &facts, &only_db),
            [canonical(&remote.join("db/r.ibd"))]
        );
        assert_eq!(
            missing(&spaces, &copied, &facts, &Filter::default()),
            [
                canonical(&data.join("other/x.ibd")),
                canonical(&remote.join("db/r.ibd"))
            ]
        );
    }

    #[test]
    fn a_mariadb_data_directory_table_linked_by_its_isl_is_copied_to_where_a_local_one_would_be() {
        let (_d, data, remote) = tree(&["data/db/t.ibd", "remote/db/r.ibd", "remote/db/stray.ibd"]);
        let r_ibd = remote.join("db/r.ibd");
        // MariaDB writes the path without a newline; a hand-edited one may have it
        std::fs::write(data.join("db/r.isl"), format!("{}\n", r_ibd.display())).unwrap();
        // an .isl naming another file links nothing here
        std::fs::write(data.join("db/stray.isl"), "/elsewhere/db/stray.ibd").unwrap();
        let mut facts = facts(&data);
        let spaces = vec![
            ServerSpace {
                name: "db/r".into(),
                path: r_ibd.clone(),
                undo: false,
                id: None,
            },
            ServerSpace {
                name: "db/stray".into(),
                path: remote.join("db/stray.ibd"),
                undo: false,
                id: None,
            },
        ];
        let stray = canonical(&remote.join("db/stray.ibd"));
        facts.mariadb = true;
        let r = reconcile(&spaces, &[], &facts, &Filter::default());
        let jobs: Vec<(&str, &Path, Kind)> = r
            .extra
            .iter()
            .map(|j| (j.rel.as_str(), j.src.as_path(), j.kind))
            .collect();
        assert_eq!(
            jobs,
            [("db/r.ibd", canonical(&r_ibd).as_path(), Kind::Tablespace)]
        );
        assert_eq!(r.outside, [stray]);
        // copied from its remote place, it is not missing
        let copied: Copied = [canonical(&r_ibd)].into_iter().collect();
        let only_r = Filter {
            databases: Some(vec!["db.r".into()]),
            tables: None,
        };
        assert!(missing(&spaces, &copied, &facts, &only_r).is_empty());
    }

    #[test]
    fn mysql_general_and_undo_tablespaces_outside_go_to_the_root_and_never_share_a_name() {
        let (_d, data, remote) = tree(&[
            "data/taken.ibd",
            "remote/g.ibd",
            "remote/u.ibu",
            "remote/db/t.ibd",
            "remote/other.ibd",
            "remote/bad.ibd",
        ]);
        let walked = vec![Job {
            src: data.join("taken.ibd"),
            rel: "taken.ibd".into(),
            kind: Kind::Tablespace,
            size: 1,
        }];
        let space = |name: &str, file: &str, undo| ServerSpace {
            name: name.into(),
            path: remote.join(file),
            undo,
            id: None,
        };
        let spaces = vec![
            space("gen", "g.ibd", false),
            space("u1", "u.ibu", true),
            space("db/t", "db/t.ibd", false),
            // its name is the local file's: refused, not overwritten
            space("taken", "other.ibd", false),
            space("..", "bad.ibd", false),
        ];
        let facts = facts(&data);
        let r = reconcile(&spaces, &walked, &facts, &Filter::default());
        let jobs: Vec<(&str, PathBuf)> = r
            .extra
            .iter()
            .map(|j| (j.rel.as_str(), j.src.clone()))
            .collect();
        let c = |f: &str| canonical(&remote.join(f));
        assert_eq!(
            jobs,
            [
                ("gen.ibd", c("g.ibd")),
                ("u1.ibu", c("u.ibu")),
                ("db/t.ibd", c("db/t.ibd"))
            ]
        );
        let listed: Vec<(&str, &str, bool)> = r
            .external
            .iter()
            .map(|e| (e.name.as_str(), e.rel.as_str(), e.undo))
            .collect();
        assert_eq!(
            listed,
            [
                ("gen", "gen.ibd", false),
                ("u1", "u1.ibu", true),
                ("db/t", "db/t.ibd", false)
            ]
        );
        assert_eq!(
            r.clashes,
            [(
                "taken.ibd".to_string(),
                vec![canonical(&data.join("taken.ibd")), c("other.ibd")]
            )]
        );
        assert_eq!(r.outside, [c("bad.ibd")]);
        // copied from outside, they are not missing
        let copied: Copied = r.extra.iter().map(|j| j.src.clone()).collect();
        assert_eq!(
            missing(&spaces[..3], &copied, &facts, &Filter::default()),
            Vec::<PathBuf>::new()
        );
    }
}
