//! The TokuDB steps inside a MySQL-family backup (Percona Server with the
//! TokuDB plugin).
//!
//! After the InnoDB tablespaces are copied, `xb_tokudb::run` takes the
//! checkpoint lock, copies the `.tokudb` files, takes `FLUSH TABLES WITH
//! READ LOCK`, copies the TokuDB logs next to [`UnderReadLock`] (this
//! module's work under the read lock: the non-InnoDB files and one
//! `log_status` read for binlog coordinates and the LSN), then releases both
//! locks. TokuDB and InnoDB therefore end at the same moment: the read lock.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mysql_async::Conn;
use xb_tokudb::{FileCopier, HookError, ReadLockHook, TokuDirs, TokuError};

use super::data_copy::{CopyStats, Job, copy_jobs};
use super::flavour::Step;
use super::locks::Held;
use super::log_status::{self, LogStatus};
use super::redo_copy::RedoCopier;
use super::seams::{SeamError, Target};
use super::{Ctx, Progress};
use crate::error::BackupError;

/// Runs the TokuDB sequence on the main session; `files` (the non-InnoDB
/// files) are copied under its read lock, where the consistent point is
/// read too. Returns that point; the TokuDB files go into `step.found`.
///
/// # Errors
/// [`BackupError::TokuDb`], or the failure of the work under the read lock
/// with its own code. Both TokuDB locks are released by then; the session
/// also records them, so the error path sends the release again for a
/// failure the sequence did not see.
pub(super) async fn copy_under_checkpoint_lock(
    step: &mut Step<'_>,
    dirs: &TokuDirs,
    files: Vec<Job>,
) -> Result<LogStatus, BackupError> {
    // the sequence asks for the read lock itself, after the data files:
    // long statements are waited for (--ftwrl-wait-timeout) before it starts
    let watched = step.session.watched();
    super::read_lock::wait_for_no_long_queries(
        step.session.conn(),
        &step.ctx.read_lock,
        &watched,
        step.progress,
        super::read_lock::READ_LOCK,
    )
    .await?;
    step.progress
        .phase("TokuDB: checkpoint lock, data files, read lock, logs");
    let mut hook = UnderReadLock {
        ctx: step.ctx,
        progress: step.progress,
        copier: step.copier,
        files,
        done: None,
    };
    step.session.assume(Held::TokuCheckpointLock);
    step.session.assume(Held::ReadLock);
    let toku = xb_tokudb::run(
        step.session.conn(),
        dirs,
        Arc::new(TargetCopier(step.ctx.target.clone())),
        &mut hook,
        &xb_tokudb::TokuOptions::default().parallel(step.ctx.parallel),
    )
    .await
    .map_err(user_error)?;
    // the sequence released both locks itself
    step.session.forget(Held::ReadLock);
    step.session.forget(Held::TokuCheckpointLock);
    let locked = hook.done.ok_or_else(|| {
        BackupError::sql_answer(
            "SELECT LOCAL, STORAGE_ENGINES FROM performance_schema.log_status",
            "the TokuDB sequence ended without reading log_status",
        )
    })?;
    step.found
        .add_commits_blocked("FLUSH TABLES WITH READ LOCK", locked.since.elapsed());
    step.found.stats.add(locked.stats);
    for f in toku.data_files.iter().chain(&toku.log_files) {
        step.found.stats.files += 1;
        step.found.stats.bytes += f.bytes;
        step.progress.bytes(&f.rel, f.bytes);
    }
    step.found.tokudb = Some(toku);
    Ok(locked.status)
}

/// What the work under the read lock found.
struct Locked {
    /// Binlog coordinates and LSN, read while commits were blocked.
    pub status: LogStatus,
    /// The non-InnoDB files copied.
    pub stats: CopyStats,
    /// When the read lock was granted.
    pub since: Instant,
}

