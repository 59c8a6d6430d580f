//! Runbook: a backup holds every tablespace the server has, not only the
//! ones a walk of the datadir finds by name, or it fails naming the ones it
//! cannot hold. Never a "completed OK" that restores to a server missing a
//! table or an undo tablespace.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::server::{Flavor, TestServer};

/// MySQL 9.7: an undo tablespace made with `CREATE UNDO TABLESPACE … '.ibu'`
/// and a general tablespace in the datadir are in the backup, and the
/// restore has the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_undo_and_general_tablespaces_are_in_the_backup_and_restore() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let mut c = src.conn().await.unwrap();
    for sql in [
        "CREATE UNDO TABLESPACE extra_undo ADD DATAFILE 'extra_undo.ibu'",
        "CREATE TABLESPACE shared_ts ADD DATAFILE 'shared_ts.ibd'",
        "CREATE DATABASE ts",
        "CREATE TABLE ts.in_general (id INT PRIMARY KEY, v VARCHAR(40)) TABLESPACE shared_ts",
        "CREATE TABLE ts.per_table (id INT PRIMARY KEY, v VARCHAR(40))",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    for t in ["in_general", "per_table"] {
        c.query_drop(format!(
            "INSERT INTO ts.{t} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
             SELECT i, REPEAT('x', 30) FROM n"
        ))
        .await
        .unwrap();
    }
    drop(c);
    let target = src.scratch("backup");
    let out = run_xb_backup(&src, &["--target-dir", target.to_str().unwrap()]).await;
    assert_success(&out);
    for f in ["extra_undo.ibu", "shared_ts.ibd", "ts/per_table.ibd"] {
        assert!(target.join(f).is_file(), "{f} is missing from the backup");
    }
    xb_prepare_and_compare(&src, &target, &["ts"]).await;
}

/// MariaDB 10.11: a table created with `DATA DIRECTORY` lives outside the
/// datadir (the datadir holds only its `.isl`). This version cannot restore
/// it, so the backup stops before copying, names the file, exits non-zero,
/// leaves the target marked incomplete and no lock on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_data_directory_table_fails_the_backup_naming_it() {
    let src = TestServer::start(Flavor::MariaDb1011).expect("source");
    let remote = src.scratch("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let mut c = src.conn().await.unwrap();
    c.query_drop("CREATE DATABASE ts").await.unwrap();
    c.query_drop(format!(
        "CREATE TABLE ts.far (id INT PRIMARY KEY) DATA DIRECTORY = '{}'",
        remote.display()
    ))
    .await
    .unwrap();
    c.query_drop("INSERT INTO ts.far VALUES (1), (2), (3)")
        .await
        .unwrap();
    let target = src.scratch("backup");
    let out = run_xb_backup(&src, &["--target-dir", target.to_str().unwrap()]).await;
    let far = remote.join("ts").join("far.ibd");
    assert_failure_mentions(
        &out,
        &[&far.display().to_string(), "outside its datadir", "hint:"],
    );
    assert_eq!(
        out.status.code(),
        Some(14),
        "exit code of an unsupported set-up"
    );
    assert!(target.join(INCOMPLETE_MARKER).exists());
    assert!(
        !target.join("ts").join("far.ibd").exists(),
        "nothing of the table was copied"
    );
    // the backup stage is released: DDL goes through at once
    c.query_drop("SET SESSION lock_wait_timeout = 5")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE ts.after (id INT)")
        .await
        .unwrap();
}
