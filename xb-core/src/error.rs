//! Why a backup failed. Each variant names the thing at fault; [`hint`]
//! says what to do; [`code`] is stable and becomes the CLI's exit code.
//! Hints and codes are chosen by variant (and by the typed cause inside
//! it), never by the words of a message.
//!
//! [`hint`]: BackupError::hint
//! [`code`]: BackupError::code

use crate::run::redo_copy::RedoCopyError;
use crate::run::seams::SeamError;

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
    /// The server accepts only TLS connections and xb was not told to use TLS.
    #[error("{endpoint} requires a secure connection: {message}")]
    TlsRequired {
        /// Host:port or socket.
        endpoint: String,
        /// The server's words.
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
        /// The server's (or the driver's) message.
        message: String,
        /// The server's error number, when the server answered with one.
        server_code: Option<u16>,
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
    /// MySQL runs with redo logging disabled (`ALTER INSTANCE DISABLE INNODB
    /// REDO_LOG`): the copied log would not cover the changes made during
    /// the copy, so no backup taken now could be restored. Found before
    /// anything is copied.
    #[error(
        "redo logging is disabled on the server {version} (Innodb_redo_log_enabled = OFF): a backup taken now could not be restored"
    )]
    RedoLogDisabled {
        /// `SELECT VERSION()`.
        version: String,
    },
    /// A session xb holds on the server, or the server itself, went away
    /// while the backup ran: what that session held (the backup lock, the
    /// metadata locks) is gone with it, so the copy cannot be finished.
    #[error("{session} was lost: {loss}: {detail}")]
    SessionLost {
        /// Which session (`xb's main session (connection 12)`), or the
        /// statement's connection when only a statement saw it.
        session: String,
        /// What happened to it.
        loss: SessionLoss,
        /// What was observed (the driver's error, a process list without it).
        detail: String,
    },
    /// The plan cannot work (found before anything touches the server).
    #[error("{reason}")]
    Plan {
        /// What is wrong with the options.
        reason: String,
    },
    /// The target directory already holds files.
    #[error("target {path} is not empty")]
    TargetNotEmpty {
        /// The directory.
        path: String,
    },
    /// Writing the backup failed (target full, I/O).
    #[error("{0}")]
    Target(SeamError),
    /// Reading a data file failed (corrupt page, I/O).
    #[error("{0}")]
    Read(SeamError),
    /// The server's redo log could not be opened or read.
    #[error("{0}")]
    RedoLog(xb_innodb::redo::RedoError),
    /// The server's redo log is not what this flavour reads.
    #[error("redo log in {dir}: {reason}")]
    RedoLayout {
        /// The log directory.
        dir: String,
        /// What was found.
        reason: String,
    },
    /// Following the redo log failed (overwritten, corrupt, too slow); when
    /// another step failed after that, `then` says which.
    #[error("{source}{}", then.as_ref().map(|t| format!(" (and then: {t})")).unwrap_or_default())]
    RedoCopy {
        /// The copier's own error.
        source: RedoCopyError,
        /// The lag figures measured until then (for the hint).
        lag: Option<Box<crate::run::lag::LagReport>>,
        /// A later failure it caused.
        then: Option<Box<BackupError>>,
    },
    /// The redo copier stopped while data was copied; the phase that owns the
    /// copier replaces this with the copier's own error.
    #[error("the redo copier stopped")]
    RedoStopped,
    /// The server keeps tablespaces outside its datadir that the backup
    /// has no place for: on MariaDB a file no `.isl` in the datadir links
    /// to, on MySQL a general or undo tablespace whose name cannot be a
    /// file name (`/` or NUL in it, `.`, `..`). Found before anything was
    /// copied.
    #[error("the server has tablespaces outside its datadir, which xb cannot back up from this server yet: {}", files.join(", "))]
    TablespacesOutside {
        /// The files, as the server reports them.
        files: Vec<String>,
    },
    /// Two tablespaces would be stored in the backup under one name (a
    /// MySQL general or undo tablespace outside the datadir is stored as
    /// `<name>.ibd`/`.ibu` in the backup's root, which a file in the
    /// datadir may already be called); found before anything was copied,
    /// so nothing was overwritten.
    #[error("two tablespaces would both be stored in the backup as {name}: {}", files.join(", "))]
    TablespaceNameClash {
        /// The name in the backup.
        name: String,
        /// The two files on the server.
        files: Vec<String>,
    },
    /// Tablespaces the server has are not in the backup (created while
    /// the copy ran without DDL protection, say).
    #[error("the backup would miss tablespaces the server has: {}", files.join(", "))]
    TablespacesMissing {
        /// The files.
        files: Vec<String>,
    },
    /// With `--lock-ddl-per-table`, DDL waited for xb's metadata lock on a
    /// table stored in a shared tablespace (the system or a general
    /// tablespace); to take the instance lock xb had to let it run, and
    /// what it changed cannot be copied again table by table.
    #[error(
        "DDL on {table} ran while the backup ended its metadata locks, and the table lives in a shared tablespace that xb cannot copy again"
    )]
    DdlOnSharedTablespace {
        /// The table, quoted.
        table: String,
    },
    /// With `--lock-ddl=off`, DDL changed tablespaces while the InnoDB
    /// copy ran without a DDL lock.
    #[error(
        "DDL ran during the copy (--lock-ddl=off): {}",
        ddl_summary(changed, renamed, dropped)
    )]
    DdlDuringCopy {
        /// Tablespaces, or non-transactional table files, created or
        /// changed (their backup names).
        changed: Vec<String>,
        /// Tablespaces renamed, `old -> new`.
        renamed: Vec<String>,
        /// Tablespaces dropped.
        dropped: Vec<String>,
    },
    /// The base of an incremental backup does not fit this server; found
    /// before the target was touched.
    #[error("the incremental base {base} cannot be used: {problem}")]
    IncrementalBase {
        /// The base directory or `--incremental-lsn=N`.
        base: String,
        /// What is wrong with it.
        problem: crate::run::incremental::BaseProblem,
    },
    /// `--history`: the history table cannot be made or written.
    #[error("the backup history table {table}: `{statement}` failed: {message}")]
    History {
        /// `mysql.mariadb_backup_history` or `PERCONA_SCHEMA.xtrabackup_history`.
        table: String,
        /// The statement.
        statement: String,
        /// The server's message.
        message: String,
    },
    /// `--page-tracking` on a server without MySQL's backup component.
    #[error(
        "--page-tracking needs MySQL's component_mysqlbackup, which this server has not installed"
    )]
    PageTrackingUnavailable,
    /// `--ftwrl-wait-timeout`: a long statement still ran when the wait
    /// ended. `FLUSH TABLES WITH READ LOCK` was not asked for: asked, it
    /// would have waited for that statement with every later statement on
    /// its tables queued behind it.
    #[error(
        "a statement still ran after {waited} s of --ftwrl-wait-timeout, so FLUSH TABLES WITH READ LOCK was not asked for: connection {id} (user {user}) has run for {seconds} s: {query}"
    )]
    LongQueryBeforeReadLock {
        /// Its processlist id.
        id: u64,
        /// Its user.
        user: String,
        /// How long it had run.
        seconds: u64,
        /// The statement, shortened.
        query: String,
        /// Seconds waited (`--ftwrl-wait-timeout`).
        waited: u64,
    },
    /// `--backup-lock-timeout`: every attempt at the backup lock timed out
    /// (DDL held it).
    #[error(
        "{lock} was not granted in {attempts} attempt(s) of {seconds} s (--backup-lock-timeout, --backup-lock-retry-count){}",
        if holders.is_empty() { String::new() } else { format!("; held by {}", holders.join("; ")) }
    )]
    BackupLockTimeout {
        /// The statement.
        lock: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds each waited.
        seconds: u64,
        /// Sessions holding it, when the server says.
        holders: Vec<String>,
    },
    /// `--safe-slave-backup`: replicated temporary tables stayed open on
    /// the replica for the whole `--safe-slave-backup-timeout`, so no
    /// moment came when its non-InnoDB tables could be copied without a
    /// temporary table a restored replica would lack. Its SQL threads were
    /// started again as they were.
    #[error(
        "the replica still has {open_temp_tables} open temporary table(s) after {seconds} s (--safe-slave-backup-timeout)"
    )]
    SafeSlaveTimeout {
        /// `Slave_open_temp_tables` / `Replica_open_temp_tables` at the end.
        open_temp_tables: u64,
        /// The timeout.
        seconds: u64,
    },
    /// A TokuDB step failed. Its checkpoint lock and read lock were released
    /// before this error was returned (or the message says why not).
    #[error("{0}")]
    TokuDb(xb_tokudb::TokuError),
}

