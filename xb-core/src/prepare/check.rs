//! `CHECK TABLE` on every table of a recovered backup, by the prepare
//! server itself while it is still up (for `xb-cli verify
//! --restore-test`). The offline checks prove the files are the ones the
//! backup wrote and that every page is whole; this proves the server that
//! would restore them reads every table as sound: indexes that agree with
//! their rows, a MyISAM table the source had broken, a table whose
//! definition and data disagree.

use std::path::Path;
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::error::PrepareError;

/// Schemas with no files of their own.
const VIRTUAL_SCHEMAS: &[&str] = &["performance_schema", "information_schema", "sys"];

/// What `CHECK TABLE` found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Tables checked.
    pub tables: usize,
    /// `` `db`.`t` `` and the server's words, for each table not `OK`.
    pub failed: Vec<(String, String)>,
}

/// Checks every base table of the server listening on `socket` (the
/// backup in `dir`), after recovered transactions rolled back.
///
/// # Errors
/// [`PrepareError::Export`] (the SQL session's error type) when the
/// session fails; a table the server finds broken is in the report.
pub(super) fn check_tables(
    socket: &Path,
    dir: &Path,
    timeout: Duration,
) -> Result<CheckReport, PrepareError> {
    super::session::on_recovered(socket, dir, timeout, async |conn: &mut Conn| {
        let skip = VIRTUAL_SCHEMAS
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",");
        let tables: Vec<(String, String)> = conn
            .query(format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
                 AND TABLE_SCHEMA NOT IN ({skip}) ORDER BY TABLE_SCHEMA, TABLE_NAME"
            ))
            .await
            .map_err(super::session::failed(dir, "listing the tables"))?;
        let mut report = CheckReport {
            tables: tables.len(),
            ..CheckReport::default()
        };
        for (schema, name) in &tables {
            let quoted = format!(
                "`{}`.`{}`",
                schema.replace('`', "``"),
                name.replace('`', "``")
            );
            let rows: Vec<(String, String, String, String)> =
                match conn.query(format!("CHECK TABLE {quoted}")).await {
                    Ok(rows) => rows,
                    // a table the server cannot even open is a finding, not
                    // a failed session
                    Err(mysql_async::Error::Server(e)) => {
                        report.failed.push((quoted, e.message));
                        continue;
                    }
                    Err(e) => return Err(super::session::failed(dir, "checking the tables")(e)),
                };
            if let Some(why) = verdict(&rows) {
                report.failed.push((quoted, why));
            }
        }
        Ok(report)
    })
}

/// `None` when `CHECK TABLE`'s rows (`Table, Op, Msg_type, Msg_text`) end
/// in `status OK` (or a table kind with nothing to check); otherwise the
/// server's errors and final status.
fn verdict(rows: &[(String, String, String, String)]) -> Option<String> {
    let last = rows.last()?;
    let fine = last.2.eq_ignore_ascii_case("status")
        && (last.3 == "OK" || last.3.contains("doesn't support check"))
        || last.2.eq_ignore_ascii_case("note") && last.3.contains("doesn't support check");
    let errors: Vec<&str> = rows
        .iter()
        .filter(|r| r.2.eq_ignore_ascii_case("error"))
        .map(|r| r.3.as_str())
        .collect();
    if fine && errors.is_empty() {
        return None;
    }
    let mut words: Vec<&str> = errors;
    if !fine && !last.2.eq_ignore_ascii_case("error") {
        words.push(&last.3);
    }
    Some(words.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: &str, m: &str) -> (String, String, String, String) {
        ("d.t".into(), "check".into(), t.into(), m.into())
    }

    #[test]
    fn only_a_final_ok_without_errors_is_sound() {
        assert_eq!(verdict(&[row("status", "OK")]), None);
        assert_eq!(
            verdict(&[row(
                "note",
                "The storage engine for the table doesn't support check"
            )]),
            None
        );
        assert_eq!(
            verdict(&[
                row("error", "Record-count is not ok; is 3   Should be: 8"),
                row("warning", "Found 3 key parts. Should be: 8"),
                row("error", "Corrupt"),
            ]),
            Some("Record-count is not ok; is 3   Should be: 8; Corrupt".into())
        );
        assert_eq!(
            verdict(&[row("status", "Table is marked as crashed")]),
            Some("Table is marked as crashed".into())
        );
    }
}
