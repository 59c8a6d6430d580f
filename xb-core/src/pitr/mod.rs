//! Point-in-time restore: the newest backup (a full one, or a full one and
//! its incrementals) taken before the point, prepared into a new datadir,
//! then rolled forward with the archived binlog (see `crate::binlog`) from
//! that backup's `xtrabackup_binlog_info` up to the point.
//!
//! 1. The point is found in the archive first ([`scan`]): the end of the
//!    last transaction at or before it, so a restore never stops inside a
//!    transaction. A point the archive cannot vouch for is refused: a time
//!    after its last transaction (the archiver may be behind), a position
//!    past its end, a GTID it does not hold.
//! 2. The backup: the restore points are every full backup in the
//!    backups directory and every chain of incrementals on one (linked by
//!    LSN); the newest whose binlog position is at or before the point
//!    wins. The archive must hold every file from that position to the
//!    point; a missing one is named.
//! 3. The full backup is copied into the new datadir (and each
//!    incremental into a scratch directory: merging moves files out of
//!    it), and prepared there with the server's own recovery; the last
//!    step applies the binlog range while its server is still up
//!    ([`crate::prepare::replay`]).
//!
//! The backups and the archive are only read.

pub mod point;
pub mod scan;

use std::fs;
use std::path::{Path, PathBuf};

pub use point::{Gtid, Until};
pub use scan::Boundary;

use crate::binlog::archive::archived_files;
use crate::checkpoints::Checkpoints;
use crate::prepare::replay::Replay;
use crate::prepare::{PrepareError, PrepareOptions, prepare};

/// What a point-in-time restore is told.
#[derive(Debug, Clone)]
pub struct PitrOptions {
    /// Directory whose subdirectories are backups (full and incremental).
    pub backups: PathBuf,
    /// The binlog archive (`xb-cli binlog-archive`).
    pub archive: PathBuf,
    /// The point.
    pub until: Until,
    /// The datadir to make (absent or empty).
    pub target: PathBuf,
    /// The server binary for prepare (default: found as prepare finds it).
    pub server_binary: Option<PathBuf>,
    /// An option file for the prepare server.
    pub server_defaults_file: Option<PathBuf>,
    /// The binlog reader (default: `mysqlbinlog`, then `mariadb-binlog`,
    /// beside the server binary, then in `PATH`).
    pub binlog_reader: Option<PathBuf>,
    /// The client (default: `mysql`, then `mariadb`, found the same way).
    pub client: Option<PathBuf>,
    /// Buffer pool for prepare (`auto` or a size).
    pub use_memory: String,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitrReport {
    /// The backups prepared, full first.
    pub chain: Vec<PathBuf>,
    /// Where the replay started: the backup's binlog position.
    pub from: (String, u64),
    /// Where it stopped: the end of the last transaction applied.
    pub reached: Option<Boundary>,
}

/// Why a restore was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PitrError {
    /// No backup with binlog coordinates in the directory.
    #[error("no backup with binlog coordinates (xtrabackup_binlog_info) in {dir}")]
    NoBackups {
        /// The backups directory.
        dir: PathBuf,
    },
    /// Every backup is after the point.
    #[error("no backup before {until}: the oldest restore point is at {oldest}")]
    NoBackupBefore {
        /// The point.
        until: String,
        /// The oldest backup's binlog position.
        oldest: String,
    },
    /// The archive cannot vouch for the point.
    #[error("the binlog archive does not reach {until}: {reason}")]
    BeyondArchive {
        /// The point.
        until: String,
        /// Where the archive ends.
        reason: String,
    },
    /// A file between the backup and the point is missing from the archive.
    #[error(
        "gap in the binlog archive: {missing} is missing, and the replay from {from} to {until} needs it"
    )]
    ArchiveGap {
        /// The missing file.
        missing: String,
        /// The backup's position.
        from: String,
        /// The point.
        until: String,
    },
    /// The target datadir holds files.
    #[error("{dir} is not empty: a point-in-time restore makes a new datadir")]
    TargetNotEmpty {
        /// The target.
        dir: PathBuf,
    },
    /// A needed program was not found.
    #[error("{what} not found (tried: {tried})")]
    ToolMissing {
        /// Which tool.
        what: String,
        /// Where it looked.
        tried: String,
    },
    /// Reading the backups or the archive, or copying, failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Prepare (or the replay in it) failed.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
}

