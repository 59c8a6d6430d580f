//! Runbook: point-in-time recovery. A source writes a ledger (each row
//! its own transaction, numbered in commit order) while `xb-cli
//! binlog-archive` follows it; a full backup and an incremental are taken
//! along the way; the archiver is killed and started again and the source
//! restarts once. Then `xb-cli restore` makes a new datadir at three
//! points (a binlog position, a GTID, a time between two transactions) and
//! each is started and compared with what the source held at that point:
//! exactly the ledger rows up to it. A point past the archive is refused.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::archive::{
    create_ledger, server_logs, spawn_archiver, spawn_archiver_with, status, stop_with_sigterm,
    wait_caught_up, write_ledger,
};
use common::{BINLOG_ARGS, assert_success, run_xb_backup, scratch_dir};
use mysql_async::prelude::Queryable;
use xb_testing::objstore::{StoreKind, StoreServer};
use xb_testing::server::{Flavor, TestServer};

/// `xb-cli restore` from `backups` and `archive` into `target`, with the
/// source's server binary (its binlog reader and client found beside it).
fn xb_restore(
    src: &TestServer,
    backups: &Path,
    archive: &Path,
    target: &Path,
    point: &[&str],
) -> Output {
    xb_restore_from(
        src,
        backups,
        &archive.display().to_string(),
        target,
        point,
        &[],
    )
}

/// [`xb_restore`] from an archive named by path or URL, with `env`.
fn xb_restore_from(
    src: &TestServer,
    backups: &Path,
    archive: &str,
    target: &Path,
    point: &[&str],
    env: &[(&str, String)],
) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("restore")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg(format!("--backups={}", backups.display()))
        .arg(format!("--binlog-archive={archive}"))
        .arg(format!("--target-dir={}", target.display()))
        .arg("--server-binary")
        .arg(xb_testing::vendor::server_binary(src))
        .arg("--server-defaults-file")
        .arg(src.run_dir().join("my.cnf"))
        .args(point)
        .output()
        .unwrap()
}

/// The source's ledger rows up to `seq`, as text.
async fn ledger(server: &TestServer, upto: u32) -> Vec<(u32, String, String)> {
    let mut conn = server.conn().await.unwrap();
    let rows: Vec<(u32, String, String)> = conn
        .query(format!(
            "SELECT seq, CAST(at AS CHAR), note FROM pitr.ledger WHERE seq <= {upto} ORDER BY seq"
        ))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    rows
}

/// Starts a server on the restored datadir and checks it holds exactly the
/// source's ledger up to `upto`, and the account made at row 25 when the
/// point is past it.
async fn assert_restored_at(src: &TestServer, target: &Path, upto: u32, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_success(out);
    assert!(stderr.contains("restore completed OK"), "{stderr}");
    let restored = TestServer::start_on(src.flavor(), target).unwrap();
    let want = ledger(src, upto).await;
    let all = ledger(&restored, u32::MAX).await;
    assert_eq!(all.len(), upto as usize, "rows in the restore\n{stderr}");
    assert_eq!(
        all, want,
        "the restore's ledger against the source's up to {upto}"
    );
    let users = restored
        .sql("SELECT COUNT(*) FROM mysql.user WHERE user = 'pitr_auditor'")
        .unwrap();
    assert_eq!(users.trim(), if upto >= 25 { "1" } else { "0" }, "{stderr}");
}

/// The GTID of the last transaction the source committed.
async fn last_gtid(src: &TestServer) -> String {
    let mut conn = src.conn().await.unwrap();
    let g = if src.flavor().is_mysql() {
        let uuid: String = conn
            .query_first("SELECT @@server_uuid")
            .await
            .unwrap()
            .unwrap();
        let executed: String = conn
            .query_first("SELECT @@gtid_executed")
            .await
            .unwrap()
            .unwrap();
        // "uuid:1-57": the last number of our own uuid's range
        let ours = executed
            .split(',')
            .map(str::trim)
            .find(|s| s.starts_with(&uuid))
            .unwrap()
            .to_string();
        let last = ours.rsplit(['-', ':']).next().unwrap();
        format!("{uuid}:{last}")
    } else {
        conn.query_first("SELECT @@gtid_binlog_pos")
            .await
            .unwrap()
            .unwrap()
    };
    conn.disconnect().await.unwrap();
    g
}

