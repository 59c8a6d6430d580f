//! MySQL `--lock-ddl-per-table`: taking `LOCK INSTANCE FOR BACKUP` after
//! the InnoDB copy without deadlocking with DDL that waits on xb's own
//! metadata locks.
//!
//! A DDL statement takes the server's backup lock in intention mode first
//! and then waits for the table's metadata lock, which xb's second session
//! holds until the end. `LOCK INSTANCE FOR BACKUP` from xb's main session
//! then waits for that DDL, which waits for xb: the server's deadlock
//! detector sees two unrelated sessions and both wait for
//! `lock_wait_timeout` (a year by default). So the instance lock is tried
//! in short attempts; when one times out and `performance_schema` shows
//! statements waiting for tables xb has locked, xb *yields*: it ends its
//! metadata locks, lets those statements finish, takes the instance lock,
//! and then backs up again what they changed. Tables copied earlier
//! cannot have changed otherwise: they were locked from before their
//! copy until the yield, and the pending instance lock keeps new DDL out.
//!
//! What they changed is found from the files: a tablespace that is gone
//! gets a `.del` marker, one that is a new file now (a rebuild) or belongs
//! to a table that waited (an in-place change, whose index builds may
//! skip the redo) is copied again as `.new`; `xb-cli prepare` applies both
//! before recovery. The pure part, [`touched`], is unit-tested here.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::data_copy::Job;
use super::locks::{Held, Session};
use super::server;
use crate::error::BackupError;

/// How long one attempt at the instance lock waits before xb looks for
/// DDL stuck behind its metadata locks.
const ATTEMPT: Duration = Duration::from_secs(1);

/// MySQL's ER_LOCK_WAIT_TIMEOUT.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Where a file was when it was copied: a rebuilt table is a new file
/// under the old name.
pub type Identity = (u64, u64);

/// The device and inode of `path`, `None` if it is gone.
#[must_use]
pub fn identity(path: &Path) -> Option<Identity> {
    super::files::identity(path).map(|i| i.inode())
}

/// A table some statement waits for because xb's session has locked it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Waiter {
    /// Schema, as the server names it.
    pub schema: String,
    /// Table, as the server names it.
    pub table: String,
}

/// How the instance lock was obtained.
#[derive(Debug)]
pub enum Obtained {
    /// Beside the metadata locks: nothing waited on them.
    Directly,
    /// After ending the metadata locks so that these tables' DDL could
    /// finish first.
    AfterYield(Vec<Waiter>),
}

/// Takes `LOCK INSTANCE FOR BACKUP` (recorded as held) on the main
/// session while its second session holds table locks, yielding them when
/// DDL waits on them. `patience` is the user's `--lock-wait-timeout` in
/// seconds, the session's value again afterwards.
///
/// # Errors
/// [`BackupError::Sql`] from any statement; a wait longer than `patience`
/// is the server's own lock-wait-timeout error for the statement.
pub async fn instance_lock(session: &mut Session, patience: u64) -> Result<Obtained, BackupError> {
    const SQL: &str = "LOCK INSTANCE FOR BACKUP";
    let Some(mdl_session) = session.table_lock_session() else {
        session.take(Held::InstanceLock, SQL).await?;
        return Ok(Obtained::Directly);
    };
    let started = Instant::now();
    server::set_lock_wait_timeout(session.conn(), ATTEMPT.as_secs()).await?;
    let outcome = loop {
        match session.take(Held::InstanceLock, SQL).await {
            Ok(()) => break Ok(Obtained::Directly),
            Err(e) if e.server_code() == Some(LOCK_WAIT_TIMEOUT) => {
                let waiters = match waiting_on(session.conn(), mdl_session).await {
                    Ok(w) => w,
                    Err(pe) => {
                        tracing::warn!(error = %pe, "performance_schema cannot say who waits for xb's metadata locks");
                        Vec::new()
                    }
                };
                if !waiters.is_empty() {
                    tracing::info!(tables = ?waiters, "DDL waits for xb's metadata locks: ending them before the instance lock");
                    session.release_table_locks().await?;
                    server::set_lock_wait_timeout(session.conn(), patience).await?;
                    session.take(Held::InstanceLock, SQL).await?;
                    break Ok(Obtained::AfterYield(waiters));
                }
                if started.elapsed().as_secs() >= patience {
                    break Err(e);
                }
            }
            Err(e) => break Err(e),
        }
    };
    server::set_lock_wait_timeout(session.conn(), patience).await?;
    outcome
}

/// Tables that some other session waits for while `mdl_session` holds
/// them.
async fn waiting_on(main: &mut Conn, mdl_session: u64) -> Result<Vec<Waiter>, BackupError> {
    let sql = format!(
        "SELECT DISTINCT w.OBJECT_SCHEMA, w.OBJECT_NAME \
         FROM performance_schema.metadata_locks w \
         JOIN performance_schema.metadata_locks g \
           ON g.OBJECT_TYPE = 'TABLE' AND g.OBJECT_SCHEMA = w.OBJECT_SCHEMA AND g.OBJECT_NAME = w.OBJECT_NAME \
         JOIN performance_schema.threads t ON t.THREAD_ID = g.OWNER_THREAD_ID \
         WHERE w.OBJECT_TYPE = 'TABLE' AND w.LOCK_STATUS = 'PENDING' AND g.LOCK_STATUS = 'GRANTED' \
           AND t.PROCESSLIST_ID = {mdl_session}"
    );
    let rows: Vec<(String, String)> = main
        .query(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    Ok(rows
        .into_iter()
        .map(|(schema, table)| Waiter { schema, table })
        .collect())
}

/// What a yield changed, from the copied tablespaces and their identities
/// before it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Backup paths whose live file is gone: each gets a `.del` marker.
    pub gone: Vec<String>,
    /// Copied tablespaces to copy again, as `.new`.
    pub again: Vec<Job>,
    /// Tables that waited and have no tablespace file of their own (a
    /// shared or general tablespace): what their DDL did cannot be
    /// copied again by name.
    pub unplaced: Vec<Waiter>,
}

