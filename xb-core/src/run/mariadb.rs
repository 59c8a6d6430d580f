//! MariaDB 10.5+: the flavour's steps.
//!
//! - redo: `ib_logfile0` in the 10.5 block format or the 10.8+ "Phys"
//!   format; the backup's `ib_logfile0` is written in the server's own format
//!   (so `mariadb-backup --prepare` and the server itself read it);
//! - protect DDL: `BACKUP STAGE START` only, with `--lock-ddl=reduced`
//!   (the default) or `off` on a full backup: DDL and writes to
//!   non-transactional tables go on during the InnoDB copy; after it
//!   `FLUSH`, where the non-transactional tables no statement uses are
//!   copied one at a time under `BACKUP LOCK` while DDL still goes on
//!   ([`super::flush_copy`]), then `BLOCK_DDL`, and what DDL changed
//!   meanwhile is made good ([`super::ddl_fix`]). With `--lock-ddl=on`,
//!   `START`, `FLUSH`, `BLOCK_DDL` before the copy, as mariadb-backup
//!   before 10.11.8;
//! - Aria: `aria_log_control`, then the transactional Aria tables copied
//!   while written, under `START` after the InnoDB copy
//!   ([`super::aria_copy`]);
//! - non-InnoDB: the other non-transactional tables (and the early copies
//!   DDL made stale, [`super::early`]), the other Aria tables, the finished
//!   Aria log files and the table metadata under `BLOCK_DDL`, then
//!   `BACKUP STAGE BLOCK_COMMIT`, the Aria log's tail, the statistics
//!   tables and `aria_log_control`;
//! - consistent point: `SHOW MASTER STATUS` and `@@gtid_binlog_pos`, a
//!   RocksDB checkpoint (MyRocks), the LSN, `FLUSH ENGINE LOGS`, and the
//!   checkpoint read from the log itself;
//! - release: `BACKUP STAGE END`; then the RocksDB checkpoint is copied.

use std::path::{Path, PathBuf};

use xb_innodb::redo::RedoLog;
use xb_innodb::redo105;
use xb_innodb::redo108::backup_log_header;

use std::collections::HashSet;

use super::aria_copy;
use super::backup_lock;
use super::ddl_fix;
use super::early::{self, Early};
use super::feed::{Feed, Pad};
use super::flavour::{ConsistentPoint, Flavour, NonInnodb, RedoPlan, Step};
use super::flush_copy;
use super::locks::Held;
use super::redo_copy::RedoCopied;
use super::rocksdb;
use super::server::{self, ServerFacts};
use crate::checkpoints::Checkpoints;
use crate::error::BackupError;

/// MariaDB 10.5 and later.
#[derive(Default)]
pub struct MariaDb {
    /// The server's log, kept to read its checkpoint at the consistent point.
    log: Option<RedoLog>,
    /// The RocksDB checkpoint made at the consistent point, copied after release.
    rocks_checkpoint: Option<PathBuf>,
    /// The tables copied before `BLOCK_DDL`: transactional Aria at
    /// `START`, unused non-transactional ones at `FLUSH`.
    early: Early,
}

impl Flavour for MariaDb {
    fn redo(&mut self, facts: &ServerFacts) -> Result<RedoPlan, BackupError> {
        let dir = Path::new(&facts.log_dir);
        let log = RedoLog::open(dir)?;
        let short_version = facts.version.split('-').next().unwrap_or(&facts.version);
        let creator = format!("Backup {short_version}");
        let (header, cp_lsn, pad) = match &log {
            RedoLog::MariaDb108(l) => {
                let cp = l
                    .latest_checkpoint()
                    .map_err(xb_innodb::redo::RedoError::from)?;
                (backup_log_header(cp, &creator), cp.lsn, Pad::None)
            }
            RedoLog::MariaDb105(l) => {
                let cp = l
                    .latest_checkpoint()
                    .map_err(xb_innodb::redo::RedoError::from)?;
                let pad = Pad::Blocks {
                    header: 2048,
                    min: 0,
                    multiple: 1 << 20,
                };
                (redo105::backup_log_header(&cp, &creator), cp.lsn, pad)
            }
            other => {
                return Err(BackupError::Unsupported {
                    version: facts.version.clone(),
                    reason: format!(
                        "redo format {:?} is not one MariaDB 10.5+ writes",
                        other.format()
                    ),
                });
            }
        };
        // the feed follows its own handle; ours reads the checkpoint at the end
        let feed = Feed::new(RedoLog::open(dir)?, cp_lsn, pad);
        self.log = Some(log);
        Ok(RedoPlan {
            file: "ib_logfile0".into(),
            header,
            feed,
        })
    }

