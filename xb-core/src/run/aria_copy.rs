//! MariaDB's `BACKUP STAGE START`, for Aria as mariadb-backup 10.11 uses
//! it: the transactional Aria tables with page checksums (the `mysql.*`
//! privilege and routine tables among them) are copied while the server
//! goes on writing them, instead of while commits are blocked.
//!
//! `aria_log_control` is read first: its checkpoint is older than every
//! page copied after it, and `START` keeps the server from purging Aria log
//! files from then on. The Aria log then holds every change made to these
//! tables since that checkpoint: its finished files are copied at each
//! stage ([`copy_logs`]), and only the file the server is writing (and any
//! written again since its copy) under `BLOCK_COMMIT`;
//! the control file goes into the backup after it, naming the newest log
//! file copied (the server reads no log file past the one it names), and
//! the server's Aria recovery (at `xb-cli prepare`'s start, or
//! `mariadb-backup --prepare`) brings each copied page up to date. Pages
//! are checked as they are read ([`xb_aria::page`]), so a page the server
//! was writing at that moment is read again.
//!
//! Each table is copied under `BACKUP LOCK` when DDL is not blocked (its
//! files cannot be replaced mid-copy); what DDL did to a table between its
//! copy and `BLOCK_DDL` is settled there ([`super::early`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::data_copy::{Job, Kind};
use super::early::{self, ARIA_CONTROL, Early};
use super::files::{self, Stamp};
use super::flavour::Step;
use super::seams::Target;
use super::server;
use super::targets::take_back;
use crate::error::BackupError;

/// Reads `aria_log_control`, then copies every online-backup-safe Aria
/// table, each under `BACKUP LOCK` when `per_table_lock` (DDL not blocked
/// yet), and the finished log files, recording all in `early`. Call it
/// with `BACKUP STAGE START` held.
///
/// # Errors
/// [`BackupError::Sql`], and the errors of a copy.
pub(super) async fn copy_online(
    step: &mut Step<'_>,
    early: &mut Early,
    per_table_lock: bool,
) -> Result<(), BackupError> {
    let listed = files::list_only(&step.ctx.facts, &step.ctx.filter, files::Want::ARIA)?.aria;
    let Some(control) = listed.iter().find(|j| j.rel == ARIA_CONTROL).cloned() else {
        return Ok(());
    };
    let tables = online_safe(&listed);
    if tables.is_empty() {
        return Ok(());
    }
    let Some(read) = read_control(&control.src).await else {
        // left to the copy under BLOCK_COMMIT, as every Aria table was before
        tracing::warn!(file = %control.src.display(), "aria_log_control does not read cleanly: Aria tables are copied while commits are blocked");
        return Ok(());
    };
    early.aria_control = Some(read);
    step.progress.phase(&format!(
        "BACKUP STAGE START: copy {} transactional Aria table(s) while the server writes them",
        tables.len()
    ));
    for ((db, table), jobs) in tables {
        let ids: Vec<_> = jobs.iter().map(|j| early::aria_mark(&j.src)).collect();
        let rels: Vec<String> = jobs.iter().map(|j| j.rel.clone()).collect();
        if per_table_lock {
            step.session
                .exec(&format!("BACKUP LOCK {}", server::quote_table(&db, &table)))
                .await?;
        }
        let copied = step.copy(jobs);
        // a failed copy is the error to report, even if the unlock fails too
        let unlocked = if per_table_lock {
            step.session.exec("BACKUP UNLOCK").await
        } else {
            Ok(())
        };
        copied?;
        unlocked?;
        for (rel, id) in rels.into_iter().zip(ids) {
            if let Some(id) = id {
                early.aria.insert(rel, id);
            }
        }
    }
    // the log files the server has finished, while DDL still goes on
    copy_logs(step, &mut early.logs, true)
}