impl PitrError {
    /// What the user can do about it.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            PitrError::NoBackups { .. } => "Point --backups at the directory that holds the backups (each in its own subdirectory), taken from a server with log_bin.".into(),
            PitrError::NoBackupBefore { .. } => "Choose a later point, or restore from an older backup kept elsewhere.".into(),
            PitrError::BeyondArchive { .. } => "Choose an earlier point, or let the archiver catch up (its --status-file says where it is).".into(),
            PitrError::ArchiveGap { .. } => "Restore to a point before the gap, or from a backup taken after it.".into(),
            PitrError::TargetNotEmpty { .. } => "Give --target-dir a new or empty directory.".into(),
            PitrError::ToolMissing { .. } => "Pass --binlog-reader and --client (the source server's own mysqlbinlog/mariadb-binlog and mysql/mariadb), or put them in PATH.".into(),
            PitrError::Io { .. } => "Check that the files exist and are readable, and that the target has space.".into(),
            PitrError::Prepare(e) => e.hint().into(),
        }
    }

    /// The process exit code for it.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            PitrError::Prepare(e) => e.code(),
            PitrError::NoBackups { .. } | PitrError::NoBackupBefore { .. } => 50,
            PitrError::BeyondArchive { .. } | PitrError::ArchiveGap { .. } => 51,
            PitrError::TargetNotEmpty { .. } | PitrError::ToolMissing { .. } => 52,
            PitrError::Io { .. } => 53,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PitrError + '_ {
    move |e| PitrError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A backup in the backups directory.
#[derive(Debug, Clone)]
struct Backup {
    dir: PathBuf,
    cps: Checkpoints,
    file: String,
    pos: u64,
}

/// The number of a binlog file name, for ordering positions.
fn number(name: &str) -> u64 {
    crate::binlog::format::file_number(name).unwrap_or(0)
}

fn at_or_before(a: (&str, u64), b: (&str, u64)) -> bool {
    (number(a.0), a.1) <= (number(b.0), b.1)
}

/// The backups under `dir` with binlog coordinates.
fn backups(dir: &Path) -> Result<Vec<Backup>, PitrError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let path = e.map_err(io(dir))?.path();
        // a backup that did not complete is no restore point
        if path.join(crate::prepare::INCOMPLETE_MARKER).exists() {
            tracing::info!(backup = %path.display(), "skipped: incomplete");
            continue;
        }
        let (Ok(cps), Ok(info)) = (
            fs::read_to_string(path.join("xtrabackup_checkpoints")),
            fs::read_to_string(path.join("xtrabackup_binlog_info")),
        ) else {
            continue;
        };
        let Ok(cps) = Checkpoints::parse(&cps) else {
            continue;
        };
        let mut words = info.split_whitespace();
        let (Some(file), Some(Ok(pos))) = (words.next(), words.next().map(str::parse)) else {
            continue;
        };
        out.push(Backup {
            dir: path,
            cps,
            file: file.to_string(),
            pos,
        });
    }
    out.sort_by_key(|b| (b.cps.to_lsn, b.cps.from_lsn));
    Ok(out)
}

/// Every restore point: a full backup, or one with incrementals on it.
fn chains(all: &[Backup]) -> Vec<Vec<&Backup>> {
    let mut chains: Vec<Vec<&Backup>> = Vec::new();
    for b in all {
        match b.cps.backup_type.as_str() {
            "full-backuped" => chains.push(vec![b]),
            "incremental" => {
                let base = chains
                    .iter()
                    .filter(|c| c.last().is_some_and(|l| l.cps.to_lsn == b.cps.from_lsn))
                    .max_by_key(|c| c.len())
                    .cloned();
                if let Some(mut c) = base {
                    c.push(b);
                    chains.push(c);
                }
            }
            _ => {}
        }
    }
    chains
}

