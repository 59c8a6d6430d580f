//! TokuDB hot-backup steps: discovery of a server's TokuDB files, and the
//! checkpoint-lock / read-lock sequence that copies them consistently.
//!
//! The crate knows nothing of the orchestrator. It talks to the server through
//! [`SqlSession`] (implemented for `mysql_async::Conn`) and writes the backup
//! through [`FileCopier`] (the orchestrator's datasinks; [`LocalDirCopier`]
//! for tests). Typical use:
//!
//! ```no_run
//! # async fn f(conn: &mut mysql_async::Conn) -> Result<(), xb_tokudb::TokuError> {
//! use std::sync::Arc;
//! use xb_tokudb::{LocalDirCopier, NoHook, TokuOptions};
//! if let Some(dirs) = xb_tokudb::probe(conn).await? {
//!     let copier = Arc::new(LocalDirCopier::new("/backups/today"));
//!     let manifest = xb_tokudb::run(conn, &dirs, copier, &mut NoHook, &TokuOptions::default()).await?;
//!     print!("{}", manifest.info_lines());
//! }
//! # Ok(()) }
//! ```
//!
//! This sequence is xb's own: Percona XtraBackup does not copy TokuDB files,
//! and Percona's TokuBackup plugin works by intercepting the server's writes.

mod backup;
mod copier;
mod discover;
mod error;
mod sql;

pub use backup::{
    CHECKPOINT_LOCK_OFF, CHECKPOINT_LOCK_ON, CopiedFile, NoHook, READ_LOCK, ReadLockHook,
    TokuManifest, TokuOptions, UNLOCK_TABLES, run,
};
pub use copier::{FileCopier, LocalDirCopier};
pub use discover::{
    DATA_DIR_PREFIX, DIRS_QUERY, LOG_DIR_PREFIX, METADATA_FILES, PLUGIN_PROBE, TokuDirs, TokuFile,
    find_data_files, find_log_files, is_data_file_name, is_log_file_name, probe,
};
pub use error::{HookError, Step, TokuError};
pub use sql::{Rows, SqlError, SqlSession};
