//! The backup's server session and everything the server holds for it.
//!
//! [`Session`] owns the main connection, the second session that holds
//! per-table metadata locks (MySQL `--lock-ddl-per-table`), and a list of
//! what has been taken on the server: backup stage, instance lock, read
//! lock, TokuDB checkpoint lock, RocksDB checkpoint. Steps take and release
//! through it; the orchestration calls [`Session::release_all`] once on
//! every error path, so no flavour writes its own clean-up. A session
//! dropped while still holding something (a panic, an embedder dropping
//! the backup future) closes its connections, which ends every
//! session-scoped lock on the server; only a RocksDB checkpoint directory
//! outlives that, and the next backup removes it before making its own.

use mysql_async::Conn;

use super::server::{self, ConnectOptions};
use crate::error::BackupError;

/// Something the server holds for the backup until it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// MariaDB `BACKUP STAGE` (any stage up to `BLOCK_COMMIT`).
    BackupStage,
    /// MySQL `LOCK INSTANCE FOR BACKUP`.
    InstanceLock,
    /// `FLUSH TABLES WITH READ LOCK`.
    ReadLock,
    /// `SET TOKUDB_CHECKPOINT_LOCK=ON`.
    TokuCheckpointLock,
    /// A RocksDB checkpoint directory and the user lock guarding it.
    RocksCheckpoint,
}

impl Held {
    /// What this is, for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Held::BackupStage => "BACKUP STAGE",
            Held::InstanceLock => "LOCK INSTANCE FOR BACKUP",
            Held::ReadLock => "FLUSH TABLES WITH READ LOCK",
            Held::TokuCheckpointLock => "TokuDB checkpoint lock",
            Held::RocksCheckpoint => "RocksDB checkpoint",
        }
    }
}

/// The main connection and what the server holds for the backup.
#[derive(Debug)]
pub struct Session {
    conn: Conn,
    held: Vec<Held>,
    table_locks: Option<Conn>,
}

impl Session {
    /// Connects.
    ///
    /// # Errors
    /// As [`server::connect`].
    pub async fn connect(c: &ConnectOptions) -> Result<Self, BackupError> {
        Ok(Session {
            conn: server::connect(c).await?,
            held: Vec::new(),
            table_locks: None,
        })
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

    /// Keeps the session that holds per-table metadata locks until release.
    pub fn hold_table_locks(&mut self, conn: Conn) {
        self.table_locks = Some(conn);
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
            Held::ReadLock => self.exec("UNLOCK TABLES").await,
            Held::TokuCheckpointLock => self.exec(xb_tokudb::CHECKPOINT_LOCK_OFF).await,
            Held::RocksCheckpoint => super::rocksdb::remove(&mut self.conn).await,
        }
    }

    /// Ends the per-table metadata locks (their session commits and closes).
    ///
    /// # Errors
    /// [`BackupError::Sql`] from the commit.
    pub async fn release_table_locks(&mut self) -> Result<(), BackupError> {
        match self.table_locks.take() {
            Some(mut m) => {
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
            if let Err(e) = self.release(what).await {
                tracing::warn!(lock = what.name(), error = %e, "release after a failure did not succeed");
            }
        }
        if let Err(e) = self.release_table_locks().await {
            tracing::warn!(error = %e, "ending the metadata-lock session failed");
        }
    }

    /// Closes the connections, releasing anything still held first.
    pub async fn close(mut self) {
        self.release_all().await;
        let _ = self.conn.disconnect().await;
    }
}
