//! The TokuDB backup sequence and its lock discipline.
//!
//! 1. `SET TOKUDB_CHECKPOINT_LOCK=ON`: checkpoints stop, so the data files stop
//!    changing on disk while the recovery log keeps growing;
//! 2. copy the data files on `parallel` threads;
//! 3. `FLUSH TABLES WITH READ LOCK`; the orchestrator's [`ReadLockHook`] runs
//!    (non-InnoDB files, binlog position…);
//! 4. copy the log files on their own thread, next to the hook; the read lock
//!    stops writes, so the log copy ends exactly at the lock;
//! 5. `UNLOCK TABLES`;
//! 6. `SET TOKUDB_CHECKPOINT_LOCK=OFF`.
//!
//! Both locks are session scoped: they die with the session on the real server.
//! Still, after any failure this module sends `UNLOCK TABLES` (if step 3 was
//! reached) and the checkpoint-lock OFF before returning, so a connection that
//! stays open (a pooled or embedding caller's) is never left holding them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::copier::FileCopier;
use crate::discover::{METADATA_FILES, TokuDirs, TokuFile, find_data_files, find_log_files};
use crate::error::{HookError, Step, TokuError};
use crate::sql::SqlSession;

/// Step 1.
pub const CHECKPOINT_LOCK_ON: &str = "SET TOKUDB_CHECKPOINT_LOCK=ON";
/// Step 3.
pub const READ_LOCK: &str = "FLUSH TABLES WITH READ LOCK";
/// Step 5.
pub const UNLOCK_TABLES: &str = "UNLOCK TABLES";
/// Step 6.
pub const CHECKPOINT_LOCK_OFF: &str = "SET TOKUDB_CHECKPOINT_LOCK=OFF";

/// Tuning of the TokuDB steps.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokuOptions {
    /// Threads copying data files in step 2 (at least 1). Default 4.
    pub parallel: usize,
}

impl Default for TokuOptions {
    fn default() -> Self {
        Self { parallel: 4 }
    }
}

impl TokuOptions {
    /// Set the data-copy thread count.
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }
}

/// Work the orchestrator does while FLUSH TABLES WITH READ LOCK is held (step
/// 3), on the same session, e.g. copying MyISAM files and reading the binlog
/// position. Runs concurrently with the TokuDB log copy.
pub trait ReadLockHook<S: SqlSession>: Send {
    /// Do the work; an error aborts the backup (locks are still released).
    fn under_read_lock(
        &mut self,
        session: &mut S,
    ) -> impl Future<Output = Result<(), HookError>> + Send;
}

/// A hook that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl<S: SqlSession> ReadLockHook<S> for NoHook {
    async fn under_read_lock(&mut self, _session: &mut S) -> Result<(), HookError> {
        Ok(())
    }
}

/// One copied file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedFile {
    /// Name inside the backup.
    pub rel: String,
    /// Bytes the copier wrote.
    pub bytes: u64,
}

/// What a finished TokuDB backup included, for the backup metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokuManifest {
    /// The directories the files came from.
    pub dirs: TokuDirs,
    /// Step 2 files, sorted by name.
    pub data_files: Vec<CopiedFile>,
    /// Step 4 files, oldest log first.
    pub log_files: Vec<CopiedFile>,
}

impl TokuManifest {
    /// `key = value` lines for the backup's info file, so a restore knows the
    /// backup holds TokuDB files (and must not be prepared as InnoDB-only).
    pub fn info_lines(&self) -> String {
        let bytes: u64 = self
            .data_files
            .iter()
            .chain(&self.log_files)
            .map(|f| f.bytes)
            .sum();
        format!(
            "tokudb_included = 1\ntokudb_data_files = {}\ntokudb_log_files = {}\ntokudb_bytes = {}\n",
            self.data_files.len(),
            self.log_files.len(),
            bytes
        )
    }
}

