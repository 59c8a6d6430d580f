//! `prepare`: turn a backup into a datadir a server can start on, without a
//! vendor backup tool.
//!
//! A hot backup holds data files copied at different moments plus the redo
//! written while they were copied. Applying that redo is exactly what a
//! server's own crash recovery does, so instead of re-implementing InnoDB
//! recovery we let the real server binary do it:
//!
//! 1. check the backup: `xtrabackup_checkpoints` says `full-backuped`, no
//!    incomplete marker, and the copied log reaches `last_lsn`;
//! 2. apply the DDL marker files a vendor backup may hold (`.del`, `.ren`,
//!    `.new`, in that order, as mariadb-backup does);
//! 3. start the server binary on the backup with the backup's own InnoDB
//!    settings (`backup-my.cnf`), no networking, no binlog, and wait until it
//!    is ready: by then redo recovery has run to the end of the copied log;
//! 4. shut it down cleanly (SIGTERM) so every page is flushed and the log
//!    holds a clean checkpoint;
//! 5. record `backup_type = log-applied` (what mariadb-backup writes).
//!
//! Supported today: MariaDB 10.5–10.7 backups (`ib_logfile0` in the 10.5
//! block format), MariaDB 10.8+ backups (`ib_logfile0` in the server's own
//! "Phys" format, as xb and mariadb-backup write it) and MySQL 8.0.30+
//! backups (`#innodb_redo/#ib_redoN` in the server's own format, as xb
//! writes it). Other formats are refused with a clear error rather than
//! half-prepared. The copied log is measured with [`xb_innodb::redo`], the
//! reader the backup copied it with, so prepare parses no format itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xb_innodb::redo::{RedoError, RedoFormat, RedoLog};

use crate::checkpoints::Checkpoints;

/// Name of the file that marks a backup that did not complete.
pub const INCOMPLETE_MARKER: &str = "xtrabackup_incomplete";

/// What `prepare` needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PrepareOptions {
    /// The backup directory (an extracted backup, not a stream).
    pub target_dir: PathBuf,
    /// The server binary (`mariadbd`); default: searched in `PATH`.
    pub server_binary: Option<PathBuf>,
    /// An option file whose groups are read before ours (for settings such as
    /// `lc-messages-dir`/`plugin-dir` of a non-standard install). Our own
    /// settings (datadir, socket, no networking, no binlog) always win.
    pub server_defaults_file: Option<PathBuf>,
    /// Buffer pool for recovery (default `256M`).
    pub use_memory: String,
    /// How long recovery may take before we give up (default one hour).
    pub timeout: Duration,
}

impl PrepareOptions {
    /// Options for `target_dir` with defaults for everything else.
    #[must_use]
    pub fn new(target_dir: impl Into<PathBuf>) -> Self {
        PrepareOptions {
            target_dir: target_dir.into(),
            server_binary: None,
            server_defaults_file: None,
            use_memory: "256M".into(),
            timeout: Duration::from_secs(3600),
        }
    }

    /// Sets the server binary.
    #[must_use]
    pub fn server_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_binary = Some(path.into());
        self
    }

    /// Sets an option file read before ours.
    #[must_use]
    pub fn server_defaults_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_defaults_file = Some(path.into());
        self
    }
}

