//! Fault runbooks: things that go wrong in the middle of a backup. Each ends
//! with a non-zero exit (or a killed process), a target that says it is
//! incomplete, no lock left on the server, and no "completed OK".
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::server::{Flavor, TestServer};

/// DDL goes through at once: no backup stage or lock of a backup is left.
async fn no_lock_left(src: &TestServer, table: &str) {
    let mut c = src.conn().await.unwrap();
    c.query_drop("SET SESSION lock_wait_timeout = 5")
        .await
        .unwrap();
    c.query_drop("CREATE DATABASE IF NOT EXISTS faultcheck")
        .await
        .unwrap();
    c.query_drop(format!("CREATE TABLE faultcheck.{table} (id INT)"))
        .await
        .unwrap();
}

/// `kill -9` of xb-cli in the middle of the copy: the target keeps its
/// incomplete marker, the server has released the backup stage with the
/// session, and the next backup into a new target succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xb_killed_mid_copy_leaves_an_incomplete_target_and_no_lock() {
    let src = TestServer::start(Flavor::MariaDb1011).expect("source");
    let first = src.scratch("killed");
    // 1 MiB/s: the copy of the system tablespace alone takes seconds
    let mut cmd = xb_backup_command(
        &src,
        &["--target-dir", first.to_str().unwrap(), "--throttle", "1"],
    );
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // wait until data is being written into the target
    let deadline = Instant::now() + Duration::from_secs(60);
    while !first.join("ibdata1").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first.join("ibdata1").exists(), "the copy never started");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(first.join(INCOMPLETE_MARKER).exists());
    assert!(!first.join("xtrabackup_info").exists());
    no_lock_left(&src, "after_kill").await;
    let second = src.scratch("second");
    let out = run_xb_backup(&src, &["--target-dir", second.to_str().unwrap()]).await;
    assert_success(&out);
    assert!(!second.join(INCOMPLETE_MARKER).exists());
}

/// A page that is corrupt on disk (not a torn read: it stays bad on every
/// re-read) fails the backup, naming the file and the page, with exit 21.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_page_fails_the_backup_naming_file_and_page() {
    // no buffer-pool load at start-up: nothing reads the damaged page but xb
    let mut src = TestServer::start_with_args(
        Flavor::MariaDb1011,
        "--innodb-buffer-pool-load-at-startup=0",
    )
    .expect("source");
    let mut c = src.conn().await.unwrap();
    c.query_drop("CREATE DATABASE cold").await.unwrap();
    c.query_drop("CREATE TABLE cold.t (id INT PRIMARY KEY, pad CHAR(200))")
        .await
        .unwrap();
    c.query_drop(
        "INSERT INTO cold.t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900) \
         SELECT i, 'x' FROM n",
    )
    .await
    .unwrap();
    drop(c);
    // a clean shutdown writes every page; then damage page 3 on disk
    src.stop().unwrap();
    let ibd = src.datadir().join("cold").join("t.ibd");
    let mut bytes = std::fs::read(&ibd).unwrap();
    let at = 3 * 16384 + 1000;
    for b in &mut bytes[at..at + 16] {
        *b ^= 0xA5;
    }
    std::fs::write(&ibd, &bytes).unwrap();
    src.restart().unwrap();
    let target = src.scratch("backup");
    let out = run_xb_backup(&src, &["--target-dir", target.to_str().unwrap()]).await;
    assert_failure_mentions(&out, &["cold/t.ibd", "page 3", "CHECK TABLE"]);
    assert_eq!(out.status.code(), Some(21), "exit code of a read failure");
    assert!(target.join(INCOMPLETE_MARKER).exists());
    no_lock_left(&src, "after_corrupt").await;
}

/// The server's LSN, as the status variable shows it.
async fn server_lsn(src: &TestServer) -> u64 {
    let mut c = src.conn().await.unwrap();
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")
        .await
        .unwrap();
    row.unwrap().1
}

/// Redo really overwritten: a busy server with a 4 MiB log, and xb frozen
/// (SIGSTOP, as a host short of CPU or a hung target would) while the
/// server writes more than two logs' worth of redo. The backup fails as
/// overwritten, with the rates it measured in the hint, exit 22, the
/// incomplete marker, and no lock left; never a "completed OK" with a hole
/// in its redo.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redo_overwritten_while_xb_is_frozen_fails_with_the_rates() {
    use xb_testing::load::{LoadSpec, WriteLoad, prepare};
    let src = TestServer::start_with_args(Flavor::MariaDb1011, "--innodb-log-file-size=4M")
        .expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;
    let target = src.scratch("backup");
    // 1 MiB/s: the copy lasts long enough to be frozen in the middle
    let child = spawn_xb_backup(
        &src,
        &["--target-dir", target.to_str().unwrap(), "--throttle", "1"],
    );
    let pid = child.id().unwrap().to_string();
    wait_until("the data copy starts", Duration::from_secs(60), || {
        data_copy_started(&target)
    })
    .await;
    // a few lag samples first (one a second), for the rates in the hint
    tokio::time::sleep(Duration::from_secs(3)).await;
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    let frozen_at = server_lsn(&src).await;
    signal("-STOP");
    let start = Instant::now();
    while server_lsn(&src).await < frozen_at + 12 * (1 << 20) {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the load wrote less than 12 MiB of redo in 180 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal("-CONT");
    let out = finish_within(child, Duration::from_secs(120)).await;
    load.stop().await.expect("load ran without errors");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_failure_mentions(&out, &["overwritten", "hint:", "MiB/s", "MiB log"]);
    assert_eq!(out.status.code(), Some(22), "exit code of a redo failure");
    assert!(target.join(INCOMPLETE_MARKER).exists());
    assert!(!target.join("xtrabackup_info").exists());
    no_lock_left(&src, "after_overwrite").await;
}
