//! `BackupPlan`: what a backup will do, checked before anything touches the
//! server, then run.
//!
//! ```no_run
//! # async fn f() -> Result<(), xb_core::run::BackupError> {
//! use xb_core::plan::BackupPlan;
//! use xb_core::run::{ConnectOptions, NoProgress};
//! let mut server = ConnectOptions::default();
//! server.host = Some("127.0.0.1".into());
//! server.user = "backup".into();
//! let summary = BackupPlan::builder(server)
//!     .target_dir("/backups/today")
//!     .parallel(4)
//!     .build()?
//!     .run(&NoProgress)
//!     .await?;
//! println!("restores to LSN {}", summary.last_lsn);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::run::{
    BackupError, BackupOptions, BackupSummary, ConnectOptions, Destination, Progress, backup,
    files::Filter,
};

/// A validated backup, ready to run.
#[derive(Debug)]
pub struct BackupPlan {
    opts: BackupOptions,
}

/// Builds a [`BackupPlan`].
#[derive(Debug)]
pub struct BackupPlanBuilder {
    connect: ConnectOptions,
    destination: Option<Destination>,
    parallel: usize,
    filter: Filter,
    lock_wait_timeout: u64,
    redo_interval: Duration,
    command_line: Vec<String>,
    lock_ddl_per_table: bool,
    lock_ddl: crate::run::LockDdl,
    incremental: Option<crate::run::IncrementalBase>,
    page_tracking: bool,
    slave_info: bool,
    safe_slave_backup: Option<Duration>,
    read_lock: crate::run::ReadLockOptions,
    backup_lock: (Option<u64>, u32),
    history: Option<String>,
    split_at: u64,
    sink: crate::run::targets::SinkOptions,
}

impl BackupPlan {
    /// Starts a plan for the server at `connect`.
    #[must_use]
    pub fn builder(connect: ConnectOptions) -> BackupPlanBuilder {
        BackupPlanBuilder {
            connect,
            destination: None,
            parallel: 4,
            filter: Filter::default(),
            lock_wait_timeout: 86_400,
            redo_interval: Duration::from_millis(100),
            command_line: Vec::new(),
            lock_ddl_per_table: false,
            lock_ddl: crate::run::LockDdl::default(),
            incremental: None,
            page_tracking: false,
            slave_info: false,
            safe_slave_backup: None,
            read_lock: crate::run::ReadLockOptions::default(),
            backup_lock: (None, 0),
            history: None,
            split_at: crate::run::split_copy::SPLIT_AT,
            sink: crate::run::targets::SinkOptions::default(),
        }
    }

    /// Where the backup goes.
    #[must_use]
    pub fn destination(&self) -> &Destination {
        &self.opts.destination
    }

    /// Copy workers.
    #[must_use]
    pub fn parallel(&self) -> usize {
        self.opts.parallel
    }

    /// Checks what the backup would check and lists what it would copy and
    /// lock, without copying or locking (see [`crate::run::dry_run`]).
    ///
    /// # Errors
    /// What the backup would fail with before its copy.
    pub async fn dry_run(
        &self,
        redo_sample: Duration,
    ) -> Result<crate::run::dry_run::DryRun, BackupError> {
        crate::run::dry_run::dry_run(&self.opts, redo_sample).await
    }

    /// Runs the backup.
    ///
    /// # Errors
    /// [`BackupError`] naming what failed; no success is claimed then.
    pub async fn run(self, progress: &dyn Progress) -> Result<BackupSummary, BackupError> {
        backup(self.opts, progress).await
    }
}