/// How a session was lost; chooses the words and the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLoss {
    /// The server ended the session while it kept running (`KILL`, a
    /// watchdog such as pt-kill, an idle timeout).
    Killed,
    /// The server stopped answering or cannot be reached any more
    /// (crashed, shut down, killed by the OOM killer, network gone).
    ServerGone,
    /// The connection broke and it is not known which of the two it was
    /// (a statement saw the broken connection before the watcher could tell).
    Broken,
}

impl std::fmt::Display for SessionLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionLoss::Killed => "connection killed",
            SessionLoss::ServerGone => "server gone",
            SessionLoss::Broken => "connection broken",
        })
    }
}

/// Did a statement fail because its connection is gone (rather than
/// because the server refused it)? The driver's I/O errors and a closed
/// connection say so, as do the server's own goodbyes: MariaDB's
/// ER_CONNECTION_KILLED (1927), MySQL's ER_CLIENT_INTERACTION_TIMEOUT
/// (4031), and ER_SERVER_SHUTDOWN (1053).
fn loss_of(e: &mysql_async::Error) -> Option<SessionLoss> {
    match e {
        mysql_async::Error::Io(_)
        | mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
            Some(SessionLoss::Broken)
        }
        mysql_async::Error::Server(se) => match se.code {
            1927 | 4031 => Some(SessionLoss::Killed),
            1053 => Some(SessionLoss::ServerGone),
            _ => None,
        },
        _ => None,
    }
}

