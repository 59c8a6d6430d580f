//! Taking a backup: the phases in the order they run.
//!
//! MariaDB 10.8+ (the flow of [`backup`]):
//! 1. connect, read the server facts, check privileges;
//! 2. create the target and mark it incomplete;
//! 3. read the latest checkpoint and start the redo copier from it;
//! 4. `BACKUP STAGE START`, `FLUSH`, `BLOCK_DDL`: from here no DDL can run,
//!    so the set of files is stable (InnoDB DML continues; writes to
//!    non-transactional tables wait);
//! 5. copy the InnoDB tablespaces with N workers, pages validated;
//! 6. copy the non-InnoDB files (MyISAM, CSV, ARCHIVE, .frm, ...);
//! 7. `BACKUP STAGE BLOCK_COMMIT`: copy Aria tables and logs, read the binlog
//!    position and the LSN, flush the log, let the redo copier reach it;
//! 8. write `xtrabackup_checkpoints` and `xtrabackup_binlog_info`,
//!    `BACKUP STAGE END`;
//! 9. write `backup-my.cnf`, `xtrabackup_info`, flush the target, and only
//!    then remove the incomplete marker.
//!
//! Any failure releases the backup lock, stops the redo copier and leaves
//! the marker, so no one mistakes the target for a backup.

pub mod data_copy;
pub mod error;
pub mod feed;
pub mod files;
pub mod local;
pub mod meta;
pub mod mysql;
pub mod redo_copy;
pub mod rocksdb;
pub mod seams;
pub mod server;
pub mod targets;
mod tokudb;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use xb_innodb::pagereader::{RetryPolicy, TablespaceReader};
use xb_innodb::redo::RedoLog;
use xb_innodb::redo105;
use xb_innodb::redo108::backup_log_header;

pub use error::BackupError;
use redo_copy::{RedoCopier, RedoFeed, RedoOut};
use seams::{ChunkReader, OutFile, Reader, Target};
pub use server::ConnectOptions;

use crate::checkpoints::Checkpoints;
use crate::prepare::INCOMPLETE_MARKER;

/// Where the backup goes.
pub enum Destination {
    /// A new (or empty) local directory.
    Dir(PathBuf),
    /// An xbstream written to this writer (stdout for `--stream=xbstream`).
    Stream(Box<dyn std::io::Write + Send>),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Dir(p) => write!(f, "Dir({})", p.display()),
            Destination::Stream(_) => f.write_str("Stream"),
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
    /// The redo copier has copied log up to this LSN (reported while data
    /// files are copied, about every 50 ms); with the server's LSN it gives
    /// the redo lag, the margin before the server could overwrite log.
    fn redo(&self, _copied_lsn: u64) {}
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
    /// Data files copied.
    pub files: u64,
    /// Data bytes copied.
    pub bytes: u64,
    /// Page re-reads (torn pages while the server wrote them).
    pub page_retries: u64,
    /// Seconds commits were blocked.
    pub lock_seconds: f64,
    /// Server version.
    pub server_version: String,
    /// The TokuDB files included (servers with the TokuDB plugin).
    pub tokudb: Option<xb_tokudb::TokuManifest>,
}

/// Reads live files for the copy workers.
struct LiveReader {
    page_size: usize,
    full_crc32: bool,
    direct_io: bool,
    system: Vec<String>,
}

struct Tablespace(TablespaceReader);
impl ChunkReader for Tablespace {
    fn next_chunk(&mut self) -> Result<&[u8], String> {
        self.0.next_pages().map_err(|e| e.to_string())
    }
    fn retries(&self) -> u64 {
        self.0.retries()
    }
}