/// What `prepare` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReport {
    /// Checkpoint LSN the backup's log starts at.
    pub first_lsn: u64,
    /// End of the copied log.
    pub log_end_lsn: u64,
    /// `to_lsn` of `xtrabackup_checkpoints`.
    pub to_lsn: u64,
    /// `last_lsn` of `xtrabackup_checkpoints`.
    pub last_lsn: u64,
    /// DDL marker files applied (`.del`, `.ren`, `.new`).
    pub ddl_markers_applied: usize,
    /// Time the server took to recover and shut down.
    pub server_time: Duration,
}

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
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl PrepareError {
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
                "A prepared backup needs no second prepare; restore it as it is."
            }
            PrepareError::BadCheckpoints { .. } => {
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
            PrepareError::ServerFailed { .. } => {
                "Read the server's error log above; the server must be the same major version as the source."
            }
            PrepareError::Io { .. } => "Check the path exists and is writable.",
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The backup's copied redo, named as errors name it: `#innodb_redo/`
/// (MySQL 8.0.30+) when the backup has one, else `ib_logfile0`; the same
/// choice [`RedoLog::open`] makes.
fn log_path(dir: &Path) -> PathBuf {
    let mysql = dir.join("#innodb_redo");
    if mysql.is_dir() {
        mysql
    } else {
        dir.join("ib_logfile0")
    }
}

/// The checkpoint LSN and the end of valid log of the backup's copied redo
/// in `dir`, read through the same redo API the backup copied it with, so
/// prepare keeps no second parser of any format: the server recovers from
/// that checkpoint up to the last whole, checksummed record, and this is
/// exactly the extent the scan finds.
///
/// # Errors
/// [`PrepareError::Io`] when there is no log or it cannot be read,
/// [`PrepareError::UnsupportedLog`] for a log in a format prepare does not
/// hand to a server (the classic multi-file format) or one the reader
/// refuses (the reason says why).
fn log_extent(dir: &Path) -> Result<(u64, u64), PrepareError> {
    let file = log_path(dir);
    // The reader's messages start with the file; ours already names it.
    let unsupported = |e: RedoError| {
        let msg = e.to_string();
        let reason = msg
            .strip_prefix(&format!("{}: ", file.display()))
            .map_or_else(|| msg.clone(), str::to_string);
        PrepareError::UnsupportedLog {
            file: file.clone(),
            reason,
        }
    };
    let mut log = match RedoLog::open(dir) {
        Ok(log) => log,
        Err(RedoError::Missing { .. }) => {
            return Err(PrepareError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file, and no #innodb_redo/ directory either",
                ),
                path: file,
            });
        }
        Err(RedoError::Io { reason, .. }) => {
            return Err(PrepareError::Io {
                source: std::io::Error::other(reason),
                path: file,
            });
        }
        Err(e) => return Err(unsupported(e)),
    };
    if log.format() == RedoFormat::Classic {
        // The reader knows this format, but prepare has never handed it to
        // a server (see the module docs): refuse it rather than half-prepare.
        return Err(PrepareError::UnsupportedLog {
            file,
            reason: "classic multi-file redo format (MySQL 5.7 to 8.0.29, MariaDB 10.2 to 10.4)"
                .into(),
        });
    }
    let checkpoint = log.latest_checkpoint().map_err(unsupported)?;
    // One poll reads window after window to the end of what is on disk
    // (a partly written last block included); the bytes are not kept.
    let end = log
        .scanner(checkpoint)
        .poll(&mut log, &mut |_| Ok(()))
        .map_err(unsupported)?;
    Ok((checkpoint, end))
}

/// Applies `.del`, then `.ren`, then `.new` marker files left by DDL during
/// a vendor backup. Returns how many were applied.
fn apply_ddl_markers(dir: &Path) -> Result<usize, PrepareError> {
    let mut markers: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if path.is_dir() {
            for sub in fs::read_dir(&path).map_err(io_err(&path))? {
                markers.push(sub.map_err(io_err(&path))?.path());
            }
        } else {
            markers.push(path);
        }
    }
    let ext_is = |p: &Path, e: &str| p.extension().is_some_and(|x| x == e);
    let mut applied = 0;
    for p in markers.iter().filter(|p| ext_is(p, "del")) {
        let ibd = p.with_extension("ibd");
        if ibd.exists() {
            fs::remove_file(&ibd).map_err(io_err(&ibd))?;
        }
        fs::remove_file(p).map_err(io_err(p))?;
        applied += 1;
    }
    for p in markers.iter().filter(|p| ext_is(p, "ren")) {
        let new_name = fs::read_to_string(p).map_err(io_err(p))?;
        let new_name = new_name.trim();
        let from = p.with_extension("ibd");
        let to = dir.join(new_name.trim_start_matches("./"));
        if from.exists() {
            fs::rename(&from, &to).map_err(io_err(&from))?;
        }
        fs::remove_file(p).map_err(io_err(p))?;
        applied += 1;
    }
    for p in markers.iter().filter(|p| ext_is(p, "new")) {
        let to = p.with_extension("ibd");
        fs::rename(p, &to).map_err(io_err(p))?;
        applied += 1;
    }
    Ok(applied)
}

/// Finds the server binary: the one given, else `mariadbd`/`mysqld` in PATH.
fn find_server(opts: &PrepareOptions) -> Result<PathBuf, PrepareError> {
    if let Some(bin) = &opts.server_binary {
        if bin.is_file() {
            return Ok(bin.clone());
        }
        return Err(PrepareError::ServerNotFound {
            tried: bin.display().to_string(),
        });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut tried = Vec::new();
    for name in ["mariadbd", "mysqld"] {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join(name);
            if cand.is_file() {
                return Ok(cand);
            }
        }
        tried.push(format!("{name} in PATH"));
    }
    Err(PrepareError::ServerNotFound {
        tried: tried.join(", "),
    })
}

