//! MySQL 8.0.30+ (tested on 9.7): the flavour's steps.
//!
//! - redo: `#innodb_redo/#ib_redoN`; the backup's redo file is a valid
//!   file of the same format, at least as large as the server's own;
//! - protect DDL: with `--lock-ddl=reduced` (the default) or `off`, full
//!   or incremental, none during the InnoDB copy, then `LOCK INSTANCE FOR BACKUP`
//!   and what DDL changed meanwhile made good ([`super::ddl_fix`]; spaces
//!   with an index built during the copy, whose pages skip the redo, are
//!   copied again); undo tablespaces are copied under the lock, which
//!   holds off their truncation. With `--lock-ddl=on`
//!   `LOCK INSTANCE FOR BACKUP` before the copy (DDL waits until the
//!   backup ends, DML goes on), or with `--lock-ddl-per-table` a second session
//!   holding a shared metadata lock on every InnoDB table, and the instance
//!   lock only after the InnoDB copy, when tablespaces created meanwhile
//!   are copied;
//! - non-InnoDB: only if user tables of non-transactional engines exist,
//!   `LOCK TABLES … READ` on just those tables while they are copied
//!   (InnoDB commits go on; the global read lock would also deadlock with
//!   DDL queued behind the backup lock, see [`super::read_lock`]), or
//!   `FLUSH TABLES WITH READ LOCK` where `--slave-info` needs it anyway
//!   (below) or the user may not lock the tables one by one; with the TokuDB
//!   plugin, the TokuDB sequence instead ([`super::tokudb`]), whose read
//!   lock is always taken;
//! - consistent point: `performance_schema.log_status` (binlog file,
//!   position, GTID set and the LSN in one read); with `--slave-info` on a
//!   replica whose running channel replicates by file and position, under
//!   `FLUSH TABLES WITH READ LOCK` so that position holds still;
//! - release: `UNLOCK TABLES`, the metadata-lock session, `UNLOCK INSTANCE`.

use std::collections::HashSet;
use std::path::Path;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use xb_innodb::redo::RedoLog;
use xb_innodb::redo8030::{Log8030, Scanner8030, backup_file_header, log_uuid};

use super::Ctx;
use super::backup_lock;
use super::data_copy::Job;
use super::ddl_yield;
use super::feed::{Feed, Pad};
use super::files;
use super::flavour::{ConsistentPoint, Flavour, NonInnodb, RedoPlan, Step};
use super::locks::Held;
use super::log_status::{self, LogStatus};
use super::meta;
use super::read_lock;
use super::redo_copy::RedoCopied;
use super::server::{self, ServerFacts};
use super::tokudb;
use crate::checkpoints::Checkpoints;
use crate::error::BackupError;

/// MySQL 8.0.30 and later.
#[derive(Default)]
pub struct MySql {
    /// The consistent point, when the TokuDB sequence read it under its
    /// own read lock.
    point: Option<LogStatus>,
    /// With `--lock-ddl=reduced`: the server's indexes before the copy.
    /// An index built during it (bulk-loaded, past the redo) has an id
    /// not among them.
    indexes_before: Option<super::page_track::Indexes>,
}

impl Flavour for MySql {
    fn redo(&mut self, facts: &ServerFacts) -> Result<RedoPlan, BackupError> {
        let redo_dir = Path::new(&facts.datadir).join("#innodb_redo");
        let mut log = Log8030::open(&redo_dir).map_err(xb_innodb::redo::RedoError::from)?;
        let cp = log
            .latest_checkpoint()
            .map_err(xb_innodb::redo::RedoError::from)?;
        let layout = |reason: String| BackupError::RedoLayout {
            dir: redo_dir.display().to_string(),
            reason,
        };
        let f = log
            .files()
            .iter()
            .find(|f| f.id == cp.file_id)
            .ok_or_else(|| {
                layout(format!(
                    "the checkpoint's file #ib_redo{} vanished",
                    cp.file_id
                ))
            })?;
        let mut h = vec![0u8; 8];
        std::fs::File::open(&f.path)
            .and_then(|file| std::os::unix::fs::FileExt::read_exact_at(&file, &mut h, 0))
            .map_err(|e| layout(format!("{}: {e}", f.path.display())))?;
        let (uuid, file_size) = (log_uuid(&h), f.size);
        let start = Scanner8030::block_start(cp.lsn);
        tracing::info!(checkpoint = cp.lsn, file = cp.file_id, "redo checkpoint");
        // the server wants redo files at least as large as its own, in whole pages
        let feed = Feed::new(
            RedoLog::open(Path::new(&facts.datadir))?,
            cp.lsn,
            Pad::Blocks {
                header: 2048,
                min: file_size,
                multiple: facts.page_size as u64,
            },
        );
        Ok(RedoPlan {
            file: format!("#innodb_redo/#ib_redo{}", cp.file_id),
            header: backup_file_header(start, cp.lsn, uuid, "xb backup"),
            feed,
        })
    }