impl BackupPlanBuilder {
    /// Back up into this directory (absent or empty).
    #[must_use]
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.destination = Some(Destination::Dir(dir.into()));
        self
    }

    /// Back up as an xbstream into this writer.
    #[must_use]
    pub fn stream(mut self, out: Box<dyn std::io::Write + Send>) -> Self {
        self.destination = Some(Destination::Stream(out));
        self
    }

    /// Back up into object storage at `location` (see
    /// [`xb_sink::object::ObjectLocation::parse`]).
    #[must_use]
    pub fn target_object(
        mut self,
        location: xb_sink::object::ObjectLocation,
        options: xb_sink::object::ObjectOptions,
    ) -> Self {
        self.destination = Some(Destination::Object(location, options));
        self
    }

    /// Copy workers (default 4; at least 1).
    #[must_use]
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n;
        self
    }

    /// Keep only these databases (`db` or `db.table`); system schemas always stay.
    #[must_use]
    pub fn databases(mut self, names: Vec<String>) -> Self {
        self.filter.databases = Some(names);
        self
    }

    /// Keep only tables whose `db.table` matches.
    #[must_use]
    pub fn tables(mut self, pattern: regex::Regex) -> Self {
        self.filter.tables = Some(pattern);
        self
    }

    /// Long queries and `FLUSH TABLES WITH READ LOCK` (see
    /// [`crate::run::ReadLockOptions`]).
    #[must_use]
    pub fn read_lock(mut self, opts: crate::run::ReadLockOptions) -> Self {
        self.read_lock = opts;
        self
    }

    /// Each attempt at the backup lock waits `timeout` seconds (`None`:
    /// the lock wait timeout), and `retries` more attempts follow one
    /// that timed out (default none).
    #[must_use]
    pub fn backup_lock(mut self, timeout: Option<u64>, retries: u32) -> Self {
        self.backup_lock = (timeout, retries);
        self
    }

    /// Seconds to wait for the backup lock (default 86400).
    #[must_use]
    pub fn lock_wait_timeout(mut self, secs: u64) -> Self {
        self.lock_wait_timeout = secs;
        self
    }

    /// How often the redo copier polls (default 100 ms).
    #[must_use]
    pub fn redo_poll_interval(mut self, every: Duration) -> Self {
        self.redo_interval = every;
        self
    }

    /// MySQL: metadata locks per table instead of blocking all DDL for the
    /// whole copy (see [`BackupOptions::lock_ddl_per_table`]).
    #[must_use]
    pub fn lock_ddl_per_table(mut self, on: bool) -> Self {
        self.lock_ddl_per_table = on;
        self
    }

    /// When DDL is blocked: for the whole InnoDB copy, or (the default)
    /// only at its end (see [`crate::run::LockDdl`]).
    #[must_use]
    pub fn lock_ddl(mut self, mode: crate::run::LockDdl) -> Self {
        self.lock_ddl = mode;
        self
    }

    /// MySQL: read only the pages the server's changed-page tracking lists
    /// (see [`crate::run::BackupOptions::page_tracking`]).
    #[must_use]
    pub fn page_tracking(mut self, on: bool) -> Self {
        self.page_tracking = on;
        self
    }

    /// Record the source's coordinates when the server is a replica (see
    /// [`crate::run::BackupOptions::slave_info`]).
    #[must_use]
    pub fn slave_info(mut self, on: bool) -> Self {
        self.slave_info = on;
        self
    }

    /// Stop the replica's SQL thread while non-InnoDB tables are copied,
    /// waiting at most `timeout` for its temporary tables to close (see
    /// [`crate::run::BackupOptions::safe_slave_backup`]).
    #[must_use]
    pub fn safe_slave_backup(mut self, timeout: Option<Duration>) -> Self {
        self.safe_slave_backup = timeout;
        self
    }

    /// An incremental backup on top of `base` (a backup directory, or an
    /// LSN): only the pages changed since are copied. The base is checked
    /// against the server before anything is copied.
    #[must_use]
    pub fn incremental(mut self, base: crate::run::IncrementalBase) -> Self {
        self.incremental = Some(base);
        self
    }

    /// Compress data files with this algorithm (`.zst` / `.lz4`).
    #[must_use]
    pub fn compress(mut self, c: xb_sink::Compression) -> Self {
        self.sink.compression = Some(c);
        self
    }

    /// Encrypt data files (xbcrypt, `.xbcrypt`) with this key.
    #[must_use]
    pub fn encrypt(mut self, key: xb_sink::EncryptKey) -> Self {
        self.sink.encrypt_key = Some(key);
        self
    }

    /// Threads per compressing or encrypting stage (default 2).
    #[must_use]
    pub fn sink_threads(mut self, n: usize) -> Self {
        self.sink.threads = n;
        self
    }

    /// Read the server's data files at no more than this many bytes per
    /// second (an incremental reads far more than it writes), and write no
    /// more than that into the backup; the redo copy is never held back.
    #[must_use]
    pub fn throttle(mut self, bytes_per_sec: u64) -> Self {
        self.sink.throttle = Some(bytes_per_sec);
        self
    }

    /// Records the backup in the server's backup history table under
    /// `name` (empty: no name), as the vendor tools' `--history` does.
    #[must_use]
    pub fn history(mut self, name: impl Into<String>) -> Self {
        self.history = Some(name.into());
        self
    }

    /// Tablespaces of `bytes` or more are copied in page ranges by several
    /// workers at once (directory targets without compression or
    /// encryption); 0 copies every file whole. Default 256 MiB.
    #[must_use]
    pub fn split_at(mut self, bytes: u64) -> Self {
        self.split_at = bytes;
        self
    }

    /// The command line recorded (secrets masked) in `xtrabackup_info`.
    #[must_use]
    pub fn command_line(mut self, args: Vec<String>) -> Self {
        self.command_line = args;
        self
    }

    /// Checks what can be checked without the server.
    ///
    /// # Errors
    /// [`BackupError::Plan`] when no destination was given or the worker
    /// count is zero, [`BackupError::TargetNotEmpty`] when the target
    /// directory already holds files.
    pub fn build(self) -> Result<BackupPlan, BackupError> {
        let destination = self.destination.ok_or_else(|| BackupError::Plan {
            reason: "no destination: give a target directory or a stream".into(),
        })?;
        if self.parallel == 0 {
            return Err(BackupError::Plan {
                reason: "parallel must be at least 1".into(),
            });
        }
        if let Destination::Dir(d) = &destination {
            if std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()) {
                return Err(BackupError::TargetNotEmpty {
                    path: d.display().to_string(),
                });
            }
        }
        let mut opts = BackupOptions::new(self.connect, destination);
        opts.parallel = self.parallel;
        opts.filter = self.filter;
        opts.lock_wait_timeout = self.lock_wait_timeout;
        opts.redo_interval = self.redo_interval;
        opts.command_line = self.command_line;
        opts.lock_ddl_per_table = self.lock_ddl_per_table;
        opts.lock_ddl = self.lock_ddl;
        opts.incremental = self.incremental;
        opts.page_tracking = self.page_tracking;
        opts.slave_info = self.slave_info;
        opts.safe_slave_backup = self.safe_slave_backup;
        opts.read_lock = self.read_lock;
        (opts.backup_lock_timeout, opts.backup_lock_retry_count) = self.backup_lock;
        opts.history = self.history;
        opts.split_at = self.split_at;
        opts.sink = self.sink;
        if opts.sink.threads == 0 {
            opts.sink.threads = 2;
        }
        Ok(BackupPlan { opts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_refuses_what_cannot_work_before_touching_the_server() {
        let err = BackupPlan::builder(ConnectOptions::default())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no destination"), "{err}");
        let err = BackupPlan::builder(ConnectOptions::default())
            .target_dir("/tmp/x")
            .parallel(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        let err = BackupPlan::builder(ConnectOptions::default())
            .target_dir(d.path())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
        let plan = BackupPlan::builder(ConnectOptions::default())
            .target_dir(d.path().join("new"))
            .parallel(2)
            .build()
            .unwrap();
        assert_eq!(plan.parallel(), 2);
        assert!(matches!(plan.destination(), Destination::Dir(_)));
    }
}
