//! Runbook: MariaDB 10.5 (512-byte-block redo) under write load, backed up
//! with `xb-cli backup`, prepared with `xb-cli prepare`, restored, rolled
//! forward with the binlog and compared table by table.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
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
