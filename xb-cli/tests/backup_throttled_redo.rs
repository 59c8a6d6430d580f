//! Runbook: `--throttle 1` (1 MiB/s for the data files) on a busy MariaDB
//! 10.11. The throttle is for the data files only: the redo copy has to
//! keep pace with the server the whole time, so it never waits for the
//! data files' budget. The backup completes, its redo copy spans the
//! whole copy, its lag behind the server is reported against the log's
//! capacity, and the vendor's `mariadb-backup --prepare` accepts it (the
//! other runbooks restore and compare). And an incremental keeps to the
//! throttle in what it reads, not only in the little it writes.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_backup_completes_with_a_valid_redo_copy() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        pad_len: 400,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;

    let target = src.scratch("backup");
    let started = std::time::Instant::now();
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &target.to_string_lossy(),
            "--throttle",
            "1",
            "--json",
        ],
    )
    .await;
    let took = started.elapsed();
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    assert_success(&out);
    assert!(
        took > std::time::Duration::from_secs(10),
        "the throttle must make the copy long enough to matter ({took:?})"
    );

    // the redo copy covers the copy: from the start checkpoint to a later LSN
    let stderr = String::from_utf8_lossy(&out.stderr);
    let span: Vec<u64> = stderr
        .lines()
        .find_map(|l| {
            l.split_once("xb: redo copied from LSN ")
                .map(|(_, rest)| rest)
        })
        .and_then(|rest| rest.split(';').next())
        .map(|r| r.split(" to ").map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| panic!("no redo line:\n{stderr}"));
    assert!(
        span[1] > span[0],
        "the load wrote redo during the copy: {span:?}"
    );
    // the redo lag was measured against the log's capacity all along: in
    // the progress lines and in --json, with the copy keeping pace
    assert!(
        stderr.contains("MiB log"),
        "no redo lag in the progress lines:\n{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let redo = &json["redo"];
    let capacity = redo["capacity"].as_u64().unwrap();
    assert_eq!(
        capacity,
        96 * (1 << 20) - 12_288,
        "10.11's default log: {redo}"
    );
    assert!(redo["samples"].as_u64().unwrap() >= 5, "{redo}");
    assert!(redo["server_bytes_per_s"].as_f64().unwrap() > 0.0, "{redo}");
    let max_lag = redo["max_lag"].as_u64().unwrap();
    assert!(max_lag < capacity / 2, "the copy kept pace: {redo}");
    assert_eq!(redo["min_margin"].as_u64().unwrap(), capacity - max_lag);
    // the vendor's prepare accepts the redo copy
    vendor_prepare(&src, &target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_incremental_reads_the_data_files_at_the_rate() {
    let src = TestServer::start(Flavor::MariaDb1011).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let full = src.scratch("full");
    let full_s = full.to_string_lossy().into_owned();
    assert_success(&run_xb_backup(&src, &["--target-dir", &full_s]).await);
    src.sql(&format!(
        "UPDATE {}.sbtest1 SET k = k + 1 WHERE id < 50",
        spec.schema
    ))
    .unwrap();
    // about five seconds of reading at the rate
    let on_disk: u64 = innodb_files(src.datadir())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let mib = (on_disk >> 20).div_ceil(5).max(1);
    let inc = src.scratch("inc");
    let inc_s = inc.to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &inc_s,
            "--incremental-basedir",
            &full_s,
            "--throttle",
            &mib.to_string(),
            "--json",
        ],
    )
    .await;
    let took = started.elapsed();
    assert_success(&out);
    // what it read of the data files (its progress count), and wrote
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = json["bytes"].as_u64().unwrap();
    let written: u64 = files_under(&inc)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "delta"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        written < read / 4,
        "an incremental writes little: {written} of {read} bytes"
    );
    // what it wrote alone would pass the throttle in a fraction of this
    let floor = std::time::Duration::from_secs_f64(0.7 * read as f64 / (mib << 20) as f64);
    assert!(
        took >= floor,
        "{read} bytes read at {mib} MiB/s took {took:?}, under {floor:?}"
    );
}
