//! Runbook: one table much larger than the rest does not leave the other
//! copy workers idle. With `--split-at 1` every tablespace of 1 MiB or more
//! is copied in page ranges by the `--parallel` workers at once, each range
//! validated and re-read like a whole file, written at its offset; the
//! manifest lists the ranges. Taken while the tables are written, the
//! backup verifies, and restores (the vendor's prepare, replayed binlog)
//! to tables equal to the source's.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_tablespaces_copied_in_ranges_under_load_restore_equal() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        rows_per_table: 12_000,
        pad_len: 400,
        ..LoadSpec::default()
    };
    // the tables' pages (page 0 above all: the page size a range goes
    // by) on disk before the copy, not only in the redo
    let flush = [
        "FLUSH TABLES xbload.sbtest1, xbload.sbtest2, xbload.sbtest3, xbload.sbtest4 FOR EXPORT"
            .to_string(),
        "UNLOCK TABLES".to_string(),
    ];
    let target =
        backup_under_load_with(&src, &spec, &["--parallel", "3", "--split-at", "1"], &flush).await;

    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(target.join("xb_manifest.json")).unwrap()).unwrap();
    let split: Vec<&serde_json::Value> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["parts"].as_array().is_some_and(|p| p.len() > 1))
        .collect();
    assert!(
        split
            .iter()
            .any(|f| f["path"].as_str().unwrap().starts_with("xbload/")),
        "the load's tables were copied in ranges: {m}"
    );
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("verify")
        .arg(&target)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");

    restore_and_compare(&src, &target, &["xbload"]).await;
}