/// `aria_log_control` as the server wrote it, read again while a read
/// catches it mid-write (its checksums fail); `None` if it never reads
/// cleanly within a second.
async fn read_control(path: &Path) -> Option<xb_aria::Control> {
    for _ in 0..10 {
        if let Some(c) = std::fs::read(path)
            .ok()
            .and_then(|b| xb_aria::Control::parse(&b).ok())
        {
            return Some(c);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// The index and data files of the tables in `listed` that can be copied
/// while written, by table (a partitioned table's partitions together).
/// A table whose header cannot be read now is left to the copy under
/// `BLOCK_COMMIT`, as are those whose names xb cannot decode.
fn online_safe(listed: &[Job]) -> BTreeMap<(String, String), Vec<Job>> {
    let by_rel: HashMap<&str, &Job> = listed.iter().map(|j| (j.rel.as_str(), j)).collect();
    let mut out: BTreeMap<(String, String), Vec<Job>> = BTreeMap::new();
    for index in listed.iter().filter(|j| j.rel.ends_with(".MAI")) {
        let safe = xb_aria::read_capabilities(&index.src)
            .ok()
            .flatten()
            .is_some_and(|c| c.online_backup_safe());
        let data_rel = format!("{}.MAD", index.rel.trim_end_matches(".MAI"));
        let data = by_rel.get(data_rel.as_str()).copied();
        let (Some(data), Some(Some(key))) = (data, files::table_of(&index.rel)) else {
            continue;
        };
        if safe {
            let files = out.entry(key).or_default();
            for j in [index, data] {
                files.push(Job {
                    kind: Kind::Aria,
                    ..j.clone()
                });
            }
        }
    }
    out
}

/// The bytes of `aria_log_control` for a backup that holds the Aria log
/// files `logs`: `control` as read before the tables, naming the newest of
/// them as the last log file.
pub(super) fn control_for<'a>(
    control: &xb_aria::Control,
    logs: impl Iterator<Item = &'a String>,
) -> Vec<u8> {
    let newest = logs.filter_map(|l| log_number(l)).max().unwrap_or(0);
    control.with_last_log(newest)
}

/// Aria tables the server writes even while DDL is blocked: the statistics
/// tables and log tables, copied while commits are blocked.
const COMMIT_ONLY: &[(&str, &str)] = &[
    ("mysql", "table_stats"),
    ("mysql", "column_stats"),
    ("mysql", "index_stats"),
    ("mysql", "general_log"),
    ("mysql", "slow_log"),
];

/// The Aria files left after settling, by the stage that copies them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Split {
    /// Copied under `BLOCK_DDL`: tables (read page-checked while written
    /// if transactional, else no longer written since `FLUSH`).
    pub before_commit: Vec<Job>,
    /// Copied under `BLOCK_COMMIT`: the statistics and log tables, and the
    /// control file when it was not read at `START`.
    pub at_commit: Vec<Job>,
}

/// The number of an Aria log file, from its name (`aria_log.00000007`).
pub(super) fn log_number(rel: &str) -> Option<u32> {
    rel.strip_prefix("aria_log.")?.parse().ok()
}

/// Sorts the Aria tables in `aria` into stages (log files are left to
/// [`copy_logs`]). Without a control file read at `START` (`online`
/// false) a transactional table copied before `BLOCK_COMMIT` would have no
/// log old enough to bring it up to date: every table then waits for
/// `BLOCK_COMMIT`, as before.
pub(super) fn split(aria: Vec<Job>, online: bool) -> Split {
    let mut out = Split::default();
    for job in aria {
        if log_number(&job.rel).is_some() {
            continue;
        }
        let commit_only = files::table_of(&job.rel)
            .flatten()
            .is_some_and(|(db, t)| COMMIT_ONLY.iter().any(|(d, n)| db == *d && t == *n));
        if !online || commit_only || job.rel == ARIA_CONTROL {
            out.at_commit.push(job);
        } else {
            out.before_commit.push(Job {
                kind: Kind::Aria,
                ..job
            });
        }
    }
    out
}

/// Copies the Aria log files not copied yet (`copied`: each copy's stamp
/// from before it), and again those written since their copy, taken back
/// from the target first. With `finished_only`, the newest file (the one
/// the server writes) is left for later: the others are finished, and a
/// stamp that still holds under `BLOCK_COMMIT` proves it. Call it last
/// under `BLOCK_COMMIT`, with `finished_only` false.
///
/// # Errors
/// [`BackupError::Read`] when the datadir cannot be listed,
/// [`BackupError::Target`] when a copy cannot be taken back, and the
/// errors of a copy.
pub(super) fn copy_logs(
    step: &mut Step<'_>,
    copied: &mut HashMap<String, Stamp>,
    finished_only: bool,
) -> Result<(), BackupError> {
    let datadir = Path::new(&step.ctx.facts.datadir);
    let jobs = logs_to_copy(datadir, copied, step.ctx.target.as_ref(), finished_only)?;
    for j in &jobs {
        match files::stamp(&j.src) {
            Some(s) => copied.insert(j.rel.clone(), s),
            None => copied.remove(&j.rel),
        };
    }
    step.copy(jobs)
}

/// The Aria log files in `datadir` that [`copy_logs`] copies.
fn logs_to_copy(
    datadir: &Path,
    copied: &HashMap<String, Stamp>,
    target: &dyn Target,
    finished_only: bool,
) -> Result<Vec<Job>, BackupError> {
    let mut logs: Vec<(u32, String, std::path::PathBuf)> = files::read_dir(datadir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((log_number(&name)?, name, e.path()))
        })
        .collect();
    logs.sort();
    if finished_only {
        logs.pop();
    }
    let mut out = Vec::new();
    for (_, name, path) in logs {
        match copied.get(&name) {
            Some(was) if files::stamp(&path) == Some(*was) => continue,
            Some(_) => take_back(target, &name)?,
            None => {}
        }
        out.push(files::job(path, name, Kind::Plain));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::targets::Taken;

    fn job(dir: &Path, rel: &str) -> Job {
        files::job(dir.join(rel), rel.into(), Kind::Plain)
    }

    fn rels(jobs: &[Job]) -> Vec<(&str, Kind)> {
        jobs.iter().map(|j| (j.rel.as_str(), j.kind)).collect()
    }

    #[test]
    fn finished_logs_and_tables_go_before_commits_are_blocked() {
        let d = Path::new("/d");
        let aria: Vec<Job> = [
            "aria_log.00000003",
            "aria_log.00000004",
            "aria_log.00000002",
            "db/t.MAD",
            "db/t.MAI",
            "mysql/table_stats.MAD",
            "mysql/table_stats.MAI",
            ARIA_CONTROL,
        ]
        .iter()
        .map(|r| job(d, r))
        .collect();
        let s = split(aria.clone(), true);
        assert_eq!(
            rels(&s.before_commit),
            [("db/t.MAD", Kind::Aria), ("db/t.MAI", Kind::Aria),]
        );
        // the logs are left to copy_logs
        assert_eq!(
            rels(&s.at_commit),
            [
                ("mysql/table_stats.MAD", Kind::Plain),
                ("mysql/table_stats.MAI", Kind::Plain),
                (ARIA_CONTROL, Kind::Plain),
            ]
        );
        // no control file read at START: tables wait for BLOCK_COMMIT
        let s = split(aria, false);
        assert!(s.before_commit.is_empty());
        assert_eq!(s.at_commit.len(), 5);
    }

    #[test]
    fn the_control_file_written_last_names_the_newest_log_copied() {
        let control = xb_aria::Control::parse(&crate::run::early::tests::CONTROL).unwrap();
        let logs = ["aria_log.00000001".to_string(), "aria_log.00000007".into()];
        let seven = xb_aria::Control::parse(&control_for(&control, logs.iter())).unwrap();
        assert_eq!(
            (seven.last_log(), seven.checkpoint()),
            (7, control.checkpoint())
        );
    }

    #[test]
    fn logs_to_copy_are_the_new_and_the_rewritten_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in 1..=3 {
            std::fs::write(d.join(format!("aria_log.0000000{n}")), b"log").unwrap();
        }
        std::fs::write(d.join(ARIA_CONTROL), b"c").unwrap();
        let names = |jobs: Vec<Job>| -> Vec<String> { jobs.into_iter().map(|j| j.rel).collect() };
        let target = Taken::default();
        // early: the newest (3) is the server's, not finished
        let first = logs_to_copy(d, &HashMap::new(), &target, true).unwrap();
        assert_eq!(names(first), ["aria_log.00000001", "aria_log.00000002"]);
        let copied: HashMap<String, Stamp> = ["aria_log.00000001", "aria_log.00000002"]
            .iter()
            .map(|r| ((*r).to_string(), files::stamp(&d.join(r)).unwrap()))
            .collect();
        // the server finished writing file 2 after its copy; then made 4
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.join("aria_log.00000002"), b"log, and its last page").unwrap();
        std::fs::write(d.join("aria_log.00000004"), b"new").unwrap();
        let last = logs_to_copy(d, &copied, &target, false).unwrap();
        assert_eq!(
            names(last),
            [
                "aria_log.00000002",
                "aria_log.00000003",
                "aria_log.00000004"
            ]
        );
        assert_eq!(*target.0.lock().unwrap(), ["aria_log.00000002"]);
    }
}
