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
use xb_tokudb::{FileCopier, HookError, ReadLockHook, TokuError};

use super::data_copy::{CopyStats, Job};
use super::error::BackupError;
use super::mysql::LogStatus;
use super::redo_copy::RedoCopier;
use super::seams::Target;
use super::{Ctx, Progress, copy_jobs};

/// What the work under the read lock found.
pub(super) struct Locked {
    /// Binlog coordinates and LSN, read while commits were blocked.
    pub status: LogStatus,
    /// The non-InnoDB files copied.
    pub stats: CopyStats,
    /// When the read lock was granted.
    pub since: Instant,
}

/// The orchestrator's work while `FLUSH TABLES WITH READ LOCK` is held.
pub(super) struct UnderReadLock<'a> {
    pub ctx: &'a Ctx,
    pub progress: &'a dyn Progress,
    pub copier: &'a RedoCopier,
    /// Non-InnoDB and Aria files, copied here.
    pub files: Vec<Job>,
    /// Set when the work succeeded.
    pub done: Option<Locked>,
}

impl ReadLockHook<Conn> for UnderReadLock<'_> {
    async fn under_read_lock(&mut self, conn: &mut Conn) -> Result<(), HookError> {
        let since = Instant::now();
        self.progress.phase("copy non-InnoDB tables");
        let files = std::mem::take(&mut self.files);
        let stats = tokio::task::block_in_place(|| {
            copy_jobs(self.ctx, self.progress, files, Some(self.copier))
        })?;
        let status = super::mysql::log_status(conn).await?;
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
pub(super) struct TargetCopier(pub Arc<dyn Target>);

impl FileCopier for TargetCopier {
    fn copy(&self, src: &Path, rel: &str) -> io::Result<u64> {
        let mut file = std::fs::File::open(src)?;
        let size = file.metadata()?.len();
        let mut out = self.0.create(rel, size).map_err(io::Error::other)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write(&buf[..n]).map_err(io::Error::other)?;
            total += n as u64;
        }
        out.close().map_err(io::Error::other)?;
        Ok(total)
    }
}

/// Bytes of the TokuDB files as listed now, for the progress total (the
/// copy may see a little more: the logs grow until the read lock).
pub(super) fn bytes_on_disk(dirs: &xb_tokudb::TokuDirs) -> u64 {
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
pub(super) fn user_error(e: TokuError) -> BackupError {
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
        let hook = TokuError::Hook(Box::new(BackupError::Target(
            "no space left on device".into(),
        )));
        let e = user_error(TokuError::Aborted {
            step: Step::ReadLock,
            cause: Box::new(hook),
            concurrent_errors: vec![],
            release_errors: vec![],
        });
        assert_eq!(e.code(), 20, "{e}");
        let other = user_error(TokuError::WorkerPanicked(Step::CopyData));
        assert_eq!(other.code(), 23);
    }
}
