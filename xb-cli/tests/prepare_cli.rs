//! Runbook: `xb-cli prepare` on a backup, and on something that is not one.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::process::Command;

use xb_testing::server::{Flavor, TestServer};
use xb_testing::vendor::{mariadb_backup, server_binary};

#[test]
fn prepare_makes_a_backup_restorable_and_says_so() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let dir = src.scratch("b");
    mariadb_backup(&src, &dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["prepare", "--target-dir"])
        .arg(&dir)
        .arg("--server-binary")
        .arg(server_binary(&src))
        .arg("--server-defaults-file")
        .arg(src.run_dir().join("my.cnf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("prepare completed OK"), "{stderr}");
    let restored = TestServer::start_on(Flavor::MariaDb1011, &dir).unwrap();
    let tables = restored.sql("SELECT COUNT(*) FROM mysql.user").unwrap();
    assert!(tables.trim().parse::<u32>().unwrap() >= 1);
}

#[test]
fn prepare_of_a_non_backup_fails_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["prepare", "--target-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("xtrabackup_checkpoints is missing"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(!stderr.contains("completed OK"), "{stderr}");
}
