//! One fresh, real database server per test.
//!
//! [`TestServer::start`] creates a private temporary datadir, picks a free
//! loopback port and runs `scripts/db.sh FLAVOR start DATADIR PORT`, which
//! installs the flavour's private root on first use (under `/opt/xb-FLAVOR`),
//! initialises the datadir and waits until the server answers. Dropping the
//! value shuts the server down and removes the datadir, so tests can run in
//! parallel (nextest runs each test in its own process).
//!
//! The server gets a TCP account `xb`/`xb` with all privileges; root has no
//! password over the unix socket (used by [`TestServer::sql`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The server flavours the project runs for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// MariaDB 10.11 from Debian bookworm, with mariadb-backup and MyRocks.
    MariaDb1011,
    /// MariaDB 10.5 from Debian bullseye (512-byte-block redo, format "PHYS").
    MariaDb105,
    /// MariaDB 11.8 from Debian trixie.
    MariaDb118,
    /// MySQL 9.7 from Debian sid (`#innodb_redo`).
    MySql97,
}

impl Flavor {
    /// Every flavour, for tests that must hold on all of them.
    pub const ALL: [Flavor; 4] = [
        Flavor::MariaDb1011,
        Flavor::MariaDb105,
        Flavor::MariaDb118,
        Flavor::MySql97,
    ];

    /// The flavour's name as `scripts/db.sh` knows it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb1011 => "mariadb1011",
            Flavor::MariaDb105 => "mariadb105",
            Flavor::MariaDb118 => "mariadb118",
            Flavor::MySql97 => "mysql97",
        }
    }

    /// True for Oracle MySQL, false for MariaDB.
    #[must_use]
    pub fn is_mysql(self) -> bool {
        matches!(self, Flavor::MySql97)
    }

    /// The prefix `SELECT VERSION()` answers with on this flavour.
    #[must_use]
    pub fn version_prefix(self) -> &'static str {
        match self {
            Flavor::MariaDb1011 => "10.11.",
            Flavor::MariaDb105 => "10.5.",
            Flavor::MariaDb118 => "11.8.",
            Flavor::MySql97 => "9.7.",
        }
    }

    /// Name of the command-line client inside the flavour's private root.
    #[must_use]
    pub fn client_program(self) -> &'static str {
        if self.is_mysql() { "mysql" } else { "mariadb" }
    }
}

