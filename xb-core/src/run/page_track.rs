//! MySQL's changed-page tracking (`component_mysqlbackup`), which lets an
//! incremental read only the pages changed since its base instead of every
//! page of every tablespace (`--page-tracking`, XtraBackup 8.0's option).
//!
//! Every backup taken with the option turns tracking on (it stays on in
//! the server, so the next incremental is covered). An incremental asks
//! the server for the pages changed since its base LSN (the redo copy
//! holds whatever changes after its start checkpoint); the server writes
//! them to `<datadir>/#meb/<id>.idx`, which xb reads and
//! removes. When tracking started after the base LSN, or the server cannot
//! answer, xb reads every page, as without the option, and says so.
//!
//! The list does not name pages the server writes without redo: a bulk
//! index build (`ADD INDEX`, a table rebuild, `OPTIMIZE`) writes its pages
//! straight to the file, and neither the list nor the copied redo then
//! holds them (XtraBackup met this as PXB-2662). So every MySQL backup
//! records the indexes it holds ([`INDEX_FILE`]: space and index id, read
//! while DDL is held off), and a tracked incremental reads whole every
//! tablespace with an index its base did not have. A base without that
//! file (another tool's, or `--incremental-lsn`) cannot tell, and every
//! page is read.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use xb_innodb::pagetrack::ChangedPages;

use super::Step;
use crate::error::BackupError;

/// The file, beside `xtrabackup_checkpoints` and as plain, in which every
/// MySQL backup lists the InnoDB indexes it holds.
pub const INDEX_FILE: &str = "xb_indexes";

/// InnoDB indexes as (space id, index id).
pub type Indexes = BTreeSet<(u32, u64)>;

/// The server's indexes now.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn indexes(conn: &mut Conn) -> Result<Indexes, BackupError> {
    let sql = "SELECT SPACE, INDEX_ID FROM information_schema.INNODB_INDEXES";
    let rows: Vec<(Option<u64>, Option<u64>)> = conn
        .query(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    Ok(rows
        .into_iter()
        .filter_map(|(space, index)| Some((u32::try_from(space?).ok()?, index?)))
        .collect())
}

/// [`INDEX_FILE`]'s text: a comment, then `space index` per line.
#[must_use]
pub fn render_indexes(ix: &Indexes) -> String {
    let mut out = String::from("# InnoDB indexes in this backup: space_id index_id\n");
    for (space, index) in ix {
        out.push_str(&format!("{space} {index}\n"));
    }
    out
}

/// Reads [`INDEX_FILE`]'s text; `None` when a line is not two numbers.
#[must_use]
pub fn parse_indexes(text: &str) -> Option<Indexes> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut it = l.split_whitespace();
            let pair = (it.next()?.parse().ok()?, it.next()?.parse().ok()?);
            it.next().is_none().then_some(pair)
        })
        .collect()
}

/// The indexes a base backup in `dir` recorded, if it did.
#[must_use]
pub fn read_indexes(dir: &Path) -> Option<Indexes> {
    parse_indexes(&std::fs::read_to_string(dir.join(INDEX_FILE)).ok()?)
}

/// Spaces holding an index that `base` does not: built (or rebuilt) since.
#[must_use]
pub fn built_since(base: &Indexes, now: &Indexes) -> HashSet<u32> {
    now.difference(base).map(|&(space, _)| space).collect()
}

