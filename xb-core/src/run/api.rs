//! What an embedding program hands a backup and gets back: options, the
//! progress callbacks, and the summary of a completed backup.

use std::path::PathBuf;
use std::time::Duration;

use super::files;
use super::server::ConnectOptions;
use super::targets;

/// Where the backup goes.
pub enum Destination {
    /// A new (or empty) local directory.
    Dir(PathBuf),
    /// An xbstream written to this writer (stdout for `--stream=xbstream`).
    Stream(Box<dyn std::io::Write + Send>),
    /// Object storage: one object per file of a directory backup, under a
    /// prefix that must hold nothing yet.
    Object(
        xb_sink::object::ObjectLocation,
        xb_sink::object::ObjectOptions,
    ),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Dir(p) => write!(f, "Dir({})", p.display()),
            Destination::Stream(_) => f.write_str("Stream"),
            Destination::Object(l, _) => write!(f, "Object({})", l.url()),
        }
    }
}

/// What a backup run is told.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackupOptions {
    /// The server.
    pub connect: ConnectOptions,
    /// The target.
    pub destination: Destination,
    /// Copy workers (default 4).
    pub parallel: usize,
    /// Seconds to wait for the backup lock (default one day, as the server).
    pub lock_wait_timeout: u64,
    /// How often the redo copier polls (default 100 ms).
    pub redo_interval: Duration,
    /// The command line, recorded (secrets masked) in `xtrabackup_info`.
    pub command_line: Vec<String>,
    /// Partial backup: which databases and tables to keep.
    pub filter: files::Filter,
    /// Compression, encryption and throttling of the data.
    pub sink: targets::SinkOptions,
    /// MySQL: protect each table with a metadata lock instead of blocking
    /// all DDL for the whole copy (`LOCK INSTANCE FOR BACKUP` is then held
    /// only at the end). DDL on other tables, and CREATE TABLE, go on.
    pub lock_ddl_per_table: bool,
    /// When DDL is blocked (`--lock-ddl`): for the whole InnoDB copy, or
    /// only at its end with DDL during the copy made good then.
    pub lock_ddl: LockDdl,
    /// An incremental backup: only pages changed since this base are
    /// copied (as `.delta` + `.meta`); `None` for a full backup.
    pub incremental: Option<super::incremental::IncrementalBase>,
    /// MySQL: use the server's changed-page tracking (turned on by every
    /// backup with this option), so an incremental reads only the pages
    /// changed since its base.
    pub page_tracking: bool,
    /// Tablespaces of this many bytes or more are copied in page ranges by
    /// several workers (directory targets); 0: every file whole.
    pub split_at: u64,
    /// `--history[=NAME]`: a row in the server's backup history table
    /// once the backup is complete (`Some("")`: a row without a name).
    pub history: Option<String>,
    /// When the server is a replica, record its source's coordinates at
    /// the consistent point in `xtrabackup_slave_info` (`--slave-info`).
    pub slave_info: bool,
    /// Stop the replica's SQL thread before the backup takes its locks
    /// and wait at most this long for its temporary tables to close
    /// (`--safe-slave-backup`; XtraBackup's default timeout is 300 s).
    pub safe_slave_backup: Option<Duration>,
    /// What the backup does about long queries before and while it asks
    /// for `FLUSH TABLES WITH READ LOCK`.
    pub read_lock: ReadLockOptions,
    /// Seconds each attempt at the backup lock (`LOCK INSTANCE FOR BACKUP`,
    /// `BACKUP STAGE`) may wait; `None` (default) waits `lock_wait_timeout`.
    pub backup_lock_timeout: Option<u64>,
    /// Attempts at the backup lock after the first timed out (default 0).
    pub backup_lock_retry_count: u32,
}

/// A lock the backup held that blocked the server: what it blocked, the
/// statement that took it, when and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct LockSpan {
    /// What the server could not do meanwhile: `DDL` or `commits`.
    pub blocks: &'static str,
    /// The statement that took it (`BACKUP STAGE BLOCK_DDL`, `LOCK INSTANCE
    /// FOR BACKUP`, `FLUSH TABLES WITH READ LOCK`, ...).
    pub lock: String,
    /// Seconds into the backup it was taken.
    pub taken_at: f64,
    /// Seconds it was held.
    pub held: f64,
}

/// When a backup blocks DDL (`--lock-ddl`, XtraBackup 8.4's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockDdl {
    /// DDL waits from before the InnoDB copy to the end of the backup
    /// (`BACKUP STAGE BLOCK_DDL`, `LOCK INSTANCE FOR BACKUP`).
    On,
    /// The default (as in XtraBackup 8.4): DDL runs during the InnoDB copy
    /// and is blocked only for the rest
    /// of the backup; tablespaces it changed are made good then (see
    /// `run::ddl_fix`); in an incremental the tablespaces copied again are
    /// whole `.new` files beside the deltas (and a young table's whole copy
    /// that DDL changed is taken back and copied again).
    #[default]
    Reduced,
    /// No lock during the InnoDB copy, as with `Reduced`, but DDL that
    /// ran during it fails the backup instead of being made good: for the
    /// DBA who wants a backup that holds every table exactly as the copy
    /// read it, or none.
    Off,
}

