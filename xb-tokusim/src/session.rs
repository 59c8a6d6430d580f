//! One client connection: the MySQL-protocol shim and the statement dispatcher.
//!
//! The simulator understands only the statements a TokuDB backup needs and
//! answers everything else with an error naming the statement, so a test
//! notices any statement it did not plan for.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use opensrv_mysql::{
    AsyncMysqlShim, Column, ColumnFlags, ColumnType, ErrorKind, OkResponse, ParamParser,
    QueryResultWriter, StatementMetaWriter,
};
use tokio::io::AsyncWrite;

use crate::backend::{Answer, forward};
use crate::{Event, Fault, Outcome, PluginState, Shared};

/// Per-connection shim; `id` is the connection id the client sees.
pub(crate) struct Session {
    pub(crate) id: u32,
    pub(crate) shared: Arc<Shared>,
    /// Proxy mode: this session's connection to the real server, opened on
    /// first use; the accept loop closes it when the client goes.
    pub(crate) backend: Arc<tokio::sync::Mutex<Option<mysql_async::Conn>>>,
}

/// What the dispatcher decided to send back.
enum Reply {
    Ok,
    Rows(Vec<String>, Vec<Vec<String>>),
    Error(ErrorKind, String),
    /// Proxy mode: the real server's answer.
    Backend(Answer),
}

/// Who answers a statement in proxy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The simulated TokuDB engine (its variables, plugin row, lock).
    Simulator,
    /// The real server.
    Backend,
    /// The real server first; if it succeeds, the simulated engine too
    /// (FLUSH TABLES WITH READ LOCK, UNLOCK TABLES).
    Both,
}

/// Route of a normalized, upper-cased statement in proxy mode.
fn route(upper: &str) -> Route {
    let toku = upper.contains("TOKUDB");
    let simulated = upper.starts_with("SELECT @@")
        || (upper.starts_with("SELECT ") && upper.contains("FROM INFORMATION_SCHEMA.PLUGINS"))
        || (upper.starts_with("SHOW ") && upper.contains("VARIABLES LIKE"))
        || upper.starts_with("SET ");
    if toku && simulated {
        Route::Simulator
    } else if upper == "FLUSH TABLES WITH READ LOCK" || upper == "UNLOCK TABLES" {
        Route::Both
    } else {
        Route::Backend
    }
}