/// Finds where the point is in the archive: the last transaction to apply.
fn find_stop(archive: &Path, until: &Until) -> Result<Option<Boundary>, PitrError> {
    let files = archived_files(archive).map_err(|e| PitrError::Io {
        path: archive.to_path_buf(),
        reason: e.to_string(),
    })?;
    let beyond = |reason: String| PitrError::BeyondArchive {
        until: until.to_string(),
        reason,
    };
    if files.is_empty() {
        return Err(beyond(format!(
            "{} holds no binlog file",
            archive.display()
        )));
    }
    let mut last: Option<Boundary> = None;
    let mut found: Option<Boundary> = None;
    let mut done = false;
    for f in &files {
        let stopped = scan::boundaries(archive, f, 0, &mut |b| {
            let take = match until {
                Until::Time(t) => {
                    if b.time > *t {
                        done = true;
                        return false;
                    }
                    true
                }
                Until::Gtid(g) => {
                    if b.gtid == Some(*g) {
                        found = Some(b.clone());
                        done = true;
                        return false;
                    }
                    true
                }
                Until::Position { file, pos } => {
                    if !at_or_before((&b.file, b.end), (file, *pos)) {
                        done = true;
                        return false;
                    }
                    true
                }
            };
            if take {
                last = Some(b.clone());
            }
            true
        })
        .map_err(|e| PitrError::Io {
            path: archive.join(&e.file),
            reason: e.reason,
        })?;
        if stopped || done {
            break;
        }
    }
    match until {
        Until::Gtid(_) => found
            .map(Some)
            .ok_or_else(|| beyond("no transaction with that GTID in the archive".into())),
        Until::Time(_) if !done => Err(beyond(match &last {
            Some(b) => format!(
                "its last transaction ends at {}:{} at {} UTC, and nothing after the point is archived yet",
                b.file,
                b.end,
                point::format_time(b.time)
            ),
            None => "it holds no transaction".into(),
        })),
        Until::Position { file, pos } if !done => {
            let len = fs::metadata(archive.join(file)).map(|m| m.len()).ok();
            match len {
                Some(l) if *pos <= l => Ok(last),
                _ => Err(beyond(format!(
                    "it ends at {}:{}",
                    files.last().map_or("", String::as_str),
                    files
                        .last()
                        .and_then(|f| fs::metadata(archive.join(f)).ok())
                        .map_or(0, |m| m.len())
                ))),
            }
        }
        _ => Ok(last),
    }
}

/// The files the replay reads, from `from` to `to`, all present and
/// numbered one after the other.
fn replay_files(
    archive: &Path,
    from: &str,
    to: &str,
    until: &Until,
) -> Result<Vec<PathBuf>, PitrError> {
    let have = archived_files(archive).map_err(|e| PitrError::Io {
        path: archive.to_path_buf(),
        reason: e.to_string(),
    })?;
    let base = from.rsplit_once('.').map_or(from, |(b, _)| b);
    let width = from.rsplit_once('.').map_or(6, |(_, n)| n.len());
    let mut out = Vec::new();
    for n in number(from)..=number(to) {
        let name = format!("{base}.{n:0width$}");
        if !have.contains(&name) {
            return Err(PitrError::ArchiveGap {
                missing: name,
                from: from.to_string(),
                until: until.to_string(),
            });
        }
        out.push(archive.join(name));
    }
    Ok(out)
}

