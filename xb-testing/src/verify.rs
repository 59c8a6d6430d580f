//! How a test proves a restore: the checks a DBA runs on a restored server.
//!
//! * [`check_tables`]: `CHECK TABLE` on every base table, all must say OK;
//! * [`replay_binlog`]: roll the restored server forward with the source's
//!   binlog from the coordinates the backup recorded;
//! * [`table_checksums`]: `CHECKSUM TABLE` of every base table, compared
//!   between source and restore.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use mysql_async::prelude::Queryable;

use crate::server::{ServerError, TestServer, db_script};

/// Base tables of the given schemas as `schema.table`, sorted.
///
/// # Errors
/// The driver's error.
pub async fn base_tables(
    conn: &mut mysql_async::Conn,
    schemas: &[&str],
) -> Result<Vec<String>, mysql_async::Error> {
    let mut out = Vec::new();
    for s in schemas {
        let rows: Vec<String> = conn
            .exec(
                "SELECT CONCAT('`', table_schema, '`.`', table_name, '`') FROM information_schema.tables \
                 WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
                (s,),
            )
            .await?;
        out.extend(rows);
    }
    out.sort();
    Ok(out)
}

/// `CHECKSUM TABLE ... EXTENDED` for every base table of `schemas`:
/// `schema.table` → checksum (None where the server returns NULL).
///
/// # Errors
/// The driver's error.
pub async fn table_checksums(
    conn: &mut mysql_async::Conn,
    schemas: &[&str],
) -> Result<BTreeMap<String, Option<u64>>, mysql_async::Error> {
    let mut out = BTreeMap::new();
    for t in base_tables(conn, schemas).await? {
        let row: Option<(String, Option<u64>)> = conn
            .query_first(format!("CHECKSUM TABLE {t} EXTENDED"))
            .await?;
        let sum = row.and_then(|(_, s)| s);
        out.insert(t, sum);
    }
    Ok(out)
}

/// `CHECK TABLE` on every base table of `schemas`; returns the tables whose
/// last message is not `OK` (empty means clean).
///
/// # Errors
/// The driver's error.
pub async fn check_tables(
    conn: &mut mysql_async::Conn,
    schemas: &[&str],
) -> Result<Vec<String>, mysql_async::Error> {
    let mut bad = Vec::new();
    for t in base_tables(conn, schemas).await? {
        let rows: Vec<(String, String, String, String)> =
            conn.query(format!("CHECK TABLE {t}")).await?;
        let status_ok = rows
            .iter()
            .any(|(_, op, kind, msg)| op == "check" && kind == "status" && msg == "OK");
        if !status_ok {
            bad.push(format!("{t}: {rows:?}"));
        }
    }
    Ok(bad)
}

/// Binlog files of `datadir` from `first` on, in the order of the index file
/// (`*.index` beside them).
///
/// # Errors
/// I/O error reading the index.
pub fn binlog_files_from(datadir: &Path, first: &str) -> std::io::Result<Vec<String>> {
    let stem = first.rsplit_once('.').map_or(first, |(s, _)| s);
    let index = std::fs::read_to_string(datadir.join(format!("{stem}.index")))?;
    let all: Vec<String> = index
        .lines()
        .map(|l| {
            Path::new(l.trim())
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .filter(|l| !l.is_empty())
        .collect();
    Ok(all.into_iter().skip_while(|f| f != first).collect())
}

/// Replays the source's binlog from (`file`, `pos`) into `target`, the way a
/// DBA rolls a restored backup forward: `mysqlbinlog --start-position | client`.
///
/// # Errors
/// When the binlog tool or the client fails (stderr in the error).
pub fn replay_binlog(
    source: &TestServer,
    file: &str,
    pos: u64,
    target: &TestServer,
) -> Result<(), ServerError> {
    let files = binlog_files_from(source.datadir(), file)?;
    if files.is_empty() {
        return Err(ServerError::Io(std::io::Error::other(format!(
            "binlog {file} not found in {}",
            source.datadir().display()
        ))));
    }
    let tool = if source.flavor().is_mysql() {
        "mysqlbinlog"
    } else {
        "mariadb-binlog"
    };
    let mut dump = source.tool(tool);
    dump.arg(format!("--start-position={pos}"));
    for f in &files {
        dump.arg(source.datadir().join(f));
    }
    let mut dump = dump
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ServerError::Spawn {
            what: tool.into(),
            source: e,
        })?;
    let stdout = dump
        .stdout
        .take()
        .ok_or_else(|| ServerError::Io(std::io::Error::other("no stdout from binlog tool")))?;
    let client = Command::new(db_script())
        .arg(target.flavor().name())
        .arg("client")
        .arg(target.datadir())
        .stdin(stdout)
        .output()
        .map_err(|e| ServerError::Spawn {
            what: "client".into(),
            source: e,
        })?;
    let dumped = dump.wait_with_output().map_err(|e| ServerError::Spawn {
        what: tool.into(),
        source: e,
    })?;
    if !client.status.success() {
        return Err(ServerError::Failed {
            what: "client replaying binlog".into(),
            status: client.status,
            stderr: String::from_utf8_lossy(&client.stderr).into_owned(),
        });
    }
    if !dumped.status.success() {
        return Err(ServerError::Failed {
            what: tool.into(),
            status: dumped.status,
            stderr: String::from_utf8_lossy(&dumped.stderr).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::binlog_files_from;

    #[test]
    fn binlog_files_follow_the_index_from_the_recorded_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("binlog.index"),
            "./binlog.000001\n./binlog.000002\n./binlog.000003\n",
        )
        .unwrap();
        assert_eq!(
            binlog_files_from(dir.path(), "binlog.000002").unwrap(),
            vec!["binlog.000002", "binlog.000003"]
        );
        assert!(
            binlog_files_from(dir.path(), "binlog.000009")
                .unwrap()
                .is_empty()
        );
    }
}
