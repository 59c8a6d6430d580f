//! MyRocks: the server makes a RocksDB checkpoint (hard links of its
//! immutable SST files plus a fresh MANIFEST) while commits are blocked, and
//! the backup copies that checkpoint as `#rocksdb/`, where a server started
//! on the backup finds its RocksDB data. Same names as mariadb-backup uses,
//! so the server's own clean-up variable removes the checkpoint afterwards.

use std::path::{Path, PathBuf};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::data_copy::{Job, Kind};
use super::seams::SeamError;
use super::server::exec;
use crate::error::BackupError;

/// Name of the checkpoint directory inside `rocksdb_datadir`.
pub const CHECKPOINT_DIR: &str = "mariabackup-checkpoint";
/// User lock that keeps two backups from making checkpoints at once.
const LOCK: &str = "mariabackup_rocksdb_checkpoint";

/// The RocksDB data directory (absolute) if the ROCKSDB plugin is active.
///
/// # Errors
/// SQL errors.
pub async fn probe(conn: &mut Conn, datadir: &str) -> Result<Option<PathBuf>, BackupError> {
    let sql = "SELECT COUNT(*) FROM information_schema.plugins WHERE plugin_name = 'ROCKSDB' AND plugin_status = 'ACTIVE'";
    let n: Option<u64> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    if n.unwrap_or(0) == 0 {
        return Ok(None);
    }
    let sql = "SELECT @@rocksdb_datadir";
    let dir: Option<String> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let dir = dir.unwrap_or_else(|| "./#rocksdb".into());
    let dir = dir.trim_end_matches('/');
    Ok(Some(if dir.starts_with('/') {
        PathBuf::from(dir)
    } else {
        Path::new(datadir).join(dir.trim_start_matches("./"))
    }))
}

/// Takes the lock and makes the checkpoint (commits must be blocked).
///
/// # Errors
/// SQL errors (e.g. another backup holds the lock).
pub async fn create(conn: &mut Conn, rocks_dir: &Path) -> Result<PathBuf, BackupError> {
    let sql = format!("SELECT GET_LOCK('{LOCK}', 3600)");
    let got: Option<Option<i64>> = conn
        .query_first(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    if got.flatten() != Some(1) {
        return Err(BackupError::sql_answer(
            &sql,
            "another backup is making a RocksDB checkpoint",
        ));
    }
    // a checkpoint left by a crashed backup would make the next one fail
    exec(
        conn,
        "SET GLOBAL rocksdb_remove_mariabackup_checkpoint = ON",
    )
    .await?;
    let dir = rocks_dir.join(CHECKPOINT_DIR);
    let path = dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('\'', "\\'");
    exec(
        conn,
        &format!("SET GLOBAL rocksdb_create_checkpoint = '{path}'"),
    )
    .await?;
    Ok(dir)
}

/// Copy jobs for the checkpoint's files, into `#rocksdb/`.
///
/// # Errors
/// The checkpoint directory cannot be listed.
pub fn jobs(checkpoint: &Path) -> Result<Vec<Job>, BackupError> {
    let unreadable = |e: std::io::Error| {
        BackupError::Read(SeamError::Io {
            path: checkpoint.display().to_string(),
            message: format!("cannot list the RocksDB checkpoint: {e}"),
        })
    };
    let rd = std::fs::read_dir(checkpoint).map_err(unreadable)?;
    let mut jobs = Vec::new();
    for e in rd {
        let e = e.map_err(unreadable)?;
        let p = e.path();
        if p.is_file() {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            jobs.push(Job {
                rel: format!("#rocksdb/{}", e.file_name().to_string_lossy()),
                src: p,
                kind: Kind::Plain,
                size,
            });
        }
    }
    Ok(jobs)
}

/// Removes the checkpoint and releases the lock (also after a failure).
///
/// # Errors
/// SQL errors.
pub async fn remove(conn: &mut Conn) -> Result<(), BackupError> {
    exec(
        conn,
        "SET GLOBAL rocksdb_remove_mariabackup_checkpoint = ON",
    )
    .await?;
    exec(conn, &format!("DO RELEASE_LOCK('{LOCK}')")).await
}
