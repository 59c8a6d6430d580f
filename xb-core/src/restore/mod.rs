//! `restore`: put a prepared backup into a server's datadir (`copy-back`,
//! `move-back`), without a vendor tool.
//!
//! 1. check the backup: complete, `backup_type = full-prepared`
//!    ([`backup::check`]);
//! 2. find the destinations: `datadir`, `innodb_data_home_dir`,
//!    `innodb_log_group_home_dir`, `innodb_undo_directory`, from the
//!    options or the option file's server groups, and the owner of the
//!    files ([`owner`]);
//! 3. plan where each backup file goes ([`plan`]: pure), original paths
//!    for tablespaces kept outside the datadir included;
//! 4. refuse before writing anything: a destination directory that is not
//!    empty (unless `force_non_empty_directories`), any file that would be
//!    replaced (always), a destination that cannot be written;
//! 5. write ([`write`]): the incomplete marker first, then the data with
//!    N workers, every file and directory fsynced, then the redo log,
//!    renamed into place last, then the marker removed.
//!
//! A half-written datadir must not start as if it were complete. What the
//! servers do with one was found by starting them on a prepared backup
//! restored without its redo (MariaDB 10.5, 10.11, 11.8, MySQL 9.7):
//! MariaDB 10.5 starts without `ib_logfile0` (it makes a new, empty log),
//! 10.11 and 11.8 refuse ("File ./ib_logfile0 was not found"); every MariaDB
//! refuses an `ib_logfile0` whose size is not a multiple of 512 or whose
//! header is invalid, and refuses to create a system tablespace next to an
//! existing log. MySQL 9.7 refuses without `#innodb_redo/` ("Neither found
//! #innodb_redo subdirectory, nor ib_logfile* files") but starts afresh
//! with an empty one. So on MariaDB a placeholder `ib_logfile0` the server
//! refuses is written before anything else and replaced by the real log
//! with one rename at the end; on MySQL the log is written into
//! `#innodb_redo.xb-restore/` and that directory renamed to `#innodb_redo`
//! at the end. Either way a failure leaves a datadir no server starts on,
//! and the marker file [`MARKER`] saying why.
//!
//! `move-back` moves files instead (a hard link and an unlink: never over an
//! existing file), copying across file systems. If it fails, what it
//! linked goes back into the backup by a rename, and what it copied was
//! never removed from the backup (that happens only after the redo is in
//! place), so a failed move-back leaves the backup whole.

mod backup;
mod error;
pub mod owner;
pub mod plan;
mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use error::RestoreError;
use error::io_err;
pub use plan::{Dirs, Plan};

use crate::optfile;

/// Marker file a restore keeps in the datadir until it has finished; after
/// a failure it holds the error.
pub const MARKER: &str = "xb_restore_incomplete";

/// Copy the files, or move them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `copy-back`: the backup stays as it was.
    #[default]
    Copy,
    /// `move-back`: files are moved (renamed on one file system), so the
    /// restore needs no second copy's space; the backup is used up.
    Move,
}

/// What `restore` needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The prepared backup directory.
    pub target_dir: PathBuf,
    /// Where to restore; default: `datadir` of `defaults_file`.
    pub datadir: Option<PathBuf>,
    /// The server's option file: `datadir`, `innodb_data_home_dir`,
    /// `innodb_log_group_home_dir`, `innodb_undo_directory` and `user` of
    /// its `[mysqld]`, `[server]`, `[mariadb]` and `[mariadbd]` groups.
    pub defaults_file: Option<PathBuf>,
    /// Files written at once (default 1, as XtraBackup and mariadb-backup:
    /// one stream keeps a spinning disk sequential; raise it for SSDs).
    pub parallel: usize,
    /// Write into directories that hold files already; a file that exists
    /// is still never replaced.
    pub force_non_empty_directories: bool,
    /// Owner of the restored files (see [`owner`]); only root may name
    /// another user.
    pub chown: Option<String>,
    /// Copy or move.
    pub mode: Mode,
}

impl RestoreOptions {
    /// Options for restoring `target_dir` with defaults for everything else.
    #[must_use]
    pub fn new(target_dir: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            target_dir: target_dir.into(),
            datadir: None,
            defaults_file: None,
            parallel: 1,
            force_non_empty_directories: false,
            chown: None,
            mode: Mode::Copy,
        }
    }
}