impl Reader for LiveReader {
    fn tablespace(&self, path: &Path) -> Result<Option<Box<dyn ChunkReader>>, String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let system = self.system.contains(&name);
        let r = TablespaceReader::open_with(
            path,
            self.page_size,
            self.full_crc32,
            system,
            RetryPolicy::default(),
        )
        .map_err(|e| e.to_string())?;
        Ok(r.map(|r| {
            Box::new(Tablespace(r.with_direct_io(self.direct_io))) as Box<dyn ChunkReader>
        }))
    }

    fn plain(&self, path: &Path) -> Result<Option<Box<dyn ChunkReader>>, String> {
        Ok(local::PlainReader::open(path)?.map(|r| Box::new(r) as Box<dyn ChunkReader>))
    }
}

struct RedoFile(Box<dyn OutFile>);
impl RedoOut for RedoFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), String> {
        self.0.write(buf)
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.0.close()
    }
}

fn write_file(target: &dyn Target, rel: &str, text: &str) -> Result<(), BackupError> {
    let mut f = target
        .create(rel, text.len() as u64)
        .map_err(BackupError::Target)?;
    f.write(text.as_bytes()).map_err(BackupError::Target)?;
    f.close().map_err(BackupError::Target)
}

/// `%Y-%m-%d %H:%M:%S` in UTC (the civil-from-days conversion).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Takes a backup (see the module docs for the phases).
///
/// # Errors
/// [`BackupError`] naming what failed; the target then carries the
/// incomplete marker (directory targets) and no success is claimed.
pub async fn backup(
    opts: BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary, BackupError> {
    let start_time = utc_now();
    progress.phase("connect");
    let mut conn = server::connect(&opts.connect).await?;
    let facts = server::discover(&mut conn, &opts.connect).await?;
    let supported = if facts.mariadb {
        facts.version_num >= (10, 5, 0)
    } else {
        facts.version_num >= (8, 0, 30)
    };
    if !supported {
        return Err(BackupError::Unsupported {
            version: facts.version.clone(),
            reason: "this version of xb backs up MariaDB 10.5+ and MySQL 8.0.30+".into(),
        });
    }
    std::fs::read_dir(&facts.datadir).map_err(|e| BackupError::Datadir {
        path: facts.datadir.clone(),
        message: e.to_string(),
    })?;
    let compressed = opts.sink.compression.is_some();
    let encrypted = opts.sink.encrypt_key.is_some();
    let format = match &opts.destination {
        Destination::Dir(_) => "file",
        Destination::Stream(_) => "mbstream",
    };
    let (target, marker_dir): (Arc<dyn Target>, Option<PathBuf>) = match opts.destination {
        Destination::Dir(ref p) => {
            let t = targets::SinkTarget::dir(p, &opts.sink).map_err(|e| {
                if e.contains("not empty") {
                    BackupError::TargetNotEmpty {
                        path: p.display().to_string(),
                    }
                } else {
                    BackupError::Target(e)
                }
            })?;
            (Arc::new(t), Some(p.clone()))
        }
        Destination::Stream(w) => (Arc::new(targets::SinkTarget::stream(w, &opts.sink)), None),
    };
    if let Some(d) = &marker_dir {
        std::fs::write(
            d.join(INCOMPLETE_MARKER),
            b"xb: this backup did not complete\n",
        )
        .map_err(|e| {
            BackupError::Target(format!(
                "cannot write {}: {e}",
                d.join(INCOMPLETE_MARKER).display()
            ))
        })?;
    }
    let ctx = Ctx {
        facts,
        target,
        parallel: opts.parallel,
        lock_wait_timeout: opts.lock_wait_timeout,
        redo_interval: opts.redo_interval,
        filter: opts.filter.clone(),
        lock_ddl_per_table: opts.lock_ddl_per_table,
        connect: opts.connect.clone(),
    };
    let staged = if ctx.facts.mariadb && ctx.facts.tokudb.is_some() {
        // MariaDB dropped TokuDB in 10.5, before the redo formats xb reads
        Err(BackupError::Unsupported {
            version: ctx.facts.version.clone(),
            reason: "MariaDB with the TokuDB plugin".into(),
        })
    } else if ctx.facts.mariadb {
        run_stages(&ctx, &mut conn, progress).await
    } else {
        mysql::run_stages(&ctx, &mut conn, progress).await
    };
    let summary = match staged {
        Ok(s) => s,
        Err(e) => {
            // release the lock and the RocksDB checkpoint if we held them;
            // the first error is what counts
            if ctx.facts.mariadb {
                let _ = server::exec(&mut conn, "BACKUP STAGE END").await;
                if let Ok(Some(_)) = rocksdb::probe(&mut conn, &ctx.facts.datadir).await {
                    let _ = rocksdb::remove(&mut conn).await;
                }
            } else {
                let _ = server::exec(&mut conn, "UNLOCK TABLES").await;
                let _ = server::exec(&mut conn, "UNLOCK INSTANCE").await;
            }
            if ctx.facts.tokudb.is_some() {
                // the TokuDB sequence releases its lock itself; this is for
                // an error it did not see
                let _ = server::exec(&mut conn, xb_tokudb::CHECKPOINT_LOCK_OFF).await;
            }
            let _ = conn.disconnect().await;
            return Err(e);
        }
    };
    let end_time = utc_now();
    write_file(
        ctx.target.as_ref(),
        "backup-my.cnf",
        &meta::backup_my_cnf(&ctx.facts),
    )?;
    let info = meta::InfoFacts {
        uuid: uuid_like(),
        tool_command: meta::mask_secrets(&opts.command_line),
        server_version: ctx.facts.version.clone(),
        start_time,
        end_time,
        lock_time: summary.lock_seconds.round() as u64,
        binlog: summary.binlog.clone(),
        to_lsn: summary.to_lsn,
        format,
        partial: !ctx.filter.is_full(),
        compressed,
        encrypted,
        mysql: !ctx.facts.mariadb,
        extra: summary
            .tokudb
            .as_ref()
            .map(xb_tokudb::TokuManifest::info_lines)
            .unwrap_or_default(),
    };
    write_file(
        ctx.target.as_ref(),
        "xtrabackup_info",
        &meta::xtrabackup_info(&info),
    )?;
    ctx.target.finish().map_err(BackupError::Target)?;
    let _ = conn.disconnect().await;
    if let Some(d) = &marker_dir {
        let m = d.join(INCOMPLETE_MARKER);
        std::fs::remove_file(&m)
            .map_err(|e| BackupError::Target(format!("cannot remove {}: {e}", m.display())))?;
        if let Ok(dir) = std::fs::File::open(d) {
            let _ = dir.sync_all();
        }
    }
    Ok(summary)
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let pid = u128::from(std::process::id());
    let v = nanos ^ (pid << 64);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

struct Ctx {
    facts: server::ServerFacts,
    target: Arc<dyn Target>,
    parallel: usize,
    lock_wait_timeout: u64,
    redo_interval: Duration,
    filter: files::Filter,
    lock_ddl_per_table: bool,
    connect: ConnectOptions,
}

async fn run_stages(
    ctx: &Ctx,
    conn: &mut Conn,
    progress: &dyn Progress,
) -> Result<BackupSummary, BackupError> {
    let facts = &ctx.facts;
    // 3. redo
    progress.phase("start redo copy");
    let redo = |e: xb_innodb::redo::RedoError| BackupError::Redo(e.to_string());
    let mut log = RedoLog::open(Path::new(&facts.log_dir)).map_err(redo)?;
    let short_version = facts.version.split('-').next().unwrap_or(&facts.version);
    let creator = format!("Backup {short_version}");
    let out = ctx
        .target
        .create("ib_logfile0", 0)
        .map_err(BackupError::Target)?;
    // the backup's ib_logfile0 is in the server's own format
    let (header, cp_lsn, pad) = match &log {
        RedoLog::MariaDb108(l) => {
            let cp = l.latest_checkpoint().map_err(|e| redo(e.into()))?;
            (backup_log_header(cp, &creator), cp.lsn, feed::Pad::None)
        }
        RedoLog::MariaDb105(l) => {
            let cp = l.latest_checkpoint().map_err(|e| redo(e.into()))?;
            let pad = feed::Pad::Blocks {
                header: 2048,
                min: 0,
                multiple: 1 << 20,
            };
            (redo105::backup_log_header(&cp, &creator), cp.lsn, pad)
        }
        other => {
            return Err(BackupError::Unsupported {
                version: facts.version.clone(),
                reason: format!(
                    "redo format {:?} is not one MariaDB 10.5+ writes",
                    other.format()
                ),
            });
        }
    };
    let feed: Box<dyn RedoFeed> = Box::new(feed::Feed::new(
        xb_innodb::redo::RedoLog::open(Path::new(&facts.log_dir)).map_err(redo)?,
        cp_lsn,
        pad,
    ));
    let copier = RedoCopier::start(feed, Box::new(RedoFile(out)), header, ctx.redo_interval);
    tracing::info!(checkpoint = cp_lsn, "redo copy started");

    let staged = stages(ctx, conn, progress, &mut log, &copier).await;
    match staged {
        Ok(Staged {
            to_lsn,
            target_lsn,
            binlog,
            mut stats,
            lock_start,
            rocks_checkpoint,
        }) => {
            progress.phase("finish redo copy");
            let copied = tokio::task::block_in_place(|| {
                copier.finish_at(target_lsn, Duration::from_secs(30))
            })
            .map_err(|e| BackupError::Redo(e.to_string()))?;
            let cps = Checkpoints::full_mariadb(to_lsn, copied.end_lsn);
            write_file(ctx.target.as_ref(), "xtrabackup_checkpoints", &cps.render())?;
            if let Some((f, p, g)) = &binlog {
                write_file(
                    ctx.target.as_ref(),
                    "xtrabackup_binlog_info",
                    &meta::binlog_info(f, *p, g),
                )?;
            }
            server::exec(conn, "BACKUP STAGE END").await?;
            let lock_seconds = lock_start.elapsed().as_secs_f64();
            if let Some(cp) = rocks_checkpoint {
                progress.phase("copy RocksDB checkpoint");
                let copied =
                    rocksdb::jobs(&cp).and_then(|jobs| copy_jobs(ctx, progress, jobs, None));
                let removed = rocksdb::remove(conn).await;
                let s = copied?;
                removed?;
                stats.files += s.files;
                stats.bytes += s.bytes;
            }
            tracing::info!(from = copied.start_lsn, to = copied.end_lsn, "redo copied");
            Ok(BackupSummary {
                to_lsn,
                last_lsn: copied.end_lsn,
                start_lsn: copied.start_lsn,
                binlog,
                files: stats.files,
                bytes: stats.bytes,
                page_retries: stats.retries,
                lock_seconds,
                server_version: facts.version.clone(),
                tokudb: None,
            })
        }
        Err(e) => {
            // the copier's own error explains more (e.g. overwritten redo)
            match copier.abort() {
                Some(redo_err) if !matches!(e, BackupError::Redo(_)) => {
                    Err(BackupError::Redo(format!("{redo_err} (and then: {e})")))
                }
                _ => Err(e),
            }
        }
    }
}

/// Copies `jobs` with the configured workers. While `copier` is given, the
/// copy stops as soon as the redo copier dies: the backup is lost anyway,
/// and the copier's error says why.
fn copy_jobs(
    ctx: &Ctx,
    progress: &dyn Progress,
    jobs: Vec<data_copy::Job>,
    copier: Option<&RedoCopier>,
) -> Result<data_copy::CopyStats, BackupError> {
    let reader = LiveReader {
        page_size: ctx.facts.page_size,
        full_crc32: ctx.facts.checksum_algorithm.starts_with("full_crc32"),
        // read around the page cache when the server does too
        direct_io: ctx.facts.flush_method.contains("O_DIRECT"),
        system: files::system_files(&ctx.facts.data_file_path),
    };
    let on_bytes = |f: &str, n: u64| progress.bytes(f, n);
    let cancel = AtomicBool::new(false);
    let watch_stop = AtomicBool::new(false);
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            if let Some(copier) = copier {
                s.spawn(|| {
                    while !watch_stop.load(Ordering::Acquire) {
                        if !copier.is_running() {
                            cancel.store(true, Ordering::Release);
                            return;
                        }
                        progress.redo(copier.copied_lsn());
                        std::thread::sleep(Duration::from_millis(50));
                    }
                });
            }
            let r = data_copy::copy_all(
                jobs,
                ctx.parallel,
                &reader,
                ctx.target.as_ref(),
                &on_bytes,
                &cancel,
            );
            watch_stop.store(true, Ordering::Release);
            r
        })
    })
    .map_err(|e| {
        if e.contains("no space left") || e.contains("refusing") {
            BackupError::Target(e)
        } else if e.contains("cancelled") {
            BackupError::Redo("the redo copier stopped".into())
        } else {
            BackupError::Read(e)
        }
    })
}

