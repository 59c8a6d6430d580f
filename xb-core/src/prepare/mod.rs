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
//! 2. choose the server binary: of the source's family and release series
//!    (`server_version` in `xtrabackup_info` against `<binary> --version`),
//!    refusing a wrong one: steps 1 and 2 only read, so a refused backup is
//!    left exactly as it was;
//! 3. apply the DDL marker files a vendor backup may hold (`.del`, `.ren`,
//!    `.new`, in that order, as mariadb-backup does), once every one has been
//!    checked to act only inside the backup directory; then extend the
//!    system tablespace to the size its page 0 or the log gives it, as
//!    recovery would (`system_space`: MariaDB 10.5 refuses to start on a
//!    shorter `ibdata1`, which a copy of a growing file is);
//! 4. point recovery at the backup's own copies of tables the source kept
//!    outside its datadir, never at the source's files: on MariaDB the
//!    `.isl` files and the log's file names (`remote`), put back after step
//!    5 or on failure; on MySQL nothing in the backup changes, the server
//!    is only told to look for files inside the backup (`recovery`);
//! 5. start the server binary on the backup with the backup's own InnoDB
//!    settings (`backup-my.cnf`) and nothing else that could change data (no
//!    networking, binlog, init-file, events, replication, grant-table or
//!    system-table upgrade), and wait until it is ready: by then redo
//!    recovery has run to the end of the copied log;
//! 6. shut it down cleanly (SIGTERM) so every page is flushed and the log
//!    holds a clean checkpoint;
//! 7. record `backup_type = full-prepared`, or `log-applied` after
//!    `--apply-log-only` (XtraBackup's words; mariadb-backup, which never
//!    rolls back, writes `log-applied`).
//!
//! With `incremental_dir`, step 1 also checks the incremental against the
//! base and the log measured is the incremental's; before step 3 the
//! incremental is merged into the base (`incremental`). With
//! `apply_log_only` the server of step 5 applies the redo and nothing else
//! (`recovery::apply_log_only`).
//!
//! Supported today: MariaDB 10.5–10.7 backups (`ib_logfile0` in the 10.5
//! block format), MariaDB 10.8+ backups (`ib_logfile0` in the server's own
//! "Phys" format, as xb and mariadb-backup write it) and MySQL 8.0.30+
//! backups (`#innodb_redo/#ib_redoN` in the server's own format, as xb
//! writes it). Other formats are refused with a clear error rather than
//! half-prepared. The copied log is measured with [`xb_innodb::redo`], the
//! reader the backup copied it with, so prepare parses no format itself.

pub mod check;
mod error;
mod export;
mod incremental;
mod markers;
pub mod memory;
mod recovery;
mod remote;
pub mod replay;
mod server;
mod session;
mod system_space;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xb_innodb::redo::{RedoError, RedoFormat, RedoLog};

use error::io_err;
pub use error::{PrepareError, UnsafeMarkerPath};
pub use export::{ExportReport, NotExported};
pub use incremental::{INCREMENTAL, MERGING, Merged};

use crate::checkpoints::Checkpoints;

/// Name of the file that marks a backup that did not complete.
pub const INCOMPLETE_MARKER: &str = "xtrabackup_incomplete";

/// `backup_type` of a backup whose redo was applied and nothing else
/// (`--apply-log-only`, and every mariadb-backup prepare): a base for
/// incrementals.
pub const LOG_APPLIED: &str = "log-applied";
/// `backup_type` of a backup whose unfinished transactions were rolled
/// back too: ready to restore, no base for incrementals.
pub const FULL_PREPARED: &str = "full-prepared";

