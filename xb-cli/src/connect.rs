//! The connection options every command that talks to a server shares:
//! the MySQL clients' `--host`, `--port`, `--socket`, `--user`,
//! `--password`, TLS, an option file and a login path, with the command
//! line over the login path over the option file.

use std::path::PathBuf;

use clap::Args;
use xb_core::optfile;
use xb_core::run::ConnectOptions;

/// Connection options.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Option file to read (its [client] group; backup also reads
    /// [xtrabackup], [mariadb-backup]).
    #[arg(long, value_name = "FILE")]
    pub defaults_file: Option<PathBuf>,
    /// Login path of `mysql_config_editor` to read host, port, socket, user
    /// and password from (`~/.mylogin.cnf`, or MYSQL_TEST_LOGIN_FILE); its
    /// values win over --defaults-file, the command line over both.
    #[arg(long, value_name = "NAME")]
    pub login_path: Option<String>,
    /// Server host.
    #[arg(long, short = 'H')]
    pub host: Option<String>,
    /// Server TCP port.
    #[arg(long, short = 'P')]
    pub port: Option<u16>,
    /// Server unix socket.
    #[arg(long, short = 'S')]
    pub socket: Option<String>,
    /// TLS to the server, as the MySQL clients: DISABLED, PREFERRED,
    /// REQUIRED, VERIFY_CA, VERIFY_IDENTITY. Default DISABLED, or VERIFY_CA
    /// when --ssl-ca is given; also `ssl-mode` in the option file.
    #[arg(long, value_name = "MODE", ignore_case = true, value_parser = ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"])]
    pub ssl_mode: Option<String>,
    /// CA certificate (PEM) that signs the server's certificate.
    #[arg(long, value_name = "FILE")]
    pub ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM), for accounts that REQUIRE X509.
    #[arg(long, value_name = "FILE", requires = "ssl_key")]
    pub ssl_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "ssl_cert")]
    pub ssl_key: Option<PathBuf>,
    /// Account.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Password. `--password` alone asks on the terminal; without this option
    /// MYSQL_PWD or XB_PASSWORD is used. A value given on the command line is
    /// overwritten in the process's argument list at start-up, as the MySQL
    /// clients do, so `ps` shows `--password=xxxx`; it is visible for that
    /// first moment, so prefer a prompt or an option file.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "\u{0}prompt")]
    pub password: Option<String>,
}

impl ConnectArgs {
    /// The connection these options name, the option file read for its
    /// `groups`.
    ///
    /// # Errors
    /// An option file or login path that cannot be read, a bad port or
    /// TLS setting, a password prompt that fails.
    pub fn options(&self, groups: &[&str]) -> anyhow::Result<ConnectOptions> {
        let file = match &self.defaults_file {
            Some(p) => optfile::read_groups(p, groups)?,
            None => optfile::Options::default(),
        };
        let file = match &self.login_path {
            Some(name) => {
                let path = optfile::login_path_file().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--login-path: no HOME and no MYSQL_TEST_LOGIN_FILE to find .mylogin.cnf"
                    )
                })?;
                let lp = optfile::read_login_path(&path, name).map_err(|e| {
                    anyhow::anyhow!(
                        "--login-path {name}: {e}\nhint: create it with mysql_config_editor set --login-path={name} --user=… --password"
                    )
                })?;
                file.overlay(lp)
            }
            None => file,
        };
        let mut c = ConnectOptions::default();
        c.host = self.host.clone().or(file.get("host"));
        c.port = match self.port {
            Some(p) => Some(p),
            None => file
                .get("port")
                .map(|p| p.parse())
                .transpose()
                .map_err(|_| anyhow::anyhow!("port in the option file is not a number"))?,
        };
        c.socket = self.socket.clone().or(file.get("socket"));
        c.user = self
            .user
            .clone()
            .or(file.get("user"))
            .unwrap_or_else(|| "root".into());
        c.password = resolve_password(self.password.clone(), file.get("password"))?;
        c.tls = tls_options(self, &file)?;
        Ok(c)
    }
}

fn resolve_password(
    arg: Option<String>,
    from_file: Option<String>,
) -> anyhow::Result<Option<String>> {
    match arg.as_deref() {
        Some("\u{0}prompt") => Ok(Some(rpassword::prompt_password("Enter password: ")?)),
        Some(p) => Ok(Some(p.to_string())),
        None => Ok(std::env::var("XB_PASSWORD")
            .ok()
            .or_else(|| std::env::var("MYSQL_PWD").ok())
            .or(from_file)),
    }
}

/// The TLS settings: the command line over the option file (`ssl-mode`,
/// `ssl-ca`, `ssl-cert`, `ssl-key`; MariaDB's `ssl` and
/// `ssl-verify-server-cert` too). A CA without a mode means VERIFY_CA, as
/// the MySQL clients take it.
fn tls_options(args: &ConnectArgs, file: &optfile::Options) -> anyhow::Result<xb_core::run::Tls> {
    use xb_core::run::SslMode;
    let path =
        |a: &Option<PathBuf>, key: &str| a.clone().or_else(|| file.get(key).map(PathBuf::from));
    let mut t = xb_core::run::Tls::default();
    t.ca = path(&args.ssl_ca, "ssl-ca");
    t.cert = path(&args.ssl_cert, "ssl-cert");
    t.key = path(&args.ssl_key, "ssl-key");
    let on = |k: &str| {
        file.get(k).is_some_and(|v| {
            v.is_empty()
                || v == "1"
                || v.eq_ignore_ascii_case("on")
                || v.eq_ignore_ascii_case("true")
        })
    };
    let mode = args.ssl_mode.clone().or_else(|| file.get("ssl-mode"));
    t.mode = match mode.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("DISABLED") => SslMode::Disabled,
        Some("PREFERRED") => SslMode::Preferred,
        Some("REQUIRED") => SslMode::Required,
        Some("VERIFY_CA") => SslMode::VerifyCa,
        Some("VERIFY_IDENTITY") => SslMode::VerifyIdentity,
        Some(other) => anyhow::bail!(
            "unknown ssl-mode {other:?} in the option file\nhint: use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
        ),
        None if on("ssl-verify-server-cert") => SslMode::VerifyIdentity,
        None if t.ca.is_some() => SslMode::VerifyCa,
        None if on("ssl") || t.cert.is_some() => SslMode::Required,
        None => SslMode::Disabled,
    };
    if matches!(t.mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && t.ca.is_none() {
        anyhow::bail!(
            "ssl-mode {:?} checks the server's certificate against a CA\nhint: give --ssl-ca FILE (the CA that signed the server's certificate)",
            t.mode
        );
    }
    Ok(t)
}
