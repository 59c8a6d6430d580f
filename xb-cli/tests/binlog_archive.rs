//! Runbook: keep an archive of a busy source's binary log with
//! `xb-cli binlog-archive`, through the archiver being killed and started
//! again, the source restarting and its binlog rotating; then check that
//! every archived file is byte for byte the server's, and that a purge the
//! archiver never saw is reported as a gap, not papered over.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::archive::{
    create_ledger, server_logs, spawn_archiver, status, stop_with_sigterm, wait_caught_up,
    write_ledger,
};
use common::{BINLOG_ARGS, scratch_dir};
use xb_testing::server::{Flavor, TestServer};

/// Every file the server has is in the archive, byte for byte. The file
/// the server still writes carries its "in use" flag (bit 0 of the
/// format description's flags) until it is closed; the server clears it
/// for a replica, so the archive holds the file as it will be once closed.
fn assert_archive_is_the_servers(src: &TestServer, dir: &Path, logs: &[(String, u64)]) {
    let archived: Vec<String> = xb_core::binlog::archive::archived_files(dir).unwrap();
    let names: Vec<String> = logs.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        archived, names,
        "the archive's files against SHOW BINARY LOGS"
    );
    for (i, (name, size)) in logs.iter().enumerate() {
        let mut server = std::fs::read(src.datadir().join(name)).unwrap();
        let ours = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(ours.len() as u64, *size, "{name}: length");
        if i + 1 == logs.len() {
            server[4 + 17] &= !1;
        }
        assert!(
            ours == server,
            "{name}: the archived bytes differ from the server's"
        );
    }
}

async fn archive_through_kills_restarts_and_a_purge(flavor: Flavor) {
    let mut src = TestServer::start_with_args(flavor, BINLOG_ARGS).unwrap();
    create_ledger(&src);
    let work = scratch_dir("binlog-archive");
    let dir: PathBuf = work.path().join("archive");
    let status_file = work.path().join("status.json");

    // the archiver follows a source that writes and rotates
    let archiver = spawn_archiver(&src, &dir, &status_file);
    write_ledger(&src, 1, 60, 25).await;
    wait_caught_up(&src, &status_file).await;

    // killed outright mid-stream, then started again while the source
    // goes on writing: it resumes from its last whole event
    let mut archiver = archiver;
    archiver.start_kill().unwrap();
    archiver.wait().await.unwrap();
    write_ledger(&src, 61, 120, 25).await;
    let archiver = spawn_archiver(&src, &dir, &status_file);
    wait_caught_up(&src, &status_file).await;

    // the source restarts under it: the archiver waits and follows on
    src.restart().unwrap();
    write_ledger(&src, 121, 160, 25).await;
    wait_caught_up(&src, &status_file).await;
    assert!(
        status(&status_file)["reconnects"].as_u64().unwrap() >= 1,
        "{}",
        status(&status_file)
    );

    // SIGTERM ends it cleanly, everything on disk
    let out = stop_with_sigterm(archiver).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("binlog archive stopped at"), "{stderr}");
    assert_eq!(status(&status_file)["state"], "stopped");
    let logs = server_logs(&src).await;
    assert!(logs.len() >= 8, "rotations and the restart: {logs:?}");
    assert_archive_is_the_servers(&src, &dir, &logs);
    let ledger = src
        .sql("SELECT COUNT(*), MAX(seq) FROM pitr.ledger")
        .unwrap();
    assert_eq!(ledger.trim(), "160\t160");

    // killed right after a rotation reached it (its newest file closed,
    // the next not begun), and the closed file purged meanwhile: no gap,
    // it goes on with the successor the server still has
    let archiver = spawn_archiver(&src, &dir, &status_file);
    write_ledger(&src, 1001, 1004, 1002).await;
    wait_caught_up(&src, &status_file).await;
    let out = stop_with_sigterm(archiver).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (successor, _) = server_logs(&src).await.pop().unwrap();
    std::fs::remove_file(dir.join(&successor)).unwrap();
    let closed = xb_core::binlog::archive::resume_point(&dir)
        .unwrap()
        .unwrap();
    assert_eq!(closed.last_kind, Some(xb_core::binlog::format::ROTATE));
    src.sql(&format!("PURGE BINARY LOGS TO '{successor}'"))
        .unwrap();
    assert!(
        !server_logs(&src)
            .await
            .iter()
            .any(|(n, _)| *n == closed.file),
        "{} was not purged",
        closed.file
    );
    // (the last run's status says the same file and size: not a sign)
    std::fs::remove_file(&status_file).unwrap();
    let archiver = spawn_archiver(&src, &dir, &status_file);
    wait_caught_up(&src, &status_file).await;
    let out = stop_with_sigterm(archiver).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = std::fs::read(src.datadir().join(&successor)).unwrap();
    server[4 + 17] &= !1;
    assert!(
        std::fs::read(dir.join(&successor)).unwrap() == server,
        "{successor} archived again from its start, byte for byte"
    );

    // while no archiver runs, the source writes on, rotates and purges
    // what the archive still needs: the next start names the gap
    write_ledger(&src, 161, 170, 5).await;
    let newest = server_logs(&src).await.pop().unwrap().0;
    src.sql(&format!("PURGE BINARY LOGS TO '{newest}'"))
        .unwrap();
    // (MariaDB keeps a file until its binlog checkpoint has passed it)
    let oldest = server_logs(&src).await.remove(0).0;
    let needed = status(&status_file)["file"].as_str().unwrap().to_string();
    assert!(
        !server_logs(&src).await.iter().any(|(n, _)| *n == needed),
        "{needed} was not purged"
    );
    let before: Vec<Vec<u8>> = logs
        .iter()
        .map(|(n, _)| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let archiver = spawn_archiver(&src, &dir, &status_file);
    let out = tokio::time::timeout(Duration::from_secs(60), archiver.wait_with_output())
        .await
        .expect("a gap stops the archiver at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(40), "{stderr}");
    assert!(stderr.contains("gap in the binlog archive"), "{stderr}");
    assert!(
        stderr.contains(&needed) && stderr.contains(&oldest),
        "{stderr}"
    );
    assert_eq!(status(&status_file)["state"], "failed");
    // what was archived is untouched by the refusal
    let after: Vec<Vec<u8>> = logs
        .iter()
        .map(|(n, _)| std::fs::read(dir.join(n)).unwrap())
        .collect();
    assert!(before == after, "the refused start changed the archive");

    // the same archive pointed at another server is refused: MySQL by its
    // server_uuid; MariaDB has none, and the files the archive needs are
    // not on the new server
    let other = TestServer::start_with_args(flavor, BINLOG_ARGS).unwrap();
    let archiver = spawn_archiver(&other, &dir, &status_file);
    let out = tokio::time::timeout(Duration::from_secs(60), archiver.wait_with_output())
        .await
        .expect("another server stops the archiver at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(40), "{stderr}");
    let named = if flavor.is_mysql() {
        "but 127.0.0.1"
    } else {
        "gap in the binlog archive"
    };
    assert!(stderr.contains(named), "{stderr}");
    let after_other: Vec<Vec<u8>> = logs
        .iter()
        .map(|(n, _)| std::fs::read(dir.join(n)).unwrap())
        .collect();
    assert!(
        before == after_other,
        "the refused start changed the archive"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_1011_binlog_archive_is_the_servers_through_kills_restarts_and_a_purge() {
    archive_through_kills_restarts_and_a_purge(Flavor::MariaDb1011).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_97_binlog_archive_is_the_servers_through_kills_restarts_and_a_purge() {
    archive_through_kills_restarts_and_a_purge(Flavor::MySql97).await;
}