/// What `prepare` needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PrepareOptions {
    /// The backup directory (an extracted backup, not a stream).
    pub target_dir: PathBuf,
    /// The server binary (`mariadbd`, `mysqld`); default: the first of those
    /// in `PATH` whose version fits the backup. Either way it must be of the
    /// source's family and release (see the `server` module), or prepare
    /// refuses before changing anything.
    pub server_binary: Option<PathBuf>,
    /// An option file whose groups are read before ours (for settings such as
    /// `lc-messages-dir`/`plugin-dir` of a non-standard install). Our own
    /// settings (datadir, socket, and the ones that keep recovery from
    /// changing data: no networking, binlog, init-file, events, replication
    /// or grant-table changes) come later in the option file and so win.
    pub server_defaults_file: Option<PathBuf>,
    /// Buffer pool for recovery: a size the server reads (`1G`), or
    /// `auto` (the default), sized to the redo to apply (see the `memory`
    /// module).
    pub use_memory: String,
    /// How long recovery may take before we give up (default one hour).
    pub timeout: Duration,
    /// Apply the redo only: no rollback of unfinished transactions, no
    /// purge, nothing written but redo apply, so that the pages stay in the
    /// source's LSN space and incrementals can be applied on top
    /// (XtraBackup's `--apply-log-only`). The backup is then marked
    /// `log-applied`; without it, `full-prepared`.
    pub apply_log_only: bool,
    /// An incremental backup to apply onto `target_dir`, which must be a
    /// full backup prepared with `apply_log_only` (or by mariadb-backup) up
    /// to exactly the incremental's `from_lsn` (XtraBackup's
    /// `--incremental-dir`). See the `incremental` module.
    pub incremental_dir: Option<PathBuf>,
    /// After recovery, while the prepare server is still up, have it write
    /// each InnoDB table's `.cfg` (and `.cfp`) for `ALTER TABLE … IMPORT
    /// TABLESPACE` (see the `export` module); tables that cannot be
    /// exported are warnings in [`PrepareReport::export`]. Refused with
    /// `apply_log_only`. On a backup already `full-prepared`, as with
    /// XtraBackup, the server starts once more (recovery has nothing left
    /// to do) and only exports.
    pub export: bool,
    /// After recovery, while the prepare server is still up, run `CHECK
    /// TABLE` on every table (see the `check` module); the findings are in
    /// [`PrepareReport::checked`]. Not done with `apply_log_only` (the
    /// server then stops before the rollback that makes tables readable).
    pub check_tables: bool,
    /// After recovery, while the prepare server is still up, apply this
    /// range of binlog (see the `replay` module): a point-in-time restore.
    pub replay: Option<replay::Replay>,
}

impl PrepareOptions {
    /// Options for `target_dir` with defaults for everything else.
    #[must_use]
    pub fn new(target_dir: impl Into<PathBuf>) -> Self {
        PrepareOptions {
            target_dir: target_dir.into(),
            server_binary: None,
            server_defaults_file: None,
            use_memory: memory::AUTO.into(),
            timeout: Duration::from_secs(3600),
            apply_log_only: false,
            incremental_dir: None,
            export: false,
            check_tables: false,
            replay: None,
        }
    }

    /// Sets the server binary.
    #[must_use]
    pub fn server_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_binary = Some(path.into());
        self
    }

    /// Sets [`PrepareOptions::apply_log_only`].
    #[must_use]
    pub fn apply_log_only(mut self, yes: bool) -> Self {
        self.apply_log_only = yes;
        self
    }

    /// Sets [`PrepareOptions::export`].
    #[must_use]
    pub fn export(mut self, yes: bool) -> Self {
        self.export = yes;
        self
    }

    /// Sets [`PrepareOptions::check_tables`].
    #[must_use]
    pub fn check_tables(mut self, yes: bool) -> Self {
        self.check_tables = yes;
        self
    }

    /// Sets [`PrepareOptions::incremental_dir`].
    #[must_use]
    pub fn incremental_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.incremental_dir = Some(dir.into());
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
    /// What merging `--incremental-dir` did, when one was given.
    pub merged: Option<Merged>,
    /// The backup was `full-prepared` already: no redo was applied, the
    /// server only started for `--export` (the LSNs are the recorded ones).
    pub already_prepared: bool,
    /// What `--export` did, when asked.
    pub export: Option<ExportReport>,
    /// What `CHECK TABLE` found, with [`PrepareOptions::check_tables`].
    pub checked: Option<check::CheckReport>,
}