/// What `restore` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Where each kind of file went.
    pub dirs: Dirs,
    /// Files written.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files that went outside the four directories (tablespaces with
    /// `DATA DIRECTORY`).
    pub external: Vec<PathBuf>,
    /// Backup-only files left behind.
    pub skipped: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// The server's groups, as it reads them.
const SERVER_GROUPS: &[&str] = &["mysqld", "server", "mariadb", "mariadbd"];

/// `p` made absolute against `base` (the server resolves the InnoDB
/// directories against its datadir, the datadir against its working
/// directory); an empty value is `base` itself.
fn absolute(base: &Path, p: &str) -> PathBuf {
    if p.is_empty() {
        base.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The destinations and the option file's `user`.
fn destinations(opts: &RestoreOptions) -> Result<(Dirs, Option<String>), RestoreError> {
    let file = match &opts.defaults_file {
        Some(p) => optfile::read_groups(p, SERVER_GROUPS)?,
        None => optfile::Options::default(),
    };
    let cwd = std::env::current_dir().map_err(io_err(Path::new(".")))?;
    let datadir = match (&opts.datadir, file.get("datadir")) {
        (Some(d), _) => cwd.join(d),
        (None, Some(d)) if !d.is_empty() => cwd.join(d),
        _ => return Err(RestoreError::NoDatadir),
    };
    let inner = |key: &str| absolute(&datadir, &file.get(key).unwrap_or_default());
    let dirs = Dirs {
        data_home: inner("innodb_data_home_dir"),
        log_home: inner("innodb_log_group_home_dir"),
        undo_dir: inner("innodb_undo_directory"),
        datadir: datadir.clone(),
    };
    Ok((dirs, file.get("user")))
}

/// Step 4 of the module docs: nothing has been written when this fails.
fn refusals(plan: &Plan, dirs: &Dirs, force: bool) -> Result<(), RestoreError> {
    if !force {
        for d in dirs.distinct() {
            match std::fs::read_dir(d) {
                Ok(mut it) => {
                    if it.next().is_some() {
                        return Err(RestoreError::NotEmpty {
                            dir: d.to_path_buf(),
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(d)(e)),
            }
        }
    }
    for p in plan.new_paths() {
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(RestoreError::Exists { file: p });
        }
    }
    let mut parents: Vec<&Path> = plan
        .items
        .iter()
        .filter_map(|i| i.dest.parent())
        .chain(dirs.distinct())
        .collect();
    parents.sort();
    parents.dedup();
    let mut probed: Vec<&Path> = Vec::new();
    for d in parents {
        // the nearest directory that exists is where the first new entry
        // goes; a file created and removed there proves it can be written
        // (permissions, a read-only mount), which mode bits alone do not
        let Some(existing) = d.ancestors().find(|a| a.is_dir()) else {
            continue;
        };
        if probed.contains(&existing) {
            continue;
        }
        probed.push(existing);
        tempfile::Builder::new()
            .prefix(".xb-restore-probe")
            .tempfile_in(existing)
            .map_err(|source| RestoreError::NotWritable {
                dir: existing.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// Restores the backup in `opts.target_dir` (see the module docs).
///
/// # Errors
/// [`RestoreError`]: a refusal before anything was written, or
/// [`RestoreError::Failed`] naming the file after the datadir was marked
/// incomplete.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let backup = std::fs::canonicalize(&opts.target_dir).map_err(io_err(&opts.target_dir))?;
    backup::check(&backup)?;
    let (dirs, file_user) = destinations(opts)?;
    let owner = owner::choose(opts.chown.as_deref(), file_user.as_deref(), &dirs.datadir)?;
    let listing = backup::list(&backup)?;
    let plan = plan::plan(&listing, &dirs)?;
    refusals(&plan, &dirs, opts.force_non_empty_directories)?;
    let external: Vec<PathBuf> = plan
        .items
        .iter()
        .filter(|i| !dirs.distinct().iter().any(|d| i.dest.starts_with(d)))
        .map(|i| i.dest.clone())
        .collect();
    tracing::info!(backup = %backup.display(), datadir = %dirs.datadir.display(), files = plan.len(), external = external.len(), skipped = plan.skipped.len(), mode = ?opts.mode, parallel = opts.parallel, "restoring");
    let bytes = write::write(&backup, &plan, &dirs, opts, owner)?;
    Ok(RestoreReport {
        files: plan.len(),
        bytes,
        external,
        skipped: plan.skipped.len(),
        dirs,
        elapsed: started.elapsed(),
    })
}
