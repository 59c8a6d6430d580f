//! Why a backup failed. Each variant names the thing at fault; [`hint`]
//! says what to do; [`code`] is stable and becomes the CLI's exit code.
//!
//! [`hint`]: BackupError::hint
//! [`code`]: BackupError::code

/// A failed backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Wrong user or password.
    #[error("access denied for user '{user}' at {endpoint}: {message}")]
    Access {
        /// The account.
        user: String,
        /// Host:port or socket.
        endpoint: String,
        /// The server's message.
        message: String,
    },
    /// The server cannot be reached.
    #[error("cannot connect to the server at {endpoint}: {message}")]
    Connect {
        /// Host:port or socket.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The account lacks privileges a backup needs.
    #[error("user '{user}' lacks the privilege(s) {} needed for a backup", missing.join(", "))]
    Privileges {
        /// The account.
        user: String,
        /// What is missing.
        missing: Vec<String>,
    },
    /// A statement failed.
    #[error("statement `{statement}` failed: {message}")]
    Sql {
        /// The statement.
        statement: String,
        /// The server's message.
        message: String,
    },
    /// The server is of a kind this version cannot back up.
    #[error("unsupported server {version}: {reason}")]
    Unsupported {
        /// `SELECT VERSION()`.
        version: String,
        /// Why.
        reason: String,
    },
    /// The datadir the server reports is not readable here.
    #[error("datadir {path} reported by the server is not readable here: {message}")]
    Datadir {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The target directory already holds files.
    #[error("target directory {path} is not empty")]
    TargetNotEmpty {
        /// The directory.
        path: String,
    },
    /// Writing the backup failed (target full, I/O).
    #[error("{0}")]
    Target(String),
    /// Reading a data file failed (corrupt page, I/O).
    #[error("{0}")]
    Read(String),
    /// Following the redo log failed (overwritten, corrupt, too slow).
    #[error("{0}")]
    Redo(String),
    /// A TokuDB step failed. Its checkpoint lock and read lock were released
    /// before this error was returned (or the message says why not).
    #[error("{0}")]
    TokuDb(xb_tokudb::TokuError),
}

impl BackupError {
    /// What the user can do.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            BackupError::Access { user, .. } => format!(
                "Check the password of '{user}' (--password, MYSQL_PWD, or the [client] group of --defaults-file)."
            ),
            BackupError::Connect { .. } => {
                "Is the server running and listening there? Check --host/--port or --socket.".into()
            }
            BackupError::Privileges { user, missing } => format!(
                "As an administrator run: GRANT {} ON *.* TO '{user}'@'...'",
                missing.join(", ")
            ),
            BackupError::Sql { .. } => "Check the server's error log and the account's privileges.".into(),
            BackupError::Unsupported { .. } => {
                "Use the vendor's backup tool for this server version.".into()
            }
            BackupError::Datadir { .. } => {
                "Run xb on the database host, as a user who can read the datadir.".into()
            }
            BackupError::Target(m) if m.contains("no space left") => {
                "Free space on the target file system or choose another --target-dir, then take the backup again.".into()
            }
            BackupError::TargetNotEmpty { .. } => {
                "Choose a new --target-dir: xb never writes into a directory that holds files.".into()
            }
            BackupError::Target(_) => "Check the target path and its permissions.".into(),
            BackupError::Read(_) => {
                "A page stayed corrupt after every re-read: run CHECK TABLE on that table on the server.".into()
            }
            BackupError::Redo(m) if m.contains("overwritten") => {
                "The server wrote redo faster than it was copied: increase innodb_log_file_size or back up at a quieter time.".into()
            }
            BackupError::Redo(_) => "Check the server's error log; then take the backup again.".into(),
            BackupError::TokuDb(e) if e.to_string().to_lowercase().contains("no space left") => {
                "Free space on the target file system or choose another --target-dir, then take the backup again.".into()
            }
            BackupError::TokuDb(_) => {
                "Both TokuDB locks are released (by xb, or by the server when the session ended); check the server's error log and @@tokudb_data_dir/@@tokudb_log_dir, then take the backup again.".into()
            }
        }
    }

    /// Stable code, also the CLI's exit code.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            BackupError::Access { .. } => 10,
            BackupError::Connect { .. } => 11,
            BackupError::Privileges { .. } => 12,
            BackupError::Sql { .. } => 13,
            BackupError::Unsupported { .. } => 14,
            BackupError::Datadir { .. } => 15,
            BackupError::Target(_) | BackupError::TargetNotEmpty { .. } => 20,
            BackupError::Read(_) => 21,
            BackupError::Redo(_) => 22,
            BackupError::TokuDb(_) => 23,
        }
    }
}
