//! Rolling a prepared backup forward with binlog: while the prepare server
//! is still up after recovery, the server's own binlog reader
//! (`mysqlbinlog`, `mariadb-binlog`) turns a range of archived binlog into
//! SQL and the server's own client pipes it in over the private socket.
//! That is how a DBA replays binlog by hand, with the positions chosen for
//! them (see `crate::pitr`).
//!
//! The prepare server runs with `skip-grant-tables` (see
//! `recovery::LOCKDOWN`); the client's first statement is `FLUSH
//! PRIVILEGES`, which loads the grant tables, so account statements in the
//! binlog (`CREATE USER`, `GRANT`) apply as they did on the source while
//! the replaying session keeps its rights (the servers' documented way to
//! reset a password works the same way).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::PrepareError;

/// A range of binlog to apply after recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The binlog reader (`mysqlbinlog` or `mariadb-binlog`).
    pub reader: PathBuf,
    /// The client (`mysql` or `mariadb`).
    pub client: PathBuf,
    /// The files, in order.
    pub files: Vec<PathBuf>,
    /// Where to start in the first.
    pub start: u64,
    /// Where to stop in the last.
    pub stop: u64,
}

/// Applies `r` to the server listening on `socket`.
///
/// # Errors
/// [`PrepareError::Replay`] with the tools' messages.
pub(super) fn run(r: &Replay, socket: &Path, dir: &Path) -> Result<(), PrepareError> {
    let failed = |reason: String| PrepareError::Replay {
        dir: dir.to_path_buf(),
        reason,
    };
    let mut reader = Command::new(&r.reader)
        .arg(format!("--start-position={}", r.start))
        .arg(format!("--stop-position={}", r.stop))
        .args(&r.files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", r.reader.display())))?;
    let Some(sql) = reader.stdout.take() else {
        return Err(failed("the binlog reader gave no output pipe".into()));
    };
    let client = Command::new(&r.client)
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .arg("--user=root")
        .arg("--binary-mode")
        .arg("--init-command=FLUSH PRIVILEGES")
        .stdin(sql)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| failed(format!("cannot run {}: {e}", r.client.display())))?;
    let mut reader_err = String::new();
    if let Some(mut e) = reader.stderr.take() {
        let _ = e.read_to_string(&mut reader_err);
    }
    let read = reader
        .wait()
        .map_err(|e| failed(format!("{}: {e}", r.reader.display())))?;
    if !read.success() {
        return Err(failed(format!(
            "{} ended with {read}: {}",
            r.reader.display(),
            reader_err.trim()
        )));
    }
    if !client.status.success() {
        return Err(failed(format!(
            "{} ended with {}: {}",
            r.client.display(),
            client.status,
            String::from_utf8_lossy(&client.stderr).trim()
        )));
    }
    Ok(())
}
