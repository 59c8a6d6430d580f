//! MySQL 8.0.30+ (tested on 9.7): the stages of a backup.
//!
//! 1. `LOCK INSTANCE FOR BACKUP`: DDL waits until the backup ends, DML goes on;
//! 2. the redo copier follows `#innodb_redo` from the latest checkpoint and
//!    writes the backup's own `#innodb_redo/#ib_redoN` (a valid redo file);
//! 3. InnoDB tablespaces are copied with N workers, pages validated;
//! 4. only if user tables of non-transactional engines exist:
//!    `FLUSH TABLES WITH READ LOCK` while they are copied;
//! 5. `performance_schema.log_status` gives binlog file, position, GTID set
//!    and the LSN in one consistent read; the copier reaches that LSN;
//! 6. `UNLOCK TABLES`, metadata, `UNLOCK INSTANCE`.
//!
//! With the TokuDB plugin active, steps 4–5 happen inside the TokuDB
//! sequence instead (see [`super::tokudb`]): its read lock is always taken.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use xb_innodb::redo8030::{Log8030, Scanner8030, backup_file_header, log_uuid};

use super::error::BackupError;
use super::redo_copy::RedoCopier;
use super::{BackupSummary, Ctx, Progress, RedoFile, copy_jobs, files, meta, server, write_file};
use crate::checkpoints::Checkpoints;

/// The `LOCAL` and `STORAGE_ENGINES` columns of `performance_schema.log_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStatus {
    /// Binlog file, position, `gtid_executed` (None with the binlog off).
    pub binlog: Option<(String, u64, String)>,
    /// InnoDB's LSN.
    pub lsn: u64,
    /// InnoDB's checkpoint LSN.
    pub checkpoint: u64,
}

/// Parses the two JSON columns of `log_status`.
///
/// # Errors
/// A sentence naming what is missing.
pub fn parse_log_status(local: &str, engines: &str) -> Result<LogStatus, String> {
    let l: serde_json::Value =
        serde_json::from_str(local).map_err(|e| format!("LOCAL is not JSON: {e}"))?;
    let e: serde_json::Value =
        serde_json::from_str(engines).map_err(|e| format!("STORAGE_ENGINES is not JSON: {e}"))?;
    let lsn = e["InnoDB"]["LSN"]
        .as_u64()
        .ok_or("no InnoDB LSN in STORAGE_ENGINES")?;
    let checkpoint = e["InnoDB"]["LSN_checkpoint"]
        .as_u64()
        .ok_or("no InnoDB LSN_checkpoint in STORAGE_ENGINES")?;
    let binlog = match (
        l["binary_log_file"].as_str(),
        l["binary_log_position"].as_u64(),
    ) {
        (Some(f), Some(p)) if !f.is_empty() => Some((
            f.to_string(),
            p,
            l["gtid_executed"].as_str().unwrap_or("").replace('\n', ""),
        )),
        _ => None,
    };
    Ok(LogStatus {
        binlog,
        lsn,
        checkpoint,
    })
}

pub(super) async fn log_status(conn: &mut Conn) -> Result<LogStatus, BackupError> {
    let sql = "SELECT LOCAL, STORAGE_ENGINES FROM performance_schema.log_status";
    let row: Option<(String, String)> =
        conn.query_first(sql).await.map_err(|e| BackupError::Sql {
            statement: sql.into(),
            message: e.to_string(),
        })?;
    let (local, engines) = row.ok_or_else(|| BackupError::Sql {
        statement: sql.into(),
        message: "no row".into(),
    })?;
    parse_log_status(&local, &engines).map_err(|message| BackupError::Sql {
        statement: sql.into(),
        message,
    })
}

/// A second session that holds a shared metadata lock on every InnoDB
/// table until it commits: DDL on those tables waits, DML goes on.
async fn lock_every_table(ctx: &Ctx) -> Result<Conn, BackupError> {
    let mut m = server::connect(&ctx.connect).await?;
    server::exec(
        &mut m,
        &format!("SET SESSION lock_wait_timeout = {}", ctx.lock_wait_timeout),
    )
    .await?;
    server::exec(&mut m, "START TRANSACTION").await?;
    let sql = "SELECT table_schema, table_name FROM information_schema.tables WHERE engine = 'InnoDB' \
               AND table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql','sys','performance_schema','information_schema')";
    let tables: Vec<(String, String)> = m.query(sql).await.map_err(|e| BackupError::Sql {
        statement: sql.into(),
        message: e.to_string(),
    })?;
    for (db, t) in tables {
        let q = format!(
            "SELECT 1 FROM `{}`.`{}` LIMIT 0",
            db.replace('`', "``"),
            t.replace('`', "``")
        );
        // a table dropped since the listing is no longer ours to protect
        if let Err(e) = server::exec(&mut m, &q).await {
            if !e.to_string().contains("1146") {
                return Err(e);
            }
        }
    }
    Ok(m)
}