    async fn protect_ddl(&mut self, step: &mut Step<'_>) -> Result<(), BackupError> {
        step.set_lock_wait_timeout().await?;
        if step.ctx.reduced_ddl_lock {
            step.progress
                .phase("no DDL lock during the InnoDB copy (--lock-ddl=reduced)");
            self.indexes_before = Some(super::page_track::indexes(step.session.conn()).await?);
            return Ok(());
        }
        if step.ctx.lock_ddl_per_table {
            step.progress.phase("metadata locks on every table");
            let m = lock_every_table(step.ctx).await?;
            step.session.hold_table_locks(m).await?;
        } else {
            step.progress.phase("LOCK INSTANCE FOR BACKUP");
            backup_lock::take(step, Some(Held::InstanceLock), "LOCK INSTANCE FOR BACKUP").await?;
            step.found.ddl_blocked("LOCK INSTANCE FOR BACKUP");
        }
        Ok(())
    }

    fn looks_at_copied(&self) -> bool {
        true
    }

    async fn after_innodb(
        &mut self,
        step: &mut Step<'_>,
        copied: &[Job],
    ) -> Result<(), BackupError> {
        if let Some(before) = self.indexes_before.take() {
            step.progress.phase("LOCK INSTANCE FOR BACKUP");
            backup_lock::take(step, Some(Held::InstanceLock), "LOCK INSTANCE FOR BACKUP").await?;
            step.found.ddl_blocked("LOCK INSTANCE FOR BACKUP");
            // index builds write their pages past the redo (MLOG_INDEX_LOAD):
            // a space with an index that is new since the copy began is
            // copied again whole
            let now = super::page_track::indexes(step.session.conn()).await?;
            let built = super::page_track::built_since(&before, &now);
            super::ddl_fix::apply(step, &built).await?;
            return Ok(());
        }
        if !step.ctx.lock_ddl_per_table {
            return Ok(());
        }
        // tables created during the copy had no metadata lock: block DDL now
        // and copy their files (all their changes are in the copied redo)
        step.progress.phase("LOCK INSTANCE FOR BACKUP");
        let before: Vec<(Job, Option<ddl_yield::Identity>)> = copied
            .iter()
            .map(|j| (j.clone(), ddl_yield::identity(&j.src)))
            .collect();
        let obtained = match step.ctx.backup_lock_timeout {
            None => ddl_yield::instance_lock(step.session, step.ctx.lock_wait_timeout).await?,
            Some(each) => {
                // the yielding loop tries in short attempts of its own: it
                // gets the whole budget of --backup-lock-timeout × attempts
                let attempts = step.ctx.backup_lock_retry_count.saturating_add(1);
                let budget = each.as_secs().saturating_mul(u64::from(attempts));
                let r = ddl_yield::instance_lock(step.session, budget).await;
                step.set_lock_wait_timeout().await?;
                match r {
                    Err(e) if e.server_code() == Some(1205) => {
                        return Err(backup_lock::timed_out(
                            step,
                            "LOCK INSTANCE FOR BACKUP",
                            attempts,
                            each,
                        )
                        .await);
                    }
                    r => r?,
                }
            }
        };
        step.found.ddl_blocked("LOCK INSTANCE FOR BACKUP");
        let known: HashSet<&str> = copied.iter().map(|j| j.rel.as_str()).collect();
        let mut again: Vec<Job> =
            files::list_only(&step.ctx.facts, &step.ctx.filter, files::Want::INNODB)?
                .innodb
                .into_iter()
                .filter(|j| !known.contains(j.rel.as_str()))
                .collect();
        if let ddl_yield::Obtained::AfterYield(waiters) = obtained {
            let t = ddl_yield::touched(&before, &waiters);
            if let Some(w) = t.unplaced.first() {
                return Err(BackupError::DdlOnSharedTablespace {
                    table: format!("`{}`.`{}`", w.schema, w.table),
                });
            }
            step.progress.warning(&format!(
                "DDL waited for xb's metadata locks on {} table(s); they were released before LOCK INSTANCE FOR BACKUP and what the DDL changed is copied again",
                waiters.len()
            ));
            for rel in &t.gone {
                meta::write(step.ctx.target.as_ref(), &ddl_yield::marker(rel, "del"), "")?;
            }
            again.extend(t.again);
        }
        if !again.is_empty() {
            step.progress
                .phase("copy tablespaces created or changed during the backup");
            step.copy(again)?;
        }
        Ok(())
    }

