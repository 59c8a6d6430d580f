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

use std::collections::{BTreeMap, HashSet};

use mysql_async::prelude::Queryable;

use super::data_copy::Job;
use super::early::Early;
use super::files::{self, Stamp};
use super::flavour::Step;
use super::server;
use crate::error::BackupError;

/// Suffixes of the table data files copied early; `.frm`, `.par`, trigger
/// files and the like change with DDL and are copied under `BLOCK_DDL`.
const DATA: &[&str] = &["MYD", "MYI", "MRG", "ARM", "ARZ", "CSM", "CSV"];

/// Tables the server itself writes at any time (the log tables): copied
/// under `BLOCK_DDL` with the rest.
const SERVER_WRITTEN: &[(&str, &str)] = &[("mysql", "general_log"), ("mysql", "slow_log")];

/// Copies, table by table under `BACKUP LOCK`, the data files of the
/// non-transactional tables that `SHOW OPEN TABLES` does not show in use.
/// Call it with `BACKUP STAGE FLUSH` held.
///
/// # Errors
/// [`BackupError::Sql`], and the errors of a copy.
pub(super) async fn copy_unused(step: &mut Step<'_>, early: &mut Early) -> Result<(), BackupError> {
    let listed =
        files::list_only(&step.ctx.facts, &step.ctx.filter, files::Want::PLAIN)?.non_innodb;
    let in_use = in_use(step).await?;
    let tables = unused_tables(listed, &in_use);
    if tables.is_empty() {
        return Ok(());
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
                early.flush.insert(rel, stamp);
            }
        }
    }
    Ok(())
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
    use std::path::Path;

    fn job(dir: &Path, rel: &str) -> Job {
        crate::run::files::job(dir.join(rel), rel.into(), Kind::Plain)
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
}
