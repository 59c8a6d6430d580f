//! The watcher: notices within seconds that a session the backup depends
//! on, or the server itself, is gone.
//!
//! While the data files are copied the main session sends nothing for
//! hours, yet it holds what makes the copy consistent (the backup stage,
//! the instance lock; with MySQL `--lock-ddl-per-table` a second session
//! holds the metadata locks). If one of them is killed, or the server
//! crashes, the locks are gone at once, but the next statement that would
//! notice is only sent after the whole copy: hours of copying for a backup
//! that is already lost, with the target growing all the time.
//!
//! So the watcher keeps a connection of its own and, about every second,
//! asks `information_schema.PROCESSLIST` whether the watched sessions
//! (their `CONNECTION_ID()`s, recorded when they connected: [`Watched`])
//! still exist. A session missing from the list was killed; a server that
//! does not answer, or cannot be reached after the watcher's own connection
//! broke, is gone. The ids are asked of the server rather than taken from
//! the handshake, because a proxy in between answers the handshake with
//! ids of its own; and the watcher trusts a list only if it shows the
//! watcher's own session too: where it does not (a proxy that keeps the
//! list to itself), it stops watching rather than call sessions killed. The finding is recorded once ([`Verdict`]); the copy
//! (`data_copy::copy_jobs`) polls it and stops, and the backup
//! fails with [`BackupError::SessionLost`].
//!
//! The watcher never fails a backup for its own sake: when its own
//! connection is killed it reconnects, and when it cannot work at all
//! (say, the account was dropped) it logs that and stops watching.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::lag::LagMeter;
use super::server::{self, ConnectOptions};
use crate::error::{BackupError, SessionLoss};

/// How often the sessions are looked for: a lost session is noticed about
/// this long after it went.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long the server may take to answer the watcher before it counts as
/// gone. Generous: a server that is slow for a while (a burst of I/O, a
/// long checkpoint) must not fail a backup that would succeed; a crashed
/// server is noticed at once anyway, because its sockets close.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The sessions the backup depends on, by connection id. The owner of a
/// session adds it when it connects and removes it *before* it closes the
/// connection, so a session ended on purpose is never taken for a lost one.
#[derive(Debug, Default)]
pub struct Watched {
    sessions: Mutex<Vec<(u64, String)>>,
}

impl Watched {
    /// Watches connection `id`, called `name` in messages.
    pub fn add(&self, id: u64, name: String) {
        self.lock().push((id, name));
    }