/// What the locked stages found, for the finish.
struct Staged {
    to_lsn: u64,
    target_lsn: u64,
    binlog: Option<(String, u64, String)>,
    stats: data_copy::CopyStats,
    lock_start: Instant,
    rocks_checkpoint: Option<PathBuf>,
}

async fn stages(
    ctx: &Ctx,
    conn: &mut Conn,
    progress: &dyn Progress,
    log: &mut RedoLog,
    copier: &RedoCopier,
) -> Result<Staged, BackupError> {
    let facts = &ctx.facts;
    server::exec(
        conn,
        &format!("SET SESSION lock_wait_timeout = {}", ctx.lock_wait_timeout),
    )
    .await?;
    progress.phase("BACKUP STAGE START/FLUSH/BLOCK_DDL");
    for stage in ["START", "FLUSH", "BLOCK_DDL"] {
        server::exec(conn, &format!("BACKUP STAGE {stage}")).await?;
    }
    let manifest = files::list(facts, &ctx.filter).map_err(BackupError::Read)?;
    let total: u64 = manifest
        .innodb
        .iter()
        .chain(&manifest.non_innodb)
        .chain(&manifest.aria)
        .map(|j| j.size)
        .sum();
    progress.total(total);
    progress.phase("copy InnoDB tablespaces");
    let mut stats = copy_jobs(ctx, progress, manifest.innodb, Some(copier))?;
    progress.phase("copy non-InnoDB tables");
    let s2 = copy_jobs(ctx, progress, manifest.non_innodb, Some(copier))?;
    progress.phase("BACKUP STAGE BLOCK_COMMIT");
    server::exec(conn, "BACKUP STAGE BLOCK_COMMIT").await?;
    let lock_start = Instant::now();
    progress.phase("copy Aria tables and log");
    let s3 = copy_jobs(ctx, progress, manifest.aria, Some(copier))?;
    for s in [s2, s3] {
        stats.files += s.files;
        stats.bytes += s.bytes;
        stats.retries += s.retries;
    }
    let binlog = if facts.log_bin {
        server::binlog_position(conn).await?
    } else {
        None
    };
    let rocks_checkpoint = match rocksdb::probe(conn, &facts.datadir).await? {
        Some(dir) => {
            progress.phase("RocksDB checkpoint");
            Some(rocksdb::create(conn, &dir).await?)
        }
        None => None,
    };
    let lsn = server::current_lsn(conn).await?;
    server::exec(conn, "FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS").await?;
    let to_lsn = log
        .latest_checkpoint()
        .map_err(|e| BackupError::Redo(e.to_string()))?;
    Ok(Staged {
        to_lsn,
        target_lsn: lsn.max(to_lsn),
        binlog,
        stats,
        lock_start,
        rocks_checkpoint,
    })
}