/// The hint for an overwritten redo log: which side was too slow, with the
/// rates measured when there are any.
fn overwritten_hint(lag: Option<&crate::run::lag::LagReport>) -> String {
    use crate::run::lag::mib_per_s;
    let fix = "increase the redo log (innodb_log_file_size on MariaDB, \
               innodb_redo_log_capacity on MySQL), give the backup a faster target or \
               less throttling, or back up at a quieter time";
    match lag {
        Some(r) => format!(
            "The server wrote redo at {} while the copy advanced at {}, and the copy fell up to \
             {} MiB behind a {} MiB log: {fix}.",
            mib_per_s(r.server_rate),
            mib_per_s(r.copy_rate),
            crate::run::lag::mib(r.max_lag),
            crate::run::lag::mib(r.capacity)
        ),
        None => format!("The server wrote redo faster than it was copied: {fix}."),
    }
}

const NO_SPACE_HINT: &str = "Free space on the target file system or choose another --target-dir, then take the backup again.";

impl BackupError {
    /// A failed statement, with the server's error number when it sent one.
    ///
    /// A connection that broke under the statement is
    /// [`BackupError::SessionLost`], not a refusal: its hint must not send
    /// the user after privileges.
    pub(crate) fn sql(statement: &str, e: &mysql_async::Error) -> Self {
        if let Some(loss) = loss_of(e) {
            return BackupError::SessionLost {
                session: "the connection".into(),
                loss,
                detail: format!("statement `{statement}` failed: {e}"),
            };
        }
        BackupError::Sql {
            statement: statement.into(),
            message: e.to_string(),
            server_code: match e {
                mysql_async::Error::Server(se) => Some(se.code),
                _ => None,
            },
        }
    }

