//! Runbook: a server that reaps idle connections after a few seconds
//! (`wait_timeout`, set low to clean up after applications). xb's main
//! session idles for the whole data copy while it holds the backup lock, and
//! with MySQL `--lock-ddl-per-table` a second session idles in an open
//! transaction holding the metadata locks: a long backup must keep them.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::{Duration, Instant};

use common::*;
use xb_testing::load::{LoadSpec, prepare};
use xb_testing::server::{Flavor, TestServer};

/// Takes a throttled backup of `flavor` (loaded) whose server reaps
/// connections idle for 3 s; the copy lasts more than twice that, and
/// must complete all the same.
async fn long_backup_outlasts_wait_timeout(flavor: Flavor, extra: &[&str]) {
    let src = TestServer::start(flavor).expect("source");
    prepare(src.opts(), &LoadSpec::default())
        .await
        .expect("load data");
    src.sql("SET GLOBAL wait_timeout = 3").unwrap();
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let mut args = vec!["--target-dir", &target_s];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = run_xb_backup(&src, &args).await;
    assert_success(&out);
    assert!(
        started.elapsed() > Duration::from_secs(6),
        "the copy must outlast wait_timeout twice to prove anything ({:?})",
        started.elapsed()
    );
    assert!(!target.join(INCOMPLETE_MARKER).exists());
}

/// xb's main session idles for the whole throttled copy and must keep its
/// backup lock all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_wait_timeout_does_not_end_a_long_backup_on_mariadb() {
    long_backup_outlasts_wait_timeout(Flavor::MariaDb1011, &["--throttle", "3"]).await;
}

/// The same on MySQL 9.7 with `--lock-ddl-per-table`, whose second session
/// idles in an open transaction holding the metadata locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_wait_timeout_does_not_end_a_long_backup_on_mysql() {
    long_backup_outlasts_wait_timeout(
        Flavor::MySql97,
        &["--throttle", "8", "--lock-ddl-per-table"],
    )
    .await;
}
