//! `backup --dry-run`: everything a backup checks before it copies, and
//! what it would do, without copying or taking a lock. It connects, reads
//! the server's facts and the privileges (a missing one is the same error,
//! with the same exit code, as the backup would end with), lists the files,
//! samples the server's redo rate against the log's capacity, and holds the
//! files against the open-files limit and the target's free space. The
//! checks that would make the backup fail or put it at risk come back as
//! [`Check`]s, each with what to do about it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::api::{BackupOptions, Destination, LockDdl};
use super::files::{self, Manifest};
use super::locks::Session;
use super::server::{self, ServerFacts};
use crate::error::BackupError;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// The backup runs, at a risk or a cost worth knowing.
    Warning,
    /// The backup would fail (or could not be restored).
    Problem,
}

/// One check of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// `privileges`, `redo`, `open files`, `free space`, `target`, `TLS`.
    pub name: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found, with the figures.
    pub detail: String,
    /// What to do, for a warning or a problem.
    pub hint: Option<String>,
}

/// Files of one kind the backup would copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileCount {
    /// How many.
    pub files: u64,
    /// Their size now.
    pub bytes: u64,
}

/// A lock the backup would take, in the order it takes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedLock {
    /// The statement or mechanism.
    pub lock: String,
    /// What it blocks on the server.
    pub blocks: String,
    /// When in the backup, and for how long.
    pub when: String,
}

/// What a dry run found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DryRun {
    /// `SELECT VERSION()`.
    pub server_version: String,
    /// The server's datadir.
    pub datadir: String,
    /// InnoDB tablespaces.
    pub innodb: FileCount,
    /// Non-InnoDB tables and metadata files.
    pub non_innodb: FileCount,
    /// Aria tables and logs.
    pub aria: FileCount,
    /// The redo log's capacity (bytes).
    pub redo_capacity: u64,
    /// The server's redo write rate over the sample (bytes per second).
    pub redo_bytes_per_s: f64,
    /// How long the sample was.
    pub redo_sample_s: f64,
    /// The locks the backup would take, in order.
    pub locks: Vec<PlannedLock>,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl DryRun {
    /// Files and bytes of every kind.
    #[must_use]
    pub fn total(&self) -> FileCount {
        FileCount {
            files: self.innodb.files + self.non_innodb.files + self.aria.files,
            bytes: self.innodb.bytes + self.non_innodb.bytes + self.aria.bytes,
        }
    }

    /// Whether any check says the backup would fail.
    #[must_use]
    pub fn has_problems(&self) -> bool {
        self.checks.iter().any(|c| c.verdict == Verdict::Problem)
    }
}

/// Below this many seconds for the server to write its whole log, a copy
/// that stalls for a moment (a slow target, a busy host) can lose log.
const REDO_WRAP_WARN: f64 = 300.0;

/// Files xb holds open besides the data files: the redo log and its copy,
/// connections, the target's files, the runtime.
const OWN_FILES: u64 = 64;

/// Runs the checks of a backup with `opts`, sampling the redo rate over
/// `sample`.
///
/// # Errors
/// What the backup itself would fail with before copying: no connection,
/// missing privileges, an unsupported server, an unreadable datadir.
pub async fn dry_run(opts: &BackupOptions, sample: Duration) -> Result<DryRun, BackupError> {
    let mut session = Session::connect(&opts.connect).await?;
    let facts = server::discover(session.conn(), &opts.connect).await?;
    super::check_supported(&facts)?;
    super::check_engines(&facts)?;
    let mut checks = vec![Check {
        name: "privileges",
        verdict: Verdict::Ok,
        detail: format!("{} has what the backup needs", opts.connect.user),
        hint: None,
    }];
    let manifest = files::list(&facts, &opts.filter)?;
    checks.push(tls_check(session.conn()).await?);
    let (rate, sampled) = redo_rate(session.conn(), facts.mariadb, sample).await?;
    checks.push(redo_check(facts.redo_capacity, rate));
    let rocksdb = super::rocksdb::probe(session.conn(), &facts.datadir)
        .await?
        .is_some();
    let non_transactional = if facts.mariadb {
        false
    } else {
        has_non_transactional(session.conn()).await?
    };
    session.close().await;

    let count = |jobs: &[super::data_copy::Job]| FileCount {
        files: jobs.len() as u64,
        bytes: jobs.iter().map(|j| j.size).sum(),
    };
    let spaces = manifest.innodb.len() as u64;
    checks.push(open_files_check(open_files_limit(), opts.parallel, spaces));
    checks.extend(target_checks(
        &opts.destination,
        needed_space(&manifest, facts.redo_capacity),
        opts.sink.compression.is_some(),
    ));
    Ok(DryRun {
        locks: planned_locks(opts, &facts, rocksdb, non_transactional),
        server_version: facts.version.clone(),
        datadir: facts.datadir.clone(),
        innodb: count(&manifest.innodb),
        non_innodb: count(&manifest.non_innodb),
        aria: count(&manifest.aria),
        redo_capacity: facts.redo_capacity,
        redo_bytes_per_s: rate,
        redo_sample_s: sampled.as_secs_f64(),
        checks,
    })
}

