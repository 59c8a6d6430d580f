//! Taking a backup: the phases, in the order [`backup`] runs them.
//!
//! 1. **discover**: connect, read the server facts, check privileges, pick
//!    the flavour (`mariadb::MariaDb` for MariaDB 10.5+, `mysql::MySql`
//!    for MySQL 8.0.30+); open the target and mark it incomplete;
//! 2. **start the redo copy**: the flavour opens the server's log at its
//!    latest checkpoint (`Flavour::redo`); a thread
//!    ([`redo_copy`]) copies and validates log from there on;
//! 3. **protect DDL**: `Flavour::protect_ddl` (before it, with
//!    `--safe-slave-backup`, a replica's SQL thread is stopped until the
//!    end, [`replica`]);
//! 4. **copy InnoDB**: every tablespace the datadir walk finds ([`files`])
//!    and the server reports ([`spaces`]), N workers, pages validated
//!    ([`data_copy`]); then the tablespaces the DDL protection did not cover
//!    (`Flavour::after_innodb`); then the server's list again:
//!    anything not copied fails the backup, naming it;
//! 5. **copy non-InnoDB** under the lock they need
//!    (`Flavour::copy_non_innodb`; TokuDB's steps run here on
//!    servers with that plugin, `tokudb`);
//! 6. **consistent point**: commits are blocked; binlog coordinates, GTID
//!    and LSN (`Flavour::consistent_point`; a MyRocks checkpoint
//!    is made here, [`rocksdb`]); with `--slave-info` the source's
//!    coordinates of a replica ([`replica`]);
//! 7. **redo reaches the point**: the copier copies up to that LSN and
//!    closes the backup's log;
//! 8. **release**: `xtrabackup_checkpoints` and `xtrabackup_binlog_info` are
//!    written, then the flavour releases its locks
//!    (`Flavour::release`), then copies what needs no lock
//!    (`Flavour::after_release`);
//! 9. **metadata**: `backup-my.cnf` and `xtrabackup_info` ([`meta`]);
//! 10. **finish**: flush the target, and only then remove the marker.
//!
//! Whatever the server holds for the backup is owned by one guard,
//! [`locks::Session`]; on every error path [`backup`] releases it all and
//! stops the redo copier, and the marker stays, so no one mistakes the
//! target for a backup.

mod api;
mod aria_copy;
mod backup_lock;
pub mod data_copy;
mod ddl_fix;
mod ddl_yield;
pub mod dry_run;
mod early;
pub mod external;
pub mod feed;
pub mod files;
mod flavour;
mod flush_copy;
pub mod history;
pub mod incremental;
pub mod lag;
pub mod local;
pub mod locks;
pub mod log_status;
mod mariadb;
pub mod meta;
mod mysql;
mod page_track;
mod read_lock;
mod read_throttle;
pub mod redo_copy;
mod replica;
pub mod rocksdb;
pub mod seams;
pub mod server;
pub mod spaces;
pub mod split_copy;
pub mod targets;
mod tokudb;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

pub use api::{
    BackupOptions, BackupSummary, Destination, LockDdl, LockSpan, NoProgress, Progress, QueryKind,
    ReadLockOptions,
};
pub use incremental::{BaseProblem, IncrementalBase};
pub use log_status::{LogStatus, parse_log_status};
pub use server::{ConnectOptions, SslMode, Tls};

pub use crate::error::BackupError;
use data_copy::Job;
use flavour::{ConsistentPoint, Flavour, Found, NonInnodb, Step};
use locks::{Held, Session};
use redo_copy::{RedoCopier, RedoFeed};
use seams::Target;

