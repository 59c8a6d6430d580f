//! Backing up a server that is itself a replica.
//!
//! - `--slave-info`: at the consistent point (commits blocked on MariaDB by
//!   `BLOCK_COMMIT`; on MySQL by the SQL thread being stopped, or by a read
//!   lock for channels replicating by file and position) the coordinates
//!   of this server's own source are read from `SHOW REPLICA STATUS` /
//!   `SHOW ALL SLAVES STATUS` and written as `xtrabackup_slave_info`, in
//!   the shape XtraBackup (MySQL) and mariadb-backup (MariaDB) write it: the
//!   statements that point a server restored from this backup at the same
//!   source. A server that is not a replica gets a warning and no file, as
//!   with the vendor tools.
//! - `--safe-slave-backup`: before the backup takes its locks (XtraBackup
//!   waits until the non-InnoDB copy; see `run::backup` for why xb does
//!   not), the replica's SQL thread is stopped, and the backup waits until no
//!   replicated temporary table is open (a temporary table lives only in
//!   the server's memory, so a backup taken while one is open restores a
//!   replica that fails on the next statement using it). The SQL threads
//!   that ran are started again at the end, and on every failure path,
//!   because [`Session`] holds them as [`Held::ReplicaSqlThread`].

use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::flavour::Step;
use super::locks::{Held, Session};
use crate::error::BackupError;

/// The file `--slave-info` writes.
pub const SLAVE_INFO_FILE: &str = "xtrabackup_slave_info";

/// How long the SQL thread runs between two looks at the open temporary
/// tables (XtraBackup's pause).
const DRAIN_PAUSE: Duration = Duration::from_secs(3);

/// One replication channel (MySQL) or connection (MariaDB multi-source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Channel or connection name; empty for the default one.
    pub name: String,
    /// The SQL (applier) thread runs.
    pub sql_running: bool,
    /// The source's host, for messages.
    pub source_host: String,
    /// The source's binlog file of the last event applied.
    pub source_file: String,
    /// The position in it after that event.
    pub source_pos: u64,
    /// The channel finds its position by GTID (MySQL `Auto_Position = 1`,
    /// MariaDB `Using_Gtid` other than `No`).
    pub gtid: bool,
}

/// The replication channels of the server; empty when it is not a replica.
///
/// # Errors
/// [`BackupError::Sql`] when the statement fails or its answer lacks a
/// column every server of the flavour has.
pub async fn channels(conn: &mut Conn, mariadb: bool) -> Result<Vec<Channel>, BackupError> {
    let (sql, cols) = if mariadb {
        (
            "SHOW ALL SLAVES STATUS",
            [
                "Connection_name",
                "Slave_SQL_Running",
                "Master_Host",
                "Relay_Master_Log_File",
                "Exec_Master_Log_Pos",
                "Using_Gtid",
            ],
        )
    } else {
        (
            "SHOW REPLICA STATUS",
            [
                "Channel_Name",
                "Replica_SQL_Running",
                "Source_Host",
                "Relay_Source_Log_File",
                "Exec_Source_Log_Pos",
                "Auto_Position",
            ],
        )
    };
    let rows: Vec<mysql_async::Row> = conn
        .query(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut v: Vec<String> = Vec::with_capacity(cols.len());
        for c in cols {
            let i = row
                .columns_ref()
                .iter()
                .position(|col| col.name_str() == c)
                .ok_or_else(|| BackupError::sql_answer(sql, format!("no column {c}")))?;
            let s: Option<String> = row.get_opt(i).and_then(Result::ok).flatten();
            v.push(s.unwrap_or_default());
        }
        let source_pos = v[4]
            .parse()
            .map_err(|_| BackupError::sql_answer(sql, format!("{} is {:?}", cols[4], v[4])))?;
        let gtid = if mariadb {
            !v[5].eq_ignore_ascii_case("no") && !v[5].is_empty()
        } else {
            v[5] == "1"
        };
        let name = std::mem::take(&mut v[0]);
        // MySQL's Group Replication channels are not a source to point at
        if !mariadb && name.starts_with("group_replication_") {
            continue;
        }
        out.push(Channel {
            name,
            sql_running: v[1].eq_ignore_ascii_case("yes"),
            source_host: std::mem::take(&mut v[2]),
            source_file: std::mem::take(&mut v[3]),
            source_pos,
            gtid,
        });
    }
    Ok(out)
}