/// Which running statements count, by their first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueryKind {
    /// Every statement.
    #[default]
    All,
    /// Statements that may write: everything but `SELECT`, `SHOW` and `WITH`.
    Update,
    /// Reads: `SELECT`, `SHOW` and `WITH`.
    Select,
}

/// Long queries and `FLUSH TABLES WITH READ LOCK` (XtraBackup's
/// `--ftwrl-wait-*` and `--kill-long-queries-*`).
///
/// A read lock asked for while a long statement runs waits for that
/// statement, and every later statement on those tables queues behind the
/// waiting lock: the server stalls. So, when told, xb waits before asking
/// until no long statement runs (and fails rather than queue), or kills
/// the statements that keep the granted lock from coming.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadLockOptions {
    /// How long to wait for long statements to end before asking for the
    /// lock; zero (the default, as XtraBackup) asks at once.
    pub wait_timeout: Duration,
    /// A statement running this long counts as long (default 60 s).
    pub wait_threshold: Duration,
    /// Which statements are waited for (default all).
    pub wait_query_type: QueryKind,
    /// Once the lock was asked for and not granted within this time, kill
    /// the statements of `kill_query_type` running at least as long; zero
    /// (the default) never kills.
    pub kill_timeout: Duration,
    /// Which statements may be killed (default `Select`, as XtraBackup:
    /// killing a write rolls it back).
    pub kill_query_type: QueryKind,
}

impl Default for ReadLockOptions {
    fn default() -> Self {
        ReadLockOptions {
            wait_timeout: Duration::ZERO,
            wait_threshold: Duration::from_secs(60),
            wait_query_type: QueryKind::All,
            kill_timeout: Duration::ZERO,
            kill_query_type: QueryKind::Select,
        }
    }
}

impl BackupOptions {
    /// Options with defaults.
    #[must_use]
    pub fn new(connect: ConnectOptions, destination: Destination) -> Self {
        BackupOptions {
            connect,
            destination,
            parallel: 4,
            lock_wait_timeout: 86_400,
            redo_interval: Duration::from_millis(100),
            command_line: Vec::new(),
            filter: files::Filter::default(),
            lock_ddl_per_table: false,
            lock_ddl: LockDdl::default(),
            incremental: None,
            page_tracking: false,
            split_at: super::split_copy::SPLIT_AT,
            history: None,
            slave_info: false,
            safe_slave_backup: None,
            read_lock: ReadLockOptions::default(),
            backup_lock_timeout: None,
            backup_lock_retry_count: 0,
            sink: targets::SinkOptions::default(),
        }
    }
}

/// Progress events, for a bar on a terminal or log lines elsewhere.
pub trait Progress: Sync {
    /// A phase started (`"copy InnoDB"`, ...).
    fn phase(&self, _name: &str) {}
    /// Bytes copied into the backup (data files).
    fn bytes(&self, _file: &str, _n: u64) {}
    /// Total bytes to copy, once known.
    fn total(&self, _bytes: u64) {}
    /// Files to copy, once known (with [`total`](Progress::total)).
    fn files(&self, _total: u64) {}
    /// One file's copy is in the backup.
    fn file_done(&self, _file: &str) {}
    /// The redo copier has copied log up to this LSN (reported while data
    /// files are copied, about every 50 ms); with the server's LSN it gives
    /// the redo lag, the margin before the server could overwrite log.
    fn redo(&self, _copied_lsn: u64) {}
    /// The redo copy's lag behind the server against the log's capacity,
    /// sampled about once a second while data files are copied.
    fn redo_lag(&self, _now: super::lag::LagNow) {}
    /// Something the user should know while the backup goes on (the redo
    /// margin fell under half of the log, say).
    fn warning(&self, _text: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a completed backup holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSummary {
    /// Checkpoint at the end (`to_lsn`).
    pub to_lsn: u64,
    /// End of the copied redo: the point in time the backup restores to.
    pub last_lsn: u64,
    /// First LSN of the copied redo.
    pub start_lsn: u64,
    /// Binlog coordinates at the lock, if the binlog is on.
    pub binlog: Option<(String, u64, String)>,
    /// Files copied (data files and the redo file).
    pub files: u64,
    /// Data bytes copied.
    pub bytes: u64,
    /// Page re-reads (torn pages while the server wrote them).
    pub page_retries: u64,
    /// Seconds commits were blocked.
    pub lock_seconds: f64,
    /// Every lock that blocked DDL or commits, in the order taken.
    pub locks: Vec<LockSpan>,
    /// Files listed for the copy that were gone when their turn came (the
    /// server dropped their tables meanwhile; their absence is replayed
    /// from the redo log or, for non-InnoDB tables, is the tables' state
    /// at the end), as paths in the backup, sorted. Reported so a DBA who
    /// expected those tables in the backup learns it from the backup run,
    /// not from the restore.
    pub vanished: Vec<String>,
    /// Server version.
    pub server_version: String,
    /// The TokuDB files included (servers with the TokuDB plugin).
    pub tokudb: Option<xb_tokudb::TokuManifest>,
    /// The redo copy's lag behind the server over the backup (from two
    /// samples on, one a second; shorter backups have none).
    pub redo: Option<super::lag::LagReport>,
    /// The history table the backup's row went to (`--history`); `None`
    /// without it, or when the row could not be written (a warning said
    /// so; the backup itself is complete).
    pub history: Option<String>,
}
