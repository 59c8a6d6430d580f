//! Runbook: MySQL 9.7 with redo logging disabled (`ALTER INSTANCE DISABLE
//! INNODB REDO_LOG`, done for a bulk load and forgotten). A backup taken
//! now could never be restored: xb refuses before it copies anything, and
//! says how to turn logging back on. Once it is on, the backup goes.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_redo_logging_is_refused_before_anything_is_copied() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    src.sql("ALTER INSTANCE DISABLE INNODB REDO_LOG").unwrap();

    let target = src.scratch("backup");
    let out = run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(
        &out,
        &[
            "redo logging is disabled",
            "hint: ",
            "ALTER INSTANCE ENABLE INNODB REDO_LOG",
        ],
    );
    assert_eq!(out.status.code(), Some(14), "refused as unsupported");
    assert!(
        !target.exists(),
        "nothing may be written before the refusal, not even the target directory"
    );

    src.sql("ALTER INSTANCE ENABLE INNODB REDO_LOG").unwrap();
    let out = run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await;
    assert_success(&out);
    assert!(target.join("xtrabackup_checkpoints").is_file());
    assert!(!target.join(INCOMPLETE_MARKER).exists());
}
