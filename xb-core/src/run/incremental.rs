//! The base of an incremental backup: which LSN its delta starts from, and
//! the checks that refuse a base that does not fit this server before
//! anything is copied.
//!
//! A base is a directory (`--incremental-basedir`: its
//! `xtrabackup_checkpoints` `to_lsn`, which for a chain is the last
//! incremental's) or a bare LSN (`--incremental-lsn`). A base directory
//! taken by xb also holds [`SOURCE_FILE`], which names the server it came
//! from; a base from another server, or one newer than this server's log,
//! would give a delta that restores to garbage, so both are refused.

use std::path::{Path, PathBuf};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::server::{self, ServerFacts};
use crate::checkpoints::Checkpoints;
use crate::error::BackupError;
use crate::prepare::INCOMPLETE_MARKER;

/// The file in every xb backup that names the server it was taken from.
pub const SOURCE_FILE: &str = "xb_source";

/// Where an incremental backup's base LSN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncrementalBase {
    /// A backup directory (full or incremental): its `to_lsn`.
    Dir(PathBuf),
    /// A backup in object storage (full or incremental): its `to_lsn`.
    Object(xb_sink::object::ObjectLocation),
    /// An LSN given by the user.
    Lsn(u64),
    /// The `innodb_to_lsn` of a backup in the server's backup history.
    History(super::history::Key),
}

/// Why a base was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseProblem {
    /// No `xtrabackup_checkpoints` in the directory.
    #[error("it has no xtrabackup_checkpoints")]
    NotABackup,
    /// The checkpoints file could not be read or parsed.
    #[error("its xtrabackup_checkpoints cannot be used: {0}")]
    BadCheckpoints(String),
    /// The base never completed.
    #[error("that backup did not complete (it still holds {INCOMPLETE_MARKER})")]
    Incomplete,
    /// The base's LSN is beyond what this server has written.
    #[error("its LSN {base} is newer than this server's current LSN {server}")]
    NewerThanServer {
        /// The base's LSN.
        base: u64,
        /// The server's current LSN.
        server: u64,
    },
    /// The server's backup history has no completed backup by that name
    /// or uuid.
    #[error("{table} has no completed backup by that name or uuid")]
    NoHistory {
        /// The history table read.
        table: String,
    },
    /// The base was taken from another server.
    #[error("it was taken from {base}, but this server is {server}")]
    OtherServer {
        /// The base's source, as recorded.
        base: String,
        /// This server.
        server: String,
    },
}

/// Who a server is, as far as an incremental's base must match:
/// `server_uuid` on MySQL; host name and datadir on MariaDB, which has no
/// server UUID.
pub async fn identity(conn: &mut Conn, facts: &ServerFacts) -> Result<String, BackupError> {
    if facts.mariadb {
        let sql = "SELECT @@hostname";
        let host: Option<String> = conn
            .query_first(sql)
            .await
            .map_err(|e| BackupError::sql(sql, &e))?;
        Ok(format!(
            "host {} datadir {}",
            host.unwrap_or_default(),
            facts.datadir.trim_end_matches('/')
        ))
    } else {
        let sql = "SELECT @@server_uuid";
        let uuid: Option<String> = conn
            .query_first(sql)
            .await
            .map_err(|e| BackupError::sql(sql, &e))?;
        Ok(format!("server_uuid {}", uuid.unwrap_or_default()))
    }
}

/// The text of [`SOURCE_FILE`].
#[must_use]
pub fn render_source(identity: &str) -> String {
    format!("source = {identity}\n")
}

fn parse_source(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("source = "))
        .map(str::trim)
}

/// A base, read and checked against this server.
///
/// # Errors
/// [`BackupError::IncrementalBase`] naming the base and the problem;
/// [`BackupError::Sql`] if the server's LSN cannot be read.
pub async fn resolve(
    base: &IncrementalBase,
    conn: &mut Conn,
    facts: &ServerFacts,
    me: &str,
) -> Result<u64, BackupError> {
    let (lsn, what) = match base {
        IncrementalBase::Lsn(lsn) => (*lsn, format!("--incremental-lsn={lsn}")),
        IncrementalBase::Dir(dir) => (read_dir(dir, me)?, dir.display().to_string()),
        IncrementalBase::Object(loc) => (read_object(loc, me)?, loc.url().to_string()),
        IncrementalBase::History(key) => {
            let table = super::history::Table::of(facts);
            match super::history::base_lsn(conn, &table, key).await? {
                Some(lsn) => (lsn, key.to_string()),
                None => {
                    return Err(BackupError::IncrementalBase {
                        base: key.to_string(),
                        problem: BaseProblem::NoHistory {
                            table: table.qualified(),
                        },
                    });
                }
            }
        }
    };
    if let Some(now) = server::status_lsn(conn, facts.mariadb).await? {
        if lsn > now {
            return Err(BackupError::IncrementalBase {
                base: what,
                problem: BaseProblem::NewerThanServer {
                    base: lsn,
                    server: now,
                },
            });
        }
    }
    Ok(lsn)
}