    /// A statement whose answer made no sense (no row, no such line).
    pub(crate) fn sql_answer(statement: &str, message: impl Into<String>) -> Self {
        BackupError::Sql {
            statement: statement.into(),
            message: message.into(),
            server_code: None,
        }
    }

    /// The server's error number, if this is a statement the server refused.
    #[must_use]
    pub fn server_code(&self) -> Option<u16> {
        match self {
            BackupError::Sql { server_code, .. } => *server_code,
            _ => None,
        }
    }

    /// What the user can do.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            BackupError::Access { user, .. } => format!(
                "Check the password of '{user}' (--password, MYSQL_PWD, or the [client] group of --defaults-file)."
            ),
            BackupError::Connect { .. } => {
                "Is the server running and listening there? Check --host/--port or --socket (and the --ssl-* options).".into()
            }
            BackupError::TlsRequired { .. } => {
                "Connect with TLS: --ssl-mode=REQUIRED, or VERIFY_CA/VERIFY_IDENTITY with --ssl-ca (ssl-mode and ssl-ca also work in the option file).".into()
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
            BackupError::RedoLogDisabled { .. } => {
                "Turn redo logging back on with ALTER INSTANCE ENABLE INNODB REDO_LOG (it is meant for bulk loads only), then take the backup again.".into()
            }
            BackupError::SessionLost { loss: SessionLoss::Killed, .. } => {
                "Something on the server ended xb's session (KILL, a watchdog such as pt-kill, an idle timeout): exempt the backup from it, then take the backup again.".into()
            }
            BackupError::SessionLost { loss: SessionLoss::ServerGone, .. } => {
                "The server stopped or cannot be reached: check its error log (crash, OOM killer, restart) and the network, and take the backup again once it is up.".into()
            }
            BackupError::SessionLost { loss: SessionLoss::Broken, .. } => {
                "Check the network between xb and the server and the server's error log, then take the backup again.".into()
            }
            BackupError::Plan { .. } => "Correct the options and run the backup again.".into(),
            BackupError::Target(SeamError::NoSpace { .. }) => NO_SPACE_HINT.into(),
            BackupError::TargetNotEmpty { .. } => {
                "Choose a new --target-dir (or a new name under --target): xb never writes where files are.".into()
            }
            BackupError::Target(SeamError::Sink(e)) if e.is_object_store() => {
                "Nothing in the store is a usable backup until `xb-cli list` shows it complete; fix the cause above and back up again under a new name.".into()
            }
            BackupError::Target(_) => "Check the target path and its permissions.".into(),
            BackupError::Read(SeamError::CorruptPage(_)) => {
                "A page stayed corrupt after every re-read: run CHECK TABLE on that table on the server.".into()
            }
            BackupError::Read(_) => {
                "Check that the file is readable by the user running xb, and the server's error log.".into()
            }
            BackupError::RedoCopy { source, lag, .. } if source.is_overwritten() => {
                overwritten_hint(lag.as_deref())
            }
            BackupError::RedoCopy { source, .. } if source.is_no_space() => NO_SPACE_HINT.into(),
            BackupError::RedoLog(xb_innodb::redo::RedoError::Encrypted { .. }) => {
                "xb cannot read an encrypted redo log yet: back this server up with the vendor's tool, or turn redo encryption off (innodb_redo_log_encrypt / innodb_encrypt_log) if your policy allows.".into()
            }
            BackupError::RedoLog(_)
            | BackupError::RedoLayout { .. }
            | BackupError::RedoCopy { .. }
            | BackupError::RedoStopped => {
                "Check the server's error log; then take the backup again.".into()
            }
            BackupError::TablespacesOutside { .. } => {
                "Tablespaces outside the datadir are backed up when the backup has a place for them: MariaDB DATA DIRECTORY tables (linked by their .isl), and on MySQL DATA DIRECTORY tables and general and undo tablespaces with an absolute path. Still refused: a MariaDB file no .isl names, and a MySQL general or undo tablespace whose name cannot be a file name. Rename the tablespace or move it into the datadir, or back this server up with the vendor's tool.".into()
            }
            BackupError::TablespaceNameClash { .. } => {
                "Nothing was copied. Rename one of the two (ALTER TABLESPACE ... RENAME TO ...; an undo tablespace is dropped and created again under another name), then take the backup again.".into()
            }
            BackupError::TablespacesMissing { .. } => {
                "Nothing was claimed complete. Take the backup again; if it recurs, report it with the file names above.".into()
            }
            BackupError::IncrementalBase { problem, .. } => {
                use crate::run::incremental::BaseProblem as P;
                match problem {
                    P::NotABackup | P::BadCheckpoints(_) => "Give --incremental-basedir the directory of a completed xb, XtraBackup or mariadb-backup backup (the one holding xtrabackup_checkpoints), or the base LSN with --incremental-lsn.".into(),
                    P::Incomplete => "That backup failed; take the incremental on the last backup that completed, or take a full backup.".into(),
                    P::NewerThanServer { .. } => "The base is from another server, or this server was restored from an older backup since: take a full backup.".into(),
                    P::NoHistory { table } => format!("Take a full backup with --history=NAME first (it writes the row to {table}), or give the base with --incremental-basedir or --incremental-lsn."),
                    P::OtherServer { .. } => "Take the incremental of the server the base came from, or a full backup of this one. If it is the same server under a new host name or datadir, give the base's to_lsn with --incremental-lsn instead.".into(),
                }
            }
            BackupError::History { table, .. } => {
                let on = match table.split_once('.') {
                    Some(("mysql", _)) => table.clone(),
                    Some((schema, _)) => format!("{schema}.*"),
                    None => table.clone(),
                };
                format!("As an administrator run: GRANT CREATE, INSERT, SELECT ON {on} TO the backup user; or leave out --history.")
            }
            BackupError::PageTrackingUnavailable => "Install it once with INSTALL COMPONENT 'file://component_mysqlbackup' (MySQL 8.0.18+), or leave out --page-tracking: the incremental then reads every page.".into(),
            BackupError::DdlOnSharedTablespace { .. } => {
                "Nothing was claimed complete. Take the backup again when no DDL runs on that table, or without --lock-ddl-per-table (the default LOCK INSTANCE FOR BACKUP holds DDL off for the whole copy).".into()
            }
            BackupError::DdlDuringCopy { .. } => {
                "Nothing was claimed complete. Take the backup again with --lock-ddl=reduced (DDL runs during the copy and what it changed is copied again) or --lock-ddl=on (DDL waits for the whole copy), or when no DDL runs.".into()
            }
            BackupError::SafeSlaveTimeout { .. } => {
                "The replica's SQL thread runs again as before. Temporary tables on a replica come from statement-based replication of sessions on its source that keep them open: wait for those sessions to end, raise --safe-slave-backup-timeout, or replicate with binlog_format=ROW; then take the backup again.".into()
            }
            BackupError::LongQueryBeforeReadLock { id, .. } => format!(
                "Nothing was locked and no statement queued behind the backup. Take the backup again when that statement has ended (or end it: KILL {id}), raise --ftwrl-wait-timeout, or let the backup kill such statements once the lock waits: --kill-long-queries-timeout=SECONDS (with --kill-long-query-type=all to kill writes too)."
            ),
            BackupError::BackupLockTimeout { .. } => {
                "DDL that runs long (or waits itself, holding the lock) kept the backup lock from xb; nothing was copied under it. Let that DDL end (or KILL it), raise --backup-lock-timeout or --backup-lock-retry-count, then take the backup again.".into()
            }
            BackupError::TokuDb(e) if toku_no_space(e) => NO_SPACE_HINT.into(),
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
            BackupError::Connect { .. } | BackupError::TlsRequired { .. } => 11,
            BackupError::Privileges { .. } => 12,
            BackupError::Sql { .. } => 13,
            BackupError::Unsupported { .. } => 14,
            BackupError::Datadir { .. } => 15,
            BackupError::RedoLogDisabled { .. } => 14,
            BackupError::SessionLost { .. } => 16,
            BackupError::Plan { .. }
            | BackupError::Target(_)
            | BackupError::TargetNotEmpty { .. } => 20,
            BackupError::Read(_) => 21,
            BackupError::RedoLog(_)
            | BackupError::RedoLayout { .. }
            | BackupError::RedoCopy { .. }
            | BackupError::RedoStopped => 22,
            BackupError::TokuDb(_) => 23,
            BackupError::TablespacesOutside { .. } | BackupError::TablespaceNameClash { .. } => 14,
            BackupError::TablespacesMissing { .. }
            | BackupError::DdlOnSharedTablespace { .. }
            | BackupError::DdlDuringCopy { .. } => 24,
            BackupError::IncrementalBase { .. } => 25,
            BackupError::History { .. } => 29,
            BackupError::PageTrackingUnavailable => 14,
            BackupError::SafeSlaveTimeout { .. } => 26,
            BackupError::LongQueryBeforeReadLock { .. } => 27,
            BackupError::BackupLockTimeout { .. } => 28,
        }
    }
}

