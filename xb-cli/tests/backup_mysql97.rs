//! Runbook: MySQL 9.7 under write load (InnoDB and MyISAM), backed up with
//! `xb-cli backup` (LOCK INSTANCE FOR BACKUP, redo copied across
//! `#innodb_redo` file switches, binlog and GTID from log_status), prepared
//! with `xb-cli prepare` (the server's own recovery), restored, rolled
//! forward with the binlog and compared table by table.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_9_7_backup_and_xb_prepare_restore_equal_tables() {
    // a small redo capacity, so the copy has to follow file switches
    let src = TestServer::start_with_args(Flavor::MySql97, "--innodb-redo-log-capacity=8M")
        .expect("source");
    let spec = LoadSpec {
        non_innodb: true,
        pad_len: 400,
        ..LoadSpec::default()
    };
    let target = backup_under_load(&src, &spec, &[]).await;
    let info = std::fs::read_to_string(target.join("xtrabackup_binlog_info")).unwrap();
    assert_eq!(
        info.split('\t').count(),
        3,
        "file, position and GTID set: {info:?}"
    );
    xb_prepare_and_compare(&src, &target, &[&spec.schema]).await;
}

/// The same promise on MySQL, whose redo copy hands out the block the log
/// ends in (see the MariaDB runbook of the same name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_servers_backup_locks_without_waiting_on_the_redo_copy() {
    idle_backup_does_not_wait_on_the_redo_copy(Flavor::MySql97).await;
}