/// Run steps 1–6 on `session`. `dirs` comes from [`crate::probe`]; call this
/// only when the probe found TokuDB, so a server without the plugin never
/// receives a TokuDB statement. This function takes and releases FLUSH TABLES
/// WITH READ LOCK itself: the caller must not hold it, and does its own
/// read-lock work (non-InnoDB files, binlog position) in `hook`. On error, both locks have been released (or
/// their release failed, reported inside [`TokuError::Aborted`]).
pub async fn run<S, H>(
    session: &mut S,
    dirs: &TokuDirs,
    copier: Arc<dyn FileCopier>,
    hook: &mut H,
    options: &TokuOptions,
) -> Result<TokuManifest, TokuError>
where
    S: SqlSession,
    H: ReadLockHook<S>,
{
    // Step 1. Even a failed ON is followed by an OFF: the statement may have
    // taken effect before the answer was lost.
    tracing::info!(step = %Step::CheckpointLockOn, "taking tokudb checkpoint lock");
    if let Err(e) = session.exec(CHECKPOINT_LOCK_ON).await {
        return Err(abort(
            session,
            Step::CheckpointLockOn,
            TokuError::sql(CHECKPOINT_LOCK_ON, e),
            vec![],
            false,
        )
        .await);
    }

    // Step 2.
    let data = find_data_files(dirs).and_then(|files| require_metadata(dirs, files));
    let data = match data {
        Ok(files) => {
            copy_files(
                copier.clone(),
                files,
                options.parallel.max(1),
                Step::CopyData,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let data_files = match data {
        Ok(d) => d,
        Err(e) => return Err(abort(session, Step::CopyData, e, vec![], false).await),
    };
    tracing::info!(files = data_files.len(), "copied tokudb data files");

    // Step 3.
    if let Err(e) = session.exec(READ_LOCK).await {
        return Err(abort(
            session,
            Step::ReadLock,
            TokuError::sql(READ_LOCK, e),
            vec![],
            true,
        )
        .await);
    }

    // Step 4, next to the hook.
    let logs = match find_log_files(dirs) {
        Ok(files) if files.is_empty() => {
            let e = TokuError::MissingLogs {
                dir: dirs.log_dir.clone(),
            };
            return Err(abort(session, Step::CopyLogs, e, vec![], true).await);
        }
        Ok(files) => files,
        Err(e) => return Err(abort(session, Step::CopyLogs, e, vec![], true).await),
    };
    let log_copy = tokio::spawn(copy_files(copier, logs, 1, Step::CopyLogs));
    let hook_result = hook.under_read_lock(session).await.map_err(TokuError::Hook);
    let log_result = match log_copy.await {
        Ok(r) => r,
        Err(_) => Err(TokuError::WorkerPanicked(Step::CopyLogs)),
    };
    let log_files = match (hook_result, log_result) {
        (Ok(()), Ok(logs)) => logs,
        (Err(h), Ok(_)) => return Err(abort(session, Step::ReadLock, h, vec![], true).await),
        (Ok(()), Err(l)) => return Err(abort(session, Step::CopyLogs, l, vec![], true).await),
        (Err(h), Err(l)) => return Err(abort(session, Step::ReadLock, h, vec![l], true).await),
    };
    tracing::info!(files = log_files.len(), "copied tokudb log files");

    // Step 5; a failure still gets step 6.
    if let Err(e) = session.exec(UNLOCK_TABLES).await {
        return Err(abort(
            session,
            Step::UnlockTables,
            TokuError::sql(UNLOCK_TABLES, e),
            vec![],
            false,
        )
        .await);
    }

    // Step 6.
    if let Err(e) = session.exec(CHECKPOINT_LOCK_OFF).await {
        return Err(TokuError::Aborted {
            step: Step::CheckpointLockOff,
            cause: Box::new(TokuError::sql(CHECKPOINT_LOCK_OFF, e)),
            concurrent_errors: vec![],
            release_errors: vec![],
        });
    }
    Ok(TokuManifest {
        dirs: dirs.clone(),
        data_files,
        log_files,
    })
}

/// Every metadata file must be among the data files.
fn require_metadata(dirs: &TokuDirs, files: Vec<TokuFile>) -> Result<Vec<TokuFile>, TokuError> {
    for name in METADATA_FILES {
        if !files
            .iter()
            .any(|f| f.path.file_name().is_some_and(|n| n == name))
        {
            return Err(TokuError::MissingMetadata {
                dir: dirs.data_dir.clone(),
                name,
            });
        }
    }
    Ok(files)
}

/// Release what may be held, then wrap the original error with any release
/// errors. Release statements go out even when the connection looks lost:
/// they fail fast, and a session that survived must not keep its locks.
async fn abort<S: SqlSession>(
    session: &mut S,
    step: Step,
    cause: TokuError,
    concurrent_errors: Vec<TokuError>,
    read_locked: bool,
) -> TokuError {
    tracing::warn!(%step, error = %cause, "tokudb backup failed; releasing locks");
    let mut release_errors = Vec::new();
    if read_locked {
        if let Err(e) = session.exec(UNLOCK_TABLES).await {
            release_errors.push(TokuError::sql(UNLOCK_TABLES, e));
        }
    }
    if let Err(e) = session.exec(CHECKPOINT_LOCK_OFF).await {
        release_errors.push(TokuError::sql(CHECKPOINT_LOCK_OFF, e));
    }
    TokuError::Aborted {
        step,
        cause: Box::new(cause),
        concurrent_errors,
        release_errors,
    }
}

/// Copy `files` on `threads` blocking threads; the first error stops the
/// others from starting new files and is returned.
async fn copy_files(
    copier: Arc<dyn FileCopier>,
    files: Vec<TokuFile>,
    threads: usize,
    step: Step,
) -> Result<Vec<CopiedFile>, TokuError> {
    let work = move || {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<TokuError>> = Mutex::new(None);
        let done: Mutex<Vec<(usize, CopiedFile)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads.min(files.len()).max(1) {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        match copier.copy(&f.path, &f.rel) {
                            Ok(bytes) => done.lock().unwrap_or_else(|e| e.into_inner()).push((
                                i,
                                CopiedFile {
                                    rel: f.rel.clone(),
                                    bytes,
                                },
                            )),
                            Err(source) => {
                                failed.store(true, Ordering::Relaxed);
                                let e = TokuError::Copy {
                                    path: f.path.clone(),
                                    rel: f.rel.clone(),
                                    source,
                                };
                                first_error
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, f)| f).collect())
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or(Err(TokuError::WorkerPanicked(step)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copier::LocalDirCopier;
    use crate::sql::{Rows, SqlError};

    /// A session that records statements and answers every one with OK.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl SqlSession for Recorder {
        async fn exec(&mut self, sql: &str) -> Result<(), SqlError> {
            self.0.push(sql.to_string());
            Ok(())
        }
        async fn query_rows(&mut self, sql: &str) -> Result<Rows, SqlError> {
            self.0.push(sql.to_string());
            Ok(vec![])
        }
    }

    fn dirs(root: &std::path::Path) -> TokuDirs {
        TokuDirs::resolve(root.to_str().unwrap(), "", "")
    }

    #[tokio::test]
    async fn missing_metadata_stops_before_the_read_lock_and_releases() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.tokudb"), b"x").unwrap();
        std::fs::write(src.path().join("tokudb.directory"), b"x").unwrap();
        std::fs::write(src.path().join("tokudb.rollback"), b"x").unwrap();
        let mut s = Recorder::default();
        let copier = Arc::new(LocalDirCopier::new(dst.path()));
        let e = run(
            &mut s,
            &dirs(src.path()),
            copier,
            &mut NoHook,
            &TokuOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e.root_cause(),
                TokuError::MissingMetadata {
                    name: "tokudb.environment",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(s.0, [CHECKPOINT_LOCK_ON, CHECKPOINT_LOCK_OFF]);
        assert!(!dst.path().join("a.tokudb").exists());
    }

    #[tokio::test]
    async fn missing_logs_stop_under_the_read_lock_and_release_both() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        for name in METADATA_FILES {
            std::fs::write(src.path().join(name), b"x").unwrap();
        }
        let mut s = Recorder::default();
        let copier = Arc::new(LocalDirCopier::new(dst.path()));
        let e = run(
            &mut s,
            &dirs(src.path()),
            copier,
            &mut NoHook,
            &TokuOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e.root_cause(), TokuError::MissingLogs { .. }),
            "{e}"
        );
        assert_eq!(
            s.0,
            [
                CHECKPOINT_LOCK_ON,
                READ_LOCK,
                UNLOCK_TABLES,
                CHECKPOINT_LOCK_OFF
            ]
        );
    }

    #[tokio::test]
    async fn many_files_on_few_threads_are_all_copied_in_name_order() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        for name in METADATA_FILES {
            std::fs::write(src.path().join(name), b"m").unwrap();
        }
        for i in 0..40 {
            std::fs::write(src.path().join(format!("t{i:02}.tokudb")), vec![b'x'; i]).unwrap();
        }
        std::fs::write(src.path().join("log000000000001.tokulog27"), b"log").unwrap();
        let mut s = Recorder::default();
        let copier = Arc::new(LocalDirCopier::new(dst.path()));
        let m = run(
            &mut s,
            &dirs(src.path()),
            copier,
            &mut NoHook,
            &TokuOptions::default().parallel(3),
        )
        .await
        .unwrap();
        assert_eq!(m.data_files.len(), 43);
        let rels: Vec<_> = m.data_files.iter().map(|f| f.rel.clone()).collect();
        let mut sorted = rels.clone();
        sorted.sort();
        assert_eq!(rels, sorted);
        for i in 0..40 {
            let rel = format!("t{i:02}.tokudb");
            assert_eq!(
                std::fs::read(dst.path().join(&rel)).unwrap().len(),
                i,
                "{rel}"
            );
        }
        assert_eq!(
            m.log_files,
            [CopiedFile {
                rel: "log000000000001.tokulog27".into(),
                bytes: 3
            }]
        );
        assert_eq!(s.0.len(), 4);
    }
}