/// The backup's copied redo, named as errors name it: `#innodb_redo/`
/// (MySQL 8.0.30+) when the backup has one, else `ib_logfile0`; the same
/// choice [`RedoLog::open`] makes.
pub(crate) fn log_path(dir: &Path) -> PathBuf {
    let mysql = dir.join("#innodb_redo");
    if mysql.is_dir() {
        mysql
    } else {
        dir.join("ib_logfile0")
    }
}

/// The format, the checkpoint LSN and the end of valid log of the backup's
/// copied redo in `dir`, read through the same redo API the backup copied it with, so
/// prepare keeps no second parser of any format: the server recovers from
/// that checkpoint up to the last whole, checksummed record, and this is
/// exactly the extent the scan finds.
///
/// # Errors
/// [`PrepareError::Io`] when there is no log or it cannot be read,
/// [`PrepareError::UnsupportedLog`] for a log in a format prepare does not
/// hand to a server (the classic multi-file format) or one the reader
/// refuses (the reason says why).
pub(crate) fn log_extent(dir: &Path) -> Result<(RedoFormat, u64, u64), PrepareError> {
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
    // (a partly written last block included: a backup's copy is final, no
    // server writes it); the bytes are not kept.
    let mut scanner = log.scanner(checkpoint);
    scanner.trust_up_to(u64::MAX);
    let end = scanner
        .poll(&mut log, &mut |_| Ok(()))
        .map_err(unsupported)?;
    Ok((log.format(), checkpoint, end))
}

/// What `xtrabackup_checkpoints` says after a prepare: `log-applied` when
/// only the redo was applied (incrementals may follow), `full-prepared`
/// when unfinished transactions were rolled back too (XtraBackup's words).
fn prepared_type(opts: &PrepareOptions) -> &'static str {
    if opts.apply_log_only {
        LOG_APPLIED
    } else {
        FULL_PREPARED
    }
}

