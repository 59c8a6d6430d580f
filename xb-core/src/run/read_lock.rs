//! `FLUSH TABLES WITH READ LOCK`, or on MySQL read locks on just the
//! non-transactional tables, without stalling the server.
//!
//! The read lock waits for every running statement on the tables it
//! flushes, and every statement that comes after it queues behind it: a
//! read lock asked for while a ten-minute report runs blocks all writes
//! (and on most servers all reads too) for ten minutes. So, when told
//! ([`ReadLockOptions`]), xb first waits until no long statement runs and
//! fails instead of queueing when one still does; and while the lock is
//! asked for, a second connection kills the long statements keeping it
//! from being granted.
//!
//! Where only the non-transactional tables need writes stopped (MySQL,
//! no replica position to freeze), [`take_tables`] locks just them with
//! `LOCK TABLES … READ`: InnoDB commits go on, running reads of those
//! tables do not hold the lock up, and, unlike the global read lock, it
//! cannot deadlock with DDL waiting for the backup lock. (A DDL statement
//! queued behind `LOCK INSTANCE FOR BACKUP` holds the global intention
//! lock; `FLUSH TABLES WITH READ LOCK` then waits for it while it waits
//! for the backup, and the server kills the DDL with ER_LOCK_DEADLOCK.)

use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::api::{QueryKind, ReadLockOptions};
use super::flavour::Step;
use super::locks::Held;
use super::{Ctx, Progress, server, watch::Watched};
use crate::error::BackupError;

/// The statement.
pub(super) const READ_LOCK: &str = "FLUSH TABLES WITH READ LOCK";

/// How often the processlist is read while waiting or killing.
const POLL: Duration = Duration::from_millis(500);

/// How much of a statement a message shows.
const SHOWN: usize = 200;

/// Other sessions' running statements: idle, replication-dump, daemon and
/// server-internal threads are left out, as is the connection asking.
const PROCESSLIST: &str = "SELECT ID, USER, TIME, INFO FROM information_schema.PROCESSLIST \
     WHERE ID <> CONNECTION_ID() AND INFO IS NOT NULL \
     AND COMMAND NOT IN ('Sleep','Daemon','Binlog Dump','Binlog Dump GTID','Killed') \
     AND USER NOT IN ('system user','event_scheduler')";

/// A processlist row as read: id, user, seconds, statement.
pub(super) type ProcessRow = (u64, Option<String>, Option<i64>, Option<String>);

/// A statement another session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Running {
    pub id: u64,
    pub user: String,
    pub seconds: u64,
    pub query: String,
}

/// Takes the read lock on the main session, waiting first for long
/// statements to end and killing the ones blocking it, as the options say.
///
/// # Errors
/// [`BackupError::LongQueryBeforeReadLock`] when a long statement outlived
/// `--ftwrl-wait-timeout` (nothing was asked for then), or
/// [`BackupError::Sql`].
pub(super) async fn take(step: &mut Step<'_>) -> Result<(), BackupError> {
    take_as(step, Held::ReadLock, READ_LOCK).await?;
    step.found.commits_blocked(READ_LOCK);
    Ok(())
}

/// Read locks on `tables` (schema, name) only, as [`take`] takes the
/// global one: long statements waited for or killed as the options say.
/// Falls back to [`take`] where the user may not lock those tables
/// (`LOCK TABLES` needs `SELECT` on each).
///
/// # Errors
/// As [`take`].
pub(super) async fn take_tables(
    step: &mut Step<'_>,
    tables: &[(String, String)],
) -> Result<(), BackupError> {
    let list = tables
        .iter()
        .map(|(db, t)| format!("{} READ", super::server::quote_table(db, t)))
        .collect::<Vec<_>>()
        .join(", ");
    match take_as(step, Held::TableReadLocks, &format!("LOCK TABLES {list}")).await {
        // ER_DBACCESS_DENIED, ER_TABLEACCESS_DENIED: no SELECT on them
        Err(e) if matches!(e.server_code(), Some(1044 | 1142)) => {
            step.session.forget(Held::TableReadLocks);
            step.progress.warning(&format!(
                "cannot lock the non-transactional tables one by one ({e}); taking {READ_LOCK} instead"
            ));
            take(step).await
        }
        Err(e) => Err(e),
        Ok(()) => {
            step.found.writes_blocked(Held::TableReadLocks.name());
            Ok(())
        }
    }
}

