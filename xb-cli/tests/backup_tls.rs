//! Runbook: servers that accept only TLS (`require_secure_transport=ON`,
//! certificates this test makes with `openssl`), MariaDB 10.11 and MySQL
//! 9.7. Without TLS xb says the server requires it and how to ask for it;
//! with `--ssl-mode=VERIFY_IDENTITY --ssl-ca` (or the same in an option
//! file) the backup completes and verifies; a certificate from another CA
//! is refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_failure_mentions, assert_success, run_xb_backup};
use xb_testing::server::{Flavor, TestServer};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate it signs for 127.0.0.1, in `dir`.
fn make_certs(dir: &Path, ca: &str) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

async fn tls_only(flavor: Flavor) {
    let base = std::env::var_os("XB_TEST_TMP").map_or_else(std::env::temp_dir, Into::into);
    let certs = tempfile::tempdir_in(base).unwrap();
    let good = certs.path().join("good");
    let other = certs.path().join("other");
    make_certs(&good, "xb test CA");
    make_certs(&other, "someone else's CA");
    let g = |f: &str| good.join(f).to_string_lossy().into_owned();
    let args = format!(
        "--ssl-ca={} --ssl-cert={} --ssl-key={} --require-secure-transport=ON",
        g("ca.pem"),
        g("server.pem"),
        g("server-key.pem")
    );
    let src = TestServer::start_with_args(flavor, &args).unwrap();

    // no TLS asked for: the server refuses, and xb says what to do
    let target = src.scratch("plain");
    let out = run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(
        &out,
        &["requires a secure connection", "--ssl-mode=REQUIRED"],
    );
    assert_eq!(
        out.status.code(),
        Some(11),
        "a connection failure's exit code"
    );

    // the server's certificate checked against the CA, and the name in it
    let target = src.scratch("verified");
    let t = target.to_string_lossy().into_owned();
    let ca = g("ca.pem");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &t,
            "--ssl-mode=VERIFY_IDENTITY",
            "--ssl-ca",
            &ca,
        ],
    )
    .await;
    assert_success(&out);
    let verify = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["verify", &t])
        .output()
        .unwrap();
    assert_success(&verify);

    // the same from an option file, as DBAs keep it
    let cnf = src.scratch("tls.cnf");
    std::fs::write(&cnf, format!("[client]\nssl-mode=VERIFY_CA\nssl-ca={ca}\n")).unwrap();
    let target = src.scratch("from-file");
    let out = run_xb_backup(
        &src,
        &[
            "--defaults-file",
            &cnf.to_string_lossy(),
            "--target-dir",
            &target.to_string_lossy(),
        ],
    )
    .await;
    assert_success(&out);

    // a certificate no trusted CA signed is refused
    let target = src.scratch("other-ca");
    let wrong = other.join("ca.pem").to_string_lossy().into_owned();
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &target.to_string_lossy(),
            "--ssl-mode=VERIFY_CA",
            "--ssl-ca",
            &wrong,
        ],
    )
    .await;
    assert_failure_mentions(&out, &["cannot connect to the server"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_that_requires_tls() {
    tls_only(Flavor::MariaDb1011).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_97_that_requires_tls() {
    tls_only(Flavor::MySql97).await;
}

/// MariaDB's `ed25519` authentication, as an account a DBA sets up for
/// backups.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_ed25519_account_backs_up() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    src.sql("INSTALL SONAME 'auth_ed25519'").unwrap();
    src.sql("CREATE USER ed@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpw')")
        .unwrap();
    src.sql("GRANT ALL ON *.* TO ed@'%'").unwrap();
    let backup = |password: &str, target: &str| {
        Command::new(env!("CARGO_BIN_EXE_xb-cli"))
            .args([
                "backup",
                "--host",
                "127.0.0.1",
                "--port",
                &src.port().to_string(),
            ])
            .args(["--user", "ed", password, "--target-dir", target])
            .output()
            .unwrap()
    };
    assert_success(&backup(
        "--password=edpw",
        &src.scratch("ed").to_string_lossy(),
    ));
    let out = backup("--password=wrong", &src.scratch("ed2").to_string_lossy());
    assert_failure_mentions(&out, &["access denied for user 'ed'"]);
}

/// A login path `mysql_config_editor` made (at a terminal, as a DBA would)
/// holds the host, port, user and password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_path_of_mysql_config_editor_connects() {
    let src = TestServer::start(Flavor::MySql97).unwrap();
    let login = src.scratch("mylogin.cnf");
    let editor = format!(
        "{} mysql97 exec mysql_config_editor set --login-path=backup --host=127.0.0.1 --port={} --user=xb --password",
        xb_testing::server::db_script().display(),
        src.port()
    );
    // the password is typed at its prompt, through a pseudo-terminal
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(sleep 1; printf 'xb\\n') | script -qec \"{editor}\" /dev/null"
        ))
        .env("MYSQL_TEST_LOGIN_FILE", &login)
        .output()
        .unwrap();
    assert!(out.status.success() && login.exists(), "{out:?}");

    let backup = |name: &str, target: &str| {
        Command::new(env!("CARGO_BIN_EXE_xb-cli"))
            .args(["backup", "--login-path", name, "--target-dir", target])
            .env("MYSQL_TEST_LOGIN_FILE", &login)
            .output()
            .unwrap()
    };
    assert_success(&backup("backup", &src.scratch("lp").to_string_lossy()));
    let out = backup("nightly", &src.scratch("lp2").to_string_lossy());
    assert_failure_mentions(&out, &["--login-path nightly", "mysql_config_editor"]);
}
