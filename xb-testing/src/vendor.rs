//! The vendor's own backup tool (mariadb-backup from the flavour's private
//! root), used as the reference our backups and prepares are compared with.

use std::path::Path;
use std::process::Output;

use crate::server::{ServerError, TestServer};

fn checked(what: &str, out: Output) -> Result<Output, ServerError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(ServerError::Failed {
            what: what.into(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// `mariadb-backup --backup --target-dir=TARGET` of a running server.
///
/// # Errors
/// When the tool fails (its stderr is in the error).
pub fn mariadb_backup(server: &TestServer, target: &Path) -> Result<Output, ServerError> {
    let cnf = server.run_dir().join("my.cnf");
    let out = server
        .tool("mariadb-backup")
        .arg(format!("--defaults-file={}", cnf.display()))
        .args(["--backup", "--host=127.0.0.1", "--user=xb", "--password=xb"])
        .arg(format!("--port={}", server.port()))
        .arg(format!("--target-dir={}", target.display()))
        .output()
        .map_err(|source| ServerError::Spawn {
            what: "mariadb-backup --backup".into(),
            source,
        })?;
    checked("mariadb-backup --backup", out)
}

/// `mariadb-backup --prepare --target-dir=TARGET`, with the tool of
/// `server`'s flavour.
///
/// # Errors
/// When the tool fails (its stderr is in the error).
pub fn mariadb_backup_prepare(server: &TestServer, target: &Path) -> Result<Output, ServerError> {
    let out = server
        .tool("mariadb-backup")
        .arg("--prepare")
        .arg(format!("--target-dir={}", target.display()))
        .output()
        .map_err(|source| ServerError::Spawn {
            what: "mariadb-backup --prepare".into(),
            source,
        })?;
    checked("mariadb-backup --prepare", out)
}

/// `cp -a FROM TO`: a byte-identical copy of a backup directory.
///
/// # Errors
/// When cp fails.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), ServerError> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|source| ServerError::Spawn {
            what: "cp -a".into(),
            source,
        })?;
    checked("cp -a", out).map(|_| ())
}

/// Path of the server binary wrapper in the flavour's private root
/// (`/opt/xb-FLAVOR/sbin/mariadbd` or `mysqld`), runnable as a plain program.
#[must_use]
pub fn server_binary(server: &TestServer) -> std::path::PathBuf {
    let opt = std::env::var("XB_OPT").unwrap_or_else(|_| "/opt".into());
    let name = if server.flavor().is_mysql() {
        "mysqld"
    } else {
        "mariadbd"
    };
    Path::new(&opt)
        .join(format!("xb-{}", server.flavor().name()))
        .join("sbin")
        .join(name)
}