    /// Stops watching connection `id`.
    pub fn remove(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// The connection ids watched now (xb's own sessions, which a search
    /// for other sessions' long queries leaves out).
    pub fn ids(&self) -> Vec<u64> {
        self.lock().iter().map(|(i, _)| *i).collect()
    }

    fn list(&self) -> Vec<(u64, String)> {
        self.lock().clone()
    }

    fn contains(&self, id: u64) -> bool {
        self.lock().iter().any(|(i, _)| *i == id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, String)>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `CONNECTION_ID()` of `conn`: the id the server's process list shows
/// for it.
///
/// # Errors
/// [`BackupError::Sql`] or [`BackupError::SessionLost`].
pub async fn connection_id(conn: &mut Conn) -> Result<u64, BackupError> {
    let sql = "SELECT CONNECTION_ID()";
    let id: Option<u64> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    id.ok_or_else(|| BackupError::sql_answer(sql, "no row"))
}

/// What the watcher found: which session, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The session, as [`Watched`] names it (or the server).
    pub session: String,
    /// Killed, or the server gone.
    pub loss: SessionLoss,
    /// What was observed.
    pub detail: String,
}

impl Lost {
    /// The error the backup fails with.
    #[must_use]
    pub fn error(&self) -> BackupError {
        BackupError::SessionLost {
            session: self.session.clone(),
            loss: self.loss,
            detail: self.detail.clone(),
        }
    }
}

/// The watcher's finding, set at most once; read by the copy threads.
#[derive(Debug, Default)]
pub struct Verdict(OnceLock<Lost>);

impl Verdict {
    /// The lost session, once one is lost.
    #[must_use]
    pub fn lost(&self) -> Option<&Lost> {
        self.0.get()
    }

    fn record(&self, lost: Lost) {
        if self.0.set(lost.clone()).is_ok() {
            tracing::error!(session = %lost.session, loss = %lost.loss, detail = %lost.detail, "session lost");
        }
    }
}

/// The running watcher. Stop it with [`Watch::stop`] or
/// [`Watch::explain`] before the watched sessions are closed; dropping it
/// stops it too.
#[derive(Debug)]
pub struct Watch {
    verdict: Arc<Verdict>,
    looker: Arc<tokio::sync::Mutex<Looker>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching `watched` on a connection of its own (opened by the
    /// watcher's first look, so a slow connect delays nothing). Once `lag`
    /// is armed, each look also samples the server's LSN for it (`mariadb`
    /// picks the status variable).
    #[must_use]
    pub fn start(
        connect: &ConnectOptions,
        watched: Arc<Watched>,
        lag: Arc<LagMeter>,
        mariadb: bool,
    ) -> Self {
        let verdict = Arc::new(Verdict::default());
        let looker = Arc::new(tokio::sync::Mutex::new(Looker {
            connect: connect.clone(),
            watched,
            conn: None,
            disabled: false,
            lag,
            mariadb,
        }));
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn({
            let verdict = Arc::clone(&verdict);
            let looker = Arc::clone(&looker);
            async move {
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = tokio::time::sleep(INTERVAL) => {}
                    }
                    let mut l = looker.lock().await;
                    let found = tokio::select! {
                        _ = &mut stopped => break,
                        found = l.look() => found,
                    };
                    if let Some(lost) = found {
                        verdict.record(lost);
                        break;
                    }
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = l.sample_lag() => {}
                    }
                }
                looker.lock().await.close().await;
            }
        });
        Watch {
            verdict,
            looker,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The finding, for the copy threads to poll.
    #[must_use]
    pub fn verdict(&self) -> Arc<Verdict> {
        Arc::clone(&self.verdict)
    }

    /// Stops the watcher and closes its connection.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Stops the watcher and says why the backup failed with `e`: when `e`
    /// is a lost session or a copy stopped for it, the watcher's finding
    /// (which session, killed or server gone) replaces it. A statement
    /// that saw its connection break before the watcher's next look gets
    /// one more look now, so the user learns which of the two it was.
    pub async fn explain(mut self, e: BackupError) -> BackupError {
        self.halt().await;
        let relevant = matches!(
            e,
            BackupError::SessionLost { .. } | BackupError::RedoStopped
        );
        if !relevant {
            return e;
        }
        if let Some(lost) = self.verdict.lost() {
            return lost.error();
        }
        if matches!(e, BackupError::SessionLost { .. }) {
            let mut l = self.looker.lock().await;
            let found = l.look().await;
            l.close().await;
            if let Some(lost) = found {
                return lost.error();
            }
        }
        e
    }

    async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The watcher's connection and what it looks for.
#[derive(Debug)]
struct Looker {
    connect: ConnectOptions,
    watched: Arc<Watched>,
    /// The watcher's connection and its own `CONNECTION_ID()`.
    conn: Option<(Conn, u64)>,
    /// The watcher cannot work here (logged once); it looks no more.
    disabled: bool,
    /// Where the server's LSN goes, once the redo copy runs.
    lag: Arc<LagMeter>,
    /// MariaDB (its LSN status variable has another name than MySQL's).
    mariadb: bool,
}

/// How long one LSN sample may take; a slow answer skips the sample.
const SAMPLE_WITHIN: Duration = Duration::from_secs(5);

impl Looker {
    /// One sample of the server's LSN for the lag meter, on the watcher's
    /// connection. A failed or slow sample is skipped: the figure is for
    /// the user's information and never fails a backup.
    async fn sample_lag(&mut self) {
        if self.disabled || !self.lag.is_armed() {
            return;
        }
        let Some((conn, _)) = self.conn.as_mut() else {
            return;
        };
        match tokio::time::timeout(SAMPLE_WITHIN, server::status_lsn(conn, self.mariadb)).await {
            Ok(Ok(Some(lsn))) => self.lag.sample(lsn),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "no LSN sample"),
            Err(_) => tracing::debug!("the LSN sample took too long"),
        }
    }

    /// One look: `Some` when a watched session or the server is gone.
    async fn look(&mut self) -> Option<Lost> {
        if self.disabled {
            return None;
        }
        // a second try after the watcher's own connection broke: that alone
        // says nothing (someone may have killed just the watcher)
        for _ in 0..2 {
            if self.conn.is_none() {
                match server::connect(&self.connect).await {
                    Ok(mut c) => match connection_id(&mut c).await {
                        Ok(own) => self.conn = Some((c, own)),
                        Err(e) => {
                            tracing::debug!(error = %e, "the watcher's new connection broke");
                            continue;
                        }
                    },
                    Err(BackupError::Connect { endpoint, message }) => {
                        return Some(Lost {
                            session: format!("the server at {endpoint}"),
                            loss: SessionLoss::ServerGone,
                            detail: format!("it cannot be reached any more: {message}"),
                        });
                    }
                    Err(e) => return self.disable(&e),
                }
            }
            let Some((conn, own)) = self.conn.as_mut() else {
                continue;
            };
            let own = *own;
            let ids = self.watched.list();
            if ids.is_empty() {
                return None;
            }
            let sql = format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({own},{})",
                ids.iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match tokio::time::timeout(ANSWER_WITHIN, conn.query::<u64, _>(sql.as_str())).await {
                Err(_) => {
                    return Some(Lost {
                        session: format!("the server at {}", self.connect.endpoint()),
                        loss: SessionLoss::ServerGone,
                        detail: format!("it did not answer within {} s", ANSWER_WITHIN.as_secs()),
                    });
                }
                Ok(Ok(present)) => {
                    return match self.judge(own, &ids, &present) {
                        Ok(found) => found,
                        Err(why) => self.disable(&BackupError::sql_answer(&sql, why)),
                    };
                }
                Ok(Err(mysql_async::Error::Server(se))) if se.code == 1053 => {
                    // ER_SERVER_SHUTDOWN
                    return Some(Lost {
                        session: format!("the server at {}", self.connect.endpoint()),
                        loss: SessionLoss::ServerGone,
                        detail: format!("it is shutting down: {}", se.message),
                    });
                }
                Ok(Err(e)) => match BackupError::sql(&sql, &e) {
                    // the watcher's own session was killed or broke
                    BackupError::SessionLost { .. } => {
                        tracing::debug!(error = %e, "the watcher's connection broke; reconnecting");
                        self.conn = None;
                    }
                    refused => return self.disable(&refused),
                },
            }
        }
        None
    }

    /// What one answer of the process list says: the first watched
    /// session it did not show, if that is still watched now that the
    /// answer is in (one closed on purpose meanwhile was removed from
    /// [`Watched`] before it closed). An answer without the watcher's own
    /// session `own` is no witness at all (`Err`).
    fn judge(
        &self,
        own: u64,
        asked: &[(u64, String)],
        present: &[u64],
    ) -> Result<Option<Lost>, String> {
        if !present.contains(&own) {
            return Err(format!(
                "the process list does not show the watcher's own session {own}"
            ));
        }
        Ok(asked
            .iter()
            .find(|(id, _)| !present.contains(id) && self.watched.contains(*id))
            .map(|(id, name)| Lost {
                session: name.clone(),
                loss: SessionLoss::Killed,
                detail: format!("connection {id} is no longer in the server's process list"),
            }))
    }

    fn disable(&mut self, e: &BackupError) -> Option<Lost> {
        tracing::warn!(error = %e, "the session watcher cannot work; a lost session is noticed only by the next statement");
        self.disabled = true;
        None
    }

    async fn close(&mut self) {
        if let Some((c, _)) = self.conn.take() {
            let _ = c.disconnect().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looker(watched: Arc<Watched>) -> Looker {
        Looker {
            connect: ConnectOptions::default(),
            watched,
            conn: None,
            disabled: false,
            lag: Arc::new(LagMeter::default()),
            mariadb: true,
        }
    }

    #[test]
    fn a_session_missing_from_the_process_list_was_killed() {
        let w = Arc::new(Watched::default());
        w.add(12, "xb's main session (connection 12)".into());
        w.add(14, "the metadata-lock session (connection 14)".into());
        let l = looker(Arc::clone(&w));
        let asked = w.list();
        assert_eq!(l.judge(20, &asked, &[12, 14, 20]), Ok(None));
        let lost = l
            .judge(20, &asked, &[12, 20])
            .expect("a witness")
            .expect("14 is gone");
        assert_eq!(lost.loss, SessionLoss::Killed);
        assert_eq!(lost.session, "the metadata-lock session (connection 14)");
        let e = lost.error();
        assert_eq!(e.code(), 16);
        assert!(e.to_string().contains("connection killed"), "{e}");
        assert!(!e.hint().contains("privilege"), "{}", e.hint());
    }

    #[test]
    fn a_session_closed_on_purpose_meanwhile_is_not_lost() {
        let w = Arc::new(Watched::default());
        w.add(12, "main".into());
        w.add(14, "metadata locks".into());
        let l = looker(Arc::clone(&w));
        let asked = w.list();
        // the metadata-lock session is released while the look is under way
        w.remove(14);
        assert_eq!(l.judge(20, &asked, &[12, 20]), Ok(None));
    }

    /// Behind a proxy that answers with a process list of its own (or of
    /// another server), the ids mean nothing: no session is called killed.
    #[test]
    fn a_process_list_without_the_watchers_own_session_is_no_witness() {
        let w = Arc::new(Watched::default());
        w.add(12, "main".into());
        let l = looker(Arc::clone(&w));
        let why = l.judge(20, &w.list(), &[]).expect_err("no witness");
        assert!(why.contains("own session 20"), "{why}");
    }

    #[test]
    fn a_verdict_is_recorded_once() {
        let v = Verdict::default();
        assert!(v.lost().is_none());
        let first = Lost {
            session: "a".into(),
            loss: SessionLoss::Killed,
            detail: "x".into(),
        };
        v.record(first.clone());
        v.record(Lost {
            session: "b".into(),
            loss: SessionLoss::ServerGone,
            detail: "y".into(),
        });
        assert_eq!(v.lost(), Some(&first));
    }

    /// A server that refuses connections: the watcher says it is gone.
    #[tokio::test]
    async fn an_unreachable_server_is_gone() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let w = Arc::new(Watched::default());
        w.add(1, "main".into());
        let mut l = looker(w);
        l.connect.port = Some(port);
        let lost = l.look().await.expect("nothing listens there");
        assert_eq!(lost.loss, SessionLoss::ServerGone);
        assert!(lost.error().to_string().contains("server gone"));
    }
}
