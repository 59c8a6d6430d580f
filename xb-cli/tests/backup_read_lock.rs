//! Runbook: a backup's read lock never stalls the server behind a long
//! query (MySQL 9.7; a MyISAM table makes the backup lock it, with
//! `LOCK TABLES … READ`, for the non-InnoDB copy).
//!
//! - a long read of the MyISAM table does not hold the lock up, and
//!   InnoDB writes go on under it;
//! - DDL that waits for the backup lock while the copy runs goes on once
//!   the backup ends (the global read lock killed it as a deadlock);
//! - `--ftwrl-wait-timeout` with a query that outlives it: the backup fails
//!   (exit 27, naming the query) without asking for the lock, while writes
//!   to InnoDB go on all along;
//! - `--kill-long-queries-timeout`: the write blocking the lock is killed
//!   and the backup completes;
//! - `--ftwrl-wait-timeout` with a query that ends in time: the backup
//!   waits for it, leaves it alone, and completes;
//! - `--backup-lock-timeout` / `--backup-lock-retry-count` with an ALTER
//!   holding the backup lock (with and without `--lock-ddl-per-table`):
//!   the backup gives up after its attempts (exit 28), naming the ALTER.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::server::{Flavor, TestServer};

/// A MySQL 9.7 with a MyISAM table (`rl.m`, one row) and an InnoDB table
/// (`rl.i`).
fn server() -> TestServer {
    let src = TestServer::start(Flavor::MySql97).expect("MySQL 9.7");
    src.sql(
        "CREATE DATABASE rl; CREATE TABLE rl.m (a INT) ENGINE=MyISAM; INSERT INTO rl.m VALUES (1); \
         CREATE TABLE rl.i (id INT AUTO_INCREMENT PRIMARY KEY, a INT) ENGINE=InnoDB",
    )
    .unwrap();
    src
}

/// Runs `sql` on a connection of its own in the background; the handle
/// gives the statement's outcome.
async fn spawn_query(
    src: &TestServer,
    sql: &'static str,
) -> tokio::task::JoinHandle<Result<(), mysql_async::Error>> {
    let mut conn = src.conn().await.unwrap();
    tokio::spawn(async move { conn.query_drop(sql).await })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_query_fails_the_backup_before_the_read_lock_is_queued() {
    let src = server();
    let long = spawn_query(&src, "SELECT SLEEP(600) FROM rl.m LIMIT 1").await;
    // past the threshold before the backup looks
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let started = Instant::now();
    let mut child = spawn_xb_backup(
        &src,
        &[
            "--target-dir",
            &target_s,
            "--ftwrl-wait-timeout=3",
            "--ftwrl-wait-threshold=1",
        ],
    );
    // writes go on while the backup runs: none may wait behind a read lock
    let mut writer = src.conn().await.unwrap();
    let mut inserts = 0;
    let status = loop {
        let t = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(2),
            writer.query_drop("INSERT INTO rl.i (a) VALUES (1)"),
        )
        .await
        .expect("an InnoDB insert waited while the backup ran")
        .unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        inserts += 1;
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backup did not end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = finish_within(child, Duration::from_secs(5)).await;
    assert!(inserts > 1, "the writer ran during the backup");
    assert_eq!(status.code(), Some(27), "{out:?}");
    assert_failure_mentions(
        &out,
        &[
            "SELECT SLEEP(600) FROM rl.m LIMIT 1",
            "--ftwrl-wait-timeout",
            "--kill-long-queries-timeout",
        ],
    );
    assert!(target.join(INCOMPLETE_MARKER).exists());
    assert!(!long.is_finished(), "the long query was left alone");
    long.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_blocking_the_read_lock_is_killed_when_told() {
    let src = server();
    // a write holds the MyISAM table: the read lock on it waits
    let long = spawn_query(&src, "UPDATE rl.m SET a = SLEEP(600)").await;
    // running before the backup starts (under load it may start late)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    // without the kill the read lock would wait the query's ten minutes
    let child = spawn_xb_backup(
        &src,
        &[
            "--target-dir",
            &target_s,
            "--kill-long-queries-timeout=2",
            "--kill-long-query-type=all",
        ],
    );
    let out = finish_within(child, Duration::from_secs(60)).await;
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("killing connection") && stderr.contains("UPDATE rl.m SET a = SLEEP(600)"),
        "{stderr}"
    );
    let r = tokio::time::timeout(Duration::from_secs(10), long)
        .await
        .expect("the killed query's client hears of it")
        .unwrap();
    assert!(r.is_err(), "the long query was killed: {r:?}");
    assert!(!target.join(INCOMPLETE_MARKER).exists());
}

/// Only the MyISAM table is locked, and only against writes: a long read
/// of it runs on, InnoDB commits go on, and the report names the lock.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_read_of_the_myisam_table_does_not_hold_the_backup_up() {
    let src = server();
    let long = spawn_query(&src, "SELECT SLEEP(600) FROM rl.m LIMIT 1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        run_xb_backup(&src, &["--target-dir", &target_s, "--json"]),
    )
    .await
    .expect("the backup does not wait for the read");
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let locks = summary["locks"].as_array().unwrap();
    assert!(
        locks.iter().any(|l| l["lock"] == "LOCK TABLES … READ"
            && l["blocks"] == "writes to non-transactional tables"),
        "{summary}"
    );
    assert!(
        !locks.iter().any(|l| l["blocks"] == "commits"),
        "no lock blocked InnoDB commits: {summary}"
    );
    assert!(!long.is_finished(), "the read runs on");
    long.abort();
}

