//! Errors of the TokuDB steps. Lock-release failures never replace the error
//! that made the backup stop; they ride along in [`TokuError::Aborted`].

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::sql::SqlError;

/// Error a read-lock hook returns; the orchestrator's own error, boxed.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// One step of the TokuDB backup sequence, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// 1: `SET TOKUDB_CHECKPOINT_LOCK=ON`.
    CheckpointLockOn,
    /// 2: copy data files.
    CopyData,
    /// 3: `FLUSH TABLES WITH READ LOCK` and the orchestrator's hook.
    ReadLock,
    /// 4: copy log files.
    CopyLogs,
    /// 5: `UNLOCK TABLES`.
    UnlockTables,
    /// 6: `SET TOKUDB_CHECKPOINT_LOCK=OFF`.
    CheckpointLockOff,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::CheckpointLockOn => "1 (checkpoint lock on)",
            Step::CopyData => "2 (copy data files)",
            Step::ReadLock => "3 (flush tables with read lock)",
            Step::CopyLogs => "4 (copy log files)",
            Step::UnlockTables => "5 (unlock tables)",
            Step::CheckpointLockOff => "6 (checkpoint lock off)",
        })
    }
}

/// Everything that can stop the TokuDB part of a backup.
#[derive(Debug, thiserror::Error)]
pub enum TokuError {
    /// A statement failed.
    #[error("tokudb: statement `{sql}` failed: {source}{}", sql_hint(source))]
    Sql {
        /// The statement.
        sql: String,
        /// What the server or driver said.
        source: SqlError,
    },
    /// The server answered with rows we cannot interpret.
    #[error("tokudb: unexpected answer to `{sql}`: {detail}")]
    UnexpectedResult {
        /// The statement.
        sql: String,
        /// The rows, debug-printed.
        detail: String,
    },
    /// A TokuDB directory could not be listed.
    #[error(
        "tokudb: cannot list directory {dir}: {source}; hint: check @@tokudb_data_dir, @@tokudb_log_dir and that the backup runs on the database host with read access"
    )]
    ListDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The copier failed on one file.
    #[error(
        "tokudb: copying {path} to backup file {rel} failed: {source}{}",
        copy_hint(source)
    )]
    Copy {
        /// Source path on the server.
        path: PathBuf,
        /// Name inside the backup.
        rel: String,
        /// The copier's error.
        source: io::Error,
    },
    /// A TokuDB metadata file is missing: without it the backup cannot be
    /// restored, and its absence usually means the wrong directory was read.
    #[error(
        "tokudb: {name} not found in {dir}; hint: run the backup on the database host with read access to @@tokudb_data_dir"
    )]
    MissingMetadata {
        /// The directory searched.
        dir: PathBuf,
        /// The missing file.
        name: &'static str,
    },
    /// No recovery log file was found; the data files alone cannot be recovered.
    #[error(
        "tokudb: no log*.tokulog* file found in {dir}; hint: check @@tokudb_log_dir and run the backup on the database host"
    )]
    MissingLogs {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The orchestrator's work under the read lock failed.
    #[error("tokudb: work under flush tables with read lock failed: {0}")]
    Hook(HookError),
    /// A copy thread panicked (a bug in a copier).
    #[error("tokudb: a copy thread panicked during step {0}")]
    WorkerPanicked(Step),
    /// The sequence stopped; locks were released (or the attempt failed, see
    /// `release_errors`).
    #[error(
        "tokudb backup failed at step {step}: {cause}{}",
        aborted_tail(concurrent_errors, release_errors)
    )]
    Aborted {
        /// Where it stopped.
        step: Step,
        /// The first error.
        cause: Box<TokuError>,
        /// Errors from work running at the same time as `cause` (log copy
        /// next to the read-lock hook).
        concurrent_errors: Vec<TokuError>,
        /// Errors from `UNLOCK TABLES` / checkpoint-lock OFF after the failure.
        release_errors: Vec<TokuError>,
    },
}

impl TokuError {
    pub(crate) fn sql(sql: &str, source: SqlError) -> Self {
        Self::Sql {
            sql: sql.to_string(),
            source,
        }
    }

    pub(crate) fn unexpected(sql: &str, detail: String) -> Self {
        Self::UnexpectedResult {
            sql: sql.to_string(),
            detail,
        }
    }

    /// The error that started it all (unwraps [`TokuError::Aborted`]).
    pub fn root_cause(&self) -> &TokuError {
        match self {
            Self::Aborted { cause, .. } => cause.root_cause(),
            other => other,
        }
    }

    /// `true` when the connection to the server is gone; the server has then
    /// already released the session's locks by ending the session.
    pub fn connection_lost(&self) -> bool {
        matches!(self.root_cause(), Self::Sql { source, .. } if source.connection_lost)
    }
}

fn sql_hint(e: &SqlError) -> &'static str {
    if e.connection_lost {
        "; hint: the connection ended, and with it the session's checkpoint lock and read lock on the server; check the server's error log and network, then rerun the backup"
    } else if e.code == Some(1193) {
        "; hint: the server has no active TokuDB plugin; rerun without TokuDB support"
    } else if e.code == Some(1227) {
        "; hint: the backup user needs SUPER or RELOAD for these locks"
    } else {
        ""
    }
}

fn copy_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        "; hint: the backup target is full; free space there or choose another target, then rerun the backup"
    } else {
        ""
    }
}

fn aborted_tail(concurrent: &[TokuError], release: &[TokuError]) -> String {
    let mut s = String::new();
    for e in concurrent {
        s.push_str(&format!("; at the same time: {e}"));
    }
    for e in release {
        s.push_str(&format!("; releasing locks also failed: {e}"));
    }
    s
}