/// The first of `names` beside `server` (its `bin/`, for a `sbin/` server,
/// or its own directory), then in `PATH`.
fn find_tool(server: Option<&Path>, names: &[&str], what: &str) -> Result<PathBuf, PitrError> {
    let mut tried = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(s) = server.and_then(Path::parent) {
        if let Some(root) = s.parent() {
            dirs.push(root.join("bin"));
        }
        dirs.push(s.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for d in &dirs {
        for n in names {
            let p = d.join(n);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
    }
    Err(PitrError::ToolMissing {
        what: what.into(),
        tried: names.join(", ") + " beside the server and in PATH",
    })
}

/// Copies the tree `from` into `to` (created).
fn copy_tree(from: &Path, to: &Path) -> Result<(), PitrError> {
    fs::create_dir_all(to).map_err(io(to))?;
    for e in fs::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        let src = e.path();
        let dst = to.join(e.file_name());
        if e.file_type().map_err(io(&src))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

/// Restores to `opts.until`.
///
/// # Errors
/// [`PitrError`], naming the backup, the archive file or the tool.
pub fn restore(opts: &PitrOptions) -> Result<PitrReport, PitrError> {
    // 1. the point, in the archive
    let stop = find_stop(&opts.archive, &opts.until)?;
    // 2. the newest restore point at or before it
    let all = backups(&opts.backups)?;
    if all.is_empty() {
        return Err(PitrError::NoBackups {
            dir: opts.backups.clone(),
        });
    }
    let chains = chains(&all);
    let pos_of = |c: &Vec<&Backup>| c.last().map(|b| (b.file.clone(), b.pos));
    let chosen = chains
        .iter()
        .filter(|c| {
            pos_of(c).is_some_and(|(f, p)| {
                stop.as_ref()
                    .is_some_and(|s| at_or_before((&f, p), (&s.file, s.end)))
            })
        })
        .max_by_key(|c| {
            let (f, p) = pos_of(c).unwrap_or_default();
            (number(&f), p, c.len())
        });
    let Some(chain) = chosen else {
        let oldest = chains
            .iter()
            .filter_map(pos_of)
            .min_by_key(|(f, p)| (number(f), *p))
            .map_or_else(String::new, |(f, p)| format!("{f}:{p}"));
        return Err(PitrError::NoBackupBefore {
            until: opts.until.to_string(),
            oldest,
        });
    };
    let Some(last) = chain.last() else {
        return Err(PitrError::NoBackups {
            dir: opts.backups.clone(),
        });
    };
    let from = (last.file.clone(), last.pos);
    let replay = match &stop {
        Some(s) if (number(&s.file), s.end) > (number(&from.0), from.1) => {
            let files = replay_files(&opts.archive, &from.0, &s.file, &opts.until)?;
            let server = opts.server_binary.as_deref();
            Some(Replay {
                reader: match &opts.binlog_reader {
                    Some(p) => p.clone(),
                    None => find_tool(server, &["mysqlbinlog", "mariadb-binlog"], "binlog reader")?,
                },
                client: match &opts.client {
                    Some(p) => p.clone(),
                    None => find_tool(server, &["mysql", "mariadb"], "client")?,
                },
                files,
                start: from.1,
                stop: s.end,
            })
        }
        _ => None,
    };
    // 3. copy and prepare
    if fs::read_dir(&opts.target).is_ok_and(|mut d| d.next().is_some()) {
        return Err(PitrError::TargetNotEmpty {
            dir: opts.target.clone(),
        });
    }
    let full = chain
        .first()
        .map_or(last.dir.as_path(), |b| b.dir.as_path());
    let made = make(opts, full, &chain[1..], replay.as_ref());
    if let Err(e) = &made {
        // the datadir says it is not to be started, and why
        if opts.target.is_dir() {
            let marker = opts.target.join(crate::restore::MARKER);
            let _ = fs::write(&marker, format!("point-in-time restore failed: {e}\n"));
        }
    }
    made?;
    Ok(PitrReport {
        chain: chain.iter().map(|b| b.dir.clone()).collect(),
        from,
        reached: if replay.is_some() { stop } else { None },
    })
}

/// Copies `full` into the target and prepares it there, with `incs` on
/// top and the replay in the last step.
fn make(
    opts: &PitrOptions,
    full: &Path,
    incs: &[&Backup],
    replay: Option<&Replay>,
) -> Result<(), PitrError> {
    tracing::info!(backup = %full.display(), target = %opts.target.display(), "copying the full backup");
    copy_tree(full, &opts.target)?;
    let step = |apply_log_only: bool, inc: Option<&Path>, replay: Option<Replay>| {
        let mut p = PrepareOptions::new(&opts.target).apply_log_only(apply_log_only);
        p.server_binary.clone_from(&opts.server_binary);
        p.server_defaults_file
            .clone_from(&opts.server_defaults_file);
        p.use_memory.clone_from(&opts.use_memory);
        p.incremental_dir = inc.map(Path::to_path_buf);
        p.replay = replay;
        prepare(&p).map(|_| ()).map_err(PitrError::from)
    };
    step(
        !incs.is_empty(),
        None,
        if incs.is_empty() {
            replay.cloned()
        } else {
            None
        },
    )?;
    for (i, inc) in incs.iter().enumerate() {
        let last_step = i + 1 == incs.len();
        // merging moves files out of the incremental: a copy of it, so the
        // backups stay as they are
        let scratch = opts
            .target
            .with_file_name(format!(".xb-pitr-inc-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        copy_tree(&inc.dir, &scratch)?;
        let done = step(
            !last_step,
            Some(&scratch),
            if last_step { replay.cloned() } else { None },
        );
        let _ = fs::remove_dir_all(&scratch);
        done?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_file_number_then_offset() {
        assert!(at_or_before(("binlog.000002", 900), ("binlog.000003", 4)));
        assert!(at_or_before(("binlog.000003", 4), ("binlog.000003", 4)));
        assert!(!at_or_before(
            ("binlog.000010", 4),
            ("binlog.000009", 99_999)
        ));
    }

    #[test]
    fn a_missing_file_between_backup_and_point_is_named() {
        let d = tempfile::tempdir().unwrap();
        for n in [3, 4, 6] {
            fs::write(
                d.path().join(format!("binlog.{n:06}")),
                crate::binlog::format::MAGIC,
            )
            .unwrap();
        }
        let until = Until::Time(0);
        assert_eq!(
            replay_files(d.path(), "binlog.000003", "binlog.000004", &until)
                .unwrap()
                .len(),
            2
        );
        match replay_files(d.path(), "binlog.000003", "binlog.000006", &until) {
            Err(PitrError::ArchiveGap { missing, .. }) => assert_eq!(missing, "binlog.000005"),
            other => panic!("{other:?}"),
        }
    }
}