/// A value quoted as an SQL string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// `xtrabackup_slave_info` for `channels`, or `None` when there are none.
///
/// `gtid` is, on MySQL, the backup's own GTID set (`gtid_executed` at the
/// consistent point: what a server restored from it has applied); on
/// MariaDB, `@@gtid_slave_pos` read at the consistent point.
#[must_use]
pub fn slave_info(mariadb: bool, channels: &[Channel], gtid: &str) -> Option<String> {
    if channels.is_empty() {
        return None;
    }
    // a set spanning several source UUIDs comes in lines
    let gtid: String = gtid.chars().filter(|c| *c != '\n').collect();
    let mut out = String::new();
    if mariadb {
        let by_gtid = !gtid.is_empty() && channels.iter().any(|c| c.gtid);
        if by_gtid {
            out.push_str(&format!("SET GLOBAL gtid_slave_pos = {};\n", quoted(&gtid)));
        }
        for c in channels {
            let conn = if c.name.is_empty() {
                String::new()
            } else {
                format!("{} ", quoted(&c.name))
            };
            if by_gtid && c.gtid {
                out.push_str(&format!(
                    "CHANGE MASTER {conn}TO master_use_gtid = slave_pos;\n"
                ));
            } else {
                out.push_str(&format!(
                    "CHANGE MASTER {conn}TO MASTER_LOG_FILE={}, MASTER_LOG_POS={};\n",
                    quoted(&c.source_file),
                    c.source_pos
                ));
            }
        }
        return Some(out);
    }
    let mut purged = false;
    for c in channels {
        let channel = if c.name.is_empty() {
            String::new()
        } else {
            format!(" FOR CHANNEL {}", quoted(&c.name))
        };
        if c.gtid {
            if !purged {
                out.push_str(&format!("SET GLOBAL gtid_purged={};\n", quoted(&gtid)));
                purged = true;
            }
            out.push_str(&format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1{channel};\n"
            ));
        } else {
            out.push_str(&format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE={}, SOURCE_LOG_POS={}{channel};\n",
                quoted(&c.source_file),
                c.source_pos
            ));
        }
    }
    Some(out)
}

