//! `performance_schema.log_status` (MySQL 8.0+): binlog file, position,
//! GTID set and InnoDB's LSN and checkpoint in one consistent read, taken
//! while commits are blocked. Its own module because both the MySQL flavour
//! and the TokuDB step (under TokuDB's read lock) read it.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::BackupError;

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

/// Reads `log_status` on `conn`.
///
/// # Errors
/// [`BackupError::Sql`] naming the statement.
pub async fn read(conn: &mut Conn) -> Result<LogStatus, BackupError> {
    let sql = "SELECT LOCAL, STORAGE_ENGINES FROM performance_schema.log_status";
    let row: Option<(String, String)> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let (local, engines) = row.ok_or_else(|| BackupError::sql_answer(sql, "no row"))?;
    parse_log_status(&local, &engines).map_err(|message| BackupError::sql_answer(sql, message))
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