/// Prepares the backup in `opts.target_dir` (see the module docs).
///
/// # Errors
/// [`PrepareError`] naming the file or program at fault.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport, PrepareError> {
    let dir = fs::canonicalize(&opts.target_dir).map_err(io_err(&opts.target_dir))?;
    if opts.export && opts.apply_log_only {
        return Err(PrepareError::ExportWithApplyLogOnly { dir });
    }
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
    // The backup whose redo recovery runs: the incremental's when one is
    // merged (checked here, before anything changes), else the target's.
    let inc = match &opts.incremental_dir {
        Some(inc) => {
            let inc = fs::canonicalize(inc).map_err(io_err(inc))?;
            let inc_cps = incremental::check(&dir, &cps, &inc)?;
            Some((inc, inc_cps))
        }
        None if opts.export && cps.backup_type == FULL_PREPARED => {
            return export_prepared(opts, &dir, &cps);
        }
        None if cps.backup_type != "full-backuped" => {
            return Err(PrepareError::WrongBackupType {
                dir,
                backup_type: cps.backup_type,
            });
        }
        None => None,
    };
    let redo_dir = inc.as_ref().map_or(dir.as_path(), |(p, _)| p.as_path());
    let needed_lsn = inc.as_ref().map_or(cps.last_lsn, |(_, c)| c.last_lsn);
    let (redo_format, first_lsn, log_end_lsn) = log_extent(redo_dir)?;
    if log_end_lsn < needed_lsn {
        return Err(PrepareError::LogTooShort {
            file: log_path(redo_dir),
            log_end: log_end_lsn,
            needed: needed_lsn,
        });
    }
    // Everything above only read the backup; the server is chosen (and a
    // wrong one refused) before the first change below.
    let source = server::source_version(redo_dir, redo_format)?;
    let (server, server_version) = server::find_server(opts, &source)?;
    let merged = match &inc {
        Some((inc, inc_cps)) => {
            // a failure half-way leaves a base no prepare takes for one
            let mut merging = cps.clone();
            merging.backup_type = MERGING.into();
            fs::write(&cp_file, merging.render()).map_err(io_err(&cp_file))?;
            let merged = incremental::apply(&dir, inc, incremental::initial_pages(redo_format))?;
            tracing::info!(base = %dir.display(), inc = %inc.display(), deltas = merged.deltas, pages = merged.pages, new_spaces = merged.new_spaces, moved = merged.moved, copied = merged.copied, removed = merged.removed, "incremental merged");
            cps.to_lsn = inc_cps.to_lsn;
            cps.last_lsn = inc_cps.last_lsn;
            Some(merged)
        }
        None => None,
    };
    let ddl_markers_applied = markers::apply_ddl_markers(&dir)?;
    if let Some(g) = system_space::grow(&dir, redo_dir, redo_format)? {
        tracing::info!(file = %g.file.display(), from_pages = g.from_pages, to_pages = g.to_pages, "system tablespace extended to the size its page 0 or the log gives it");
    }
    let redirect = remote::Redirect::apply(&dir, redo_format)?;
    tracing::info!(dir = %dir.display(), server = %server.display(), server_version = %server_version.text, source_version = %source.text, first_lsn, last_lsn = cps.last_lsn, remote_tables = redirect.isl_count(), apply_log_only = opts.apply_log_only, "starting recovery");
    // on an error the redirect is dropped, which puts everything back
    let redo = log_end_lsn.saturating_sub(first_lsn);
    let recovered = recovery::recover_with_server(opts, &dir, &server, redo_format, redo)?;
    redirect.restore(true)?;
    cps.backup_type = prepared_type(opts).into();
    fs::write(&cp_file, cps.render()).map_err(io_err(&cp_file))?;
    // recovery is complete and recorded even when the export failed
    let export = recovered.export.transpose()?;
    let checked = recovered.checked.transpose()?;
    Ok(PrepareReport {
        first_lsn,
        log_end_lsn,
        to_lsn: cps.to_lsn,
        last_lsn: cps.last_lsn,
        ddl_markers_applied,
        server_time: recovered.time,
        merged,
        already_prepared: false,
        export,
        checked,
    })
}

/// `--export` on a backup already `full-prepared` (XtraBackup allows a
/// second `--prepare --export`): no log check or marker (both were done),
/// the server of the recorded version starts on the backup, where
/// recovery finds a clean log, and exports.
fn export_prepared(
    opts: &PrepareOptions,
    dir: &Path,
    cps: &Checkpoints,
) -> Result<PrepareReport, PrepareError> {
    let source = server::recorded_version(dir)?;
    let format = server::redo_format_of(&source);
    let (server, server_version) = server::find_server(opts, &source)?;
    // tables the source kept outside its datadir: their .isl files name
    // the source's paths again, so they are pointed at the backup as for
    // a recovery (a prepared log names no file of the source)
    let redirect = remote::Redirect::apply(dir, format)?;
    tracing::info!(dir = %dir.display(), server = %server.display(), server_version = %server_version.text, "starting the server on a prepared backup for --export");
    // a prepared backup has no log left to apply
    let recovered = recovery::recover_with_server(opts, dir, &server, format, 0)?;
    redirect.restore(true)?;
    let export = recovered.export.transpose()?;
    let checked = recovered.checked.transpose()?;
    Ok(PrepareReport {
        first_lsn: cps.last_lsn,
        log_end_lsn: cps.last_lsn,
        to_lsn: cps.to_lsn,
        last_lsn: cps.last_lsn,
        ddl_markers_applied: 0,
        server_time: recovered.time,
        merged: None,
        already_prepared: true,
        export,
        checked,
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
        let (format, first, end) = log_extent(d.path()).unwrap();
        assert_eq!(format, RedoFormat::MariaDb108);
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
