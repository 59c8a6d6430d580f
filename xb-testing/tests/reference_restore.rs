//! Runbook rehearsal with the reference tool: back up a live MariaDB 10.11
//! under write load with `mariadb-backup`, prepare, start a server on the copy,
//! roll it forward with the source's binlog and compare every table.
//!
//! This proves the verification toolkit (`load`, `verify`) that the xb
//! end-to-end tests use: a restore that is really equal passes, and one that
//! is missing the binlog replay is caught.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::process::Command;

use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::verify::{check_tables, replay_binlog, table_checksums};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_backup_restore_under_load_matches_source_after_binlog_replay() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, "--log-bin=binlog --server-id=1")
        .expect("source server");
    let spec = LoadSpec {
        non_innodb: true,
        aria: true,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;

    let target = src.scratch("backup");
    let cnf = src.run_dir().join("my.cnf");
    let port = src.port().to_string();
    let mut backup = src.tool("mariadb-backup");
    backup
        .arg(format!("--defaults-file={}", cnf.display()))
        .args([
            "--backup",
            &format!("--target-dir={}", target.display()),
            "--host=127.0.0.1",
            &format!("--port={port}"),
            "--user=xb",
            "--password=xb",
        ]);
    tokio::task::spawn_blocking(move || run(&mut backup))
        .await
        .unwrap();
    load.wait_for_commits(200).await;
    let stats = load.stop().await.expect("load ran without errors");
    assert!(stats.commits >= 400, "{stats:?}");

    let mut prep = src.tool("mariadb-backup");
    prep.args(["--prepare", &format!("--target-dir={}", target.display())]);
    run(&mut prep);

    let info = std::fs::read_to_string(target.join("xtrabackup_binlog_info")).unwrap();
    let mut fields = info.split_whitespace();
    let file = fields.next().unwrap().to_string();
    let pos: u64 = fields.next().unwrap().parse().unwrap();

    let restored = TestServer::start_on(Flavor::MariaDb1011, &target).expect("restored server");
    let mut rconn = restored.conn().await.unwrap();
    let bad = check_tables(&mut rconn, &[&spec.schema]).await.unwrap();
    assert!(bad.is_empty(), "CHECK TABLE: {bad:?}");

    let mut sconn = src.conn().await.unwrap();
    let source_sums = table_checksums(&mut sconn, &[&spec.schema]).await.unwrap();
    let before_replay = table_checksums(&mut rconn, &[&spec.schema]).await.unwrap();
    assert_eq!(source_sums.len(), 6, "{source_sums:?}");
    assert_ne!(
        before_replay, source_sums,
        "the load kept writing after the backup, so the copy must differ before replay"
    );

    replay_binlog(&src, &file, pos, &restored).expect("binlog replay");
    let after_replay = table_checksums(&mut rconn, &[&spec.schema]).await.unwrap();
    assert_eq!(after_replay, source_sums);
}