/// Takes `held` with `sql` on the main session, after the wait for long
/// statements and with the killer running while it waits, as the options
/// say.
async fn take_as(step: &mut Step<'_>, held: Held, sql: &str) -> Result<(), BackupError> {
    let opts = step.ctx.read_lock.clone();
    let watched = step.session.watched();
    wait_for_no_long_queries(
        step.session.conn(),
        &opts,
        &watched,
        step.progress,
        held.name(),
    )
    .await?;
    step.progress.phase(held.name());
    if opts.kill_timeout.is_zero() {
        step.session.take(held, sql).await
    } else {
        let killer = async {
            if let Err(e) =
                kill_blockers(step.ctx, &opts, &watched, step.progress, held.name()).await
            {
                tracing::warn!(error = %e, "killing long queries failed; still waiting for the read lock");
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            r = step.session.take(held, sql) => r,
            () = killer => unreachable!("the killer never ends"),
        }
    }
}

/// `--ftwrl-wait-timeout`: waits until no statement of the kind waited for
/// has run `wait_threshold` or longer.
///
/// # Errors
/// [`BackupError::LongQueryBeforeReadLock`] naming the longest one still
/// running at the end of the wait; [`BackupError::Sql`].
pub(super) async fn wait_for_no_long_queries(
    conn: &mut Conn,
    opts: &ReadLockOptions,
    watched: &Watched,
    progress: &dyn Progress,
    lock: &str,
) -> Result<(), BackupError> {
    if opts.wait_timeout.is_zero() {
        return Ok(());
    }
    let start = Instant::now();
    let mut told = false;
    loop {
        let mut long =
            long_queries(conn, watched, opts.wait_threshold, opts.wait_query_type).await?;
        if long.is_empty() {
            return Ok(());
        }
        long.sort_by_key(|q| std::cmp::Reverse(q.seconds));
        let first = long.swap_remove(0);
        if !told {
            progress.phase(&format!(
                "wait up to {} s for {} statement(s) running over {} s before {lock} (longest: connection {}, {} s: {})",
                opts.wait_timeout.as_secs(),
                long.len() + 1,
                opts.wait_threshold.as_secs(),
                first.id,
                first.seconds,
                first.query
            ));
            told = true;
        }
        if start.elapsed() >= opts.wait_timeout {
            return Err(BackupError::LongQueryBeforeReadLock {
                id: first.id,
                user: first.user,
                seconds: first.seconds,
                query: first.query,
                waited: opts.wait_timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `--kill-long-queries-timeout`: from `kill_timeout` after the lock was
/// asked for, kills (on its own connection, the main one waits) every
/// statement of `kill_query_type` that has run at least that long. Ends
/// only on an error; the caller drops it once the lock is granted.
async fn kill_blockers(
    ctx: &Ctx,
    opts: &ReadLockOptions,
    watched: &Watched,
    progress: &dyn Progress,
    lock: &str,
) -> Result<(), BackupError> {
    tokio::time::sleep(opts.kill_timeout).await;
    let mut conn = server::connect(&ctx.connect).await?;
    progress.phase(&format!(
        "{lock} not granted after {} s: killing {} statements running that long",
        opts.kill_timeout.as_secs(),
        match opts.kill_query_type {
            QueryKind::Select => "SELECT",
            QueryKind::Update => "writing",
            QueryKind::All => "all",
        }
    ));
    loop {
        for q in long_queries(&mut conn, watched, opts.kill_timeout, opts.kill_query_type).await? {
            // said before the KILL is sent: the read lock is granted the
            // moment the query dies, and this loop is dropped with it
            tracing::warn!(id = q.id, user = %q.user, seconds = q.seconds, query = %q.query, "killing a query blocking the read lock");
            progress.warning(&format!(
                "killing connection {} (user {}, running {} s) that blocks {lock}: {}",
                q.id, q.user, q.seconds, q.query
            ));
            let sql = format!("KILL {}", q.id);
            match server::exec(&mut conn, &sql).await {
                // ER_NO_SUCH_THREAD: it ended meanwhile
                Err(e) if e.server_code() == Some(1094) => {
                    progress.warning(&format!("connection {} ended before the KILL", q.id));
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Other sessions' statements of `kind` that have run `threshold` or
/// longer; xb's own sessions are left out.
async fn long_queries(
    conn: &mut Conn,
    watched: &Watched,
    threshold: Duration,
    kind: QueryKind,
) -> Result<Vec<Running>, BackupError> {
    let sql = format!("{PROCESSLIST} AND TIME >= {}", threshold.as_secs());
    let rows: Vec<ProcessRow> = conn
        .query(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    let ours = watched.ids();
    Ok(rows
        .into_iter()
        .filter(|(id, ..)| !ours.contains(id))
        .filter_map(|(id, user, time, info)| {
            let query = info?;
            is_kind(&query, kind).then(|| Running {
                id,
                user: user.unwrap_or_default(),
                seconds: time.map_or(0, |t| u64::try_from(t).unwrap_or(0)),
                query: shorten(&query),
            })
        })
        .collect())
}

/// Is `query` of `kind`, judged by its first word (after comments and
/// opening parentheses)?
pub(super) fn is_kind(query: &str, kind: QueryKind) -> bool {
    let read = matches!(
        first_word(query).to_ascii_uppercase().as_str(),
        "SELECT" | "SHOW" | "WITH"
    );
    match kind {
        QueryKind::All => true,
        QueryKind::Select => read,
        QueryKind::Update => !read,
    }
}

fn first_word(query: &str) -> &str {
    let mut q = query.trim_start();
    loop {
        if let Some(rest) = q.strip_prefix("/*") {
            q = rest
                .find("*/")
                .map_or("", |end| &rest[end + 2..])
                .trim_start();
        } else if let Some(rest) = q.strip_prefix('(') {
            q = rest.trim_start();
        } else {
            break;
        }
    }
    let end = q
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(q.len());
    &q[..end]
}

/// The statement on one line, at most [`SHOWN`] characters.
pub(super) fn shorten(query: &str) -> String {
    let one_line: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_first_word() {
        for q in [
            "SELECT SLEEP(600)",
            "  /* report */ (select 1)",
            "show processlist",
            "WITH a AS (SELECT 1) SELECT * FROM a",
        ] {
            assert!(is_kind(q, QueryKind::Select), "{q}");
            assert!(!is_kind(q, QueryKind::Update), "{q}");
            assert!(is_kind(q, QueryKind::All), "{q}");
        }
        for q in [
            "INSERT INTO t SELECT 1",
            "update t set a=1",
            "ALTER TABLE t ENGINE=InnoDB",
            "/* unclosed",
        ] {
            assert!(!is_kind(q, QueryKind::Select), "{q}");
            assert!(is_kind(q, QueryKind::Update), "{q}");
        }
    }

    #[test]
    fn long_statements_are_shortened_on_one_line() {
        assert_eq!(shorten("SELECT\n  1"), "SELECT 1");
        let long = format!("SELECT '{}'", "é".repeat(300));
        let s = shorten(&long);
        assert!(s.ends_with("...") && s.chars().count() == SHOWN + 3, "{s}");
    }
}
