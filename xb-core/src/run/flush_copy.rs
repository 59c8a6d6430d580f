//! MariaDB's `BACKUP STAGE FLUSH`, used as mariadb-backup 10.11 uses it:
//! the non-transactional tables no statement is using are copied one at a
//! time under `BACKUP LOCK`, while DDL on every other table goes on (it is
//! blocked only from `BLOCK_DDL`, after this copy).
//!
//! From `FLUSH` on, the server lets no new write start on these tables, so
//! a copy stays good until DDL replaces, renames or drops the table. Each
//! file's [`Stamp`] is taken before its copy; under `BLOCK_DDL`,
//! [`Early::settle`] holds it against the file as it is then, takes back
//! from the target what changed or went away, and leaves those files (and
//! the ones in use at `FLUSH`, and the `.frm` and other metadata) to the
//! copy under `BLOCK_DDL`.

use std::collections::{BTreeMap, HashMap, HashSet};

use mysql_async::prelude::Queryable;

use super::data_copy::Job;
use super::files::{self, Stamp};
use super::flavour::Step;
use super::seams::Target;
use super::server;
use super::targets::take_back;
use crate::error::BackupError;

/// Suffixes of the table data files copied early; `.frm`, `.par`, trigger
/// files and the like change with DDL and are copied under `BLOCK_DDL`.
const DATA: &[&str] = &["MYD", "MYI", "MRG", "ARM", "ARZ", "CSM", "CSV"];

/// Tables the server itself writes at any time (the log tables): copied
/// under `BLOCK_DDL` with the rest.
const SERVER_WRITTEN: &[(&str, &str)] = &[("mysql", "general_log"), ("mysql", "slow_log")];

/// The files copied at `FLUSH`, each with its stamp from before its copy.
#[derive(Debug, Default)]
pub(super) struct Early {
    copied: HashMap<String, Stamp>,
}

/// What [`Early::settle`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    /// Files still to copy under `BLOCK_DDL`.
    pub rest: Vec<Job>,
    /// Early copies that DDL made stale, taken back from the target.
    pub taken_back: Vec<String>,
}

/// Copies, table by table under `BACKUP LOCK`, the data files of the
/// non-transactional tables that `SHOW OPEN TABLES` does not show in use.
/// Call it with `BACKUP STAGE FLUSH` held.
///
/// # Errors
/// [`BackupError::Sql`], and the errors of a copy.
pub(super) async fn copy_unused(step: &mut Step<'_>) -> Result<Early, BackupError> {
    let listed = files::list(&step.ctx.facts, &step.ctx.filter)?.non_innodb;
    let in_use = in_use(step).await?;
    let tables = unused_tables(listed, &in_use);
    let mut early = Early::default();
    if tables.is_empty() {
        return Ok(early);
    }
    step.progress.phase(&format!(
        "BACKUP STAGE FLUSH: copy {} unused non-transactional table(s), each under BACKUP LOCK",
        tables.len()
    ));
    for ((db, table), jobs) in tables {
        step.session
            .exec(&format!("BACKUP LOCK {}", server::quote_table(&db, &table)))
            .await?;
        let stamps: Vec<Option<Stamp>> = jobs.iter().map(|j| files::stamp(&j.src)).collect();
        let rels: Vec<String> = jobs.iter().map(|j| j.rel.clone()).collect();
        let copied = step.copy(jobs);
        // a failed copy is the error to report, even if the unlock fails too
        let unlocked = step.session.exec("BACKUP UNLOCK").await;
        copied?;
        unlocked?;
        for (rel, stamp) in rels.into_iter().zip(stamps) {
            if let Some(stamp) = stamp {
                early.copied.insert(rel, stamp);
            }
        }
    }
    Ok(early)
}

impl Early {
    /// Holds the early copies against `now`, the non-InnoDB files listed
    /// under `BLOCK_DDL`: a file unchanged since its copy is done; one
    /// changed (rebuilt, truncated) is taken back and copied again; one no
    /// longer there (dropped, renamed away) is taken back. Returns what is
    /// left to copy.
    ///
    /// # Errors
    /// [`BackupError::Target`] when the target cannot take a file back.
    pub(super) fn settle(self, target: &dyn Target, now: Vec<Job>) -> Result<Settled, BackupError> {
        let mut copied = self.copied;
        let mut out = Settled::default();
        for job in now {
            match copied.remove(&job.rel) {
                Some(was) if files::stamp(&job.src) == Some(was) => {}
                Some(_) => {
                    take_back(target, &job.rel)?;
                    out.taken_back.push(job.rel.clone());
                    out.rest.push(job);
                }
                None => out.rest.push(job),
            }
        }
        let mut gone: Vec<String> = copied.into_keys().collect();
        gone.sort();
        for rel in gone {
            take_back(target, &rel)?;
            out.taken_back.push(rel);
        }
        Ok(out)
    }
}