/// The `[mysqld]` lines of backup-my.cnf (InnoDB layout of the source).
fn backup_settings(dir: &Path) -> Result<String, PrepareError> {
    let file = dir.join("backup-my.cnf");
    let text = fs::read_to_string(&file).map_err(io_err(&file))?;
    // `loose-`: a setting this server version lacks is skipped, not fatal
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| format!("loose-{l}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn log_tail(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Runs the server on the backup until it is ready, then stops it cleanly.
fn recover_with_server(
    opts: &PrepareOptions,
    dir: &Path,
    server: &Path,
) -> Result<Duration, PrepareError> {
    let run = tempfile::Builder::new()
        .prefix("xb-prepare-")
        .tempdir()
        .map_err(io_err(Path::new("/tmp")))?;
    let cnf = run.path().join("prepare.cnf");
    let err_log = run.path().join("server.err");
    let mut text = String::new();
    if let Some(extra) = &opts.server_defaults_file {
        text.push_str(&format!("!include {}\n", extra.display()));
    }
    text.push_str("[mysqld]\n");
    text.push_str(&backup_settings(dir)?);
    let uid_root = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    text.push_str(&format!(
        "\ndatadir={}\ntmpdir={}\nsocket={}\npid-file={}\nlog-error={}\nskip-networking\nskip-log-bin\n\
         loose-skip-slave-start\nloose-skip-replica-start\ninnodb-buffer-pool-size={}\n{}",
        dir.display(),
        // its own tmpdir: a starting server deletes every '#sql*' file in
        // its tmpdir, which would hurt another server sharing /tmp
        run.path().display(),
        run.path().join("s.sock").display(),
        run.path().join("s.pid").display(),
        err_log.display(),
        opts.use_memory,
        if uid_root { "user=root\n" } else { "" },
    ));
    fs::write(&cnf, text).map_err(io_err(&cnf))?;

    let started = Instant::now();
    let mut child = Command::new(server)
        .arg(format!("--defaults-file={}", cnf.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(server))?;
    let failed = |reason: String| PrepareError::ServerFailed {
        dir: dir.to_path_buf(),
        reason,
        log_tail: log_tail(&err_log),
    };
    // Ready means recovery has finished: the server only accepts
    // connections after redo apply.
    loop {
        if let Some(status) = child.try_wait().map_err(io_err(server))? {
            return Err(failed(format!(
                "the server exited during recovery ({status})"
            )));
        }
        let log = fs::read_to_string(&err_log).unwrap_or_default();
        if log.contains("ready for connections") {
            break;
        }
        if started.elapsed() > opts.timeout {
            stop_child(&mut child);
            return Err(failed(format!(
                "recovery did not finish within {:?}",
                opts.timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = terminate(&mut child, opts.timeout).map_err(&failed)?;
    let log = fs::read_to_string(&err_log).unwrap_or_default();
    if !status.success() || !log.contains("Shutdown complete") {
        return Err(failed(format!("unclean shutdown ({status})")));
    }
    // Keep the server's account of the recovery with the backup.
    let keep = dir.join("xb_prepare.log");
    fs::copy(&err_log, &keep).map_err(io_err(&keep))?;
    Ok(started.elapsed())
}

/// Sends SIGTERM (a clean shutdown for mysqld/mariadbd) and waits.
fn terminate(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !kill.success() {
        return Err(format!("kill -TERM {} failed", child.id()));
    }
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if t0.elapsed() > timeout => {
                stop_child(child);
                return Err("the server did not shut down in time".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the server: {e}")),
        }
    }
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Prepares the backup in `opts.target_dir` (see the module docs).
///
/// # Errors
/// [`PrepareError`] naming the file or program at fault.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport, PrepareError> {
    let dir = fs::canonicalize(&opts.target_dir).map_err(io_err(&opts.target_dir))?;
    let cp_file = dir.join("xtrabackup_checkpoints");
    if !cp_file.is_file() {
        return Err(PrepareError::NotABackup { dir });
    }
    if dir.join(INCOMPLETE_MARKER).exists() {
        return Err(PrepareError::Incomplete { dir });
    }
    let text = fs::read_to_string(&cp_file).map_err(io_err(&cp_file))?;
    let mut cps = Checkpoints::parse(&text).map_err(|reason| PrepareError::BadCheckpoints {
        file: cp_file.clone(),
        reason,
    })?;
    if cps.backup_type != "full-backuped" {
        return Err(PrepareError::WrongBackupType {
            dir,
            backup_type: cps.backup_type,
        });
    }
    let (first_lsn, log_end_lsn) = log_extent(&dir)?;
    if log_end_lsn < cps.last_lsn {
        return Err(PrepareError::LogTooShort {
            file: log_path(&dir),
            log_end: log_end_lsn,
            needed: cps.last_lsn,
        });
    }
    let server = find_server(opts)?;
    let ddl_markers_applied = apply_ddl_markers(&dir)?;
    tracing::info!(dir = %dir.display(), server = %server.display(), first_lsn, last_lsn = cps.last_lsn, "starting recovery");
    let server_time = recover_with_server(opts, &dir, &server)?;
    cps.backup_type = "log-applied".into();
    fs::write(&cp_file, cps.render()).map_err(io_err(&cp_file))?;
    Ok(PrepareReport {
        first_lsn,
        log_end_lsn,
        to_lsn: cps.to_lsn,
        last_lsn: cps.last_lsn,
        ddl_markers_applied,
        server_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xb_innodb::redo108::{Checkpoint108, backup_log_header};

    const CP: Checkpoint108 = Checkpoint108 {
        lsn: 6_982_855,
        end_lsn: 6_982_900,
        offset: 4096,
    };

    /// One mini-transaction of one 16-byte WRITE record, sequence byte 1.
    fn mtr() -> Vec<u8> {
        let mut m = vec![0x3f];
        m.extend(2..17u8);
        let crc = crc32c::crc32c(&m);
        m.push(1);
        m.extend(crc.to_be_bytes());
        m
    }

    fn backup_with(name: &str, bytes: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(name), bytes).unwrap();
        d
    }

    #[test]
    fn a_short_mariadb_10_8_copy_is_read_to_its_last_byte() {
        // far less than 512 bytes of log, like mariadb-backup's copy of an
        // idle server (one 84-byte mtr)
        let mut log = backup_log_header(CP, "Backup 10.11.18");
        log.extend(mtr());
        log.extend(mtr());
        let d = backup_with("ib_logfile0", &log);
        let (first, end) = log_extent(d.path()).unwrap();
        assert_eq!((first, end), (CP.lsn, CP.lsn + 2 * mtr().len() as u64));
    }

    #[test]
    fn a_log_prepare_cannot_use_is_named_with_the_reason() {
        let msg = |d: &tempfile::TempDir| {
            let e = log_extent(d.path()).unwrap_err();
            assert!(matches!(e, PrepareError::UnsupportedLog { .. }), "{e}");
            let file = d.path().join("ib_logfile0").display().to_string();
            let text = e.to_string();
            assert_eq!(text.matches(&file).count(), 1, "named once: {text}");
            text
        };
        let mut id = vec![0xde, 0xad, 0xbe, 0xef];
        id.resize(16, 0);
        let text = msg(&backup_with("ib_logfile0", &id));
        assert!(
            text.ends_with(
                "ib_logfile0: unsupported redo log (unknown redo format 0xdeadbeef at offset 0)"
            ),
            "{text}"
        );

        let header = backup_log_header(CP, "Backup 10.11.18");
        let text = msg(&backup_with("ib_logfile0", &header));
        assert!(text.contains("(12288 bytes is too small"), "{text}");

        let mut classic = vec![0u8; 2560];
        classic[3] = 1;
        let crc = crc32c::crc32c(&classic[..508]);
        classic[508..512].copy_from_slice(&crc.to_be_bytes());
        let text = msg(&backup_with("ib_logfile0", &classic));
        assert!(text.contains("(classic multi-file redo format"), "{text}");

        let d = tempfile::tempdir().unwrap();
        let e = log_extent(d.path()).unwrap_err();
        assert!(matches!(e, PrepareError::Io { .. }), "{e}");
        assert!(e.to_string().contains("ib_logfile0: no such file"), "{e}");

        fs::create_dir(d.path().join("#innodb_redo")).unwrap();
        let e = log_extent(d.path()).unwrap_err();
        assert!(matches!(e, PrepareError::UnsupportedLog { .. }), "{e}");
        assert!(e.to_string().contains("#innodb_redo"), "{e}");
    }
}
