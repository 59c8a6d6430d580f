//! MySQL's changed-page tracking (`component_mysqlbackup`), which lets an
//! incremental read only the pages changed since its base instead of every
//! page of every tablespace (`--page-tracking`, XtraBackup 8.0's option).
//!
//! Every backup taken with the option turns tracking on (it stays on in
//! the server, so the next incremental is covered). An incremental asks
//! the server for the pages changed from its base LSN to the checkpoint
//! its redo copy starts at (later changes are in the copied redo); the
//! server writes them to `<datadir>/#meb/<id>.idx`, which xb reads and
//! removes. When tracking started after the base LSN, or the server cannot
//! answer, xb reads every page, as without the option, and says so.

use std::path::Path;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use xb_innodb::pagetrack::ChangedPages;

use crate::error::BackupError;

async fn one<T: mysql_async::prelude::FromValue + Send + 'static>(
    conn: &mut Conn,
    sql: &str,
) -> Result<Option<T>, BackupError> {
    conn.query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))
}

/// What `mysqlbackup_page_track_get_changed_pages` answers for a range its
/// tracking has not reached yet.
const NOT_YET: i64 = 3803;

/// Turns tracking on (or finds it on); returns the LSN it covers from.
///
/// # Errors
/// [`BackupError::PageTrackingUnavailable`] when the component is not
/// installed; [`BackupError::Sql`] otherwise.
pub async fn start(conn: &mut Conn) -> Result<u64, BackupError> {
    let installed: Option<u64> = one(
        conn,
        "SELECT COUNT(*) FROM mysql.component WHERE component_urn = 'file://component_mysqlbackup'",
    )
    .await?;
    if installed.unwrap_or(0) == 0 {
        return Err(BackupError::PageTrackingUnavailable);
    }
    let lsn: Option<i64> = one(conn, "SELECT mysqlbackup_page_track_set(1)").await?;
    Ok(u64::try_from(lsn.unwrap_or(0)).unwrap_or(0))
}

/// Waits up to `patience` for the server's checkpoint to reach `lsn`;
/// true when it did. A backup whose `to_lsn` (the checkpoint at its
/// consistent point) is older than the start of tracking cannot be the base
/// of a tracked incremental, so the first backup with tracking waits for
/// the page cleaner to pass it, as XtraBackup does.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn wait_for_checkpoint(
    conn: &mut Conn,
    lsn: u64,
    patience: std::time::Duration,
) -> Result<bool, BackupError> {
    let until = std::time::Instant::now() + patience;
    loop {
        let now = super::server::status_u64(conn, "Innodb_redo_log_checkpoint_lsn")
            .await?
            .unwrap_or(0);
        if now >= lsn {
            return Ok(true);
        }
        if std::time::Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The pages changed from `from` to `to`, or why there is no such list
/// (for the warning that says every page is read instead).
///
/// # Errors
/// [`BackupError::Sql`] when the server refuses a statement outright.
pub async fn changed_pages(
    conn: &mut Conn,
    datadir: &Path,
    from: u64,
    to: u64,
) -> Result<Result<ChangedPages, String>, BackupError> {
    let start: Option<i64> = one(conn, "SELECT mysqlbackup_page_track_get_start_lsn()").await?;
    let start = u64::try_from(start.unwrap_or(0)).unwrap_or(0);
    if start == 0 || start > from {
        return Ok(Err(format!(
            "page tracking covers changes from LSN {start}, after the base LSN {from}"
        )));
    }
    if to <= from {
        return Ok(Ok(ChangedPages::default()));
    }
    let id: Option<u64> = one(conn, "SELECT UUID_SHORT()").await?;
    let id = id.unwrap_or(0);
    let set = format!("SET GLOBAL mysqlbackup.backupid = '{id}'");
    conn.query_drop(&set)
        .await
        .map_err(|e| BackupError::sql(&set, &e))?;
    let get = format!("SELECT mysqlbackup_page_track_get_changed_pages({from}, {to})");
    // the server answers "not tracked yet" (3803) until its tracking has
    // caught up with `to`; that takes moments
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rc = loop {
        let rc: Option<i64> = one(conn, &get).await?;
        if rc != Some(NOT_YET) || std::time::Instant::now() >= until {
            break rc;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let file = datadir.join("#meb").join(format!("{id}.idx"));
    if rc != Some(0) {
        let _ = std::fs::remove_file(&file);
        return Ok(Err(format!(
            "the server could not list the pages changed from LSN {from} to {to} (code {})",
            rc.unwrap_or(-1)
        )));
    }
    let bytes = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    Ok(match bytes {
        Ok(b) => ChangedPages::parse(&b).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) => Err(format!("{}: {e}", file.display())),
    })
}