    async fn copy_non_innodb(
        &mut self,
        step: &mut Step<'_>,
        files: NonInnodb,
    ) -> Result<(), BackupError> {
        let mut rest = files.tables;
        rest.extend(files.aria);
        if let Some(dirs) = step.ctx.facts.tokudb.clone() {
            self.point = Some(tokudb::copy_under_checkpoint_lock(step, &dirs, rest).await?);
            return Ok(());
        }
        // user tables whose engine has no redo need writes stopped while
        // copied; DDL is blocked, so the list holds until the end
        let sql = "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE engine IN ('MyISAM','CSV','ARCHIVE','MRG_MYISAM') \
             AND table_schema NOT IN ('mysql','performance_schema','information_schema','sys')";
        let unsafe_tables: Vec<(String, String)> = step
            .session
            .conn()
            .query(sql)
            .await
            .map_err(|e| BackupError::sql(sql, &e))?;
        if !unsafe_tables.is_empty() {
            // --slave-info by file and position freezes the replica's
            // applied position with the global read lock (see
            // consistent_point): then it is taken here, once
            if step.ctx.slave_info && super::replica::position_needs_lock(step.session).await? {
                read_lock::take(step).await?;
            } else {
                read_lock::take_tables(step, &unsafe_tables).await?;
            }
        }
        step.progress.phase("copy non-InnoDB tables");
        step.copy(rest)
    }

    async fn consistent_point(
        &mut self,
        step: &mut Step<'_>,
    ) -> Result<ConsistentPoint, BackupError> {
        let status = match self.point.take() {
            Some(s) => s,
            None => {
                if let Some(t) = step.ctx.tracking_from {
                    step.progress
                        .phase("wait for the checkpoint to pass the start of page tracking");
                    let patience = std::time::Duration::from_secs(30);
                    super::page_track::wait_for_checkpoint(step.session.conn(), t, patience)
                        .await?;
                }
                if step.ctx.slave_info
                    && !step.session.holds(Held::ReadLock)
                    && super::replica::position_needs_lock(step.session).await?
                {
                    // a channel replicating by file and position: its
                    // applied position must not move past the point
                    // before --slave-info reads it (XtraBackup does the same)
                    read_lock::take(step).await?;
                }
                hold_redo_copy(step.copier);
                log_status::read(step.session.conn()).await?
            }
        };
        Ok(ConsistentPoint {
            lsn: status.lsn,
            checkpoint: status.checkpoint,
            binlog: status.binlog,
        })
    }

    fn checkpoints(&self, point: &ConsistentPoint, _copied: &RedoCopied) -> Checkpoints {
        Checkpoints::full_mysql(point.checkpoint, point.lsn)
    }

    async fn release(&mut self, step: &mut Step<'_>) -> Result<(), BackupError> {
        if step.session.holds(Held::ReadLock) {
            step.session.release(Held::ReadLock).await?;
        }
        if step.session.holds(Held::TableReadLocks) {
            step.session.release(Held::TableReadLocks).await?;
        }
        step.found.commits_unblocked();
        step.found.writes_unblocked();
        // DDL is blocked by the backup lock until its release just below
        if let Err(e) = step.session.release_table_locks().await {
            tracing::warn!(error = %e, "ending the metadata-lock session failed");
        }
        let released = step.session.release(Held::InstanceLock).await;
        step.found.ddl_unblocked();
        released
    }
}

/// A second session that holds a shared metadata lock on every InnoDB
/// table until it commits: DDL on those tables waits, DML goes on.
async fn lock_every_table(ctx: &Ctx) -> Result<Conn, BackupError> {
    let mut m = server::connect(&ctx.connect).await?;
    server::set_lock_wait_timeout(&mut m, ctx.lock_wait_timeout).await?;
    server::exec(&mut m, "START TRANSACTION").await?;
    let sql = "SELECT table_schema, table_name FROM information_schema.tables WHERE engine = 'InnoDB' \
               AND table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql','sys','performance_schema','information_schema')";
    let tables: Vec<(String, String)> =
        m.query(sql).await.map_err(|e| BackupError::sql(sql, &e))?;
    for (db, t) in tables {
        let q = format!("SELECT 1 FROM {} LIMIT 0", server::quote_table(&db, &t));
        // a table dropped since the listing (ER_NO_SUCH_TABLE) is no longer
        // ours to protect
        if let Err(e) = server::exec(&mut m, &q).await {
            if e.server_code() != Some(1146) {
                return Err(e);
            }
        }
    }
    Ok(m)
}

/// Before the end point is read: the redo copier stops handing out log, so
/// the copy can end exactly at that point (MySQL keeps committing while
/// `log_status` is read; see `Scanner8030::stop_at`).
pub(super) fn hold_redo_copy(copier: Option<&super::redo_copy::RedoCopier>) {
    if let Some(c) = copier {
        tokio::task::block_in_place(|| c.hold());
    }
}
