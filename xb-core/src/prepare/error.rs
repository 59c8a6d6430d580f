//! Why a backup could not be prepared.

use std::path::{Path, PathBuf};

use super::INCOMPLETE_MARKER;

/// Why a backup could not be prepared. Every variant names the file or the
/// program at fault; [`PrepareError::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// No `xtrabackup_checkpoints` in the directory.
    #[error("{dir} is not a backup directory: xtrabackup_checkpoints is missing")]
    NotABackup {
        /// The directory given.
        dir: PathBuf,
    },
    /// The backup never completed.
    #[error("{dir} holds an incomplete backup ({INCOMPLETE_MARKER} is present)")]
    Incomplete {
        /// The backup directory.
        dir: PathBuf,
    },
    /// Already prepared (or of a type we cannot prepare).
    #[error("{dir} has backup_type = {backup_type}, expected full-backuped")]
    WrongBackupType {
        /// The backup directory.
        dir: PathBuf,
        /// What `xtrabackup_checkpoints` says.
        backup_type: String,
    },
    /// `xtrabackup_checkpoints` could not be parsed.
    #[error("{file}: {reason}")]
    BadCheckpoints {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `backup-my.cnf` cannot be read as the server's options.
    #[error("{file}: {reason}")]
    BadSettings {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The copied redo log is not one we can hand to a server.
    #[error("{file}: unsupported redo log ({reason})")]
    UnsupportedLog {
        /// The log file.
        file: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The copied redo does not reach the end point of the backup.
    #[error("{file} ends at LSN {log_end}, but the backup needs redo up to LSN {needed}")]
    LogTooShort {
        /// The log file.
        file: PathBuf,
        /// Where the copied log ends.
        log_end: u64,
        /// `last_lsn` of the backup.
        needed: u64,
    },
    /// No server binary found.
    #[error("server binary not found (tried: {tried})")]
    ServerNotFound {
        /// What was tried.
        tried: String,
    },
    /// `xtrabackup_info` does not say which server wrote the backup, or says
    /// something the backup's redo log contradicts.
    #[error("{file}: {reason}; the source server's version is unknown")]
    UnknownSourceVersion {
        /// `xtrabackup_info`.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A server binary did not say its version.
    #[error("{server}: cannot tell its version: {detail}")]
    ServerVersionUnknown {
        /// The binary.
        server: PathBuf,
        /// What happened when it was asked (`--version`).
        detail: String,
    },
    /// The server binary is of another family or release than the source,
    /// so its recovery would fail half-way or leave files the source's
    /// version cannot start on.
    #[error(
        "{server} is {server_version}, which cannot prepare a backup of {backup_version}: {reason}"
    )]
    ServerMismatch {
        /// The binary.
        server: PathBuf,
        /// What it says its version is.
        server_version: String,
        /// `server_version` of the backup's `xtrabackup_info`.
        backup_version: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The server exited or logged a failure during recovery or shutdown.
    #[error(
        "server recovery on {dir} failed: {reason}\n--- last lines of its error log ---\n{log_tail}"
    )]
    ServerFailed {
        /// The backup directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
        /// The end of the server's error log.
        log_tail: String,
    },
    /// Applying binlog after recovery failed.
    #[error("binlog replay into {dir} failed: {reason}")]
    Replay {
        /// The backup directory.
        dir: PathBuf,
        /// The tools' messages.
        reason: String,
    },
    /// A DDL marker file (`.del`, `.ren`, `.new`) would act on a file
    /// outside the backup directory. Checked for every marker before any is
    /// applied, so nothing has changed.
    #[error("{marker}: refused DDL marker: {problem}")]
    UnsafeMarker {
        /// The marker file.
        marker: PathBuf,
        /// What takes it outside.
        problem: UnsafeMarkerPath,
    },
    /// The copied log's names of files outside the backup could not be
    /// pointed at the backup's own files (see the `remote` module), so
    /// recovery could reach the source's files; it was not started.
    #[error("{file}: cannot point the log's file names at the backup: {reason}")]
    RemoteLog {
        /// The log file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `--incremental-dir` onto a base that is not `log-applied`: one whose
    /// unfinished transactions were rolled back (`full-prepared`) no longer
    /// matches the source's pages, one never prepared lacks its own redo.
    #[error(
        "{dir} has backup_type = {backup_type}: an incremental backup applies only onto a base prepared with --apply-log-only (backup_type = log-applied)"
    )]
    BaseNotLogApplied {
        /// The base directory.
        dir: PathBuf,
        /// What its `xtrabackup_checkpoints` says.
        backup_type: String,
    },
    /// `--incremental-dir` names a backup that is not an incremental one.
    #[error("{dir} has backup_type = {backup_type}, expected incremental")]
    NotIncremental {
        /// The directory given as `--incremental-dir`.
        dir: PathBuf,
        /// What its `xtrabackup_checkpoints` says.
        backup_type: String,
    },
    /// The incremental does not start where the base ends.
    #[error(
        "{inc} starts at from_lsn {inc_from_lsn}, but {base} ends at to_lsn {base_to_lsn}: this incremental does not follow this base"
    )]
    IncrementalMismatch {
        /// The base directory.
        base: PathBuf,
        /// Its `to_lsn`.
        base_to_lsn: u64,
        /// The incremental directory.
        inc: PathBuf,
        /// Its `from_lsn`.
        inc_from_lsn: u64,
    },
    /// The incremental ends before what is already applied: it was taken
    /// earlier than an incremental merged before it. With the checkpoint
    /// standing still between backups their `from_lsn`/`to_lsn` can agree
    /// in any order; applied, it would put older pages over newer ones.
    #[error(
        "{inc} ends at LSN {inc_last_lsn}, before {base} (applied up to LSN {base_last_lsn}): it was taken before an incremental already applied"
    )]
    IncrementalOutOfOrder {
        /// The base directory.
        base: PathBuf,
        /// Its `last_lsn`.
        base_last_lsn: u64,
        /// The incremental directory.
        inc: PathBuf,
        /// Its `last_lsn`.
        inc_last_lsn: u64,
    },
    /// A `.delta` (or its `.meta`) is damaged or missing.
    #[error("{file}: damaged incremental delta: {reason}")]
    BadDelta {
        /// The `.delta` or `.meta` file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--export` with `--apply-log-only`: the export needs the rolled-back,
    /// final state of each table, which only a full prepare gives.
    #[error(
        "{dir}: --export cannot go with --apply-log-only (the tables are exported from a full prepare only)"
    )]
    ExportWithApplyLogOnly {
        /// The backup directory.
        dir: PathBuf,
    },
    /// The SQL session with the prepare server failed during `--export`.
    /// Recovery itself had finished and the server was shut down cleanly,
    /// so the backup is marked prepared; `--export` may be run on it again.
    #[error("{dir}: --export failed while {step}: {source}")]
    Export {
        /// The backup directory.
        dir: PathBuf,
        /// What the session was doing.
        step: &'static str,
        /// The driver's or the server's error.
        source: mysql_async::Error,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Why a DDL marker's path would leave the backup directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsafeMarkerPath {
    /// A `.ren` holding no name.
    #[error("it names no file")]
    Empty,
    /// A `.ren` naming an absolute path.
    #[error("it names the absolute path {0:?}")]
    Absolute(String),
    /// A `.ren` naming a path with a `..` component.
    #[error("its name {0:?} climbs out with '..'")]
    ParentDir(String),
    /// The marker, the file it names, or a directory on the way, is a
    /// symbolic link (which could point anywhere).
    #[error("{} is a symbolic link", .0.display())]
    Symlink(PathBuf),
}