/// The server's redo write rate: its LSN twice, `sample` apart.
async fn redo_rate(
    conn: &mut mysql_async::Conn,
    mariadb: bool,
    sample: Duration,
) -> Result<(f64, Duration), BackupError> {
    let Some(first) = server::status_lsn(conn, mariadb).await? else {
        return Ok((0.0, Duration::ZERO));
    };
    let t = Instant::now();
    tokio::time::sleep(sample).await;
    let last = server::status_lsn(conn, mariadb).await?.unwrap_or(first);
    let secs = t.elapsed();
    Ok((
        last.saturating_sub(first) as f64 / secs.as_secs_f64().max(0.001),
        secs,
    ))
}

/// The log must outlast the moments the copy falls behind: a log the
/// server fills in minutes at today's rate leaves little room.
fn redo_check(capacity: u64, rate: f64) -> Check {
    let mib = |b: f64| b / f64::from(1u32 << 20);
    if rate <= 0.0 {
        return Check {
            name: "redo",
            verdict: Verdict::Ok,
            detail: format!(
                "the server wrote no redo during the sample; the log holds {:.0} MiB",
                mib(capacity as f64)
            ),
            hint: None,
        };
    }
    let wraps = capacity as f64 / rate;
    let detail = format!(
        "the server writes {:.1} MiB/s of redo: its {:.0} MiB log is written over in {wraps:.0} s",
        mib(rate),
        mib(capacity as f64)
    );
    if wraps < REDO_WRAP_WARN {
        Check {
            name: "redo",
            verdict: Verdict::Warning,
            detail,
            hint: Some(format!(
                "a copy that falls {wraps:.0} s behind the server fails; give the server a larger log \
                 (innodb_log_file_size on MariaDB, innodb_redo_log_capacity on MySQL) of at least {:.0} MiB, \
                 or back up at a quieter time",
                mib(rate * REDO_WRAP_WARN)
            )),
        }
    } else {
        Check {
            name: "redo",
            verdict: Verdict::Ok,
            detail,
            hint: None,
        }
    }
}

/// `Ssl_cipher` of this session: empty when the connection is plain.
async fn tls_check(conn: &mut mysql_async::Conn) -> Result<Check, BackupError> {
    let sql = "SHOW SESSION STATUS LIKE 'Ssl_cipher'";
    let row: Option<(String, String)> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let cipher = row.map(|(_, v)| v).unwrap_or_default();
    Ok(if cipher.is_empty() {
        Check {
            name: "TLS",
            verdict: Verdict::Ok,
            detail: "the connection is not encrypted (--ssl-mode to change that)".into(),
            hint: None,
        }
    } else {
        Check {
            name: "TLS",
            verdict: Verdict::Ok,
            detail: format!("the connection is encrypted ({cipher})"),
            hint: None,
        }
    })
}

/// Whether MySQL holds user tables of an engine without redo, which the
/// backup copies under a read lock on them.
async fn has_non_transactional(conn: &mut mysql_async::Conn) -> Result<bool, BackupError> {
    let sql = "SELECT COUNT(*) FROM information_schema.tables \
         WHERE engine IN ('MyISAM','CSV','ARCHIVE','MRG_MYISAM') \
         AND table_schema NOT IN ('mysql','performance_schema','information_schema','sys')";
    let n: Option<u64> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    Ok(n.unwrap_or(0) > 0)
}

