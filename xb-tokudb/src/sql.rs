//! The SQL seam: the few statements a TokuDB backup sends, behind a trait so
//! the orchestrator passes its connection and tests can pass anything.

use std::future::Future;

use mysql_async::prelude::Queryable;

/// A failed statement as the crate sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// Server error code (`1193` unknown variable, …) when the server answered.
    pub code: Option<u16>,
    /// The server's or driver's message.
    pub message: String,
    /// The connection is gone. Session-scoped locks (the TokuDB checkpoint
    /// lock, FLUSH TABLES WITH READ LOCK) ended with it on the server side.
    pub connection_lost: bool,
}

/// One rows-returning answer: rows of nullable text columns.
pub type Rows = Vec<Vec<Option<String>>>;

/// One server session. Every lock this crate takes is scoped to this session,
/// so all statements of one backup must go through the same value.
pub trait SqlSession: Send {
    /// Run a statement that returns no rows.
    fn exec(&mut self, sql: &str) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// Run a statement and return all its rows as text.
    fn query_rows(&mut self, sql: &str) -> impl Future<Output = Result<Rows, SqlError>> + Send;
}

impl From<mysql_async::Error> for SqlError {
    fn from(e: mysql_async::Error) -> Self {
        match &e {
            mysql_async::Error::Server(s) => Self {
                code: Some(s.code),
                message: s.message.clone(),
                connection_lost: false,
            },
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Self {
                code: None,
                message: e.to_string(),
                connection_lost: true,
            },
            _ => Self {
                code: None,
                message: e.to_string(),
                connection_lost: false,
            },
        }
    }
}

fn value_text(v: &mysql_async::Value) -> Option<String> {
    use mysql_async::Value;
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// The orchestrator's connection is the session.
impl SqlSession for mysql_async::Conn {
    async fn exec(&mut self, sql: &str) -> Result<(), SqlError> {
        self.query_drop(sql).await.map_err(SqlError::from)
    }

    async fn query_rows(&mut self, sql: &str) -> Result<Rows, SqlError> {
        let rows: Vec<mysql_async::Row> = self.query(sql).await.map_err(SqlError::from)?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.as_ref(i).and_then(value_text))
                    .collect()
            })
            .collect())
    }
}