/// The `to_lsn` of the backup in `dir`, after checking it is whole and
/// (when it says) from this server.
fn read_dir(dir: &Path, me: &str) -> Result<u64, BackupError> {
    let what = dir.display().to_string();
    let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    check_base(&what, dir.join(INCOMPLETE_MARKER).exists(), read, me)
}

/// The same for a backup in object storage: complete means its manifest is
/// there and its incomplete marker is not.
fn read_object(loc: &xb_sink::object::ObjectLocation, me: &str) -> Result<u64, BackupError> {
    use xb_sink::object::{MANIFEST, read_objects};
    let what = loc.url().to_string();
    let names = [
        INCOMPLETE_MARKER,
        MANIFEST,
        "xtrabackup_checkpoints",
        SOURCE_FILE,
    ];
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut got = read_objects(loc, &names)
        .map_err(|e| BackupError::Target(e.into()))?
        .into_iter()
        .map(text);
    let mut next = || got.next().flatten();
    let (marker, manifest, cp, source) = (next(), next(), next(), next());
    let incomplete = marker.is_some() || manifest.is_none();
    let read = |name: &str| {
        Ok(match name {
            "xtrabackup_checkpoints" => cp.clone(),
            SOURCE_FILE => source.clone(),
            _ => None,
        })
    };
    check_base(&what, incomplete, read, me)
}

/// The checks on a base whose files `read` gives by name.
fn check_base(
    what: &str,
    incomplete: bool,
    read: impl Fn(&str) -> Result<Option<String>, String>,
    me: &str,
) -> Result<u64, BackupError> {
    let refuse = |problem| BackupError::IncrementalBase {
        base: what.to_string(),
        problem,
    };
    if incomplete {
        return Err(refuse(BaseProblem::Incomplete));
    }
    let text = match read("xtrabackup_checkpoints") {
        Ok(Some(t)) => t,
        Ok(None) => return Err(refuse(BaseProblem::NotABackup)),
        Err(e) => return Err(refuse(BaseProblem::BadCheckpoints(e))),
    };
    let cps = Checkpoints::parse(&text).map_err(|r| refuse(BaseProblem::BadCheckpoints(r)))?;
    if cps.to_lsn == 0 {
        return Err(refuse(BaseProblem::BadCheckpoints("to_lsn is 0".into())));
    }
    // written in the clear like xtrabackup_checkpoints, so a compressed or
    // encrypted base can be checked too
    if let Ok(Some(text)) = read(SOURCE_FILE) {
        if let Some(theirs) = parse_source(&text) {
            if theirs != me {
                return Err(refuse(BaseProblem::OtherServer {
                    base: theirs.to_string(),
                    server: me.to_string(),
                }));
            }
        }
    }
    Ok(cps.to_lsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(dir: &Path, to_lsn: u64, source: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("xtrabackup_checkpoints"),
            format!(
                "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = {to_lsn}\nlast_lsn = {}\n",
                to_lsn + 10
            ),
        )
        .unwrap();
        if let Some(s) = source {
            std::fs::write(dir.join(SOURCE_FILE), render_source(s)).unwrap();
        }
    }

    fn problem(r: Result<u64, BackupError>) -> BaseProblem {
        match r {
            Err(BackupError::IncrementalBase { problem, .. }) => problem,
            other => panic!("expected a refused base, got {other:?}"),
        }
    }

    #[test]
    fn a_base_from_this_server_gives_its_to_lsn() {
        let d = tempfile::tempdir().unwrap();
        backup(d.path(), 12345, Some("server_uuid abc"));
        assert_eq!(read_dir(d.path(), "server_uuid abc").unwrap(), 12345);
    }

    #[test]
    fn a_vendor_base_without_a_source_file_is_taken_on_its_lsn() {
        let d = tempfile::tempdir().unwrap();
        backup(d.path(), 777, None);
        assert_eq!(read_dir(d.path(), "server_uuid abc").unwrap(), 777);
    }

    #[test]
    fn bases_that_do_not_fit_are_refused_by_what_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            problem(read_dir(&d.path().join("none"), "x")),
            BaseProblem::NotABackup
        );
        let other = d.path().join("other");
        backup(&other, 5, Some("server_uuid theirs"));
        assert!(matches!(
            problem(read_dir(&other, "server_uuid mine")),
            BaseProblem::OtherServer { .. }
        ));
        let half = d.path().join("half");
        backup(&half, 5, None);
        std::fs::write(half.join(INCOMPLETE_MARKER), "").unwrap();
        assert_eq!(problem(read_dir(&half, "x")), BaseProblem::Incomplete);
        let zero = d.path().join("zero");
        backup(&zero, 0, None);
        assert!(matches!(
            problem(read_dir(&zero, "x")),
            BaseProblem::BadCheckpoints(_)
        ));
    }
}
