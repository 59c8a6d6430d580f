//! `--history[=NAME]`: one row per completed backup in the server's backup
//! history table, the one the vendor tools write and read, so the DBA's
//! existing queries and monitoring see xb's backups too; and
//! `--incremental-history-name/-uuid`, which take an incremental's base LSN
//! from that table. MariaDB 10.11+ keeps it as
//! `mysql.mariadb_backup_history` (format `mbstream`); MySQL and older
//! MariaDB as `PERCONA_SCHEMA.xtrabackup_history` (format `xbstream`, with
//! `compact` and `encrypted` columns).
//!
//! The table is made (if it is not there) before anything is copied, so
//! an account without the rights fails the backup at once, not after the
//! copy. The row is written once the backup is complete; a row that cannot
//! be written then is a warning, not a failed backup: the backup is whole,
//! and a later `--incremental-history-name` would only start from an older
//! base.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::meta::InfoFacts;
use super::server::ServerFacts;
use crate::error::BackupError;

/// Which history table a server has, and its dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// `mysql` or `PERCONA_SCHEMA`.
    pub schema: &'static str,
    /// `mariadb_backup_history` or `xtrabackup_history`.
    pub name: &'static str,
    /// MariaDB 10.11+'s shape: no `compact`/`encrypted`, `mbstream`.
    mariadb: bool,
}

impl Table {
    /// The table the vendor tool of this server uses.
    #[must_use]
    pub fn of(facts: &ServerFacts) -> Self {
        Self::for_version(facts.mariadb, facts.version_num)
    }

    /// The table of MariaDB (`mariadb`) or MySQL at `version`.
    #[must_use]
    pub fn for_version(mariadb: bool, version: (u32, u32, u32)) -> Self {
        if mariadb && version >= (10, 11, 0) {
            Table {
                schema: "mysql",
                name: "mariadb_backup_history",
                mariadb: true,
            }
        } else {
            Table {
                schema: "PERCONA_SCHEMA",
                name: "xtrabackup_history",
                mariadb: false,
            }
        }
    }

    /// `schema.name`.
    #[must_use]
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The vendor's `CREATE TABLE IF NOT EXISTS`.
    fn create(&self) -> String {
        let (binlog, format, tail) = if self.mariadb {
            ("VARCHAR(128)", "'file','tar','mbstream'", "")
        } else {
            (
                "TEXT",
                "'file','tar','xbstream'",
                ", compact ENUM('Y','N') DEFAULT NULL, encrypted ENUM('Y','N') DEFAULT NULL",
            )
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             uuid VARCHAR(40) NOT NULL PRIMARY KEY, \
             name VARCHAR(255) DEFAULT NULL, \
             tool_name VARCHAR(255) DEFAULT NULL, \
             tool_command TEXT DEFAULT NULL, \
             tool_version VARCHAR(255) DEFAULT NULL, \
             ibbackup_version VARCHAR(255) DEFAULT NULL, \
             server_version VARCHAR(255) DEFAULT NULL, \
             start_time TIMESTAMP NULL DEFAULT NULL, \
             end_time TIMESTAMP NULL DEFAULT NULL, \
             lock_time BIGINT UNSIGNED DEFAULT NULL, \
             binlog_pos {binlog} DEFAULT NULL, \
             innodb_from_lsn BIGINT UNSIGNED DEFAULT NULL, \
             innodb_to_lsn BIGINT UNSIGNED DEFAULT NULL, \
             partial ENUM('Y','N') DEFAULT NULL, \
             incremental ENUM('Y','N') DEFAULT NULL, \
             format ENUM({format}) DEFAULT NULL, \
             compressed ENUM('Y','N') DEFAULT NULL{tail}\
             ) CHARACTER SET utf8mb3 ENGINE=InnoDB",
            self.qualified()
        )
    }

    /// The `format` column's word for how the backup was written.
    fn format(&self, info_format: &str) -> &'static str {
        match info_format {
            "mbstream" | "xbstream" if self.mariadb => "mbstream",
            "mbstream" | "xbstream" => "xbstream",
            // a backup in object storage is one object per file
            _ => "file",
        }
    }
}

fn failed(table: &Table, statement: &str, e: &mysql_async::Error) -> BackupError {
    BackupError::History {
        table: table.qualified(),
        statement: statement.to_string(),
        message: e.to_string(),
    }
}