async fn restores_to_a_position_a_gtid_and_a_time(flavor: Flavor) {
    let args = if flavor.is_mysql() {
        format!("{BINLOG_ARGS} --gtid-mode=ON --enforce-gtid-consistency=ON")
    } else {
        BINLOG_ARGS.to_string()
    };
    let mut src = TestServer::start_with_args(flavor, &args).unwrap();
    create_ledger(&src);
    let work = scratch_dir("pitr");
    let archive: PathBuf = work.path().join("archive");
    let backups = work.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let status_file = work.path().join("archiver.json");
    let archiver = spawn_archiver(&src, &archive, &status_file);

    // A, then the full backup
    write_ledger(&src, 1, 20, 1000).await;
    let full = backups.join("full");
    assert_success(&run_xb_backup(&src, &[&format!("--target-dir={}", full.display())]).await);

    // B, with a rotation and an account; a position after row 35
    write_ledger(&src, 21, 24, 1000).await;
    src.sql("CREATE USER pitr_auditor@localhost IDENTIFIED BY 'x'")
        .unwrap();
    write_ledger(&src, 25, 35, 30).await;
    let (p_file, p_pos) = server_logs(&src).await.pop().unwrap();
    write_ledger(&src, 36, 40, 1000).await;

    // the archiver dies and comes back; an incremental; the source restarts
    let mut archiver = archiver;
    archiver.start_kill().unwrap();
    archiver.wait().await.unwrap();
    let inc = backups.join("inc1");
    assert_success(
        &run_xb_backup(
            &src,
            &[
                &format!("--target-dir={}", inc.display()),
                &format!("--incremental-basedir={}", full.display()),
            ],
        )
        .await,
    );
    let archiver = spawn_archiver(&src, &archive, &status_file);
    wait_caught_up(&src, &status_file).await;
    src.restart().unwrap();

    // C: a GTID after row 45, a time between rows 50 and 51
    write_ledger(&src, 41, 45, 1000).await;
    let gtid = last_gtid(&src).await;
    write_ledger(&src, 46, 50, 1000).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = {
        let mut conn = src.conn().await.unwrap();
        let t: String = conn
            .query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')")
            .await
            .unwrap()
            .unwrap();
        conn.disconnect().await.unwrap();
        t
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write_ledger(&src, 51, 60, 1000).await;
    wait_caught_up(&src, &status_file).await;
    let out = stop_with_sigterm(archiver).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // a position inside B: the full backup alone, rolled forward
    let to_pos = work.path().join("at-position");
    let out = xb_restore(
        &src,
        &backups,
        &archive,
        &to_pos,
        &[&format!("--until-position={p_file}:{p_pos}")],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("backup: {}\n", full.display()))
            || String::from_utf8_lossy(&out.stderr)
                .contains(&format!("backup: {}", full.display()))
    );
    assert_restored_at(&src, &to_pos, 35, &out).await;

    // a GTID in C: the full and the incremental, rolled forward
    let to_gtid = work.path().join("at-gtid");
    let out = xb_restore(
        &src,
        &backups,
        &archive,
        &to_gtid,
        &[&format!("--until-gtid={gtid}")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&format!("backup: {} + {}", full.display(), inc.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("GTID {gtid}")), "{stderr}");
    assert_restored_at(&src, &to_gtid, 45, &out).await;

    // a time between rows 50 and 51
    let to_time = work.path().join("at-time");
    let out = xb_restore(
        &src,
        &backups,
        &archive,
        &to_time,
        &[&format!("--until={t}")],
    );
    assert_restored_at(&src, &to_time, 50, &out).await;

    // a point the archive cannot vouch for is refused, naming where it ends
    let beyond = work.path().join("beyond");
    let out = xb_restore(
        &src,
        &backups,
        &archive,
        &beyond,
        &["--until=2099-01-01 00:00:00"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(51), "{stderr}");
    assert!(stderr.contains("does not reach"), "{stderr}");
    assert!(
        !beyond.exists(),
        "a refused restore wrote {}",
        beyond.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_1011_restores_to_a_position_a_gtid_and_a_time() {
    restores_to_a_position_a_gtid_and_a_time(Flavor::MariaDb1011).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_97_restores_to_a_position_a_gtid_and_a_time() {
    restores_to_a_position_a_gtid_and_a_time(Flavor::MySql97).await;
}

/// Waits until the archiver's status says the store holds `file` up to
/// `size` (its upload caught up with the server).
async fn wait_uploaded(status_file: &Path, file: &str, size: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(status_file);
        if s["upload"]["file"] == file && s["upload"]["pos"] == size {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upload did not reach {file}:{size} within 60 s; status: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runbook: the archive kept in object storage. The archiver uploads as it
/// goes (closed files whole, the open one in segments), is killed and
/// started again, and stops; then the machine that held its directory is
/// gone, and a restore from the bucket alone reaches a point with exactly
/// the source's rows. A bucket that is not there is refused at the start.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_1011_restores_from_an_archive_kept_in_object_storage() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    let s3 = StoreServer::start(StoreKind::S3).unwrap();
    s3.make_bucket("archive").unwrap();
    let env = s3.env();
    create_ledger(&src);
    let work = scratch_dir("pitr-s3");
    let archive = work.path().join("archive");
    let backups = work.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let status_file = work.path().join("archiver.json");
    let url = "s3://archive/db1";
    let upload = ["--upload-to", url, "--upload-interval", "1"];

    // a store that is not there: refused before anything is archived
    let refused = spawn_archiver_with(
        &src,
        &work.path().join("nowhere"),
        &work.path().join("nowhere.json"),
        &["--upload-to", "s3://no-such-bucket/db1"],
        &env,
    )
    .wait_with_output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(43), "{stderr}");
    assert!(stderr.contains("no-such-bucket"), "{stderr}");

    let archiver = spawn_archiver_with(&src, &archive, &status_file, &upload, &env);
    write_ledger(&src, 1, 20, 1000).await;
    let full = backups.join("full");
    assert_success(&run_xb_backup(&src, &[&format!("--target-dir={}", full.display())]).await);
    // closed files and an open one, uploaded while the archiver runs
    write_ledger(&src, 21, 24, 1000).await;
    src.sql("CREATE USER pitr_auditor@localhost IDENTIFIED BY 'x'")
        .unwrap();
    write_ledger(&src, 25, 40, 15).await;
    wait_caught_up(&src, &status_file).await;
    let (file, size) = server_logs(&src).await.pop().unwrap();
    wait_uploaded(&status_file, &file, size).await;
    let stored = s3.bucket_dir("archive").join("db1");
    let logs = server_logs(&src).await;
    for (name, len) in &logs[..logs.len() - 1] {
        let whole = std::fs::read(stored.join(name)).unwrap();
        assert_eq!(whole.len() as u64, *len, "{name} stored whole");
        assert!(
            whole == std::fs::read(archive.join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(
        stored.join(format!("{file}.xbseg")).is_dir(),
        "the open file {file} goes up in segments"
    );

    // killed, more rows, started again: the uploads go on from the store
    let mut archiver = archiver;
    archiver.start_kill().unwrap();
    archiver.wait().await.unwrap();
    write_ledger(&src, 41, 50, 1000).await;
    let archiver = spawn_archiver_with(&src, &archive, &status_file, &upload, &env);
    write_ledger(&src, 51, 62, 7).await;
    wait_caught_up(&src, &status_file).await;
    let (file, size) = server_logs(&src).await.pop().unwrap();
    wait_uploaded(&status_file, &file, size).await;
    // the point lies in a later segment of the open file
    write_ledger(&src, 63, 66, 1000).await;
    let (p_file, p_pos) = server_logs(&src).await.pop().unwrap();
    wait_caught_up(&src, &status_file).await;
    wait_uploaded(&status_file, &p_file, p_pos).await;
    let segments = std::fs::read_dir(stored.join(format!("{p_file}.xbseg")))
        .unwrap()
        .count();
    assert!(segments >= 2, "{p_file} in {segments} segment(s)");
    write_ledger(&src, 67, 70, 1000).await;
    wait_caught_up(&src, &status_file).await;
    let out = stop_with_sigterm(archiver).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // the archive directory is lost; the bucket is all there is
    std::fs::remove_dir_all(&archive).unwrap();
    let target = work.path().join("restored");
    let out = xb_restore_from(
        &src,
        &backups,
        url,
        &target,
        &[&format!("--until-position={p_file}:{p_pos}")],
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&format!("binlog file(s) from {url}")),
        "{stderr}"
    );
    assert_restored_at(&src, &target, 66, &out).await;
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".xb-binlogs-"))
        .collect();
    assert!(left.is_empty(), "the downloaded archive is removed");
}