async fn count(conn: &mut Conn, sql: &str) -> Result<u64, BackupError> {
    let n: Option<u64> = conn.query_first(sql).await.map_err(|e| BackupError::Sql {
        statement: sql.into(),
        message: e.to_string(),
    })?;
    Ok(n.unwrap_or(0))
}

/// Runs the MySQL stages (see the module docs).
///
/// # Errors
/// [`BackupError`]; locks are released by the caller's error path (the
/// connection is closed, which ends both locks).
pub(super) async fn run_stages(
    ctx: &Ctx,
    conn: &mut Conn,
    progress: &dyn Progress,
) -> Result<BackupSummary, BackupError> {
    let facts = &ctx.facts;
    server::exec(
        conn,
        &format!("SET SESSION lock_wait_timeout = {}", ctx.lock_wait_timeout),
    )
    .await?;
    // DDL protection: the backup lock for the whole copy, or a metadata
    // lock on every table (held by a second session until the end)
    let mdl = if ctx.lock_ddl_per_table {
        progress.phase("metadata locks on every table");
        Some(lock_every_table(ctx).await?)
    } else {
        progress.phase("LOCK INSTANCE FOR BACKUP");
        server::exec(conn, "LOCK INSTANCE FOR BACKUP").await?;
        None
    };

    progress.phase("start redo copy");
    let redo_dir = Path::new(&facts.datadir).join("#innodb_redo");
    let mut log = Log8030::open(&redo_dir).map_err(|e| BackupError::Redo(e.to_string()))?;
    let cp = log
        .latest_checkpoint()
        .map_err(|e| BackupError::Redo(e.to_string()))?;
    let (uuid, file_size) = {
        let f = log
            .files()
            .iter()
            .find(|f| f.id == cp.file_id)
            .ok_or_else(|| BackupError::Redo("checkpoint file vanished".into()))?;
        let mut h = vec![0u8; 8];
        std::fs::File::open(&f.path)
            .and_then(|file| std::os::unix::fs::FileExt::read_exact_at(&file, &mut h, 0))
            .map_err(|e| BackupError::Redo(format!("{}: {e}", f.path.display())))?;
        (log_uuid(&h), f.size)
    };
    let start = Scanner8030::block_start(cp.lsn);
    let header = backup_file_header(start, cp.lsn, uuid, "xb backup");
    let out = ctx
        .target
        .create(&format!("#innodb_redo/#ib_redo{}", cp.file_id), 0)
        .map_err(BackupError::Target)?;
    // the server wants redo files at least as large as its own, in whole pages
    let feed = super::feed::Feed::new(
        xb_innodb::redo::RedoLog::open(Path::new(&facts.datadir))
            .map_err(|e| BackupError::Redo(e.to_string()))?,
        cp.lsn,
        super::feed::Pad::Blocks {
            header: 2048,
            min: file_size,
            multiple: facts.page_size as u64,
        },
    );
    let copier = RedoCopier::start(
        Box::new(feed),
        Box::new(RedoFile(out)),
        header,
        ctx.redo_interval,
    );
    tracing::info!(checkpoint = cp.lsn, file = cp.file_id, "redo copy started");
    let staged = locked_copy(ctx, conn, progress, &copier).await;
    if let Some(mut m) = mdl {
        // DDL is blocked by the backup lock from here on
        let _ = server::exec(&mut m, "COMMIT").await;
        let _ = m.disconnect().await;
    }
    let (status, mut stats, lock_start, ftwrl, tokudb) = match staged {
        Ok(s) => s,
        Err(e) => {
            return match copier.abort() {
                Some(redo_err) if !matches!(e, BackupError::Redo(_)) => {
                    Err(BackupError::Redo(format!("{redo_err} (and then: {e})")))
                }
                _ => Err(e),
            };
        }
    };
    progress.phase("finish redo copy");
    let copied =
        tokio::task::block_in_place(|| copier.finish_at(status.lsn, Duration::from_secs(30)))
            .map_err(|e| BackupError::Redo(e.to_string()))?;
    if ftwrl {
        server::exec(conn, "UNLOCK TABLES").await?;
    }
    let lock_seconds = lock_start.elapsed().as_secs_f64();
    let cps = Checkpoints::full_mysql(status.checkpoint, status.lsn);
    write_file(ctx.target.as_ref(), "xtrabackup_checkpoints", &cps.render())?;
    if let Some((f, p, g)) = &status.binlog {
        write_file(
            ctx.target.as_ref(),
            "xtrabackup_binlog_info",
            &meta::binlog_info(f, *p, g),
        )?;
    }
    server::exec(conn, "UNLOCK INSTANCE").await?;
    stats.files += 1;
    Ok(BackupSummary {
        to_lsn: status.checkpoint,
        last_lsn: status.lsn,
        start_lsn: copied.start_lsn,
        binlog: status.binlog,
        files: stats.files,
        bytes: stats.bytes,
        page_retries: stats.retries,
        lock_seconds,
        server_version: facts.version.clone(),
        tokudb,
    })
}

/// What the locked part of the copy hands back: the consistent point, the
/// copy's figures, when commits were blocked, whether the read lock is
/// still held, and the TokuDB files when the server has them.
type Locked = (
    LogStatus,
    super::data_copy::CopyStats,
    Instant,
    bool,
    Option<xb_tokudb::TokuManifest>,
);

