//! The SQL side of a backup: connect, read what the server is, check the
//! account can take a backup, and the few statements the stages need.
//! Every failure a user can cause becomes a sentence that names the thing
//! and a hint that says what to do.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::error::BackupError;

/// How to reach the server. Its `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Host (default 127.0.0.1 when no socket is given).
    pub host: Option<String>,
    /// TCP port (default 3306).
    pub port: Option<u16>,
    /// Unix socket; used instead of TCP when set.
    pub socket: Option<String>,
    /// Account.
    pub user: String,
    /// Password (never logged).
    pub password: Option<String>,
    /// TLS to the server (the MySQL clients' `--ssl-*` options).
    pub tls: Tls,
}

/// How the connection is secured, as the MySQL clients' `--ssl-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP or socket. xb's default when no `--ssl-*` option is given:
    /// a server that requires TLS then says so, and the error names the fix.
    #[default]
    Disabled,
    /// TLS when the server offers it, its certificate not checked; plain
    /// otherwise.
    Preferred,
    /// TLS or no connection; the certificate not checked.
    Required,
    /// TLS, the certificate signed by `--ssl-ca`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyIdentity,
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tls {
    /// The mode.
    pub mode: SslMode,
    /// CA certificate (PEM) that signs the server's.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for servers that require one (`REQUIRE X509`).
    pub cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<std::path::PathBuf>,
}