/// `--lock-ddl=on`: an ALTER queued behind the backup lock while the copy
/// runs completes once the backup ends. (With the global read lock for the
/// MyISAM copy, the server broke the cycle by failing the ALTER with
/// ER_LOCK_DEADLOCK.)
#[tokio::test(flavor = "multi_thread")]
async fn ddl_waiting_for_the_backup_lock_goes_on_after_the_backup() {
    let src = server();
    src.sql("INSERT INTO rl.i (a) SELECT 1 FROM information_schema.columns LIMIT 2000")
        .unwrap();
    let target = src.scratch("backup");
    let child = spawn_throttled_backup(&src, &target, "10", &["--lock-ddl=on"]).await;
    let ddl = spawn_query(&src, "ALTER TABLE rl.i ADD COLUMN b INT").await;
    let out = finish_within(child, Duration::from_secs(300)).await;
    assert_success(&out);
    tokio::time::timeout(Duration::from_secs(30), ddl)
        .await
        .expect("the ALTER ends")
        .unwrap()
        .expect("the ALTER succeeds once the backup lock is released");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backup_waits_for_a_long_query_that_ends_in_time() {
    let src = server();
    let long = spawn_query(&src, "SELECT SLEEP(8) FROM rl.m LIMIT 1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &target_s,
            "--ftwrl-wait-timeout=20",
            "--ftwrl-wait-threshold=1",
        ],
    )
    .await;
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wait up to 20 s") && stderr.contains("SELECT SLEEP(8)"),
        "the wait is reported: {stderr}"
    );
    assert!(long.is_finished(), "the backup ended after the query");
    long.await
        .unwrap()
        .expect("the query was waited for, not killed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_lock_held_by_ddl_fails_after_the_attempts_naming_it() {
    backup_lock_held_by_ddl(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_per_table_locks_the_instance_lock_also_gives_up_naming_the_ddl() {
    backup_lock_held_by_ddl(&["--lock-ddl-per-table"]).await;
}

/// An ALTER holds the backup lock (waiting for a table an open transaction
/// reads): a backup with `extra` and three attempts of 1 s fails (exit 28)
/// naming it.
async fn backup_lock_held_by_ddl(extra: &[&str]) {
    let src = server();
    // an open transaction keeps the ALTER waiting for its table, while the
    // ALTER already holds the backup lock against LOCK INSTANCE FOR BACKUP
    let mut reader = src.conn().await.unwrap();
    reader.query_drop("BEGIN").await.unwrap();
    // (a MyISAM table: --lock-ddl-per-table's own metadata locks, taken
    // on InnoDB tables, would queue behind the ALTER's pending one)
    reader.query_drop("SELECT * FROM rl.m").await.unwrap();
    let ddl = spawn_query(&src, "ALTER TABLE rl.m ADD COLUMN b INT").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let started = Instant::now();
    let mut args = vec![
        "--target-dir",
        &target_s,
        "--backup-lock-timeout=1",
        "--backup-lock-retry-count=2",
    ];
    args.extend_from_slice(extra);
    let child = spawn_xb_backup(&src, &args);
    let out = finish_within(child, Duration::from_secs(60)).await;
    assert_eq!(out.status.code(), Some(28), "{out:?}");
    assert_failure_mentions(
        &out,
        &[
            "LOCK INSTANCE FOR BACKUP was not granted in 3 attempt(s) of 1 s",
            "ALTER TABLE rl.m ADD COLUMN b INT",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(target.join(INCOMPLETE_MARKER).exists());
    // the DDL goes on once the transaction ends
    reader.query_drop("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), ddl)
        .await
        .expect("the ALTER ends")
        .unwrap()
        .unwrap();
}

/// MariaDB 10.11: another session's backup holds `BACKUP STAGE START`
/// (one backup at a time); three attempts of 1 s fail (exit 28) naming
/// the stage, and nothing is left half-locked.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_backup_stage_gives_up_after_its_attempts() {
    let src = TestServer::start(Flavor::MariaDb1011).expect("MariaDB 10.11");
    let mut other = src.conn().await.unwrap();
    other.query_drop("BACKUP STAGE START").await.unwrap();
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let child = spawn_xb_backup(
        &src,
        &[
            "--target-dir",
            &target_s,
            "--backup-lock-timeout=1",
            "--backup-lock-retry-count=2",
        ],
    );
    let out = finish_within(child, Duration::from_secs(60)).await;
    assert_eq!(out.status.code(), Some(28), "{out:?}");
    assert_failure_mentions(
        &out,
        &[
            "BACKUP STAGE START",
            "was not granted in 3 attempt(s) of 1 s",
        ],
    );
    assert!(target.join(INCOMPLETE_MARKER).exists());
    other.query_drop("BACKUP STAGE END").await.unwrap();
}