async fn locked_copy(
    ctx: &Ctx,
    conn: &mut Conn,
    progress: &dyn Progress,
    copier: &RedoCopier,
) -> Result<Locked, BackupError> {
    let manifest = files::list(&ctx.facts, &ctx.filter).map_err(BackupError::Read)?;
    let total: u64 = manifest
        .innodb
        .iter()
        .chain(&manifest.non_innodb)
        .chain(&manifest.aria)
        .map(|j| j.size)
        .sum();
    let toku_total = ctx
        .facts
        .tokudb
        .as_ref()
        .map_or(0, super::tokudb::bytes_on_disk);
    progress.total(total + toku_total);
    progress.phase("copy InnoDB tablespaces");
    let copied: std::collections::HashSet<String> =
        manifest.innodb.iter().map(|j| j.rel.clone()).collect();
    let mut stats = copy_jobs(ctx, progress, manifest.innodb, Some(copier))?;
    if ctx.lock_ddl_per_table {
        // tables created during the copy had no metadata lock: block DDL now
        // and copy their files (all their changes are in the copied redo)
        progress.phase("LOCK INSTANCE FOR BACKUP");
        server::exec(conn, "LOCK INSTANCE FOR BACKUP").await?;
        let again = files::list(&ctx.facts, &ctx.filter).map_err(BackupError::Read)?;
        let new: Vec<_> = again
            .innodb
            .into_iter()
            .filter(|j| !copied.contains(&j.rel))
            .collect();
        if !new.is_empty() {
            progress.phase("copy tablespaces created during the backup");
            let s = copy_jobs(ctx, progress, new, Some(copier))?;
            stats.files += s.files;
            stats.bytes += s.bytes;
        }
    }
    let mut rest = manifest.non_innodb;
    rest.extend(manifest.aria);
    if let Some(dirs) = &ctx.facts.tokudb {
        progress.phase("TokuDB: checkpoint lock, data files, read lock, logs");
        let mut hook = super::tokudb::UnderReadLock {
            ctx,
            progress,
            copier,
            files: rest,
            done: None,
        };
        let toku = xb_tokudb::run(
            conn,
            dirs,
            Arc::new(super::tokudb::TargetCopier(ctx.target.clone())),
            &mut hook,
            &xb_tokudb::TokuOptions::default().parallel(ctx.parallel),
        )
        .await
        .map_err(super::tokudb::user_error)?;
        let locked = hook.done.ok_or_else(|| {
            BackupError::Redo("the TokuDB sequence ended without reading log_status".into())
        })?;
        stats.files += locked.stats.files;
        stats.bytes += locked.stats.bytes;
        for f in toku.data_files.iter().chain(&toku.log_files) {
            stats.files += 1;
            stats.bytes += f.bytes;
            progress.bytes(&f.rel, f.bytes);
        }
        // both TokuDB locks are released by now
        return Ok((locked.status, stats, locked.since, false, Some(toku)));
    }
    // user tables whose engine has no redo need writes stopped while copied
    let unsafe_tables = count(
        conn,
        "SELECT COUNT(*) FROM information_schema.tables WHERE engine IN ('MyISAM','CSV','ARCHIVE','MRG_MYISAM') \
         AND table_schema NOT IN ('mysql','performance_schema','information_schema','sys')",
    )
    .await?;
    let ftwrl = unsafe_tables > 0;
    if ftwrl {
        progress.phase("FLUSH TABLES WITH READ LOCK");
        server::exec(conn, "FLUSH TABLES WITH READ LOCK").await?;
    }
    let lock_start = Instant::now();
    progress.phase("copy non-InnoDB tables");
    let s2 = copy_jobs(ctx, progress, rest, Some(copier))?;
    stats.files += s2.files;
    stats.bytes += s2.bytes;
    let status = log_status(conn).await?;
    Ok((status, stats, lock_start, ftwrl, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_status_columns_are_parsed() {
        let s = parse_log_status(
            r#"{"gtid_executed": "727798df-e880-11f1-8c9e-02fc00000001:1-4", "binary_log_file": "binlog.000001", "binary_log_position": 1261}"#,
            r#"{"InnoDB": {"LSN": 19522185, "LSN_checkpoint": 19522100}}"#,
        )
        .unwrap();
        assert_eq!(s.lsn, 19_522_185);
        assert_eq!(s.checkpoint, 19_522_100);
        assert_eq!(
            s.binlog,
            Some((
                "binlog.000001".into(),
                1261,
                "727798df-e880-11f1-8c9e-02fc00000001:1-4".into()
            ))
        );
        let off = parse_log_status(
            r#"{"gtid_executed": ""}"#,
            r#"{"InnoDB": {"LSN": 5, "LSN_checkpoint": 5}}"#,
        )
        .unwrap();
        assert_eq!(off.binlog, None);
        assert!(parse_log_status("{}", "{}").unwrap_err().contains("LSN"));
    }
}