/// Sorts the copied tablespaces after a yield. `before` holds each copied
/// job with the identity its file had before the yield.
#[must_use]
pub fn touched(before: &[(Job, Option<Identity>)], waiters: &[Waiter]) -> Touched {
    let mut out = Touched::default();
    let mut placed: HashSet<&Waiter> = HashSet::new();
    let by_name: HashMap<(String, String), &Waiter> = waiters
        .iter()
        .map(|w| ((w.schema.clone(), w.table.clone()), w))
        .collect();
    // only a file-per-table or general tablespace has a `.new` form (undo
    // files change identity when truncated, with no DDL involved)
    for (job, was) in before.iter().filter(|(j, _)| j.rel.ends_with(".ibd")) {
        let now = identity(&job.src);
        let owner = super::files::table_of(&job.rel);
        let waited = match &owner {
            Some(Some(key)) => by_name.get(key).copied(),
            _ => None,
        };
        if let Some(w) = waited {
            placed.insert(w);
        }
        // a file name xb cannot decode may belong to any table that waited
        let unknown = matches!(owner, Some(None)) && !waiters.is_empty();
        if now.is_none() {
            out.gone.push(job.rel.clone());
        } else if now != *was || waited.is_some() || unknown {
            let mut j = job.clone();
            j.rel = marker(&job.rel, "new");
            out.again.push(j);
        }
    }
    out.unplaced = waiters
        .iter()
        .filter(|w| !placed.contains(w))
        .cloned()
        .collect();
    out
}

/// `db/t.ibd` → `db/t.<ext>`.
#[must_use]
pub fn marker(rel: &str, ext: &str) -> String {
    match rel.rsplit_once('.') {
        Some((stem, old)) if !old.contains('/') => format!("{stem}.{ext}"),
        _ => format!("{rel}.{ext}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::data_copy::Kind;
    use std::path::PathBuf;

    fn job(dir: &Path, rel: &str) -> Job {
        crate::run::files::job(dir.join(rel), rel.into(), Kind::Tablespace)
    }

    fn waiter(s: &str, t: &str) -> Waiter {
        Waiter {
            schema: s.into(),
            table: t.into(),
        }
    }

    fn put(dir: &Path, rel: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
        p
    }

    #[test]
    fn markers_replace_the_extension() {
        assert_eq!(marker("db/t.ibd", "new"), "db/t.new");
        assert_eq!(marker("db/t#p#p0.ibd", "del"), "db/t#p#p0.del");
        assert_eq!(marker("gen.ibd", "new"), "gen.new");
    }

    #[test]
    fn a_yield_recopies_what_waited_or_was_rebuilt_and_marks_what_went() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        for rel in [
            "db/waited.ibd",
            "db/rebuilt.ibd",
            "db/dropped.ibd",
            "db/quiet.ibd",
            "db/parted#p#p0.ibd",
        ] {
            put(dir, rel);
        }
        let before: Vec<(Job, Option<Identity>)> = [
            "db/waited.ibd",
            "db/rebuilt.ibd",
            "db/dropped.ibd",
            "db/quiet.ibd",
            "db/parted#p#p0.ibd",
        ]
        .iter()
        .map(|r| {
            let j = job(dir, r);
            let id = identity(&j.src);
            (j, id)
        })
        .collect();
        // A rebuild: a new file under the old name. The old file is renamed
        // away, as the server does with `#sql-ib` names, so that its inode
        // stays taken and the new file cannot get it back: removing it let
        // some filesystems hand the same inode straight to the new file.
        std::fs::rename(dir.join("db/rebuilt.ibd"), dir.join("db/#sql-ib1.ibd")).unwrap();
        put(dir, "db/rebuilt.ibd");
        std::fs::remove_file(dir.join("db/dropped.ibd")).unwrap();
        let t = touched(
            &before,
            &[
                waiter("db", "waited"),
                waiter("db", "parted"),
                waiter("db", "in_ibdata"),
            ],
        );
        assert_eq!(t.gone, vec!["db/dropped.ibd".to_string()]);
        let again: Vec<&str> = t.again.iter().map(|j| j.rel.as_str()).collect();
        assert_eq!(
            again,
            vec!["db/waited.new", "db/rebuilt.new", "db/parted#p#p0.new"]
        );
        assert_eq!(t.again[0].src, dir.join("db/waited.ibd"));
        assert_eq!(t.unplaced, vec![waiter("db", "in_ibdata")]);
    }

    #[test]
    fn without_waiters_only_changed_files_count() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "db/t.ibd");
        let j = job(d.path(), "db/t.ibd");
        let id = identity(&j.src);
        let t = touched(&[(j, id)], &[]);
        assert_eq!(t, Touched::default());
    }
}
