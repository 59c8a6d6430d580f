//! Why a backup could not be restored.

use std::path::{Path, PathBuf};

use super::MARKER;
use crate::optfile::OptionFileError;

/// Why a backup could not be restored. The variants up to
/// [`RestoreError::OptionFile`] are found before anything is written; the
/// rest happen while writing, after [`MARKER`] was put in the datadir.
/// [`RestoreError::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// No `xtrabackup_checkpoints` in the directory.
    #[error("{dir} is not a backup directory: xtrabackup_checkpoints is missing")]
    NotABackup {
        /// The directory given.
        dir: PathBuf,
    },
    /// The backup never completed.
    #[error("{dir} holds an incomplete backup (xtrabackup_incomplete is present)")]
    Incomplete {
        /// The backup directory.
        dir: PathBuf,
    },
    /// A backup that was never prepared: its files are copies taken at
    /// different moments, no server can start on them.
    #[error("{dir} is not prepared (backup_type = {backup_type})")]
    NotPrepared {
        /// The backup directory.
        dir: PathBuf,
        /// What `xtrabackup_checkpoints` says.
        backup_type: String,
    },
    /// A base prepared with `--apply-log-only`: its unfinished transactions
    /// are still there, waiting for incrementals.
    #[error(
        "{dir} has backup_type = log-applied: it was prepared with --apply-log-only and still waits for incrementals"
    )]
    LogApplied {
        /// The backup directory.
        dir: PathBuf,
    },
    /// A backup file could not be understood (`xtrabackup_checkpoints`,
    /// `xtrabackup_tablespaces`, an `.isl`), or names a place a restore
    /// must not write to.
    #[error("{file}: {reason}")]
    BadBackup {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Neither `--datadir` nor the option file says where to restore.
    #[error("no datadir: give --datadir, or a --defaults-file whose [mysqld] group sets datadir")]
    NoDatadir,
    /// The option file cannot be read.
    #[error(transparent)]
    OptionFile(#[from] OptionFileError),
    /// `--chown` names no user of this system.
    #[error("--chown {user}: no such user")]
    UnknownUser {
        /// The name given.
        user: String,
    },
    /// `--chown` another user without being root.
    #[error("--chown {user}: only root can give files to another user")]
    ChownNeedsRoot {
        /// The name given.
        user: String,
    },
    /// A destination directory holds files already.
    #[error("{dir} is not empty")]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A file of the backup would replace one that exists (never done, even
    /// with `--force-non-empty-directories`).
    #[error("{file} already exists; a restore never overwrites a file")]
    Exists {
        /// The file.
        file: PathBuf,
    },
    /// A destination directory (or the one it would be created in) cannot
    /// be written.
    #[error("{dir} is not writable: {source}")]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// What creating a file in it said.
        source: std::io::Error,
    },
    /// Writing the restore failed part-way. The datadir holds
    /// [`MARKER`] and no usable redo log, so no server starts on it.
    #[error(
        "restore failed at {path}: {source} (the datadir {datadir} is incomplete: see {MARKER} in it)"
    )]
    Failed {
        /// The file or directory being written, read or synced.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// The datadir holding the marker.
        datadir: PathBuf,
    },
    /// A backup directory or file could not be read before anything was
    /// written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl RestoreError {
    /// Stable code, also the CLI's exit code (40–46; the backup's are
    /// 10–24, prepare's 30–37): 40 a backup that is not ready to restore
    /// (missing, incomplete, not prepared, log-applied), 41 a damaged
    /// backup, 42 options (no datadir, option file, `--chown`), 43 a
    /// destination that is not empty, 44 a file that exists, 45 a
    /// destination that is not writable, 46 a failure while writing (the
    /// datadir is marked incomplete), 47 a backup that cannot be read.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            RestoreError::NotABackup { .. }
            | RestoreError::Incomplete { .. }
            | RestoreError::NotPrepared { .. }
            | RestoreError::LogApplied { .. } => 40,
            RestoreError::BadBackup { .. } => 41,
            RestoreError::NoDatadir
            | RestoreError::OptionFile(_)
            | RestoreError::UnknownUser { .. }
            | RestoreError::ChownNeedsRoot { .. } => 42,
            RestoreError::NotEmpty { .. } => 43,
            RestoreError::Exists { .. } => 44,
            RestoreError::NotWritable { .. } => 45,
            RestoreError::Failed { .. } => 46,
            RestoreError::Io { .. } => 47,
        }
    }

    /// What the user can do about it.
    #[must_use]
    pub fn hint(&self) -> &'static str {
        match self {
            RestoreError::NotABackup { .. } => {
                "Point --target-dir at a prepared backup directory (extract a stream first with `xb-cli extract`)."
            }
            RestoreError::Incomplete { .. } => {
                "This backup did not finish and cannot be restored; take a new backup."
            }
            RestoreError::NotPrepared { .. } => {
                "Run `xb-cli prepare --target-dir DIR` first (for an incremental: apply it to its base with `xb-cli prepare --target-dir BASE --incremental-dir DIR`, then restore the base)."
            }
            RestoreError::LogApplied { .. } => {
                "Apply the last incremental with `xb-cli prepare --target-dir BASE --incremental-dir LAST` without --apply-log-only (a backup prepared by mariadb-backup is also log-applied: restore it with mariadb-backup --copy-back)."
            }
            RestoreError::BadBackup { .. } => {
                "The backup's metadata is damaged or was edited; restore the file from the original backup, or take a new backup."
            }
            RestoreError::NoDatadir => {
                "Pass --datadir DIR, or --defaults-file FILE naming the server's option file."
            }
            RestoreError::OptionFile(_) => "Check the --defaults-file path and its syntax.",
            RestoreError::UnknownUser { .. } => {
                "Name a user of this system (the one the server runs as, usually mysql)."
            }
            RestoreError::ChownNeedsRoot { .. } => {
                "Run the restore as root, or leave out --chown and change the owner later."
            }
            RestoreError::NotEmpty { .. } => {
                "Restore into an empty directory (move the old datadir away), or pass --force-non-empty-directories to add files next to the ones there."
            }
            RestoreError::Exists { .. } => {
                "Move that file away first: --force-non-empty-directories lets a restore write into a directory that holds files, never over one."
            }
            RestoreError::NotWritable { .. } => {
                "Run the restore as a user that may write there (usually root), or fix the directory's permissions."
            }
            RestoreError::Failed { .. } => {
                "Fix the cause (free space, a failing disk), remove everything the restore wrote (the datadir's contents, and any file it put outside it), and run it again. A failed move-back has put back into the backup what it had moved (unless the error says otherwise)."
            }
            RestoreError::Io { .. } => "Check the backup directory exists and is readable.",
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
