//! Proxy mode: a real MySQL server behind the simulator.
//!
//! No TokuDB server can be installed, but a TokuDB backup is not only the
//! TokuDB steps: InnoDB's redo, the backup lock, binlog coordinates and a
//! restore that must match the source all come from a real server. In proxy
//! mode the simulator answers the TokuDB statements itself (plugin probe,
//! `@@tokudb_*`, the checkpoint lock) and forwards everything else to a real
//! server, one backend connection per client session, so the two together
//! behave like a server with the TokuDB plugin loaded. `FLUSH TABLES WITH
//! READ LOCK` and `UNLOCK TABLES` go to both: the real server stops its
//! commits and the simulated engine stops appending to its log.

use std::path::PathBuf;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value};
use opensrv_mysql::ErrorKind;

/// The real server behind the simulator.
#[derive(Debug, Clone)]
pub struct Backend {
    /// How the simulator connects (an account that can run a backup).
    pub opts: Opts,
    /// The real server's datadir: the simulated TokuDB files are created
    /// there (or in separate directories, per [`crate::SimConfig`]) and
    /// `@@datadir` answers with it.
    pub datadir: PathBuf,
}

/// What the backend answered.
pub(crate) enum Answer {
    /// A statement without a result set.
    Done { affected: u64, last_insert_id: u64 },
    /// Column names and rows, every value as text (NULL as `None`).
    Rows(Vec<String>, Vec<Vec<Option<Vec<u8>>>>),
    /// The server's error, or a lost backend connection.
    Error(ErrorKind, String),
}

/// Run `sql` on the session's backend connection, opening it on first use.
pub(crate) async fn forward(conn: &mut Option<Conn>, backend: &Backend, sql: &str) -> Answer {
    if conn.is_none() {
        match Conn::new(backend.opts.clone()).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                return Answer::Error(
                    ErrorKind::ER_UNKNOWN_ERROR,
                    format!("tokusim: cannot reach the backend server: {e}"),
                );
            }
        }
    }
    let Some(c) = conn.as_mut() else {
        return Answer::Error(ErrorKind::ER_UNKNOWN_ERROR, "tokusim: no backend".into());
    };
    match run(c, sql).await {
        Ok(a) => a,
        Err(mysql_async::Error::Server(e)) => Answer::Error(error_kind(e.code), e.message),
        Err(e) => {
            // the backend session (and the locks it held) is gone: the
            // client must see its session end too, not a healthy one
            *conn = None;
            Answer::Error(
                ErrorKind::ER_UNKNOWN_ERROR,
                format!("tokusim: backend connection lost: {e}"),
            )
        }
    }
}

async fn run(c: &mut Conn, sql: &str) -> Result<Answer, mysql_async::Error> {
    let mut result = c.query_iter(sql).await?;
    let columns = result.columns();
    let names: Vec<String> = columns
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|col| col.name_str().into_owned())
        .collect();
    let (affected, last_insert_id) = (result.affected_rows(), result.last_insert_id().unwrap_or(0));
    let rows: Vec<mysql_async::Row> = result.collect().await?;
    // only single statements are forwarded; drain anything else
    result.drop_result().await?;
    if names.is_empty() {
        return Ok(Answer::Done {
            affected,
            last_insert_id,
        });
    }
    let rows = rows
        .into_iter()
        .map(|r| r.unwrap().into_iter().map(text).collect())
        .collect();
    Ok(Answer::Rows(names, rows))
}

/// A value in the text protocol's form.
fn text(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::UInt(u) => Some(u.to_string().into_bytes()),
        Value::Float(f) => Some(f.to_string().into_bytes()),
        Value::Double(d) => Some(d.to_string().into_bytes()),
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// The backend's error code as the client should see it. opensrv knows only
/// its own list (and panics on others), so the codes a backup reacts to are
/// passed through and the rest become a generic error.
fn error_kind(code: u16) -> ErrorKind {
    match code {
        1044 | 1045 | 1046 | 1049 | 1051 | 1054 | 1064 | 1142 | 1143 | 1146 | 1193 | 1205
        | 1213 | 1227 | 1231 | 1232 => ErrorKind::from(code),
        _ => ErrorKind::ER_UNKNOWN_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_pass_through_and_others_do_not_panic() {
        assert_eq!(error_kind(1146) as u16, 1146);
        assert_eq!(error_kind(1205) as u16, 1205);
        assert_eq!(error_kind(3948), ErrorKind::ER_UNKNOWN_ERROR);
    }

    #[test]
    fn values_become_text() {
        assert_eq!(text(Value::NULL), None);
        assert_eq!(text(Value::Int(-3)), Some(b"-3".to_vec()));
        assert_eq!(text(Value::Bytes(b"x".to_vec())), Some(b"x".to_vec()));
    }
}