/// Settings and facts every phase reads.
struct Ctx {
    facts: server::ServerFacts,
    target: Arc<dyn Target>,
    parallel: usize,
    /// Tablespaces this large or larger are copied in ranges (0: never).
    split_at: u64,
    lock_wait_timeout: u64,
    redo_interval: Duration,
    filter: files::Filter,
    lock_ddl_per_table: bool,
    /// DDL blocked only at the end of the InnoDB copy (`--lock-ddl=reduced`
    /// or `off`, without per-table locks).
    reduced_ddl_lock: bool,
    /// With `reduced_ddl_lock`: DDL that ran during the copy fails the
    /// backup (`--lock-ddl=off`) rather than being made good.
    refuse_ddl_during_copy: bool,
    /// `--throttle` for the reads of data files (see `read_throttle`).
    read_rate: Option<xb_sink::Rate>,
    /// The base LSN of an incremental backup.
    incremental_lsn: Option<u64>,
    /// Where the server's page tracking starts; `Some` exactly with
    /// `--page-tracking`.
    tracking_from: Option<u64>,
    /// The pages changed since the base, when the server's tracking could
    /// list them (set once the redo copy's start is known).
    changed: std::sync::OnceLock<Arc<xb_innodb::pagetrack::ChangedPages>>,
    /// The indexes the base held (its [`page_track::INDEX_FILE`]), when
    /// this is a tracked incremental on a base that recorded them.
    base_indexes: Option<page_track::Indexes>,
    connect: ConnectOptions,
    /// A lost session or server, once the watcher saw one.
    watch: Arc<watch::Verdict>,
    /// The redo copy's lag behind the server, sampled by the watcher.
    lag: Arc<lag::LagMeter>,
    /// `--slave-info`.
    slave_info: bool,
    /// `--safe-slave-backup` and its timeout.
    safe_slave_backup: Option<Duration>,
    /// Long queries and the read lock.
    read_lock: ReadLockOptions,
    /// `--backup-lock-timeout`: each attempt at the backup lock waits this
    /// long; `None` waits `lock_wait_timeout`, once.
    backup_lock_timeout: Option<Duration>,
    /// `--backup-lock-retry-count`: attempts after the first.
    backup_lock_retry_count: u32,
}

