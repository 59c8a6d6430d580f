//! Runbook: the ways a DBA hands xb its connection settings.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::process::{Command, Stdio};

use xb_testing::server::{Flavor, TestServer};

fn xb() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    c.stdin(Stdio::null())
        .env_remove("MYSQL_PWD")
        .env_remove("XB_PASSWORD");
    c
}

#[test]
fn settings_come_from_a_defaults_file_and_the_password_from_the_environment() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let cnf = src.scratch("client.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[mysqld]\nport=1\n[client]\nhost=127.0.0.1\nport={}\nuser=xb\n[mariadb-backup]\n",
            src.port()
        ),
    )
    .unwrap();
    let target = src.scratch("b1");
    let out = xb()
        .args(["backup", "--defaults-file"])
        .arg(&cnf)
        .arg("--target-dir")
        .arg(&target)
        .args(["--json"])
        .env("XB_PASSWORD", "xb")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"status\":\"completed\""), "{json}");
    assert!(target.join("xtrabackup_checkpoints").is_file());
    // the password never reaches the recorded command line
    let info = std::fs::read_to_string(target.join("xtrabackup_info")).unwrap();
    assert!(!info.contains("password=xb"), "{info}");

    // without the environment the same file lacks a password: refused, named
    let out = xb()
        .args(["backup", "--defaults-file"])
        .arg(&cnf)
        .arg("--target-dir")
        .arg(src.scratch("b2"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("access denied for user 'xb'"), "{stderr}");
}

#[test]
fn a_literal_password_is_masked_in_xtrabackup_info() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let target = src.scratch("b");
    let out = xb()
        .args([
            "backup",
            "--host",
            "127.0.0.1",
            "--user",
            "xb",
            "--password=xb",
            "--port",
        ])
        .arg(src.port().to_string())
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = std::fs::read_to_string(target.join("xtrabackup_info")).unwrap();
    let cmd = info
        .lines()
        .find(|l| l.starts_with("tool_command = "))
        .unwrap();
    assert!(cmd.contains("--password=..."), "{cmd}");
    assert!(!cmd.contains("--password=xb"), "{cmd}");
}

#[test]
fn usage_errors_say_what_is_missing() {
    let out = xb().args(["backup", "--user", "xb"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--target-dir"), "{stderr}");
}