/// This process's soft limit on open files (`ulimit -n`).
fn open_files_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// xb holds at most `parallel` data files open at once, so it needs few;
/// but `prepare` starts the server on the backup, and its recovery may
/// open every tablespace the redo touches.
fn open_files_check(limit: Option<u64>, parallel: usize, spaces: u64) -> Check {
    let Some(limit) = limit else {
        return Check {
            name: "open files",
            verdict: Verdict::Warning,
            detail: "the open-files limit cannot be read".into(),
            hint: None,
        };
    };
    let own = parallel as u64 * 2 + OWN_FILES;
    if limit < own {
        return Check {
            name: "open files",
            verdict: Verdict::Problem,
            detail: format!(
                "the open-files limit is {limit}; {parallel} copy workers and the log need about {own}"
            ),
            hint: Some(format!(
                "raise it (ulimit -n {own}) or give a smaller --parallel"
            )),
        };
    }
    let for_prepare = spaces + OWN_FILES;
    if limit < for_prepare {
        return Check {
            name: "open files",
            verdict: Verdict::Warning,
            detail: format!(
                "the open-files limit is {limit}, under the {spaces} tablespaces: the backup needs \
                 about {own}, but `prepare` starts a server that may open every tablespace"
            ),
            hint: Some(format!(
                "raise the limit to at least {for_prepare} (ulimit -n) where the backup is prepared"
            )),
        };
    }
    Check {
        name: "open files",
        verdict: Verdict::Ok,
        detail: format!("the open-files limit is {limit}, for {spaces} tablespaces"),
        hint: None,
    }
}

/// The data and at most a whole log's worth of redo.
fn needed_space(m: &Manifest, redo_capacity: u64) -> u64 {
    m.bytes() + redo_capacity
}

/// The target: a directory must be on a file system with room for the copy
/// (that it is new or empty, [`BackupPlan`](crate::plan::BackupPlan)'s
/// builder has checked); streams and object storage are checked when the
/// backup opens them.
fn target_checks(dest: &Destination, needed: u64, compressed: bool) -> Vec<Check> {
    let Destination::Dir(dir) = dest else {
        return vec![Check {
            name: "target",
            verdict: Verdict::Ok,
            detail: match dest {
                Destination::Object(l, _) => format!(
                    "{}: the prefix is checked to be empty when the backup starts",
                    l.url()
                ),
                _ => "a stream: its free space is the reader's to provide".into(),
            },
            hint: None,
        }];
    };
    let mut out = Vec::new();
    let Some(existing) = nearest_existing(dir) else {
        out.push(Check {
            name: "free space",
            verdict: Verdict::Problem,
            detail: format!("no directory on the way to {} exists", dir.display()),
            hint: Some("give a target on a mounted file system".into()),
        });
        return out;
    };
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    match nix::sys::statvfs::statvfs(&existing) {
        Ok(st) => {
            let free = st.blocks_available().saturating_mul(st.fragment_size());
            let detail = format!(
                "{:.2} GiB free on {}, the backup needs about {:.2} GiB{}",
                gib(free),
                existing.display(),
                gib(needed),
                if compressed {
                    " before compression"
                } else {
                    ""
                }
            );
            let short = free < needed;
            out.push(Check {
                name: "free space",
                verdict: match (short, compressed) {
                    (false, _) => Verdict::Ok,
                    (true, true) => Verdict::Warning,
                    (true, false) => Verdict::Problem,
                },
                detail,
                hint: short.then(|| {
                    "free space there, or give a target on a larger file system".to_string()
                }),
            });
        }
        Err(e) => out.push(Check {
            name: "free space",
            verdict: Verdict::Warning,
            detail: format!("cannot read the free space of {}: {e}", existing.display()),
            hint: None,
        }),
    }
    out
}

/// `dir` or the closest ancestor that exists: where the backup's files
/// would land.
fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(dir).ok()?;
    abs.ancestors().find(|p| p.is_dir()).map(Path::to_path_buf)
}

