//! Runbook: DDL on MySQL 9.7 while the backup runs, with the default backup
//! lock and with per-table metadata locks; both restore to the source's
//! tables after binlog replay.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

async fn ddl_during_backup(extra: &[&str]) {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE TABLE xbload.doomed (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;
    let target = src.scratch("backup");
    // throttled, so the DDL below really overlaps the copy
    let mut args = vec![
        "--target-dir".to_string(),
        target.to_string_lossy().into_owned(),
        "--throttle".into(),
        "40".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_string()));
    let cmd = xb_backup_command(&src, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let backup = tokio::task::spawn_blocking(move || output_of(cmd));
    for sql in [
        "CREATE TABLE xbload.born (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "INSERT INTO xbload.born VALUES (1,'a'),(2,'b')",
        "ALTER TABLE xbload.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
        "DROP TABLE xbload.doomed",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let out = backup.await.unwrap();
    assert_success(&out);
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    conn.disconnect().await.unwrap();
    xb_prepare_and_compare(&src, &target, &[&spec.schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_with_the_backup_lock() {
    ddl_during_backup(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_with_per_table_metadata_locks() {
    ddl_during_backup(&["--lock-ddl-per-table"]).await;
}
