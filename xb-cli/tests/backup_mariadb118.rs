//! Runbook: MariaDB 11.8 under write load, backed up with `xb-cli backup`,
//! prepared with `xb-cli prepare` (no vendor tool involved), restored,
//! rolled forward with the binlog and compared table by table. And on
//! MariaDB 10.11 the same with xb's own prepare, so both prepares are proven
//! on xb's own backups.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

async fn backup_under_load_then_xb_prepare(flavor: Flavor) {
    let src = TestServer::start_with_args(flavor, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        non_innodb: true,
        aria: true,
        ..LoadSpec::default()
    };
    let target = backup_under_load(&src, &spec, &[]).await;
    xb_prepare_and_compare(&src, &target, &[&spec.schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_11_8_backup_and_xb_prepare_restore_equal_tables() {
    backup_under_load_then_xb_prepare(Flavor::MariaDb118).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_10_11_backup_and_xb_prepare_restore_equal_tables() {
    backup_under_load_then_xb_prepare(Flavor::MariaDb1011).await;
}
