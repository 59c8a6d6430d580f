//! Runbook: MariaDB 10.5 (512-byte-block redo) under write load, backed up
//! with `xb-cli backup`, prepared with `xb-cli prepare`, restored, rolled
//! forward with the binlog and compared table by table. And a system
//! tablespace that grows while the backup copies it: 10.5 refuses to
//! recover an `ibdata1` smaller than the size its log gives it, so prepare
//! extends the copy first.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_innodb::redo::RedoFormat;
use xb_innodb::redo_sizes::recovered_sizes;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_10_5_backup_and_xb_prepare_restore_equal_tables() {
    let src = TestServer::start_with_args(Flavor::MariaDb105, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        non_innodb: true,
        aria: true,
        ..LoadSpec::default()
    };
    let target = backup_under_load(&src, &spec, &[]).await;
    xb_prepare_and_compare(&src, &target, &[&spec.schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ibdata1_that_grows_during_the_copy_is_prepared_and_restores() {
    let src = TestServer::start_with_args(Flavor::MariaDb105, BINLOG_ARGS).expect("source");
    let mut c = src.conn().await.unwrap();
    // a table inside the system tablespace: its rows grow ibdata1
    for sql in [
        "CREATE DATABASE grow",
        "SET GLOBAL innodb_file_per_table=0",
        "CREATE TABLE grow.in_ibdata (id INT PRIMARY KEY, pad CHAR(255)) ENGINE=InnoDB",
        "SET GLOBAL innodb_file_per_table=1",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    // 1 MiB/s: the 12 MiB ibdata1 alone takes seconds to copy
    let child = spawn_xb_backup(&src, &["--target-dir", &target_s, "--throttle", "1"]);
    wait_until("the copy has begun", Duration::from_secs(60), || {
        target.join("ibdata1").exists()
    })
    .await;
    c.query_drop(
        "INSERT INTO grow.in_ibdata SELECT seq, REPEAT('x', 255) FROM grow.seq_1_to_200000",
    )
    .await
    .unwrap();
    let out = finish_within(child, Duration::from_secs(300)).await;
    assert_success(&out);

    // what the runbook is about: the log grows ibdata1 past its copy
    let copied_pages = std::fs::metadata(target.join("ibdata1")).unwrap().len() / 16_384;
    let sizes = recovered_sizes(&target.join("ib_logfile0"), RedoFormat::MariaDb105).unwrap();
    let logged = u64::from(sizes.get(&0).copied().unwrap_or(0));
    assert!(
        logged > copied_pages,
        "the insert was to grow ibdata1 during the copy: {copied_pages} pages copied, \
         the log sets {logged}"
    );
    let out = xb_prepare_args(&src, &target, &[], None);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("system tablespace extended")
            && stderr.contains(&format!("to_pages={logged}")),
        "prepare extends ibdata1 to the logged size before recovery:\n{stderr}"
    );
    start_and_compare(&src, &target, &["grow"], "").await;
}
