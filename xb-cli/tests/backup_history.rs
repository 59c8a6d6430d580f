//! Runbook: a DBA keeps the backup history on the server, as with the
//! vendor tools. The Sunday full runs with `--history=nightly`, the weekday
//! incrementals with `--incremental-history-name=nightly --history=nightly`:
//! each finds its base in the table, and each leaves its row there, in the
//! vendor's table and shape, so mariadb-backup's own
//! `--incremental-history-name` chains on xb's backups. A series with no
//! backup yet, and an account that may not write the table, are refused
//! before anything is copied.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use xb_core::checkpoints::Checkpoints;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

fn checkpoints(dir: &std::path::Path) -> Checkpoints {
    Checkpoints::parse(&std::fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap())
        .unwrap()
}

fn info_value(dir: &std::path::Path, key: &str) -> String {
    let text = std::fs::read_to_string(dir.join("xtrabackup_info")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in xtrabackup_info:\n{text}"))
        .to_string()
}

type Row = (
    String,
    Option<String>,
    String,
    u64,
    u64,
    String,
    String,
    Option<String>,
);

async fn rows(src: &TestServer, table: &str) -> Vec<Row> {
    let mut conn = src.conn().await.unwrap();
    let r = conn
        .query(format!(
            "SELECT uuid, name, tool_name, innodb_from_lsn, innodb_to_lsn, incremental, format, \
             CAST(start_time AS CHAR) FROM {table} ORDER BY innodb_to_lsn"
        ))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    r
}

/// Waits until the server's checkpoint passes `lsn`, so the next backup's
/// `to_lsn` (the checkpoint at its end) is a new one and the series'
/// newest backup is told apart from the older ones.
async fn checkpoint_past(src: &TestServer, lsn: u64) {
    let mut conn = src.conn().await.unwrap();
    for _ in 0..300 {
        let now: Option<(String, u64)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_last_checkpoint'")
            .await
            .unwrap();
        if now.unwrap().1 > lsn {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the checkpoint never passed {lsn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nightly_series_chains_through_the_servers_history() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.unwrap();
    // pages flushed as soon as written: the checkpoint moves between backups
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;

    // a series with no backup yet: refused before anything is copied
    let early = src.scratch("too-early");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &early.to_string_lossy(),
            "--incremental-history-name=nightly",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(25), "{out:?}");
    assert_failure_mentions(&out, &["mysql.mariadb_backup_history", "--history=NAME"]);
    assert!(!early.exists());

    // Sunday: the full
    let full = src.scratch("sunday");
    let out = run_xb_backup(
        &src,
        &["--target-dir", &full.to_string_lossy(), "--history=nightly"],
    )
    .await;
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("recorded in the backup history table mysql.mariadb_backup_history"),
        "{out:?}"
    );
    load.wait_for_commits(100).await;
    checkpoint_past(&src, checkpoints(&full).to_lsn).await;

    // Monday: the incremental on the newest backup of the series
    let monday = src.scratch("monday");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &monday.to_string_lossy(),
            "--incremental-history-name=nightly",
            "--history=nightly",
        ],
    )
    .await;
    assert_success(&out);
    load.wait_for_commits(100).await;
    let (f, m) = (checkpoints(&full), checkpoints(&monday));
    assert_eq!(m.from_lsn, f.to_lsn, "Monday starts where Sunday ended");
    checkpoint_past(&src, m.to_lsn).await;

    // Tuesday: the newest of the series is Monday's now
    let tuesday = src.scratch("tuesday");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &tuesday.to_string_lossy(),
            "--incremental-history-name=nightly",
            "--history=nightly",
        ],
    )
    .await;
    assert_success(&out);
    load.wait_for_commits(50).await;
    load.stop().await.unwrap();
    let t = checkpoints(&tuesday);
    assert_eq!(t.from_lsn, m.to_lsn, "Tuesday starts where Monday ended");
    assert!(
        f.to_lsn < m.to_lsn && m.to_lsn < t.to_lsn,
        "{f:?} {m:?} {t:?}"
    );
    checkpoint_past(&src, t.to_lsn).await;

    let table = rows(&src, "mysql.mariadb_backup_history").await;
    assert_eq!(table.len(), 3, "{table:?}");
    let (sunday, mon) = (&table[0], &table[1]);
    assert_eq!(sunday.0, info_value(&full, "uuid"));
    assert_eq!(info_value(&full, "name"), "nightly");
    assert_eq!(
        (sunday.1.as_deref(), sunday.2.as_str(), sunday.3, sunday.4),
        (Some("nightly"), "xb-cli", 0, f.to_lsn)
    );
    assert_eq!((sunday.5.as_str(), sunday.6.as_str()), ("N", "file"));
    assert!(sunday.7.is_some(), "start_time recorded: {sunday:?}");
    assert_eq!(mon.0, info_value(&monday, "uuid"));
    assert_eq!((mon.3, mon.4, mon.5.as_str()), (f.to_lsn, m.to_lsn, "Y"));

    // Wednesday: the vendor's tool reads xb's rows for its own incremental
    let wednesday = src.scratch("wednesday");
    let cnf = src.run_dir().join("my.cnf");
    let out = src
        .tool("mariadb-backup")
        .arg(format!("--defaults-file={}", cnf.display()))
        .args(["--backup", "--host=127.0.0.1", "--user=xb", "--password=xb"])
        .arg(format!("--port={}", src.port()))
        .arg(format!("--target-dir={}", wednesday.display()))
        .arg("--incremental-history-name=nightly")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        checkpoints(&wednesday).from_lsn,
        t.to_lsn,
        "mariadb-backup chained on xb's Tuesday row"
    );

    // an account that may not write the table: refused before the copy
    let mut conn = src.conn().await.unwrap();
    conn.query_drop(
        "CREATE USER 'nohist'@'%' IDENTIFIED BY 'nohist'; \
         GRANT RELOAD, PROCESS, SELECT ON *.* TO 'nohist'@'%'",
    )
    .await
    .unwrap();
    conn.disconnect().await.unwrap();
    let refused = src.scratch("refused");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["backup", "--host", "127.0.0.1", "--port"])
        .arg(src.port().to_string())
        .args(["--user", "nohist", "--password=nohist", "--history=nightly"])
        .arg("--target-dir")
        .arg(&refused);
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(29), "{out:?}");
    assert_failure_mentions(
        &out,
        &[
            "mysql.mariadb_backup_history",
            "GRANT CREATE, INSERT, SELECT ON mysql.mariadb_backup_history",
        ],
    );
    assert!(!refused.exists(), "nothing copied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_keeps_the_history_in_percona_schema() {
    let src = TestServer::start(Flavor::MySql97).unwrap();
    let target = src.scratch("backup");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &target.to_string_lossy(),
            "--history",
            "--json",
        ],
    )
    .await;
    assert_success(&out);
    let table = rows(&src, "PERCONA_SCHEMA.xtrabackup_history").await;
    assert_eq!(table.len(), 1, "{table:?}");
    let row = &table[0];
    assert_eq!(row.0, info_value(&target, "uuid"));
    assert_eq!(row.1, None, "an unnamed --history");
    assert_eq!(row.4, checkpoints(&target).to_lsn);
    let mut conn = src.conn().await.unwrap();
    let enc: Option<String> = conn
        .query_first("SELECT encrypted FROM PERCONA_SCHEMA.xtrabackup_history")
        .await
        .unwrap();
    assert_eq!(enc.as_deref(), Some("N"));
    conn.disconnect().await.unwrap();
}
