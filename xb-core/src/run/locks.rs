//! The backup's server session and everything the server holds for it.
//!
//! [`Session`] owns the main connection, the second session that holds
//! per-table metadata locks (MySQL `--lock-ddl-per-table`), and a list of
//! what has been taken on the server: backup stage, instance lock, read
//! lock, TokuDB checkpoint lock, RocksDB checkpoint, a replica's SQL
//! threads stopped by `--safe-slave-backup`. Steps take and release
//! through it; the orchestration calls [`Session::release_all`] once on
//! every error path, so no flavour writes its own clean-up. A session
//! dropped while still holding something (a panic, an embedder dropping
//! the backup future) closes its connections, which ends every
//! session-scoped lock on the server; only a RocksDB checkpoint directory
//! outlives that, and the next backup removes it before making its own.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::Conn;

use super::server::{self, ConnectOptions};
use super::watch::{self, Watched};
use crate::error::BackupError;

/// How long a release on the error path may take: the failure may be a
/// server that stopped answering, and the user must still get the error.
const RELEASE_PATIENCE: Duration = Duration::from_secs(30);

/// Something the server holds for the backup until it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// MariaDB `BACKUP STAGE` (any stage up to `BLOCK_COMMIT`).
    BackupStage,
    /// MySQL `LOCK INSTANCE FOR BACKUP`.
    InstanceLock,
    /// `FLUSH TABLES WITH READ LOCK`.
    ReadLock,
    /// `LOCK TABLES … READ` on the non-transactional tables (MySQL).
    TableReadLocks,
    /// `SET TOKUDB_CHECKPOINT_LOCK=ON`.
    TokuCheckpointLock,
    /// A RocksDB checkpoint directory and the user lock guarding it.
    RocksCheckpoint,
    /// The replica's SQL threads, stopped by `--safe-slave-backup`;
    /// "released" by starting again the ones that ran.
    ReplicaSqlThread,
}

impl Held {
    /// What this is, for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Held::BackupStage => "BACKUP STAGE",
            Held::InstanceLock => "LOCK INSTANCE FOR BACKUP",
            Held::ReadLock => "FLUSH TABLES WITH READ LOCK",
            Held::TableReadLocks => "LOCK TABLES … READ",
            Held::TokuCheckpointLock => "TokuDB checkpoint lock",
            Held::RocksCheckpoint => "RocksDB checkpoint",
            Held::ReplicaSqlThread => "the replica's stopped SQL thread",
        }
    }
}

/// The main connection and what the server holds for the backup.
#[derive(Debug)]
pub struct Session {
    conn: Conn,
    held: Vec<Held>,
    table_locks: Option<(Conn, u64)>,
    /// What starts the replica's SQL threads again while
    /// [`Held::ReplicaSqlThread`] is held.
    sql_thread_restart: Vec<String>,
    /// The connections the watcher looks for ([`super::watch`]).
    watched: Arc<Watched>,
}

impl Session {
    /// Connects, and records the session's `CONNECTION_ID()` for the
    /// watcher.
    ///
    /// # Errors
    /// As [`server::connect`], or the id cannot be read.
    pub async fn connect(c: &ConnectOptions) -> Result<Self, BackupError> {
        let mut conn = server::connect(c).await?;
        let id = watch::connection_id(&mut conn).await?;
        let watched = Arc::new(Watched::default());
        watched.add(id, format!("xb's main session (connection {id})"));
        Ok(Session {
            conn,
            held: Vec::new(),
            table_locks: None,
            sql_thread_restart: Vec::new(),
            watched,
        })
    }

    /// The sessions to watch while the backup runs (the main one, and the
    /// metadata-lock session while it is held).
    #[must_use]
    pub fn watched(&self) -> Arc<Watched> {
        Arc::clone(&self.watched)
    }

    /// The main connection, for statements that take nothing.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Runs a statement that takes nothing.
    ///
    /// # Errors
    /// [`BackupError::Sql`].
    pub async fn exec(&mut self, sql: &str) -> Result<(), BackupError> {
        server::exec(&mut self.conn, sql).await
    }

    /// True while `what` is held.
    #[must_use]
    pub fn holds(&self, what: Held) -> bool {
        self.held.contains(&what)
    }