/// What the flavour's phases hand to the finish.
struct Done {
    point: ConsistentPoint,
    start_lsn: u64,
    last_lsn: u64,
    to_lsn: u64,
    found: Found,
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
    let start_time = meta::utc_now();
    // 1. discover
    progress.phase("connect");
    let mut session = Session::connect(&opts.connect).await?;
    let facts = server::discover(session.conn(), &opts.connect).await?;
    check_supported(&facts)?;
    std::fs::read_dir(&facts.datadir).map_err(|e| BackupError::Datadir {
        path: facts.datadir.clone(),
        message: e.to_string(),
    })?;
    // the history table is made before anything is copied: an account
    // that may not write it fails the backup now, not after the copy
    let history_table = opts.history.as_ref().map(|_| history::Table::of(&facts));
    if let Some(t) = &history_table {
        history::ensure(session.conn(), t).await?;
    }
    // an incremental's base is checked before the target is touched
    let source = incremental::identity(session.conn(), &facts).await?;
    let incremental_lsn = match &opts.incremental {
        Some(base) => Some(incremental::resolve(base, session.conn(), &facts, &source).await?),
        None => None,
    };
    let tracking_from = if opts.page_tracking {
        if facts.mariadb {
            return Err(BackupError::Unsupported {
                version: facts.version.clone(),
                reason: "--page-tracking is MySQL's changed-page tracking".into(),
            });
        }
        Some(page_track::start(session.conn()).await?)
    } else {
        None
    };
    let base_indexes = match (&opts.incremental, tracking_from) {
        (Some(IncrementalBase::Dir(dir)), Some(_)) => page_track::read_indexes(dir),
        _ => None,
    };
    let compressed = opts.sink.compression.is_some();
    let encrypted = opts.sink.encrypt_key.is_some();
    let output = targets::Output::open(opts.destination, &opts.sink)?;
    check_engines(&facts)?;
    // from here a killed session or a dead server ends the backup in seconds
    let lag = Arc::new(lag::LagMeter::default());
    let watcher = watch::Watch::start(
        &opts.connect,
        session.watched(),
        Arc::clone(&lag),
        facts.mariadb,
    );
    let late_ddl_lock = opts.lock_ddl != LockDdl::On && !opts.lock_ddl_per_table;
    let ctx = Ctx {
        facts,
        target: Arc::clone(&output.target),
        parallel: opts.parallel,
        split_at: opts.split_at,
        lock_wait_timeout: opts.lock_wait_timeout,
        redo_interval: opts.redo_interval,
        filter: opts.filter.clone(),
        lock_ddl_per_table: opts.lock_ddl_per_table,
        reduced_ddl_lock: late_ddl_lock,
        refuse_ddl_during_copy: opts.lock_ddl == LockDdl::Off,
        read_rate: opts.sink.throttle.map(xb_sink::Rate::new),
        incremental_lsn,
        tracking_from,
        base_indexes,
        changed: std::sync::OnceLock::new(),
        connect: opts.connect.clone(),
        watch: watcher.verdict(),
        lag,
        slave_info: opts.slave_info,
        safe_slave_backup: opts.safe_slave_backup,
        read_lock: opts.read_lock.clone(),
        backup_lock_timeout: backup_lock::each(opts.backup_lock_timeout),
        backup_lock_retry_count: opts.backup_lock_retry_count,
    };
    // 2.–8., by the server's flavour
    let phases = if ctx.facts.mariadb {
        phases(mariadb::MariaDb::default(), &ctx, &mut session, progress).await
    } else {
        phases(mysql::MySql::default(), &ctx, &mut session, progress).await
    };
    let done = match phases {
        Ok(d) => d,
        Err(e) => {
            // the first error is what counts (told apart by the watcher when
            // a session was lost); the guard releases the rest
            let e = watcher.explain(e).await;
            session.close().await;
            return Err(e);
        }
    };
    watcher.stop().await;
    session.close().await;
    // 9. metadata
    let target = ctx.target.as_ref();
    meta::write(target, "backup-my.cnf", &meta::backup_my_cnf(&ctx.facts))?;
    meta::write(
        target,
        incremental::SOURCE_FILE,
        &incremental::render_source(&source),
    )?;
    let info = meta::InfoFacts {
        uuid: meta::uuid_like(),
        name: opts.history.clone().unwrap_or_default(),
        tool_command: meta::mask_secrets(&opts.command_line),
        server_version: ctx.facts.version.clone(),
        start_time,
        end_time: meta::utc_now(),
        lock_time: done.found.lock_seconds().round() as u64,
        binlog: done.point.binlog.clone(),
        to_lsn: done.to_lsn,
        from_lsn: incremental_lsn,
        format: output.format,
        partial: !ctx.filter.is_full(),
        compressed,
        encrypted,
        mysql: !ctx.facts.mariadb,
        extra: done
            .found
            .tokudb
            .as_ref()
            .map(xb_tokudb::TokuManifest::info_lines)
            .unwrap_or_default(),
    };
    meta::write(target, "xtrabackup_info", &meta::xtrabackup_info(&info))?;
    if let Some(t) = tracking_from.filter(|&t| t > done.to_lsn) {
        progress.warning(&format!(
            "page tracking started at LSN {t}, after this backup's to_lsn {}: an incremental on it reads every page",
            done.to_lsn
        ));
    }
    // 10. finish: the manifest names every file, then the target is made
    // durable (and, in object storage, checked) and its marker removed
    output.complete(manifest_meta(&info, &done, &opts.sink, ctx.parallel))?;
    let history = match (&history_table, &opts.history) {
        (Some(t), Some(name)) => {
            let name = Some(name.as_str()).filter(|n| !n.is_empty());
            match record_history(&opts.connect, t, name, &info).await {
                Ok(()) => Some(t.qualified()),
                Err(e) => {
                    progress.warning(&format!(
                        "the backup is complete, but its row in {} was not written ({e}): \
                         a later --incremental-history-name starts from an older backup",
                        t.qualified()
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let Done {
        point,
        start_lsn,
        last_lsn,
        to_lsn,
        found,
    } = done;
    Ok(BackupSummary {
        to_lsn,
        last_lsn,
        start_lsn,
        binlog: point.binlog,
        files: found.stats.files,
        bytes: found.stats.bytes,
        page_retries: found.stats.retries,
        lock_seconds: found.lock_seconds(),
        locks: found.locks,
        vanished: found.stats.vanished,
        server_version: ctx.facts.version,
        tokudb: found.tokudb,
        redo: ctx.lag.report(),
        history,
    })
}

/// The history row, on a connection of its own (the backup's session is
/// closed, its locks released, by now).
async fn record_history(
    connect: &ConnectOptions,
    table: &history::Table,
    name: Option<&str>,
    info: &meta::InfoFacts,
) -> Result<(), BackupError> {
    let mut conn = server::connect(connect).await?;
    let r = history::record(&mut conn, table, name, info).await;
    let _ = conn.disconnect().await;
    r
}

/// Refuses servers no flavour covers, before anything is copied.
fn check_supported(facts: &server::ServerFacts) -> Result<(), BackupError> {
    let unsupported = |reason: &str| {
        Err(BackupError::Unsupported {
            version: facts.version.clone(),
            reason: reason.into(),
        })
    };
    if facts.mariadb && facts.version_num < (10, 5, 0)
        || !facts.mariadb && facts.version_num < (8, 0, 30)
    {
        return unsupported("this version of xb backs up MariaDB 10.5+ and MySQL 8.0.30+");
    }
    if !facts.redo_log_enabled {
        return Err(BackupError::RedoLogDisabled {
            version: facts.version.clone(),
        });
    }
    Ok(())
}

/// Refuses engine set-ups no flavour covers; after the target is marked
/// incomplete, so the refusal leaves a target that says so.
fn check_engines(facts: &server::ServerFacts) -> Result<(), BackupError> {
    if facts.mariadb && facts.tokudb.is_some() {
        // MariaDB dropped TokuDB in 10.5, before the redo formats xb reads
        return Err(BackupError::Unsupported {
            version: facts.version.clone(),
            reason: "MariaDB with the TokuDB plugin".into(),
        });
    }
    Ok(())
}

/// Phases 2–8 with a flavour's steps. On failure the redo copier is stopped
/// and its own error, if it had one, is what the user sees (it explains
/// more: overwritten log, say), with the later failure attached.
async fn phases<F: Flavour>(
    mut flavour: F,
    ctx: &Ctx,
    session: &mut Session,
    progress: &dyn Progress,
) -> Result<Done, BackupError> {
    // 2. start the redo copy
    progress.phase("start redo copy");
    let redo = flavour.redo(&ctx.facts)?;
    let out = ctx
        .target
        .create_log(&redo.file)
        .map_err(BackupError::Target)?;
    let start_lsn = redo.feed.start_lsn();
    let copier = RedoCopier::start(
        Box::new(redo.feed),
        Box::new(out),
        redo.header,
        ctx.redo_interval,
    );
    tracing::info!(
        checkpoint = start_lsn,
        capacity = ctx.facts.redo_capacity,
        "redo copy started"
    );
    ctx.lag.arm(ctx.facts.redo_capacity, copier.copied_source());
    let mut step = Step {
        ctx,
        session,
        progress,
        copier: Some(&copier),
        found: Found::starting_now(),
    };
    let (point, slave_info) = match locked_phases(&mut flavour, &mut step, start_lsn).await {
        Ok(p) => p,
        Err(e) => {
            drop(step);
            return Err(match copier.abort() {
                Some(source) => BackupError::RedoCopy {
                    source,
                    lag: ctx.lag.report().map(Box::new),
                    then: (!matches!(e, BackupError::RedoStopped)).then(|| Box::new(e)),
                },
                None => e,
            });
        }
    };
    // 7. redo reaches the point
    progress.phase("finish redo copy");
    let mut found = std::mem::take(&mut step.found);
    drop(step);
    let copied =
        tokio::task::block_in_place(|| copier.finish_at(point.lsn, Duration::from_secs(30)))
            .map_err(|source| BackupError::RedoCopy {
                source,
                lag: ctx.lag.report().map(Box::new),
                then: None,
            })?;
    tracing::info!(from = copied.start_lsn, to = copied.end_lsn, "redo copied");
    found.stats.files += 1;
    // 8. release: the end point is on record before the locks go
    let mut cps = flavour.checkpoints(&point, &copied);
    if let Some(base) = ctx.incremental_lsn {
        cps.backup_type = "incremental".into();
        cps.from_lsn = base;
    }
    meta::write(ctx.target.as_ref(), "xtrabackup_checkpoints", &cps.render())?;
    if let Some((f, p, g)) = &point.binlog {
        meta::write(
            ctx.target.as_ref(),
            "xtrabackup_binlog_info",
            &meta::binlog_info(f, *p, g),
        )?;
    }
    if let Some(text) = &slave_info {
        meta::write(ctx.target.as_ref(), replica::SLAVE_INFO_FILE, text)?;
    }
    let mut step = Step {
        ctx,
        session,
        progress,
        copier: None,
        found,
    };
    flavour.release(&mut step).await?;
    flavour.after_release(&mut step).await?;
    if step.session.holds(Held::ReplicaSqlThread) {
        step.progress.phase("start the replica's SQL thread again");
        if let Err(e) = step.session.release(Held::ReplicaSqlThread).await {
            // the backup itself is complete; the replica must not stay
            // stopped unnoticed
            step.progress.warning(&format!(
                "the replica's SQL thread could not be started again ({e}): run START REPLICA SQL_THREAD (MariaDB: START SLAVE SQL_THREAD) on it"
            ));
        }
    }
    Ok(Done {
        start_lsn: copied.start_lsn,
        last_lsn: cps.last_lsn,
        to_lsn: cps.to_lsn,
        point,
        found: step.found,
    })
}

/// Phases 3–6: everything that runs while the redo copier follows the log.
/// Returns the consistent point and, with `--slave-info` on a replica, the
/// text of `xtrabackup_slave_info` read at that point.
async fn locked_phases<F: Flavour>(
    flavour: &mut F,
    step: &mut Step<'_>,
    copy_start: u64,
) -> Result<(ConsistentPoint, Option<String>), BackupError> {
    // --safe-slave-backup: no replicated temporary table open, the SQL
    // thread stopped until the end. Before any backup lock: a SQL thread
    // started and stopped again while MariaDB's BACKUP STAGE BLOCK_DDL was
    // held never stopped (STOP SLAVE hung), so the replica pauses for the
    // whole copy instead of only its non-InnoDB part.
    if let Some(timeout) = step.ctx.safe_slave_backup {
        replica::make_safe(step, timeout).await?;
    }
    // 3. protect DDL
    flavour.protect_ddl(step).await?;
    if !step.ctx.facts.mariadb {
        // with DDL held off: the indexes this backup holds, and which of
        // the server's list of changed pages can be trusted
        page_track::indexes_and_list(step, copy_start).await?;
    }
    // 4. copy InnoDB: what the datadir holds and what the server says it has
    let ctx: &Ctx = step.ctx;
    let (facts, filter) = (&ctx.facts, &ctx.filter);
    let mut manifest = files::list(facts, filter)?;
    // with the DDL lock taken late, the non-InnoDB files are listed again
    // under it: until then only their count and size are needed (with
    // 100,000 tables their list was 20 MB through the InnoDB copy)
    let (later_bytes, later_files) = if ctx.reduced_ddl_lock {
        let later = files::Manifest {
            innodb: Vec::new(),
            non_innodb: std::mem::take(&mut manifest.non_innodb),
            aria: std::mem::take(&mut manifest.aria),
        };
        (later.bytes(), later.non_innodb.len() + later.aria.len())
    } else {
        (0, 0)
    };
    let reported = spaces::list(step.session.conn(), facts).await?;
    for s in &reported {
        if let (Some(id), Some(file)) = (s.id, ddl_yield::identity(&s.path)) {
            step.found.listed_ids.insert(file, id);
        }
    }
    let reconciled = spaces::reconcile(&reported, &manifest.innodb, facts, filter);
    if !reconciled.outside.is_empty() {
        return Err(BackupError::TablespacesOutside {
            files: display(&reconciled.outside),
        });
    }
    if let Some((name, files)) = reconciled.clashes.first() {
        return Err(BackupError::TablespaceNameClash {
            name: name.clone(),
            files: display(files),
        });
    }
    if !reconciled.external.is_empty() {
        // where each one came from, for a copy-back to put it back
        meta::write(
            ctx.target.as_ref(),
            external::LIST_FILE,
            &external::render(&reconciled.external),
        )?;
    }
    manifest.innodb.extend(reconciled.extra);
    let toku_bytes = step
        .ctx
        .facts
        .tokudb
        .as_ref()
        .map_or(0, tokudb::bytes_on_disk);
    step.progress
        .total(manifest.bytes() + later_bytes + toku_bytes);
    step.progress.files(
        (manifest.innodb.len() + manifest.non_innodb.len() + manifest.aria.len() + later_files)
            as u64,
    );
    step.progress.phase("copy InnoDB tablespaces");
    // a flavour that looks at the tablespaces copied gets the list (with
    // 100,000 tables a copy of it is 11 MB at the peak)
    let copied = if flavour.looks_at_copied() {
        manifest.innodb.clone()
    } else {
        Vec::new()
    };
    // MySQL truncates undo tablespaces (a new file and space id) unless
    // the backup lock holds it off: without that lock during the copy,
    // they are copied once it is taken
    let (under_lock, now): (Vec<Job>, Vec<Job>) = manifest
        .innodb
        .into_iter()
        .partition(|j| ctx.reduced_ddl_lock && !facts.mariadb && files::is_undo(&j.rel));
    step.copy(now)?;
    step.catch_up_redo().await?;
    flavour.after_innodb(step, &copied).await?;
    if !under_lock.is_empty() {
        step.progress.phase("copy undo tablespaces");
        step.copy(under_lock)?;
    }
    // with DDL blocked, every tablespace the server has is in the backup
    let reported = spaces::list(step.session.conn(), facts).await?;
    let missing = spaces::missing(&reported, &step.found.tablespaces, facts, filter);
    if !missing.is_empty() {
        return Err(BackupError::TablespacesMissing {
            files: display(&missing),
        });
    }
    // nothing looks at which tablespaces were copied from here on: with
    // 100,000 of them these lists took 15 MB through the non-InnoDB copy
    step.found.forget_tablespaces();
    // 5. copy non-InnoDB; after DDL during the InnoDB copy, the files
    // (`.frm` above all) as they are now that DDL is blocked
    if ctx.reduced_ddl_lock {
        let now = files::list_only(facts, filter, files::Want::NON_INNODB)?;
        manifest.non_innodb = now.non_innodb;
        manifest.aria = now.aria;
    }
    let non_innodb = NonInnodb {
        tables: manifest.non_innodb,
        aria: manifest.aria,
    };
    flavour.copy_non_innodb(step, non_innodb).await?;
    // 6. consistent point; the source's coordinates while nothing commits
    let point = flavour.consistent_point(step).await?;
    let slave_info = if step.ctx.slave_info {
        let gtid = point.binlog.as_ref().map(|(_, _, g)| g.as_str());
        replica::read_slave_info(step, gtid).await?
    } else {
        None
    };
    Ok((point, slave_info))
}

fn display(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// What `xb_manifest.json` says the backup is, beside its files.
fn manifest_meta(
    info: &meta::InfoFacts,
    done: &Done,
    sink: &targets::SinkOptions,
    parallel: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let compression = sink.compression.map(|c| match c {
        xb_sink::Compression::Zstd { level } => format!("zstd level {level}"),
        xb_sink::Compression::Lz4 => "lz4".to_string(),
    });
    let v = serde_json::json!({
        "tool": "xb",
        "tool_version": env!("CARGO_PKG_VERSION"),
        "backup_type": if info.from_lsn.is_some() { "incremental" } else { "full-backuped" },
        "from_lsn": info.from_lsn.unwrap_or(0),
        "to_lsn": done.to_lsn,
        "start_lsn": done.start_lsn,
        "last_lsn": done.last_lsn,
        "server_version": info.server_version,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "binlog": info
            .binlog
            .as_ref()
            .map(|(file, position, gtid)| serde_json::json!({"file": file, "position": position, "gtid": gtid})),
        "options": {
            "parallel": parallel,
            "compression": compression,
            "encrypted": sink.encrypt_key.is_some(),
            "partial": info.partial,
            "format": info.format,
        },
    });
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
