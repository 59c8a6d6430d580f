//! Runbook: what a DBA sees when a backup cannot be taken. Every case ends in
//! a non-zero exit, an error that names the thing and the fix, no claim of
//! success, and never a target that looks like a complete backup.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::process::Command;
use xb_testing::server::{Flavor, TestServer};

fn looks_complete(target: &std::path::Path) -> bool {
    target.join("xtrabackup_checkpoints").exists() && !target.join(INCOMPLETE_MARKER).exists()
}

#[tokio::test]
async fn wrong_password_is_refused_with_the_user_named() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let target = src.scratch("backup");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["backup", "--host", "127.0.0.1", "--port"])
        .arg(src.port().to_string())
        .args(["--user", "xb", "--password=wrong", "--target-dir"])
        .arg(&target);
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_failure_mentions(&out, &["'xb'", "password"]);
    assert!(!looks_complete(&target));
}

#[tokio::test]
async fn unreachable_server_names_host_and_port() {
    let port = xb_testing::server::free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backup");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["backup", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--user", "xb", "--password=xb", "--target-dir"])
        .arg(&target);
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_failure_mentions(&out, &[&format!("127.0.0.1:{port}")]);
    assert!(!looks_complete(&target));
}

#[tokio::test]
async fn missing_privileges_are_named() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE USER 'weak'@'%' IDENTIFIED BY 'weak'")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let target = src.scratch("backup");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["backup", "--host", "127.0.0.1", "--port"])
        .arg(src.port().to_string())
        .args(["--user", "weak", "--password=weak", "--target-dir"])
        .arg(&target);
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_failure_mentions(&out, &["privilege", "RELOAD"]);
    assert!(!looks_complete(&target));
}

#[tokio::test]
async fn non_empty_target_is_refused_and_left_untouched() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let target = src.scratch("backup");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("precious.txt"), b"keep me").unwrap();
    let out = run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(&out, &[&target.to_string_lossy(), "not empty"]);
    let names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("precious.txt")]);
    assert_eq!(
        std::fs::read(target.join("precious.txt")).unwrap(),
        b"keep me"
    );
}

/// A target on a small file system that fills up during the copy.
#[tokio::test]
async fn full_disk_on_the_target_fails_and_marks_the_target_incomplete() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let mount = src.scratch("small-fs");
    let _fs = SmallFs::mount(&mount, "4m");
    let target = mount.join("backup");
    let out = run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(&out, &["space"]);
    assert!(
        target.join(INCOMPLETE_MARKER).exists(),
        "a failed backup must say it is incomplete"
    );
    assert!(!looks_complete(&target));
}

/// A stream whose reader's disk is full: `/dev/full` answers ENOSPC.
#[tokio::test]
async fn full_disk_on_the_stream_fails() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let mut cmd = xb_backup_command(&src, &["--stream=xbstream"]);
    cmd.stdout(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    );
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_failure_mentions(&out, &["space"]);
}