/// With DDL held off: records the indexes in [`INDEX_FILE`] and, for a
/// tracked incremental, asks the server for its changed-page list, marks
/// the spaces with indexes built since the base as read whole, and hands
/// the list to the copy; or says why every page is read.
///
/// # Errors
/// [`BackupError::Sql`], [`BackupError::Target`].
pub async fn indexes_and_list(step: &mut Step<'_>, copy_start: u64) -> Result<(), BackupError> {
    let ctx = step.ctx;
    let now = indexes(step.session.conn()).await?;
    super::meta::write(ctx.target.as_ref(), INDEX_FILE, &render_indexes(&now))?;
    let (Some(_), Some(from)) = (ctx.tracking_from, ctx.incremental_lsn) else {
        return Ok(());
    };
    let Some(base) = &ctx.base_indexes else {
        step.progress.warning(&format!(
            "the base records no list of its indexes ({INDEX_FILE}: taken by another tool, or \
             given by --incremental-lsn), so indexes built since it cannot be told apart: every page is read"
        ));
        return Ok(());
    };
    let datadir = Path::new(&ctx.facts.datadir);
    match changed_pages(step.session.conn(), datadir, from, copy_start).await? {
        Ok(mut pages) => {
            let built = built_since(base, &now);
            for &space in &built {
                pages.uncover(space);
            }
            tracing::info!(
                pages = pages.len(),
                from,
                read_whole = built.len(),
                "changed pages listed by the server"
            );
            let _ = ctx.changed.set(std::sync::Arc::new(pages));
        }
        Err(why) => step.progress.warning(&format!("{why}: every page is read")),
    }
    Ok(())
}

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

/// Every page the server's tracking filed from the reset point at or
/// before `from` up to now, or why there is no such list (for the warning
/// that says every page is read instead).
///
/// The list must name every page changed from `from` up to `copy_start`,
/// the checkpoint the redo copy starts at (later changes are in the copied
/// redo). The server files a page when it writes it, and a checkpoint is
/// only taken once every page changed before it is written, so a page
/// changed before `copy_start` was filed before xb read that checkpoint.
/// The list is therefore asked with no upper bound (`0`: everything filed
/// so far, more than needed, nothing missing). A bound would have to be a
/// checkpoint the tracker has itself recorded, which it does only when it
/// filed a page since its last one: on a quiet server it answers "not
/// tracked" (3803) for any bound past that, however long one waits.
///
/// # Errors
/// [`BackupError::Sql`] when the server refuses a statement outright.
pub async fn changed_pages(
    conn: &mut Conn,
    datadir: &Path,
    from: u64,
    copy_start: u64,
) -> Result<Result<ChangedPages, String>, BackupError> {
    let start: Option<i64> = one(conn, "SELECT mysqlbackup_page_track_get_start_lsn()").await?;
    let start = u64::try_from(start.unwrap_or(0)).unwrap_or(0);
    if start == 0 || start > from {
        return Ok(Err(format!(
            "page tracking covers changes from LSN {start}, after the base LSN {from}"
        )));
    }
    if copy_start <= from {
        return Ok(Ok(ChangedPages::default()));
    }
    let id: Option<u64> = one(conn, "SELECT UUID_SHORT()").await?;
    let id = id.unwrap_or(0);
    let set = format!("SET GLOBAL mysqlbackup.backupid = '{id}'");
    conn.query_drop(&set)
        .await
        .map_err(|e| BackupError::sql(&set, &e))?;
    let get = format!("SELECT mysqlbackup_page_track_get_changed_pages({from}, 0)");
    // 3803 here means the tracker has recorded no checkpoint past `from`
    // yet although the server has taken one (`copy_start`): it records the
    // next one moments later
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
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
            "the server could not list the pages changed since LSN {from} (code {})",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_file_reads_back_what_was_written() {
        let ix: Indexes = [(0, 1), (7, 156), (7, 157), (4_294_967_279, 9)].into();
        assert_eq!(parse_indexes(&render_indexes(&ix)), Some(ix));
        assert_eq!(parse_indexes("# only a comment\n"), Some(Indexes::new()));
    }

    #[test]
    fn a_damaged_index_file_is_no_list_at_all() {
        assert_eq!(parse_indexes("7 156\n7\n"), None);
        assert_eq!(parse_indexes("7 156 3\n"), None);
        assert_eq!(parse_indexes("seven 156\n"), None);
    }

    #[test]
    fn spaces_with_an_index_the_base_lacks_are_read_whole() {
        let base: Indexes = [(5, 100), (6, 101), (6, 102)].into();
        // 5 unchanged, 6 lost an index (dropped: nothing to read), 8 is a
        // rebuilt table, 9 had an index added
        let now: Indexes = [(5, 100), (6, 101), (8, 200), (8, 201), (9, 103), (9, 300)].into();
        let built = built_since(&base, &now);
        assert_eq!(built, [8, 9].into());
    }
}