impl Tls {
    /// mysql_async's settings for a TLS connection, `None` for plain.
    fn ssl_opts(&self) -> Option<mysql_async::SslOpts> {
        if self.mode == SslMode::Disabled {
            return None;
        }
        let verify = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyIdentity);
        let mut o = mysql_async::SslOpts::default()
            .with_danger_accept_invalid_certs(!verify)
            .with_danger_skip_domain_validation(self.mode != SslMode::VerifyIdentity);
        if let Some(ca) = &self.ca {
            o = o.with_root_certs(vec![ca.clone().into()]);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            o = o.with_client_identity(Some(mysql_async::ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        Some(o)
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConnectOptions {
    /// `host:port` or the socket path, for messages.
    #[must_use]
    pub fn endpoint(&self) -> String {
        match &self.socket {
            Some(s) => format!("socket {s}"),
            None => format!(
                "{}:{}",
                self.host.as_deref().unwrap_or("127.0.0.1"),
                self.port.unwrap_or(3306)
            ),
        }
    }

    fn opts(&self) -> Opts {
        self.opts_with(self.tls.ssl_opts())
    }

    fn opts_with(&self, ssl: Option<mysql_async::SslOpts>) -> Opts {
        let mut b = OptsBuilder::default()
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .prefer_socket(false)
            .ssl_opts(ssl);
        if let Some(s) = &self.socket {
            b = b.socket(Some(s.clone()));
        } else {
            b = b
                .ip_or_hostname(self.host.clone().unwrap_or_else(|| "127.0.0.1".into()))
                .tcp_port(self.port.unwrap_or(3306));
        }
        b.into()
    }
}

/// What the server is, as far as a backup cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `SELECT VERSION()`.
    pub version: String,
    /// Major, minor, patch parsed from the version.
    pub version_num: (u32, u32, u32),
    /// MariaDB (true) or MySQL/Percona (false).
    pub mariadb: bool,
    /// `@@datadir`, without a trailing slash.
    pub datadir: String,
    /// Directory of the redo log, absolute.
    pub log_dir: String,
    /// `@@innodb_page_size`.
    pub page_size: usize,
    /// `@@innodb_data_file_path`.
    pub data_file_path: String,
    /// `@@innodb_data_home_dir` (empty: the datadir).
    pub data_home_dir: String,
    /// `@@innodb_undo_directory`.
    pub undo_directory: String,
    /// `@@innodb_undo_tablespaces`.
    pub undo_tablespaces: u32,
    /// `@@innodb_log_file_size`.
    pub log_file_size: u64,
    /// Bytes of redo the server's log holds before it overwrites them
    /// (MariaDB: the file less its header; MySQL 8.0.30+:
    /// `@@innodb_redo_log_capacity`); 0 when unknown.
    pub redo_capacity: u64,
    /// `@@innodb_checksum_algorithm`.
    pub checksum_algorithm: String,
    /// `@@innodb_compression_level`.
    pub compression_level: String,
    /// Binary log on.
    pub log_bin: bool,
    /// `@@innodb_flush_method` (`O_DIRECT`: the server bypasses the page cache).
    pub flush_method: String,
    /// The TokuDB plugin is active: its directories. `None` on every other
    /// server, which then never receives a TokuDB statement.
    pub tokudb: Option<xb_tokudb::TokuDirs>,
    /// InnoDB writes redo (MySQL's `Innodb_redo_log_enabled`; always true
    /// on MariaDB, which cannot turn it off).
    pub redo_log_enabled: bool,
}

fn classify(e: mysql_async::Error, c: &ConnectOptions) -> BackupError {
    match &e {
        mysql_async::Error::Server(se) if se.code == 1045 => BackupError::Access {
            user: c.user.clone(),
            endpoint: c.endpoint(),
            message: se.message.clone(),
        },
        // ER_SECURE_TRANSPORT_REQUIRED: MySQL 3159, MariaDB 4036
        mysql_async::Error::Server(se) if se.code == 3159 || se.code == 4036 => {
            BackupError::TlsRequired {
                endpoint: c.endpoint(),
                message: se.message.clone(),
            }
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => BackupError::Connect {
            endpoint: c.endpoint(),
            message: e.to_string(),
        },
        _ => BackupError::sql("connect", &e),
    }
}

/// Session timeouts set on every connection xb opens.
///
/// The main session sits idle for the whole data copy (hours on a large
/// server) while it holds the backup lock, and the metadata-lock session
/// of `--lock-ddl-per-table` idles in an open transaction just as long.
/// Servers often run with a short `wait_timeout` (minutes, to reap idle
/// application connections); it would end these sessions mid-copy, and
/// their locks with them. A week outlasts any copy, and is still bounded:
/// a session whose xb process died is closed by the kernel at once, and
/// one whose host vanished is reaped by TCP keepalive (both servers turn
/// it on for client sockets; about two hours with Linux defaults).
/// `net_read_timeout`/`net_write_timeout` are how long the server waits
/// for the client in the middle of a packet (30 s and 60 s by default);
/// raised to a day so that no limit much shorter than the copy is left: a
/// backup host that stalls under the copy while a result is half read
/// must not cost the backup its locks. All three are far inside the range
/// both servers accept (1..=31536000 on MariaDB 10.5+ and MySQL 8+).
pub const SESSION_TIMEOUTS: &str =
    "SET SESSION wait_timeout = 604800, net_read_timeout = 86400, net_write_timeout = 86400";

/// Opens a connection and raises its timeouts ([`SESSION_TIMEOUTS`]).
///
/// # Errors
/// [`BackupError::Access`] (wrong user or password) or
/// [`BackupError::Connect`] (server unreachable).
pub async fn connect(c: &ConnectOptions) -> Result<Conn, BackupError> {
    let mut conn = match open(c.opts()).await {
        // PREFERRED: plain when the server offers no TLS, as the clients do
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if c.tls.mode == SslMode::Preferred =>
        {
            open(c.opts_with(None)).await
        }
        // MariaDB answers a plain connection to a server that requires
        // TLS with "Access denied": the same account over TLS tells the two
        // apart (the password already went to this endpoint in the clear)
        Err(mysql_async::Error::Server(se))
            if se.code == 1045 && c.tls.mode == SslMode::Disabled && c.socket.is_none() =>
        {
            let probe = mysql_async::SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true);
            match open(c.opts_with(Some(probe))).await {
                Ok(conn) => {
                    let _ = conn.disconnect().await;
                    return Err(BackupError::TlsRequired {
                        endpoint: c.endpoint(),
                        message: format!(
                            "it refused the plain connection ({}) and accepts the same account over TLS",
                            se.message
                        ),
                    });
                }
                Err(_) => Err(mysql_async::Error::Server(se)),
            }
        }
        other => other,
    }
    .map_err(|e| classify(e, c))?;
    exec(&mut conn, SESSION_TIMEOUTS).await?;
    Ok(conn)
}

/// One connection attempt, bounded at 30 s.
async fn open(opts: Opts) -> Result<Conn, mysql_async::Error> {
    match tokio::time::timeout(std::time::Duration::from_secs(30), Conn::new(opts)).await {
        Ok(r) => r,
        Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 30 s"),
        ))),
    }
}

/// How long this session waits for a lock (the backup lock, a metadata
/// lock) before the statement fails.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn set_lock_wait_timeout(conn: &mut Conn, secs: u64) -> Result<(), BackupError> {
    exec(conn, &format!("SET SESSION lock_wait_timeout = {secs}")).await
}