/// Collapse whitespace and drop a trailing `;`.
pub(crate) fn normalize(sql: &str) -> String {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Session {
    fn variable(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let name = ["session.", "global.", "local."]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(&name)
            .to_string();
        let engine = self.shared.lock();
        let dir_value = |dir: &std::path::Path, separate: bool| {
            if separate {
                dir.display().to_string()
            } else {
                String::new()
            }
        };
        let toku = self.shared.config.plugin == PluginState::Active;
        match name.as_str() {
            "version" => Some("5.7.44-48-tokusim".into()),
            "version_comment" => Some("xb TokuDB simulator".into()),
            "datadir" => Some(format!("{}/", engine.layout.datadir.display())),
            "max_allowed_packet" => Some("67108864".into()),
            "wait_timeout" => Some("28800".into()),
            "socket" => Some(String::new()),
            "tokudb_data_dir" if toku => Some(dir_value(
                &engine.layout.data_dir,
                self.shared.config.separate_data_dir,
            )),
            "tokudb_log_dir" if toku => Some(dir_value(
                &engine.layout.log_dir,
                self.shared.config.separate_log_dir,
            )),
            "tokudb_checkpoint_lock" if toku => Some(
                if engine.checkpoint_lock.contains(&self.id) {
                    "ON"
                } else {
                    "OFF"
                }
                .into(),
            ),
            _ => None,
        }
    }

    fn all_variable_names(&self) -> Vec<&'static str> {
        let mut names = vec![
            "datadir",
            "max_allowed_packet",
            "socket",
            "version",
            "version_comment",
            "wait_timeout",
        ];
        if self.shared.config.plugin == PluginState::Active {
            names.extend([
                "tokudb_checkpoint_lock",
                "tokudb_data_dir",
                "tokudb_log_dir",
            ]);
        }
        names.sort_unstable();
        names
    }

    fn dispatch(&self, sql: &str) -> Reply {
        let upper = sql.to_ascii_uppercase();
        if upper.starts_with("SELECT @@") {
            return self.select_variables(&sql["SELECT ".len()..]);
        }
        if upper.starts_with("SELECT ") && upper.contains("FROM INFORMATION_SCHEMA.PLUGINS") {
            return self.plugin_count(&upper);
        }
        if let Some(rest) = upper.strip_prefix("SHOW ") {
            let rest = rest
                .strip_prefix("GLOBAL ")
                .or_else(|| rest.strip_prefix("SESSION "))
                .unwrap_or(rest);
            if let Some(pattern) = rest.strip_prefix("VARIABLES LIKE ") {
                return self.show_variables(pattern);
            }
        }
        if let Some(rest) = upper.strip_prefix("SET ") {
            return self.set(rest);
        }
        match upper.as_str() {
            "FLUSH TABLES WITH READ LOCK" => {
                self.shared.lock().take_read_lock(self.id);
                Reply::Ok
            }
            "UNLOCK TABLES" => {
                self.shared.lock().release_read_lock(self.id);
                Reply::Ok
            }
            _ => Reply::Error(
                ErrorKind::ER_NOT_SUPPORTED_YET,
                format!("tokusim: statement not simulated: {sql}"),
            ),
        }
    }

    fn select_variables(&self, list: &str) -> Reply {
        let mut names = Vec::new();
        let mut values = Vec::new();
        for item in list.split(',') {
            let item = item.trim();
            let Some(name) = item.strip_prefix("@@") else {
                return Reply::Error(
                    ErrorKind::ER_NOT_SUPPORTED_YET,
                    format!("tokusim: only @@variables can be selected, got {item}"),
                );
            };
            match self.variable(name) {
                Some(v) => {
                    names.push(item.to_string());
                    values.push(v);
                }
                None => return unknown_variable(name),
            }
        }
        Reply::Rows(names, vec![values])
    }

    fn plugin_count(&self, upper: &str) -> Reply {
        if !upper.starts_with("SELECT COUNT(*)") || !upper.contains("'TOKUDB'") {
            return Reply::Error(
                ErrorKind::ER_NOT_SUPPORTED_YET,
                format!("tokusim: only COUNT(*) of the TokuDB plugin row is simulated: {upper}"),
            );
        }
        let count = match self.shared.config.plugin {
            PluginState::Active => 1,
            PluginState::Disabled if !upper.contains("'ACTIVE'") => 1,
            PluginState::Disabled | PluginState::Absent => 0,
        };
        Reply::Rows(vec!["COUNT(*)".into()], vec![vec![count.to_string()]])
    }

    fn show_variables(&self, pattern: &str) -> Reply {
        let pattern = pattern.trim().trim_matches('\'').to_ascii_lowercase();
        let rows = self
            .all_variable_names()
            .into_iter()
            .filter(|n| like(&pattern, n))
            .filter_map(|n| Some(vec![n.to_string(), self.variable(n)?]))
            .collect();
        Reply::Rows(vec!["Variable_name".into(), "Value".into()], rows)
    }

    fn set(&self, rest: &str) -> Reply {
        let Some((lhs, rhs)) = rest.split_once('=') else {
            return Reply::Error(
                ErrorKind::ER_PARSE_ERROR,
                format!("tokusim: bad SET {rest}"),
            );
        };
        let lhs = lhs.trim();
        let (global, name) = if let Some(n) = lhs
            .strip_prefix("GLOBAL ")
            .or_else(|| lhs.strip_prefix("@@GLOBAL."))
        {
            (true, n.trim())
        } else {
            let n = ["SESSION ", "@@SESSION.", "@@LOCAL.", "LOCAL ", "@@"]
                .iter()
                .find_map(|p| lhs.strip_prefix(p))
                .unwrap_or(lhs);
            (false, n.trim())
        };
        if name != "TOKUDB_CHECKPOINT_LOCK" || self.shared.config.plugin != PluginState::Active {
            return unknown_variable(&name.to_ascii_lowercase());
        }
        if global {
            // The real variable is session-only, like the lock it controls.
            return Reply::Error(
                ErrorKind::ER_LOCAL_VARIABLE,
                "Variable 'tokudb_checkpoint_lock' is a SESSION variable and can't be used with SET GLOBAL".into(),
            );
        }
        let mut engine = self.shared.lock();
        match rhs.trim().trim_matches('\'') {
            "ON" | "1" | "TRUE" => engine.take_checkpoint_lock(self.id),
            "OFF" | "0" | "FALSE" => {
                engine.release_checkpoint_lock(self.id);
            }
            other => {
                return Reply::Error(
                    ErrorKind::ER_WRONG_VALUE_FOR_VAR,
                    format!(
                        "Variable 'tokudb_checkpoint_lock' can't be set to the value of '{other}'"
                    ),
                );
            }
        }
        Reply::Ok
    }
}

/// Result columns, all sent as strings: the client converts text to the
/// type it asks for, so the declared type does not matter.
fn text_columns(names: Vec<String>) -> Vec<Column> {
    names
        .into_iter()
        .map(|column| Column {
            table: String::new(),
            column,
            coltype: ColumnType::MYSQL_TYPE_VAR_STRING,
            colflags: ColumnFlags::empty(),
        })
        .collect()
}

fn unknown_variable(name: &str) -> Reply {
    Reply::Error(
        ErrorKind::ER_UNKNOWN_SYSTEM_VARIABLE,
        format!("Unknown system variable '{name}'"),
    )
}