/// One line per channel for the log: which source, and where.
#[must_use]
pub fn position_note(channels: &[Channel], gtid: &str) -> String {
    channels
        .iter()
        .map(|c| {
            let name = if c.name.is_empty() {
                String::new()
            } else {
                format!(" (channel '{}')", c.name)
            };
            if c.gtid && !gtid.is_empty() {
                format!("source {}{name}: GTID {gtid}", c.source_host)
            } else {
                format!(
                    "source {}{name}: file {}, position {}",
                    c.source_host, c.source_file, c.source_pos
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The statement that stops or starts one channel's SQL thread.
fn sql_thread(mariadb: bool, verb: &str, name: &str) -> String {
    if mariadb {
        if name.is_empty() {
            format!("{verb} SLAVE SQL_THREAD")
        } else {
            format!("{verb} SLAVE {} SQL_THREAD", quoted(name))
        }
    } else {
        format!("{verb} REPLICA SQL_THREAD FOR CHANNEL {}", quoted(name))
    }
}

/// Replicated temporary tables open on the server.
async fn open_temp_tables(conn: &mut Conn) -> Result<u64, BackupError> {
    let sql = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Slave_open_temp_tables','Replica_open_temp_tables')";
    let rows: Vec<(String, String)> = conn
        .query(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    Ok(rows
        .iter()
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .max()
        .unwrap_or(0))
}

async fn each(session: &mut Session, stmts: &[String]) -> Result<(), BackupError> {
    for s in stmts {
        session.exec(s).await?;
    }
    Ok(())
}

/// `--safe-slave-backup`: stops the SQL threads and waits, up to
/// `timeout`, until no replicated temporary table is open. While one is,
/// the SQL threads run for a few seconds at a time so the source's session
/// can finish with it (XtraBackup's loop). The threads that ran are
/// recorded in the session, which starts them again at the end or on
/// failure. A server that is not a replica is left alone (with a note).
///
/// # Errors
/// [`BackupError::SafeSlaveTimeout`] when temporary tables stay open;
/// [`BackupError::Sql`] from the statements.
pub async fn make_safe(step: &mut Step<'_>, timeout: Duration) -> Result<(), BackupError> {
    let mariadb = step.ctx.facts.mariadb;
    let chans = channels(step.session.conn(), mariadb).await?;
    if chans.is_empty() {
        step.progress.warning(
            "--safe-slave-backup: the server is not a replica; there is no SQL thread to stop",
        );
        return Ok(());
    }
    let start = Instant::now();
    let stop: Vec<String> = chans
        .iter()
        .map(|c| sql_thread(mariadb, "STOP", &c.name))
        .collect();
    let restart: Vec<String> = chans
        .iter()
        .filter(|c| c.sql_running)
        .map(|c| sql_thread(mariadb, "START", &c.name))
        .collect();
    step.progress.phase("stop the replica's SQL thread");
    step.session.hold_stopped_sql_threads(restart.clone());
    each(step.session, &stop).await?;
    loop {
        let mut open = open_temp_tables(step.session.conn()).await?;
        while open > 0 && start.elapsed() < timeout {
            step.progress.phase(&format!(
                "the replica has {open} open temporary table(s): its SQL thread runs {} s, then is stopped again",
                DRAIN_PAUSE.as_secs()
            ));
            each(step.session, &restart).await?;
            tokio::time::sleep(DRAIN_PAUSE.min(timeout.saturating_sub(start.elapsed()))).await;
            each(step.session, &stop).await?;
            open = open_temp_tables(step.session.conn()).await?;
        }
        if open > 0 {
            return Err(BackupError::SafeSlaveTimeout {
                open_temp_tables: open,
                seconds: timeout.as_secs(),
            });
        }
        // a table may have been opened between the look and the stop
        each(step.session, &stop).await?;
        if open_temp_tables(step.session.conn()).await? == 0 {
            return Ok(());
        }
    }
}

/// `--slave-info`, read while commits are blocked: the text of
/// `xtrabackup_slave_info` (`None`, after a warning, when the server is not
/// a replica). `backup_gtid` is the GTID set of the consistent point
/// (MySQL: what `gtid_purged` must be on a server restored from this
/// backup).
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn read_slave_info(
    step: &mut Step<'_>,
    backup_gtid: Option<&str>,
) -> Result<Option<String>, BackupError> {
    let mariadb = step.ctx.facts.mariadb;
    let chans = channels(step.session.conn(), mariadb).await?;
    if chans.is_empty() {
        step.progress.warning(
            "--slave-info: the server is not a replica (SHOW REPLICA STATUS is empty); no xtrabackup_slave_info is written",
        );
        return Ok(None);
    }
    let gtid = if mariadb {
        global(step.session.conn(), "gtid_slave_pos").await?
    } else {
        match backup_gtid {
            Some(g) => g.to_string(),
            None => global(step.session.conn(), "gtid_executed").await?,
        }
    };
    step.progress
        .phase(&format!("replica of {}", position_note(&chans, &gtid)));
    Ok(slave_info(mariadb, &chans, &gtid))
}

/// MySQL `--slave-info` on a replica of some channel that replicates by
/// file and position: is a read lock needed so the applied position cannot
/// move between the consistent point and reading it? Not when the SQL
/// threads are stopped (`--safe-slave-backup`) or no such channel runs.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn position_needs_lock(session: &mut Session) -> Result<bool, BackupError> {
    if session.holds(Held::ReplicaSqlThread) {
        return Ok(false);
    }
    let chans = channels(session.conn(), false).await?;
    Ok(chans.iter().any(|c| !c.gtid && c.sql_running))
}

async fn global(conn: &mut Conn, name: &str) -> Result<String, BackupError> {
    let sql = format!("SELECT CAST(@@GLOBAL.{name} AS CHAR)");
    let v: Option<Option<String>> = conn
        .query_first(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    Ok(v.flatten().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str, gtid: bool) -> Channel {
        Channel {
            name: name.into(),
            sql_running: true,
            source_host: "10.0.0.1".into(),
            source_file: "binlog.000007".into(),
            source_pos: 1234,
            gtid,
        }
    }

    #[test]
    fn not_a_replica_writes_nothing() {
        assert_eq!(slave_info(true, &[], "0-1-5"), None);
        assert_eq!(slave_info(false, &[], "u:1-5"), None);
    }

    #[test]
    fn mysql_shapes() {
        let g =
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2";
        assert_eq!(
            slave_info(false, &[ch("", true)], g).unwrap(),
            "SET GLOBAL gtid_purged='3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2';\n\
             CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1;\n"
        );
        assert_eq!(
            slave_info(false, &[ch("", false)], g).unwrap(),
            "CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000007', SOURCE_LOG_POS=1234;\n"
        );
        let two = slave_info(false, &[ch("a", true), ch("b", true)], "u:1").unwrap();
        assert_eq!(
            two,
            "SET GLOBAL gtid_purged='u:1';\n\
             CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1 FOR CHANNEL 'a';\n\
             CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1 FOR CHANNEL 'b';\n"
        );
    }

    #[test]
    fn mariadb_shapes() {
        assert_eq!(
            slave_info(true, &[ch("", true)], "0-1-42").unwrap(),
            "SET GLOBAL gtid_slave_pos = '0-1-42';\nCHANGE MASTER TO master_use_gtid = slave_pos;\n"
        );
        assert_eq!(
            slave_info(true, &[ch("", false)], "").unwrap(),
            "CHANGE MASTER TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=1234;\n"
        );
        // multi-source: one statement per connection, the GTID position once
        assert_eq!(
            slave_info(true, &[ch("m1", true), ch("m'2", false)], "0-1-42,1-2-7").unwrap(),
            "SET GLOBAL gtid_slave_pos = '0-1-42,1-2-7';\n\
             CHANGE MASTER 'm1' TO master_use_gtid = slave_pos;\n\
             CHANGE MASTER 'm''2' TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=1234;\n"
        );
        // Using_Gtid without a recorded position: file and position after all
        assert_eq!(
            slave_info(true, &[ch("", true)], "").unwrap(),
            "CHANGE MASTER TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=1234;\n"
        );
    }

    #[test]
    fn sql_thread_statements_name_the_channel() {
        assert_eq!(sql_thread(true, "STOP", ""), "STOP SLAVE SQL_THREAD");
        assert_eq!(
            sql_thread(true, "START", "m1"),
            "START SLAVE 'm1' SQL_THREAD"
        );
        assert_eq!(
            sql_thread(false, "STOP", ""),
            "STOP REPLICA SQL_THREAD FOR CHANNEL ''"
        );
    }

    #[test]
    fn note_names_source_and_coordinates() {
        let n = position_note(&[ch("", true), ch("b", false)], "0-1-9");
        assert_eq!(
            n,
            "source 10.0.0.1: GTID 0-1-9; source 10.0.0.1 (channel 'b'): file binlog.000007, position 1234"
        );
    }
}