    async fn protect_ddl(&mut self, step: &mut Step<'_>) -> Result<(), BackupError> {
        step.set_lock_wait_timeout().await?;
        if step.ctx.reduced_ddl_lock {
            step.progress.phase("BACKUP STAGE START");
            return backup_lock::take(step, Some(Held::BackupStage), "BACKUP STAGE START").await;
        }
        step.progress.phase("BACKUP STAGE START/FLUSH/BLOCK_DDL");
        backup_lock::take(step, Some(Held::BackupStage), "BACKUP STAGE START").await?;
        flush(step).await?;
        block_ddl(step).await
    }

    async fn after_innodb(
        &mut self,
        step: &mut Step<'_>,
        _copied: &[super::data_copy::Job],
    ) -> Result<(), BackupError> {
        // under START alone with --lock-ddl=reduced/off, under BLOCK_DDL with on
        let ddl_goes_on = step.ctx.reduced_ddl_lock;
        aria_copy::copy_online(step, &mut self.early, ddl_goes_on).await?;
        if !ddl_goes_on {
            return Ok(());
        }
        step.progress.phase("BACKUP STAGE FLUSH");
        flush(step).await?;
        flush_copy::copy_unused(step, &mut self.early).await?;
        aria_copy::copy_logs(step, &mut self.early.logs, true)?;
        step.progress.phase("BACKUP STAGE BLOCK_DDL");
        block_ddl(step).await?;
        // every change to a page is in the redo (MariaDB 10.5+ logs index
        // builds too), so only the set of files can differ
        ddl_fix::apply(step, &HashSet::new()).await?;
        Ok(())
    }

    async fn copy_non_innodb(
        &mut self,
        step: &mut Step<'_>,
        files: NonInnodb,
    ) -> Result<(), BackupError> {
        step.progress.phase("copy non-InnoDB tables");
        let mut early = std::mem::take(&mut self.early);
        let mut logs = std::mem::take(&mut early.logs);
        let logged = early::ddl_logged(std::path::Path::new(&step.ctx.facts.datadir))?;
        let settled = early.settle(step.ctx.target.as_ref(), files.tables, files.aria, &logged)?;
        if !settled.taken_back.is_empty() {
            if step.ctx.refuse_ddl_during_copy {
                // --lock-ddl=off: DDL that ran during the copy fails the backup
                return Err(BackupError::DdlDuringCopy {
                    changed: settled.taken_back,
                    renamed: Vec::new(),
                    dropped: Vec::new(),
                });
            }
            step.progress.phase(&format!(
                "DDL changed {} file(s) copied before BLOCK_DDL: taken back, copied again",
                settled.taken_back.len()
            ));
        }
        let online = settled.aria_control.is_some();
        let aria = aria_copy::split(settled.aria_rest, online);
        let mut now = settled.rest;
        now.extend(aria.before_commit);
        step.copy(now)?;
        aria_copy::copy_logs(step, &mut logs, true)?;
        step.catch_up_redo().await?;
        step.progress.phase("BACKUP STAGE BLOCK_COMMIT");
        backup_lock::take(step, None, "BACKUP STAGE BLOCK_COMMIT").await?;
        step.found.commits_blocked("BACKUP STAGE BLOCK_COMMIT");
        step.progress.phase("copy the Aria log's tail");
        step.copy(aria.at_commit)?;
        aria_copy::copy_logs(step, &mut logs, false)?;
        if let Some(control) = &settled.aria_control {
            let bytes = aria_copy::control_for(control, logs.keys());
            write_bytes(step.ctx.target.as_ref(), early::ARIA_CONTROL, &bytes)?;
        }
        Ok(())
    }