/// Makes the table (and the schema for `PERCONA_SCHEMA`) if missing.
///
/// # Errors
/// [`BackupError::History`]: the account may not create it.
pub async fn ensure(conn: &mut Conn, table: &Table) -> Result<(), BackupError> {
    if table.schema != "mysql" {
        let sql = format!("CREATE DATABASE IF NOT EXISTS {}", table.schema);
        conn.query_drop(&sql)
            .await
            .map_err(|e| failed(table, &sql, &e))?;
    }
    let sql = table.create();
    conn.query_drop(&sql)
        .await
        .map_err(|e| failed(table, &sql, &e))
}

/// Writes the row of a completed backup named `name` (`None`: unnamed).
///
/// # Errors
/// [`BackupError::History`].
pub async fn record(
    conn: &mut Conn,
    table: &Table,
    name: Option<&str>,
    info: &InfoFacts,
) -> Result<(), BackupError> {
    // the row is about this backup, not a change a replica should apply:
    // kept out of the binlog when the account may (vendors write it there)
    let _ = conn.query_drop("SET SESSION sql_log_bin = 0").await;
    // the times are UTC, and TIMESTAMP reads them in the session's zone
    let zone = "SET SESSION time_zone = '+00:00'";
    conn.query_drop(zone)
        .await
        .map_err(|e| failed(table, zone, &e))?;
    let yn = |b: bool| if b { "Y" } else { "N" };
    let binlog_pos = info.binlog_pos();
    let version = InfoFacts::tool_version();
    let mut columns = vec![
        "uuid",
        "name",
        "tool_name",
        "tool_command",
        "tool_version",
        "ibbackup_version",
        "server_version",
        "start_time",
        "end_time",
        "lock_time",
        "binlog_pos",
        "innodb_from_lsn",
        "innodb_to_lsn",
        "partial",
        "incremental",
        "format",
        "compressed",
    ];
    let mut values: Vec<mysql_async::Value> = vec![
        info.uuid.clone().into(),
        name.map(str::to_string).into(),
        "xb-cli".into(),
        info.tool_command.clone().into(),
        version.clone().into(),
        version.into(),
        info.server_version.clone().into(),
        info.start_time.clone().into(),
        info.end_time.clone().into(),
        info.lock_time.into(),
        binlog_pos.into(),
        info.from_lsn.unwrap_or(0).into(),
        info.to_lsn.into(),
        yn(info.partial).into(),
        yn(info.from_lsn.is_some()).into(),
        table.format(info.format).into(),
        yn(info.compressed).into(),
    ];
    if !table.mariadb {
        columns.extend(["compact", "encrypted"]);
        values.extend(["N".into(), yn(info.encrypted).into()]);
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.qualified(),
        columns.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    conn.exec_drop(&sql, values)
        .await
        .map_err(|e| failed(table, &sql, &e))
}

/// Which history row an incremental starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// The newest (highest `innodb_to_lsn`) backup of this series.
    Name(String),
    /// This backup.
    Uuid(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Name(n) => write!(f, "--incremental-history-name={n}"),
            Key::Uuid(u) => write!(f, "--incremental-history-uuid={u}"),
        }
    }
}

/// The `innodb_to_lsn` the history holds for `key`; `None` when there is
/// no such row (or no table at all).
///
/// # Errors
/// [`BackupError::History`] for anything but a missing table.
pub async fn base_lsn(
    conn: &mut Conn,
    table: &Table,
    key: &Key,
) -> Result<Option<u64>, BackupError> {
    let (column, value) = match key {
        Key::Name(n) => ("name", n),
        Key::Uuid(u) => ("uuid", u),
    };
    let sql = format!(
        "SELECT innodb_to_lsn FROM {} WHERE {column} = ? AND innodb_to_lsn IS NOT NULL \
         ORDER BY innodb_to_lsn DESC LIMIT 1",
        table.qualified()
    );
    match conn.exec_first::<u64, _, _>(&sql, (value.as_str(),)).await {
        Ok(lsn) => Ok(lsn),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(None),
        Err(e) => Err(failed(table, &sql, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_gets_its_vendors_table_and_words() {
        let t = Table::for_version(true, (10, 11, 18));
        assert_eq!(t.qualified(), "mysql.mariadb_backup_history");
        assert_eq!(t.format("mbstream"), "mbstream");
        assert!(!t.create().contains("encrypted"));
        let t = Table::for_version(true, (10, 5, 29));
        assert_eq!(t.qualified(), "PERCONA_SCHEMA.xtrabackup_history");
        let t = Table::for_version(false, (9, 7, 0));
        assert_eq!(t.qualified(), "PERCONA_SCHEMA.xtrabackup_history");
        assert_eq!(t.format("mbstream"), "xbstream");
        assert_eq!(t.format("object"), "file");
        assert!(t.create().contains("encrypted ENUM('Y','N')"));
    }
}