/// `SHOW OPEN TABLES WHERE In_use > 0`: tables some statement uses now.
async fn in_use(step: &mut Step<'_>) -> Result<HashSet<(String, String)>, BackupError> {
    let sql = "SHOW OPEN TABLES WHERE In_use > 0";
    let rows: Vec<(String, String, u64, u64)> = step
        .session
        .conn()
        .query(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    Ok(rows.into_iter().map(|(db, t, _, _)| (db, t)).collect())
}

/// The data files of `listed`, by table, for the tables not in `in_use`,
/// not written by the server itself, and with names xb can decode.
fn unused_tables(
    listed: Vec<Job>,
    in_use: &HashSet<(String, String)>,
) -> BTreeMap<(String, String), Vec<Job>> {
    let mut out: BTreeMap<(String, String), Vec<Job>> = BTreeMap::new();
    for job in listed {
        let data = job
            .rel
            .rsplit_once('.')
            .is_some_and(|(_, ext)| DATA.contains(&ext));
        let Some(Some(key)) = files::table_of(&job.rel) else {
            continue;
        };
        let server_written = SERVER_WRITTEN
            .iter()
            .any(|(d, t)| key.0 == *d && key.1 == *t);
        if data && !server_written && !in_use.contains(&key) {
            out.entry(key).or_default().push(job);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::data_copy::Kind;
    use crate::run::seams::{OutFile, SeamError};
    use std::path::Path;
    use std::sync::Mutex;

    fn job(dir: &Path, rel: &str) -> Job {
        crate::run::files::job(dir.join(rel), rel.into(), Kind::Plain)
    }

    fn put(dir: &Path, rel: &str, body: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    #[test]
    fn only_data_files_of_unused_tables_go_early() {
        let d = Path::new("/d");
        let listed = [
            "db/m.MYD",
            "db/m.MYI",
            "db/m.frm",
            "db/busy.MYD",
            "db/c.CSV",
            "db/p#P#p0.MYD",
            "db/p#P#p1.MYD",
            "mysql/general_log.CSV",
            "db/x@0G.MYD",
            "db/db.opt",
        ]
        .iter()
        .map(|r| job(d, r))
        .collect();
        let busy = HashSet::from([("db".to_string(), "busy".to_string())]);
        let got: Vec<(String, Vec<String>)> = unused_tables(listed, &busy)
            .into_iter()
            .map(|((db, t), jobs)| {
                (
                    format!("{db}.{t}"),
                    jobs.into_iter().map(|j| j.rel).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("db.c".into(), vec!["db/c.CSV".into()]),
                ("db.m".into(), vec!["db/m.MYD".into(), "db/m.MYI".into()]),
                (
                    "db.p".into(),
                    vec!["db/p#P#p0.MYD".into(), "db/p#P#p1.MYD".into()]
                ),
            ]
        );
    }

    /// A target that records what it is asked to take back.
    #[derive(Default)]
    struct Taken(Mutex<Vec<String>>);

    impl Target for Taken {
        fn create(&self, rel: &str, _: u64) -> Result<Box<dyn OutFile>, SeamError> {
            unreachable!("settle writes nothing: {rel}")
        }
        fn remove(&self, rel: &str) -> Result<bool, SeamError> {
            self.0.lock().unwrap().push(rel.into());
            Ok(true)
        }
        fn finish(&self) -> Result<(), SeamError> {
            Ok(())
        }
    }

    #[test]
    fn settling_keeps_unchanged_copies_and_takes_back_changed_and_gone_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for rel in [
            "db/same.MYD",
            "db/grown.MYD",
            "db/renamed.MYD",
            "db/dropped.MYD",
        ] {
            put(d, rel, b"before");
        }
        let mut early = Early::default();
        for rel in [
            "db/same.MYD",
            "db/grown.MYD",
            "db/renamed.MYD",
            "db/dropped.MYD",
        ] {
            early
                .copied
                .insert(rel.into(), files::stamp(&d.join(rel)).unwrap());
        }
        // DDL between the early copy and BLOCK_DDL
        put(d, "db/grown.MYD", b"rebuilt, longer");
        std::fs::rename(d.join("db/renamed.MYD"), d.join("db/new_name.MYD")).unwrap();
        std::fs::remove_file(d.join("db/dropped.MYD")).unwrap();
        put(d, "db/in_use.MYD", b"x");
        let now = [
            "db/same.MYD",
            "db/grown.MYD",
            "db/new_name.MYD",
            "db/in_use.MYD",
        ]
        .iter()
        .map(|r| job(d, r))
        .collect();
        let target = Taken::default();
        let settled = early.settle(&target, now).unwrap();
        let rest: Vec<&str> = settled.rest.iter().map(|j| j.rel.as_str()).collect();
        assert_eq!(rest, ["db/grown.MYD", "db/new_name.MYD", "db/in_use.MYD"]);
        assert_eq!(
            settled.taken_back,
            ["db/grown.MYD", "db/dropped.MYD", "db/renamed.MYD"]
        );
        assert_eq!(*target.0.lock().unwrap(), settled.taken_back);
    }

    #[test]
    fn a_file_renamed_away_and_back_is_copied_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(d, "db/t.MYD", b"same bytes");
        let mut early = Early::default();
        early.copied.insert(
            "db/t.MYD".into(),
            files::stamp(&d.join("db/t.MYD")).unwrap(),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::rename(d.join("db/t.MYD"), d.join("db/u.MYD")).unwrap();
        std::fs::rename(d.join("db/u.MYD"), d.join("db/t.MYD")).unwrap();
        let settled = early
            .settle(&Taken::default(), vec![job(d, "db/t.MYD")])
            .unwrap();
        assert_eq!(settled.taken_back, ["db/t.MYD"]);
    }
}