    async fn consistent_point(
        &mut self,
        step: &mut Step<'_>,
    ) -> Result<ConsistentPoint, BackupError> {
        let facts = &step.ctx.facts;
        let binlog = if facts.log_bin {
            server::binlog_position(step.session.conn()).await?
        } else {
            None
        };
        if let Some(dir) = rocksdb::probe(step.session.conn(), &facts.datadir).await? {
            step.progress.phase("RocksDB checkpoint");
            step.session.assume(Held::RocksCheckpoint);
            self.rocks_checkpoint = Some(rocksdb::create(step.session.conn(), &dir).await?);
        }
        let lsn = server::current_lsn(step.session.conn()).await?;
        step.session
            .exec("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")
            .await?;
        let log = self.log.as_mut().ok_or_else(|| BackupError::RedoLayout {
            dir: facts.log_dir.clone(),
            reason: "the consistent point was read before the redo copy started".into(),
        })?;
        let checkpoint = log.latest_checkpoint()?;
        Ok(ConsistentPoint {
            lsn: lsn.max(checkpoint),
            checkpoint,
            binlog,
        })
    }

    fn checkpoints(&self, point: &ConsistentPoint, copied: &RedoCopied) -> Checkpoints {
        Checkpoints::full_mariadb(point.checkpoint, copied.end_lsn)
    }

    async fn release(&mut self, step: &mut Step<'_>) -> Result<(), BackupError> {
        step.session.release(Held::BackupStage).await?;
        step.found.commits_unblocked();
        step.found.ddl_unblocked();
        step.found.writes_unblocked();
        Ok(())
    }

    async fn after_release(&mut self, step: &mut Step<'_>) -> Result<(), BackupError> {
        let Some(cp) = self.rocks_checkpoint.take() else {
            return Ok(());
        };
        step.progress.phase("copy RocksDB checkpoint");
        // the checkpoint is frozen: no lock needed, and the redo copier is done
        let copied = rocksdb::jobs(&cp).and_then(|jobs| {
            super::data_copy::copy_jobs(step.ctx, step.progress, jobs, step.copier)
        });
        let removed = step.session.release(Held::RocksCheckpoint).await;
        step.found.stats.add(copied?);
        removed
    }
}

/// Writes `bytes` into the backup as `rel`.
fn write_bytes(
    target: &dyn super::seams::Target,
    rel: &str,
    bytes: &[u8],
) -> Result<(), BackupError> {
    let mut f = target
        .create(rel, bytes.len() as u64)
        .map_err(BackupError::Target)?;
    f.write(bytes).map_err(BackupError::Target)?;
    f.close().map_err(BackupError::Target)
}

/// `BACKUP STAGE FLUSH`: unused non-transactional tables are closed, and
/// new writes to any of them wait until the end.
async fn flush(step: &mut Step<'_>) -> Result<(), BackupError> {
    backup_lock::take(step, None, "BACKUP STAGE FLUSH").await?;
    step.found.writes_blocked("BACKUP STAGE FLUSH");
    Ok(())
}

/// `BACKUP STAGE BLOCK_DDL`: DDL waits until the end.
async fn block_ddl(step: &mut Step<'_>) -> Result<(), BackupError> {
    backup_lock::take(step, None, "BACKUP STAGE BLOCK_DDL").await?;
    step.found.ddl_blocked("BACKUP STAGE BLOCK_DDL");
    Ok(())
}