/// The orchestrator's work while `FLUSH TABLES WITH READ LOCK` is held.
struct UnderReadLock<'a> {
    ctx: &'a Ctx,
    progress: &'a dyn Progress,
    copier: Option<&'a RedoCopier>,
    /// Non-InnoDB and Aria files, copied here.
    files: Vec<Job>,
    /// Set when the work succeeded.
    done: Option<Locked>,
}

impl ReadLockHook<Conn> for UnderReadLock<'_> {
    async fn under_read_lock(&mut self, conn: &mut Conn) -> Result<(), HookError> {
        let since = Instant::now();
        self.progress.phase("copy non-InnoDB tables");
        let files = std::mem::take(&mut self.files);
        let stats =
            tokio::task::block_in_place(|| copy_jobs(self.ctx, self.progress, files, self.copier))?;
        super::mysql::hold_redo_copy(self.copier);
        let status = log_status::read(conn).await?;
        self.done = Some(Locked {
            status,
            stats,
            since,
        });
        Ok(())
    }
}

/// Copies TokuDB files through the backup's sink chain (compression,
/// encryption and streaming apply to them as to every data file).
struct TargetCopier(Arc<dyn Target>);

/// The sink's error as the I/O error the TokuDB copier speaks; a full target
/// keeps its kind, so the hint can say so (see `BackupError::hint`).
fn io_error(e: SeamError) -> io::Error {
    let kind = match e {
        SeamError::NoSpace { .. } => io::ErrorKind::StorageFull,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl FileCopier for TargetCopier {
    fn copy(&self, src: &Path, rel: &str) -> io::Result<u64> {
        let mut file = std::fs::File::open(src)?;
        let size = file.metadata()?.len();
        let mut out = self.0.create(rel, size).map_err(io_error)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write(&buf[..n]).map_err(io_error)?;
            total += n as u64;
        }
        out.close().map_err(io_error)?;
        Ok(total)
    }
}

/// Bytes of the TokuDB files as listed now, for the progress total (the
/// copy may see a little more: the logs grow until the read lock).
pub(super) fn bytes_on_disk(dirs: &TokuDirs) -> u64 {
    let data = xb_tokudb::find_data_files(dirs).unwrap_or_default();
    let logs = xb_tokudb::find_log_files(dirs).unwrap_or_default();
    data.iter()
        .chain(&logs)
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum()
}

/// The error a user should see: when the work under the read lock failed
/// (the target filled up while copying MyISAM files, say), that failure with
/// its own code and hint; otherwise the TokuDB error.
fn user_error(e: TokuError) -> BackupError {
    match e {
        TokuError::Aborted {
            cause,
            concurrent_errors,
            release_errors,
            ..
        } if concurrent_errors.is_empty()
            && release_errors.is_empty()
            && matches!(*cause, TokuError::Hook(ref h) if h.is::<BackupError>()) =>
        {
            match *cause {
                TokuError::Hook(h) => match h.downcast::<BackupError>() {
                    Ok(b) => *b,
                    Err(h) => BackupError::TokuDb(TokuError::Hook(h)),
                },
                other => BackupError::TokuDb(other),
            }
        }
        other => BackupError::TokuDb(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xb_tokudb::Step;

    #[test]
    fn a_failure_under_the_read_lock_keeps_its_own_code() {
        let hook = TokuError::Hook(Box::new(BackupError::Target(SeamError::NoSpace {
            path: "db/m.MYD".into(),
        })));
        let e = user_error(TokuError::Aborted {
            step: Step::ReadLock,
            cause: Box::new(hook),
            concurrent_errors: vec![],
            release_errors: vec![],
        });
        assert_eq!(e.code(), 20, "{e}");
        let other = user_error(TokuError::WorkerPanicked(Step::CopyData));
        assert_eq!(other.code(), 23);
        let full = BackupError::TokuDb(TokuError::Copy {
            path: "/d/t.tokudb".into(),
            rel: "t.tokudb".into(),
            source: io_error(SeamError::NoSpace {
                path: "t.tokudb".into(),
            }),
        });
        assert!(full.hint().contains("Free space"), "{}", full.hint());
    }
}