/// The locks a backup with `opts` takes on this server, in order.
fn planned_locks(
    opts: &BackupOptions,
    facts: &ServerFacts,
    rocksdb: bool,
    non_transactional: bool,
) -> Vec<PlannedLock> {
    let lock = |l: &str, b: &str, w: &str| PlannedLock {
        lock: l.into(),
        blocks: b.into(),
        when: w.into(),
    };
    let reduced = opts.lock_ddl != LockDdl::On && !opts.lock_ddl_per_table;
    let mut out = Vec::new();
    if opts.safe_slave_backup.is_some() {
        out.push(lock(
            "STOP REPLICA SQL_THREAD (--safe-slave-backup)",
            "the replica's applier",
            "from the start to the end of the backup",
        ));
    }
    if facts.mariadb {
        out.push(lock(
            "BACKUP STAGE START",
            "nothing (purge of old log files waits)",
            "from the start",
        ));
        out.push(lock(
            "BACKUP STAGE FLUSH",
            "writes to non-transactional tables (MyISAM, Aria without crash safety)",
            "after the InnoDB copy, while those tables are copied",
        ));
        out.push(lock(
            "BACKUP STAGE BLOCK_DDL",
            "DDL",
            if reduced {
                "after the InnoDB copy, to the end"
            } else {
                "from the start of the InnoDB copy to the end"
            },
        ));
        if rocksdb {
            out.push(lock(
                "RocksDB checkpoint",
                "nothing (a hard-linked snapshot)",
                "at BLOCK_DDL",
            ));
        }
        out.push(lock(
            "BACKUP STAGE BLOCK_COMMIT",
            "commits",
            "at the end, while the binlog position and the last LSN are read (usually under a second)",
        ));
        return out;
    }
    if opts.lock_ddl_per_table {
        out.push(lock(
            "metadata locks on every table (--lock-ddl-per-table)",
            "DDL on the tables",
            "from the start of the InnoDB copy",
        ));
    }
    out.push(lock(
        "LOCK INSTANCE FOR BACKUP",
        "DDL",
        if reduced || opts.lock_ddl_per_table {
            "after the InnoDB copy, to the end"
        } else {
            "from the start of the InnoDB copy to the end"
        },
    ));
    if facts.tokudb.is_some() {
        out.push(lock(
            "SET TOKUDB_CHECKPOINT_LOCK=ON",
            "TokuDB checkpoints",
            "while the TokuDB data files are copied",
        ));
        out.push(lock(
            "FLUSH TABLES WITH READ LOCK",
            "all writes",
            "while the TokuDB logs are copied and the position is read",
        ));
    } else if non_transactional {
        out.push(lock(
            "FLUSH TABLES … WITH READ LOCK on the non-transactional tables",
            "writes to MyISAM, CSV and ARCHIVE tables",
            "while those tables are copied",
        ));
    }
    out.push(lock(
        "performance_schema.log_status",
        "commits",
        "at the end, while the binlog position and the last LSN are read (usually under a second)",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_written_over_in_minutes_is_a_warning_with_a_size_to_give() {
        let c = redo_check(96 << 20, f64::from(1u32 << 20));
        assert_eq!(c.verdict, Verdict::Warning, "{c:?}");
        assert!(c.detail.contains("96 s"), "{c:?}");
        assert!(c.hint.unwrap().contains("at least 300 MiB"));
        let c = redo_check(8 << 30, f64::from(1u32 << 20));
        assert_eq!(c.verdict, Verdict::Ok, "{c:?}");
        assert_eq!(redo_check(96 << 20, 0.0).verdict, Verdict::Ok);
    }

    #[test]
    fn open_files_limits_for_the_copy_and_for_prepare() {
        assert_eq!(open_files_check(Some(50), 4, 10).verdict, Verdict::Problem);
        let c = open_files_check(Some(1024), 4, 5000);
        assert_eq!(c.verdict, Verdict::Warning);
        assert!(c.hint.unwrap().contains("5064"));
        assert_eq!(open_files_check(Some(65536), 4, 5000).verdict, Verdict::Ok);
    }

    #[test]
    fn a_directory_target_is_checked_for_room() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = Destination::Dir(tmp.path().join("new/backup"));
        let c = target_checks(&fresh, 1, false);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].name, c[0].verdict), ("free space", Verdict::Ok));
        let c = target_checks(&fresh, u64::MAX / 2, false);
        assert_eq!(c[0].verdict, Verdict::Problem, "{c:?}");
        assert_eq!(
            target_checks(&fresh, u64::MAX / 2, true)[0].verdict,
            Verdict::Warning,
            "compressed: it may fit"
        );
    }
}