/// SQL `LIKE` with `%` and `_` (no escapes), on lowercase input.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin> AsyncMysqlShim<W> for Session {
    type Error = io::Error;

    fn version(&self) -> String {
        "5.7.44-48-tokusim".into()
    }

    fn connect_id(&self) -> u32 {
        self.id
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a str,
        info: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        let sql = normalize(query);
        self.shared
            .record(self.id, &sql, Outcome::Error("prepared statements".into()));
        info.error(
            ErrorKind::ER_NOT_SUPPORTED_YET,
            b"tokusim: prepared statements are not simulated",
        )
        .await
    }

    async fn on_execute<'a>(
        &'a mut self,
        _id: u32,
        _params: ParamParser<'a>,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        results
            .error(
                ErrorKind::ER_NOT_SUPPORTED_YET,
                b"tokusim: no prepared statements",
            )
            .await
    }

    async fn on_close(&mut self, _stmt: u32) {}

    async fn on_query<'a>(
        &'a mut self,
        query: &'a str,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let sql = normalize(query);
        let fault = self.shared.take_fault(&sql);
        if let Some(Fault::ErrorOn { .. }) = fault {
            let msg = format!("tokusim: injected error for statement: {sql}");
            self.shared
                .record(self.id, &sql, Outcome::Error(msg.clone()));
            return results
                .error(ErrorKind::ER_UNKNOWN_ERROR, msg.as_bytes())
                .await;
        }
        let reply = match &self.shared.config.backend {
            None => self.dispatch(&sql),
            Some(backend) => {
                let upper = sql.to_ascii_uppercase();
                match route(&upper) {
                    Route::Simulator => self.dispatch(&sql),
                    r => {
                        let answer = forward(&mut *self.backend.lock().await, backend, &sql).await;
                        if r == Route::Both && !matches!(answer, Answer::Error(..)) {
                            // the real lock is granted: now the engine's
                            self.dispatch(&sql);
                        }
                        Reply::Backend(answer)
                    }
                }
            }
        };
        if fault.is_some() {
            // The statement took effect; the client never hears back.
            self.shared.record(self.id, &sql, Outcome::Dropped);
            return Err(io::Error::other("tokusim: injected connection drop"));
        }
        match reply {
            Reply::Ok => {
                self.shared.record(self.id, &sql, Outcome::Ok);
                results.completed(OkResponse::default()).await
            }
            Reply::Error(kind, msg) => {
                self.shared
                    .record(self.id, &sql, Outcome::Error(msg.clone()));
                results.error(kind, msg.as_bytes()).await
            }
            Reply::Backend(Answer::Done {
                affected,
                last_insert_id,
            }) => {
                self.shared.record(self.id, &sql, Outcome::Ok);
                let ok = OkResponse {
                    affected_rows: affected,
                    last_insert_id,
                    ..OkResponse::default()
                };
                results.completed(ok).await
            }
            Reply::Backend(Answer::Error(kind, msg)) => {
                self.shared
                    .record(self.id, &sql, Outcome::Error(msg.clone()));
                results.error(kind, msg.as_bytes()).await
            }
            Reply::Backend(Answer::Rows(names, rows)) => {
                self.shared.record(self.id, &sql, Outcome::Ok);
                let cols = text_columns(names);
                let mut w = results.start(&cols).await?;
                for row in rows {
                    for v in row {
                        w.write_col(v.as_deref())?;
                    }
                    w.end_row().await?;
                }
                w.finish().await
            }
            Reply::Rows(names, rows) => {
                self.shared.record(self.id, &sql, Outcome::Ok);
                let cols = text_columns(names);
                let mut w = results.start(&cols).await?;
                for row in rows {
                    w.write_row(row).await?;
                }
                w.finish().await
            }
        }
    }
}

impl Shared {
    pub(crate) fn record(&self, session: u32, sql: &str, outcome: Outcome) {
        self.lock().events.push(Event::Statement {
            session,
            at: SystemTime::now(),
            sql: sql.to_string(),
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql_wildcards() {
        assert!(like("tokudb%", "tokudb_data_dir"));
        assert!(like("tokudb_data_dir", "tokudb_data_dir"));
        assert!(like("%dir", "datadir"));
        assert!(!like("tokudb%", "datadir"));
        assert!(like("d_tadir", "datadir"));
    }

    #[test]
    fn proxy_routes_tokudb_statements_to_the_simulator() {
        for sql in [
            "SELECT COUNT(*) FROM INFORMATION_SCHEMA.PLUGINS WHERE PLUGIN_NAME = 'TOKUDB'",
            "SELECT @@DATADIR, @@TOKUDB_DATA_DIR, @@TOKUDB_LOG_DIR",
            "SET TOKUDB_CHECKPOINT_LOCK=ON",
            "SHOW VARIABLES LIKE 'TOKUDB%'",
        ] {
            assert_eq!(route(sql), Route::Simulator, "{sql}");
        }
        assert_eq!(route("FLUSH TABLES WITH READ LOCK"), Route::Both);
        assert_eq!(route("UNLOCK TABLES"), Route::Both);
        for sql in [
            "SELECT CAST(@@DATADIR AS CHAR)",
            "LOCK INSTANCE FOR BACKUP",
            "SET SESSION LOCK_WAIT_TIMEOUT = 5",
            "SELECT PLUGIN_NAME FROM INFORMATION_SCHEMA.PLUGINS",
        ] {
            assert_eq!(route(sql), Route::Backend, "{sql}");
        }
    }

    #[test]
    fn normalize_collapses_whitespace_and_semicolon() {
        assert_eq!(normalize("  SET  x =\n1 ; "), "SET x = 1");
    }
}
