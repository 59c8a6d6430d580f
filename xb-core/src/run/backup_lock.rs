//! The backup lock in attempts (`--backup-lock-timeout`,
//! `--backup-lock-retry-count`).
//!
//! `LOCK INSTANCE FOR BACKUP` (MySQL) and the `BACKUP STAGE` statements
//! (MariaDB) wait for DDL that already runs. By default they wait as long
//! as `--lock-wait-timeout` allows, once. Told to, xb gives each attempt
//! `lock_wait_timeout = S` and tries again N times, so a long DDL makes the
//! backup fail with the holder named instead of waiting for a day.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::flavour::Step;
use super::locks::Held;
use super::server;
use crate::error::BackupError;

/// ER_LOCK_WAIT_TIMEOUT.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Runs `sql`, a backup-lock statement (recorded as `what` held, when
/// given), in the attempts the options say.
///
/// # Errors
/// [`BackupError::BackupLockTimeout`] after the last attempt timed out;
/// [`BackupError::Sql`].
pub(super) async fn take(
    step: &mut Step<'_>,
    what: Option<Held>,
    sql: &str,
) -> Result<(), BackupError> {
    let Some(each) = step.ctx.backup_lock_timeout else {
        return run(step, what, sql).await;
    };
    let retries = step.ctx.backup_lock_retry_count;
    server::set_lock_wait_timeout(step.session.conn(), each.as_secs()).await?;
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match run(step, what, sql).await {
            Err(e) if e.server_code() == Some(LOCK_WAIT_TIMEOUT) => {
                if attempt > retries {
                    break Err(timed_out(step, sql, attempt, each).await);
                }
                step.progress.phase(&format!(
                    "{sql}: not granted within {} s (attempt {attempt} of {}); waiting for the DDL holding it",
                    each.as_secs(),
                    retries + 1
                ));
            }
            r => break r,
        }
    };
    result?;
    // what comes later (the read lock, say) keeps --lock-wait-timeout
    step.set_lock_wait_timeout().await
}

/// The error for `lock` not granted in `attempts` of `each`, naming who
/// holds it when the server says.
pub(super) async fn timed_out(
    step: &mut Step<'_>,
    lock: &str,
    attempts: u32,
    each: Duration,
) -> BackupError {
    BackupError::BackupLockTimeout {
        lock: lock.into(),
        attempts,
        seconds: each.as_secs(),
        holders: holders(step).await,
    }
}

async fn run(step: &mut Step<'_>, what: Option<Held>, sql: &str) -> Result<(), BackupError> {
    match what {
        Some(h) => step.session.take(h, sql).await,
        None => step.session.exec(sql).await,
    }
}

/// Who holds the backup lock against xb, as far as the server says (MySQL's
/// `performance_schema.metadata_locks`); empty when it does not.
async fn holders(step: &mut Step<'_>) -> Vec<String> {
    if step.ctx.facts.mariadb {
        return Vec::new();
    }
    let sql = "SELECT IFNULL(t.PROCESSLIST_ID, 0), t.PROCESSLIST_USER, t.PROCESSLIST_TIME, t.PROCESSLIST_INFO \
               FROM performance_schema.metadata_locks m \
               JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID \
               WHERE m.OBJECT_TYPE = 'BACKUP LOCK' AND m.LOCK_STATUS = 'GRANTED' \
               AND t.PROCESSLIST_ID <> CONNECTION_ID()";
    let rows: Result<Vec<super::read_lock::ProcessRow>, _> = step.session.conn().query(sql).await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, user, time, info)| {
                format!(
                    "connection {} (user {}, {} s): {}",
                    id,
                    user.unwrap_or_default(),
                    time.unwrap_or(0),
                    info.map_or_else(
                        || "(no statement)".into(),
                        |q| super::read_lock::shorten(&q)
                    )
                )
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read who holds the backup lock");
            Vec::new()
        }
    }
}

/// `--backup-lock-timeout` as a duration: zero is not a timeout the server
/// takes, so it means "as --lock-wait-timeout".
#[must_use]
pub(super) fn each(secs: Option<u64>) -> Option<Duration> {
    secs.filter(|s| *s > 0).map(Duration::from_secs)
}