impl From<xb_innodb::redo::RedoError> for BackupError {
    fn from(e: xb_innodb::redo::RedoError) -> Self {
        BackupError::RedoLog(e)
    }
}

/// Did a TokuDB file copy fail because the target is full? The copier's
/// I/O error carries the kind (see `run::tokudb::TargetCopier`).
fn toku_no_space(e: &xb_tokudb::TokuError) -> bool {
    match e.root_cause() {
        xb_tokudb::TokuError::Copy { source, .. } => {
            source.kind() == std::io::ErrorKind::StorageFull || source.raw_os_error() == Some(28)
        }
        _ => false,
    }
}

/// "a, b created or changed; c -> d renamed": only the kinds that happened.
fn ddl_summary(changed: &[String], renamed: &[String], dropped: &[String]) -> String {
    [
        (changed, "created or changed"),
        (renamed, "renamed"),
        (dropped, "dropped"),
    ]
    .iter()
    .filter(|(list, _)| !list.is_empty())
    .map(|(list, what)| format!("{} {what}", list.join(", ")))
    .collect::<Vec<_>>()
    .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_during_the_copy_names_only_what_happened() {
        let e = BackupError::DdlDuringCopy {
            changed: vec!["db/m.MYD".into(), "db/m.MYI".into()],
            renamed: vec![],
            dropped: vec!["db/t.ibd".into()],
        };
        assert_eq!(
            e.to_string(),
            "DDL ran during the copy (--lock-ddl=off): db/m.MYD, db/m.MYI created or changed; db/t.ibd dropped"
        );
    }

    #[test]
    fn hints_and_codes_follow_the_variant_not_the_words() {
        let full = BackupError::Target(SeamError::NoSpace {
            path: "db/t.ibd".into(),
        });
        assert_eq!(full.code(), 20);
        assert!(full.hint().contains("Free space"), "{}", full.hint());
        let other = BackupError::Target(SeamError::Io {
            path: "db/t.ibd".into(),
            message: "no space left on device (but it is a read error)".into(),
        });
        assert!(!other.hint().contains("Free space"), "{}", other.hint());
        let plan = BackupError::Plan {
            reason: "parallel must be at least 1".into(),
        };
        assert_eq!(plan.code(), 20);
        assert_eq!(BackupError::RedoStopped.code(), 22);
        let encrypted = BackupError::from(xb_innodb::redo::RedoError::Encrypted {
            file: "ib_logfile0".into(),
            marker: "lRK".into(),
        });
        assert_eq!(encrypted.code(), 22);
        assert!(
            encrypted.hint().contains("encrypted redo"),
            "{}",
            encrypted.hint()
        );
    }

    #[test]
    fn a_broken_connection_is_a_lost_session_not_a_refused_statement() {
        let io =
            mysql_async::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let closed = mysql_async::Error::from(mysql_async::DriverError::ConnectionClosed);
        for e in [io, closed] {
            let b = BackupError::sql("BACKUP STAGE BLOCK_COMMIT", &e);
            assert!(
                matches!(
                    b,
                    BackupError::SessionLost {
                        loss: SessionLoss::Broken,
                        ..
                    }
                ),
                "{b:?}"
            );
            assert_eq!(b.code(), 16);
            assert!(b.to_string().contains("BACKUP STAGE BLOCK_COMMIT"), "{b}");
            assert!(!b.hint().contains("privilege"), "{}", b.hint());
        }
        let server = |code: u16| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            })
        };
        let killed = BackupError::sql("SELECT 1", &server(1927));
        assert!(killed.to_string().contains("connection killed"), "{killed}");
        let gone = BackupError::sql("SELECT 1", &server(1053));
        assert!(gone.to_string().contains("server gone"), "{gone}");
        for b in [killed, gone] {
            assert_eq!(b.code(), 16);
            assert!(!b.hint().contains("privilege"), "{}", b.hint());
        }
        // a refusal stays a refusal, with the server's number
        let refused = BackupError::sql("LOCK INSTANCE FOR BACKUP", &server(1227));
        assert_eq!(refused.server_code(), Some(1227));
        assert_eq!(refused.code(), 13);
    }

    #[test]
    fn a_replica_that_never_became_safe_has_its_own_code() {
        let e = BackupError::SafeSlaveTimeout {
            open_temp_tables: 2,
            seconds: 300,
        };
        assert_eq!(e.code(), 26);
        assert!(
            e.to_string()
                .contains("2 open temporary table(s) after 300 s"),
            "{e}"
        );
        assert!(
            e.hint().contains("--safe-slave-backup-timeout"),
            "{}",
            e.hint()
        );
    }

    #[test]
    fn disabled_redo_logging_names_the_fix() {
        let e = BackupError::RedoLogDisabled {
            version: "9.7.0".into(),
        };
        assert_eq!(e.code(), 14);
        assert!(e.to_string().contains("redo logging is disabled"), "{e}");
        assert!(
            e.hint().contains("ALTER INSTANCE ENABLE INNODB REDO_LOG"),
            "{}",
            e.hint()
        );
    }

    #[test]
    fn lock_waits_name_the_statement_and_the_way_out() {
        let e = BackupError::LongQueryBeforeReadLock {
            id: 42,
            user: "app".into(),
            seconds: 7,
            query: "SELECT SLEEP(600)".into(),
            waited: 3,
        };
        assert_eq!(e.code(), 27);
        assert!(
            e.to_string()
                .contains("connection 42 (user app) has run for 7 s: SELECT SLEEP(600)"),
            "{e}"
        );
        assert!(
            e.hint().contains("--kill-long-queries-timeout") && e.hint().contains("KILL 42"),
            "{}",
            e.hint()
        );
        let b = BackupError::BackupLockTimeout {
            lock: "LOCK INSTANCE FOR BACKUP".into(),
            attempts: 3,
            seconds: 1,
            holders: vec!["connection 9 (user app, 5 s): ALTER TABLE t".into()],
        };
        assert_eq!(b.code(), 28);
        assert!(
            b.to_string()
                .ends_with("; held by connection 9 (user app, 5 s): ALTER TABLE t"),
            "{b}"
        );
        assert!(
            b.hint().contains("--backup-lock-retry-count"),
            "{}",
            b.hint()
        );
    }
}