    /// Runs `sql`, which takes `what`. It is recorded as held even when the
    /// statement fails: the server may have taken it before the answer was
    /// lost, and releasing something not held is harmless.
    ///
    /// # Errors
    /// [`BackupError::Sql`].
    pub async fn take(&mut self, what: Held, sql: &str) -> Result<(), BackupError> {
        self.assume(what);
        self.exec(sql).await
    }

    /// Records `what` as held by a step that takes it itself (the TokuDB
    /// sequence, the RocksDB checkpoint).
    pub fn assume(&mut self, what: Held) {
        if !self.holds(what) {
            self.held.push(what);
        }
    }

    /// Forgets `what` after a step released it itself.
    pub fn forget(&mut self, what: Held) {
        self.held.retain(|h| *h != what);
    }

    /// Records the replica's SQL threads as stopped by the backup (before
    /// the statements that stop them run, as [`Self::take`]): `restart`
    /// starts again the ones that ran, at the end or on any failure.
    pub fn hold_stopped_sql_threads(&mut self, restart: Vec<String>) {
        self.sql_thread_restart = restart;
        self.assume(Held::ReplicaSqlThread);
    }

    /// Keeps the session that holds per-table metadata locks until release,
    /// watched like the main one.
    ///
    /// # Errors
    /// Reading its `CONNECTION_ID()` failed.
    pub async fn hold_table_locks(&mut self, mut conn: Conn) -> Result<(), BackupError> {
        let id = watch::connection_id(&mut conn).await?;
        self.watched
            .add(id, format!("the metadata-lock session (connection {id})"));
        self.table_locks = Some((conn, id));
        Ok(())
    }

    /// The processlist id of the session holding per-table metadata
    /// locks, while it does.
    #[must_use]
    pub fn table_lock_session(&self) -> Option<u64> {
        self.table_locks.as_ref().map(|(_, id)| *id)
    }

    /// Releases `what` and forgets it.
    ///
    /// # Errors
    /// [`BackupError::Sql`] from the release statement (it is forgotten all
    /// the same: the error path must not send it twice).
    pub async fn release(&mut self, what: Held) -> Result<(), BackupError> {
        self.forget(what);
        match what {
            Held::BackupStage => self.exec("BACKUP STAGE END").await,
            Held::InstanceLock => self.exec("UNLOCK INSTANCE").await,
            Held::ReadLock | Held::TableReadLocks => self.exec("UNLOCK TABLES").await,
            Held::TokuCheckpointLock => self.exec(xb_tokudb::CHECKPOINT_LOCK_OFF).await,
            Held::RocksCheckpoint => super::rocksdb::remove(&mut self.conn).await,
            Held::ReplicaSqlThread => {
                // every thread is tried: one that fails to start must not
                // leave the others stopped
                let mut first = Ok(());
                for sql in std::mem::take(&mut self.sql_thread_restart) {
                    let r = self.exec(&sql).await;
                    if first.is_ok() {
                        first = r;
                    }
                }
                first
            }
        }
    }

    /// Ends the per-table metadata locks (their session commits and closes).
    ///
    /// # Errors
    /// [`BackupError::Sql`] from the commit.
    pub async fn release_table_locks(&mut self) -> Result<(), BackupError> {
        match self.table_locks.take() {
            Some((mut m, id)) => {
                // not watched from here on: it ends on purpose
                self.watched.remove(id);
                let r = server::exec(&mut m, "COMMIT").await;
                let _ = m.disconnect().await;
                r
            }
            None => Ok(()),
        }
    }

    /// Releases everything still held, newest first; for the error path,
    /// where the first error is what counts, so failures here are logged.
    pub async fn release_all(&mut self) {
        while let Some(what) = self.held.last().copied() {
            match tokio::time::timeout(RELEASE_PATIENCE, self.release(what)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(lock = what.name(), error = %e, "release after a failure did not succeed");
                }
                Err(_) => {
                    tracing::warn!(
                        lock = what.name(),
                        "release after a failure got no answer; the server ends it with the session"
                    );
                }
            }
        }
        match tokio::time::timeout(RELEASE_PATIENCE, self.release_table_locks()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "ending the metadata-lock session failed"),
            Err(_) => tracing::warn!("ending the metadata-lock session got no answer"),
        }
    }

    /// Closes the connections, releasing anything still held first.
    pub async fn close(mut self) {
        self.release_all().await;
        let _ = tokio::time::timeout(RELEASE_PATIENCE, self.conn.disconnect()).await;
    }
}