/// Why a test server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Running the script (or a client) failed to even spawn.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The program we tried to run.
        what: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The script ran and failed; its stderr says why.
    #[error("{what} failed ({status}):\n{stderr}")]
    Failed {
        /// The command that failed.
        what: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// Creating the temporary directory or finding a port failed.
    #[error("test server set-up: {0}")]
    Io(#[from] std::io::Error),
}

/// Root of the repository: where `scripts/db.sh` lives.
///
/// `XB_REPO_ROOT` overrides; otherwise the directory above this crate.
#[must_use]
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("XB_REPO_ROOT") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Path of the project's server script.
#[must_use]
pub fn db_script() -> PathBuf {
    repo_root().join("scripts/db.sh")
}

/// Runs `scripts/db.sh FLAVOR ARGS...` and returns its output if it succeeded.
///
/// # Errors
/// [`ServerError::Spawn`] or [`ServerError::Failed`] with the script's stderr.
pub fn db_sh(
    flavor: Flavor,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> Result<Output, ServerError> {
    let what = format!("scripts/db.sh {} {}", flavor.name(), args.join(" "));
    let mut cmd = Command::new(db_script());
    cmd.arg(flavor.name()).args(args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|source| ServerError::Spawn {
        what: what.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ServerError::Failed {
            what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A free TCP port on 127.0.0.1 (the kernel's pick; a race with another
/// process is possible, so [`TestServer::start`] retries on a busy port).
///
/// # Errors
/// I/O error if no socket can be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server that belongs to one test. Stopped and removed on drop.
#[derive(Debug)]
pub struct TestServer {
    flavor: Flavor,
    dir: Option<tempfile::TempDir>,
    datadir: PathBuf,
    port: u16,
    running: bool,
}

/// TCP user the script creates (all privileges).
pub const USER: &str = "xb";
/// Password of [`USER`].
pub const PASSWORD: &str = "xb";

impl TestServer {
    /// Starts a fresh server of `flavor` with default options.
    ///
    /// # Errors
    /// When the script fails (its stderr is in the error).
    pub fn start(flavor: Flavor) -> Result<Self, ServerError> {
        Self::start_with_args(flavor, "")
    }

    /// Starts a fresh server with extra `mysqld` options (also used at
    /// initialisation, e.g. `--innodb-page-size=4k --log-bin=binlog`).
    ///
    /// # Errors
    /// When the script fails (its stderr is in the error).
    pub fn start_with_args(flavor: Flavor, mysqld_args: &str) -> Result<Self, ServerError> {
        let base = std::env::var_os("XB_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        std::fs::create_dir_all(&base)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("xb-{}-", flavor.name()))
            .tempdir_in(base)?;
        let datadir = dir.path().join("data");
        let port = start_on_a_free_port(flavor, &datadir, mysqld_args)?;
        Ok(TestServer {
            flavor,
            dir: Some(dir),
            datadir,
            port,
            running: true,
        })
    }

    /// The flavour of this server.
    #[must_use]
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The server's datadir.
    #[must_use]
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The per-instance run directory (`DATADIR.run`: my.cnf, socket, logs).
    #[must_use]
    pub fn run_dir(&self) -> PathBuf {
        let mut p = self.datadir.clone().into_os_string();
        p.push(".run");
        PathBuf::from(p)
    }

    /// A scratch directory beside the datadir, removed with the server
    /// (for backup targets and the like).
    #[must_use]
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.as_ref().map_or_else(
            || self.datadir.with_file_name(name),
            |d| d.path().join(name),
        )
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Unix socket path (root has no password there).
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("mysqld.sock")
    }

    /// mysql_async connection options for the `xb` account over TCP.
    ///
    /// MySQL 9.7 uses caching_sha2_password: without TLS, mysql_async
    /// fetches the server's RSA public key itself, so no TLS set-up is needed.
    #[must_use]
    pub fn opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(USER))
            .pass(Some(PASSWORD))
            .prefer_socket(false)
            .into()
    }

    /// `mysql://xb:xb@127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/", self.port)
    }

    /// Opens a mysql_async connection as `xb` over TCP.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn conn(&self) -> Result<mysql_async::Conn, mysql_async::Error> {
        mysql_async::Conn::new(self.opts()).await
    }

    /// Runs SQL through the flavour's own command-line client as root over
    /// the socket; returns tab-separated output without column names.
    ///
    /// # Errors
    /// When the client fails (its stderr is in the error).
    pub fn sql(&self, sql: &str) -> Result<String, ServerError> {
        let datadir_s = self.datadir.to_string_lossy().into_owned();
        let out = db_sh(
            self.flavor,
            &["client", &datadir_s, "-N", "-B", "-e", sql],
            &[],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that runs PROG from the flavour's private root
    /// (`mariadb-backup`, `mbstream`, `mysqlbinlog`, ...).
    #[must_use]
    pub fn tool(&self, prog: &str) -> Command {
        let mut cmd = Command::new(db_script());
        cmd.arg(self.flavor.name()).arg("exec").arg(prog);
        cmd
    }

    /// Stops the server cleanly (it can be started again with [`Self::restart`]).
    ///
    /// # Errors
    /// When the script fails.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        if self.running {
            let datadir_s = self.datadir.to_string_lossy().into_owned();
            db_sh(self.flavor, &["stop", &datadir_s], &[])?;
            self.running = false;
        }
        Ok(())
    }

    /// The server's process id, from its pid file.
    ///
    /// # Errors
    /// [`ServerError::Io`] when the pid file is missing or not a number.
    pub fn pid(&self) -> Result<u32, ServerError> {
        let f = self.run_dir().join("mysqld.pid");
        std::fs::read_to_string(&f)?
            .trim()
            .parse()
            .map_err(|e| ServerError::Io(std::io::Error::other(format!("{}: {e}", f.display()))))
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would,
    /// and waits until the process is gone. [`Self::restart`] starts it
    /// again (with crash recovery).
    ///
    /// # Errors
    /// When the pid cannot be read or `kill` fails.
    pub fn kill_hard(&mut self) -> Result<(), ServerError> {
        let pid = self.pid()?.to_string();
        let out = Command::new("kill")
            .args(["-KILL", &pid])
            .output()
            .map_err(|source| ServerError::Spawn {
                what: "kill".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(ServerError::Failed {
                what: format!("kill -KILL {pid}"),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        // gone, or a zombie nobody has reaped yet (its sockets are closed)
        let stat = Path::new("/proc").join(&pid).join("stat");
        let alive = || {
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while alive() {
            if std::time::Instant::now() > deadline {
                return Err(ServerError::Io(std::io::Error::other(format!(
                    "pid {pid} still alive 30 s after SIGKILL"
                ))));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.running = false;
        Ok(())
    }

    /// Starts the stopped server again on the same datadir and port.
    ///
    /// # Errors
    /// When the script fails.
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.stop()?;
        let datadir_s = self.datadir.to_string_lossy().into_owned();
        db_sh(
            self.flavor,
            &["start", &datadir_s, &self.port.to_string()],
            &[],
        )?;
        self.running = true;
        Ok(())
    }

    /// Starts another server of the same flavour on an existing datadir
    /// (e.g. a prepared backup) that this value will own and stop on drop.
    /// The directory `datadir` itself is not removed on drop.
    ///
    /// # Errors
    /// When the script fails.
    pub fn start_on(flavor: Flavor, datadir: &Path) -> Result<Self, ServerError> {
        Self::start_on_with_args(flavor, datadir, "")
    }

    /// [`Self::start_on`] with extra `mysqld` options (e.g. a plugin to load).
    ///
    /// # Errors
    /// When the script fails.
    pub fn start_on_with_args(
        flavor: Flavor,
        datadir: &Path,
        mysqld_args: &str,
    ) -> Result<Self, ServerError> {
        let port = start_on_a_free_port(flavor, datadir, mysqld_args)?;
        Ok(TestServer {
            flavor,
            dir: None,
            datadir: datadir.to_path_buf(),
            port,
            running: true,
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xb-testing: could not stop {}: {e}", self.datadir.display());
        }
    }
}

/// Runs the script's `start` on `datadir` with a port the kernel picked;
/// another process can take that port before the server binds it, so a
/// busy port means picking again (five attempts). Returns the port.
fn start_on_a_free_port(
    flavor: Flavor,
    datadir: &Path,
    mysqld_args: &str,
) -> Result<u16, ServerError> {
    let datadir_s = datadir.to_string_lossy().into_owned();
    let mut last_err = None;
    for _ in 0..5 {
        let port = free_port()?;
        match db_sh(
            flavor,
            &["start", &datadir_s, &port.to_string()],
            &[("XB_MYSQLD_ARGS", mysqld_args)],
        ) {
            Ok(_) => return Ok(port),
            Err(e) if matches!(&e, ServerError::Failed { stderr, .. } if stderr.contains("already in use")) =>
            {
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| ServerError::Io(std::io::Error::other("no free port"))))
}