impl PrepareError {
    /// Stable code, also the CLI's exit code (30–38; the backup's own codes
    /// are 10–26):
    /// 30 not a backup that can be prepared as asked (missing, incomplete,
    /// already prepared, `--export` with `--apply-log-only`), 31 a damaged backup, 32 a backup this version cannot
    /// prepare, 33 no fitting server binary, 34 recovery failed, 35 refused
    /// as unsafe (nothing changed), 36 I/O, 37 an incremental that does not
    /// fit the base (wrong type, order, or a base rolled back), 38 the
    /// `--export` session with the prepare server failed.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            PrepareError::NotABackup { .. }
            | PrepareError::Incomplete { .. }
            | PrepareError::WrongBackupType { .. }
            | PrepareError::ExportWithApplyLogOnly { .. } => 30,
            PrepareError::BadCheckpoints { .. }
            | PrepareError::BadSettings { .. }
            | PrepareError::LogTooShort { .. }
            | PrepareError::BadDelta { .. } => 31,
            PrepareError::UnsupportedLog { .. } => 32,
            PrepareError::ServerNotFound { .. }
            | PrepareError::UnknownSourceVersion { .. }
            | PrepareError::ServerVersionUnknown { .. }
            | PrepareError::ServerMismatch { .. } => 33,
            PrepareError::ServerFailed { .. } => 34,
            PrepareError::UnsafeMarker { .. } | PrepareError::RemoteLog { .. } => 35,
            PrepareError::Io { .. } => 36,
            PrepareError::BaseNotLogApplied { .. }
            | PrepareError::NotIncremental { .. }
            | PrepareError::IncrementalMismatch { .. }
            | PrepareError::IncrementalOutOfOrder { .. } => 37,
            PrepareError::Export { .. } => 38,
            PrepareError::Replay { .. } => 39,
        }
    }

    /// What the user can do about it.
    #[must_use]
    pub fn hint(&self) -> &'static str {
        match self {
            PrepareError::NotABackup { .. } => {
                "Point --target-dir at a directory written by `xb-cli backup` (extract a stream first with `xb-cli extract`)."
            }
            PrepareError::Incomplete { .. } => {
                "This backup did not finish and cannot be restored; take a new backup."
            }
            PrepareError::WrongBackupType { .. } => {
                "A prepared backup needs no second prepare; restore it as it is (a full-prepared one takes --export)."
            }
            PrepareError::ExportWithApplyLogOnly { .. } => {
                "Apply every incremental first (each with --apply-log-only but the last), then give --export to the last prepare, or run --export alone on the full-prepared backup."
            }
            PrepareError::Export { .. } => {
                "Read the server's error in the message and xb_prepare.log in the backup; the recovery itself is complete and the backup marked full-prepared, so run prepare --export on it again once that is fixed."
            }
            PrepareError::BadCheckpoints { .. } | PrepareError::BadSettings { .. } => {
                "The backup's metadata is damaged; take a new backup."
            }
            PrepareError::UnsupportedLog { .. } => {
                "Prepare supports MariaDB 10.5+ and MySQL 8.0.30+ backups today; use the vendor's tool for this one."
            }
            PrepareError::LogTooShort { .. } => {
                "The redo copy is truncated, so this backup cannot reach its end point; take a new backup."
            }
            PrepareError::ServerNotFound { .. } => {
                "Install the server of the same version as the source, or pass --server-binary PATH."
            }
            PrepareError::UnknownSourceVersion { .. } => {
                "xtrabackup_info must name the source's server_version (xb-cli and mariadb-backup write it); restore the file from the original backup."
            }
            PrepareError::ServerVersionUnknown { .. } => {
                "Pass --server-binary PATH naming a mariadbd or mysqld that answers --version."
            }
            PrepareError::ServerMismatch { .. } => {
                "Install the server of the backup's flavour and release series (MariaDB: the same major.minor; MySQL: the same or a newer 8.x/9.x) and pass --server-binary PATH to it."
            }
            PrepareError::ServerFailed { .. } => {
                "Read the server's error log above; the server must be the same major version as the source."
            }
            PrepareError::Replay { .. } => {
                "Read the tools' messages above; the binlog reader and client must be the source's own (pass --binlog-reader and --client), and the archive must be whole."
            }
            PrepareError::UnsafeMarker { .. } => {
                "DDL marker files only ever name files inside the backup, so this backup was altered after it was taken; take a new backup, or remove the marker if you know why it is there."
            }
            PrepareError::RemoteLog { .. } => {
                "The backup's .isl files are as they were; prepare this backup with the vendor's tool (mariadb-backup --prepare), or take a new backup."
            }
            PrepareError::Io { .. } => "Check the path exists and is writable.",
            PrepareError::BaseNotLogApplied { .. } => {
                "Prepare a fresh copy of the full backup with --apply-log-only, then apply the incrementals in order, each with --apply-log-only but the last."
            }
            PrepareError::NotIncremental { .. } => {
                "--incremental-dir takes an incremental backup (one taken with --incremental-basedir); --target-dir takes its base."
            }
            PrepareError::IncrementalOutOfOrder { .. } => {
                "Apply the incrementals in the order they were taken, each once, onto a fresh copy of the full backup (this base already holds a later one)."
            }
            PrepareError::IncrementalMismatch { .. } => {
                "Apply the incrementals in the order they were taken: each one's from_lsn is the to_lsn of the backup it was based on."
            }
            PrepareError::BadDelta { .. } => {
                "The incremental backup is damaged; take a new one. The base may already be partly merged: start again from a copy of the full backup."
            }
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.to_path_buf(),
        source,
    }
}