/// `` `db`.`table` `` for SQL, backquotes in the names doubled.
#[must_use]
pub fn quote_table(db: &str, table: &str) -> String {
    format!("`{}`.`{}`", db.replace('`', "``"), table.replace('`', "``"))
}

/// Runs a statement, naming it in the error.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn exec(conn: &mut Conn, sql: &str) -> Result<(), BackupError> {
    conn.query_drop(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))
}

async fn var(conn: &mut Conn, name: &str) -> Result<String, BackupError> {
    let sql = format!("SELECT CAST(@@{name} AS CHAR)");
    let v: Option<Option<String>> = conn
        .query_first(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    Ok(v.flatten().unwrap_or_default())
}

/// Like [`var`], but an unknown variable (another flavour or version) is
/// an empty value rather than an error.
async fn var_opt(conn: &mut Conn, name: &str) -> Result<String, BackupError> {
    match var(conn, name).await {
        // ER_UNKNOWN_SYSTEM_VARIABLE
        Err(e) if e.server_code() == Some(1193) => Ok(String::new()),
        other => other,
    }
}

fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

fn abs_dir(datadir: &str, dir: &str) -> String {
    let d = dir.trim_end_matches('/');
    if d.is_empty() || d == "." {
        datadir.to_string()
    } else if d.starts_with('/') {
        d.to_string()
    } else {
        format!("{datadir}/{}", d.trim_start_matches("./"))
    }
}

/// Reads the server facts and checks the account's privileges.
///
/// # Errors
/// [`BackupError::Privileges`] naming what is missing, or SQL errors.
pub async fn discover(conn: &mut Conn, c: &ConnectOptions) -> Result<ServerFacts, BackupError> {
    let version = var(conn, "version").await?;
    let datadir = var(conn, "datadir")
        .await?
        .trim_end_matches('/')
        .to_string();
    let log_dir = abs_dir(&datadir, &var(conn, "innodb_log_group_home_dir").await?);
    let mariadb = version.contains("MariaDB");
    let log_file_size: u64 = var_opt(conn, "innodb_log_file_size")
        .await?
        .parse()
        .unwrap_or(0);
    let version_num = parse_version(&version);
    let redo_capacity = if mariadb {
        // the 10.8+ file has a 12 KiB header, the 10.5 one 2 KiB
        let header = if version_num >= (10, 8, 0) {
            12_288
        } else {
            2048
        };
        log_file_size.saturating_sub(header)
    } else {
        var_opt(conn, "innodb_redo_log_capacity")
            .await?
            .parse()
            .unwrap_or(0)
    };
    let facts = ServerFacts {
        version_num,
        page_size: var(conn, "innodb_page_size")
            .await?
            .parse()
            .unwrap_or(16384),
        data_file_path: var(conn, "innodb_data_file_path").await?,
        data_home_dir: var(conn, "innodb_data_home_dir").await?,
        undo_directory: var(conn, "innodb_undo_directory").await?,
        undo_tablespaces: var_opt(conn, "innodb_undo_tablespaces")
            .await?
            .parse()
            .unwrap_or(0),
        log_file_size,
        redo_capacity,
        checksum_algorithm: var(conn, "innodb_checksum_algorithm").await?,
        compression_level: var(conn, "innodb_compression_level").await?,
        log_bin: matches!(var(conn, "log_bin").await?.as_str(), "1" | "ON"),
        flush_method: var_opt(conn, "innodb_flush_method").await?,
        tokudb: None,
        redo_log_enabled: mariadb || redo_log_enabled(conn).await?,
        mariadb,
        version,
        datadir,
        log_dir,
    };
    check_privileges(conn, c, facts.log_bin, facts.mariadb).await?;
    // one SELECT on information_schema.plugins; the TokuDB variables are read
    // only when the plugin is active
    let tokudb = xb_tokudb::probe(conn).await.map_err(BackupError::TokuDb)?;
    Ok(ServerFacts { tokudb, ..facts })
}

/// MySQL 8.0.21+ can run with redo logging disabled (`ALTER INSTANCE
/// DISABLE INNODB REDO_LOG`); the status variable says so. A server
/// without it (older, or another fork) always logs.
async fn redo_log_enabled(conn: &mut Conn) -> Result<bool, BackupError> {
    let sql = "SHOW GLOBAL STATUS LIKE 'Innodb_redo_log_enabled'";
    let row: Option<(String, String)> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    Ok(row.is_none_or(|(_, v)| !v.eq_ignore_ascii_case("OFF")))
}

async fn check_privileges(
    conn: &mut Conn,
    c: &ConnectOptions,
    log_bin: bool,
    mariadb: bool,
) -> Result<(), BackupError> {
    let sql = "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES \
               WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
               SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";
    let have: Vec<String> = conn
        .query(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let mut need = vec!["RELOAD", "PROCESS"];
    if !mariadb {
        // LOCK INSTANCE FOR BACKUP and performance_schema.log_status
        need.push("BACKUP_ADMIN");
    } else if log_bin {
        need.push("BINLOG MONITOR");
    }
    let missing: Vec<&str> = need
        .into_iter()
        .filter(|p| {
            !have.iter().any(|h| {
                h == p || (*p == "BINLOG MONITOR" && (h == "REPLICATION CLIENT" || h == "SUPER"))
            })
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BackupError::Privileges {
            user: c.user.clone(),
            missing: missing.iter().map(|s| (*s).to_string()).collect(),
        })
    }
}

/// The server's current LSN from its status variables (`Innodb_lsn_current`
/// on MariaDB, `Innodb_redo_log_current_lsn` on MySQL 8.0.30+): cheap
/// enough to read every second, and needing no privilege. `None` when the
/// server has no such variable.
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn status_lsn(conn: &mut Conn, mariadb: bool) -> Result<Option<u64>, BackupError> {
    status_u64(
        conn,
        if mariadb {
            "Innodb_lsn_current"
        } else {
            "Innodb_redo_log_current_lsn"
        },
    )
    .await
}

/// A numeric global status variable; `None` when the server has no such
/// variable (or it is not a number).
///
/// # Errors
/// [`BackupError::Sql`].
pub async fn status_u64(conn: &mut Conn, name: &str) -> Result<Option<u64>, BackupError> {
    let sql = format!("SHOW GLOBAL STATUS LIKE '{name}'");
    let row: Option<(String, String)> = conn
        .query_first(&sql)
        .await
        .map_err(|e| BackupError::sql(&sql, &e))?;
    Ok(row.and_then(|(_, v)| v.parse().ok()))
}

/// InnoDB's current LSN (`Log sequence number` of SHOW ENGINE INNODB STATUS).
///
/// # Errors
/// SQL errors, or a status without that line.
pub async fn current_lsn(conn: &mut Conn) -> Result<u64, BackupError> {
    innodb_status_lsn(conn, "Log sequence number").await
}

/// The LSN up to which InnoDB's log is on disk (`Log flushed up to` of SHOW
/// ENGINE INNODB STATUS): the redo copy can reach it without waiting for
/// the server to write more.
///
/// # Errors
/// SQL errors, or a status without that line.
pub async fn flushed_lsn(conn: &mut Conn) -> Result<u64, BackupError> {
    innodb_status_lsn(conn, "Log flushed up to").await
}

async fn innodb_status_lsn(conn: &mut Conn, line: &str) -> Result<u64, BackupError> {
    let sql = "SHOW ENGINE INNODB STATUS";
    let row: Option<(String, String, String)> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let text = row.map(|r| r.2).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BackupError::sql_answer(sql, format!("no \"{line}\" line in the status")))
}

/// Binlog coordinates: (file, position, GTID position).
///
/// # Errors
/// SQL errors.
pub async fn binlog_position(
    conn: &mut Conn,
) -> Result<Option<(String, u64, String)>, BackupError> {
    let sql = "SHOW MASTER STATUS";
    let row: Option<mysql_async::Row> = conn
        .query_first(sql)
        .await
        .map_err(|e| BackupError::sql(sql, &e))?;
    let Some(row) = row else { return Ok(None) };
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    let gtid = var(conn, "gtid_binlog_pos").await?;
    Ok(file.zip(pos).map(|(f, p)| (f, p, gtid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = ConnectOptions {
            user: "backup".into(),
            password: Some("s3cret-pw".into()),
            ..ConnectOptions::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(
            shown.contains("<hidden>") && shown.contains("backup"),
            "{shown}"
        );
    }

    #[test]
    fn versions_and_dirs() {
        assert_eq!(parse_version("10.11.18-MariaDB-0+deb12u1"), (10, 11, 18));
        assert_eq!(parse_version("9.7.4"), (9, 7, 4));
        assert_eq!(abs_dir("/d", "./"), "/d");
        assert_eq!(abs_dir("/d", ""), "/d");
        assert_eq!(abs_dir("/d", "/logs/"), "/logs");
        assert_eq!(abs_dir("/d", "./undo"), "/d/undo");
    }
}
