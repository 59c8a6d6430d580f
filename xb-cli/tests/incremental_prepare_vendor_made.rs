//! Runbook: a full backup and two incrementals taken by the REAL
//! `mariadb-backup` of a source under write load, with DDL between them
//! (create, drop, truncate, rename), prepared by `xb-cli prepare`
//! (`--apply-log-only` base, `--apply-log-only --incremental-dir inc1`,
//! `--incremental-dir inc2`), restored on a fresh server and compared table
//! by table with the source after binlog replay. Plus the refusals: an
//! incremental out of order, onto a fully prepared base, or one that is no
//! incremental at all.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare as load_data};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::vendor::copy_dir;

/// `mariadb-backup --backup`, incremental on `base` when given. Tried a
/// second time when mariadb-backup gives up on its own log copy ("Was only
/// able to copy log …": its reader sometimes retries one block until it
/// quits, with the log far from full): this runbook is about applying its
/// incrementals, not about its log reader.
fn vendor_backup(src: &TestServer, target: &Path, base: Option<&Path>) {
    let run = || {
        let mut cmd = src.tool("mariadb-backup");
        cmd.arg(format!(
            "--defaults-file={}",
            src.run_dir().join("my.cnf").display()
        ))
        .args(["--backup", "--host=127.0.0.1", "--user=xb", "--password=xb"])
        .arg(format!("--port={}", src.port()))
        .arg(format!("--target-dir={}", target.display()));
        if let Some(base) = base {
            cmd.arg(format!("--incremental-basedir={}", base.display()));
        }
        cmd.output().unwrap()
    };
    let mut out = run();
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("Was only able to copy log")
    {
        eprintln!("mariadb-backup gave up on its log copy; trying once more");
        std::fs::remove_dir_all(target).unwrap();
        out = run();
    }
    assert!(
        out.status.success(),
        "mariadb-backup --backup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lets the source flush its dirty pages so its checkpoint moves close to
/// its LSN: the next backup then starts at a recent checkpoint, and the
/// tables of the runbook go into the incrementals as `.delta` files (not as
/// whole `.new` copies of tables created inside the copied redo). It waits
/// for a checkpoint newer than the one at the call, too: mariadb-backup's
/// `to_lsn` is the latest checkpoint, so without one two backups in a row
/// could share it and the runbook's "does not follow" step would not be
/// tested.
async fn checkpoint(src: &TestServer) {
    let mut c = src.conn().await.unwrap();
    let status = |rows: Vec<(String, u64)>, name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("SHOW GLOBAL STATUS has no {name}"))
    };
    const QUERY: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
        ('Innodb_lsn_last_checkpoint', 'Innodb_checkpoint_age')";
    let first = status(c.query(QUERY).await.unwrap(), "Innodb_lsn_last_checkpoint");
    c.query_drop(
        "SET GLOBAL innodb_max_dirty_pages_pct_lwm=0.001, innodb_max_dirty_pages_pct=0.001",
    )
    .await
    .unwrap();
    let mut settled = false;
    for _ in 0..300 {
        let rows: Vec<(String, u64)> = c.query(QUERY).await.unwrap();
        let (at, age) = (
            status(rows.clone(), "Innodb_lsn_last_checkpoint"),
            status(rows, "Innodb_checkpoint_age"),
        );
        if at > first && age < 1 << 20 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.query_drop("SET GLOBAL innodb_max_dirty_pages_pct=90, innodb_max_dirty_pages_pct_lwm=0")
        .await
        .unwrap();
    assert!(settled, "the source wrote no new checkpoint in 30 s");
}

async fn run_sql(src: &TestServer, stmts: &[&str]) {
    let mut c = src.conn().await.unwrap();
    for s in stmts {
        c.query_drop(*s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

fn backup_type(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("backup_type = "))
        .unwrap()
        .to_string()
}

fn checkpoint_value(dir: &Path, key: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap()
        .parse()
        .unwrap()
}

/// The runbook on one MariaDB flavour.
async fn full_and_two_incrementals(flavor: Flavor) {
    let src = TestServer::start_with_args(flavor, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        non_innodb: true,
        ..LoadSpec::default()
    };
    let s = spec.schema.clone();
    load_data(src.opts(), &spec).await.expect("load data");
    let t = |sql: &str| sql.replace("S.", &format!("{s}."));
    let setup = [
        t("CREATE TABLE S.gone (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB"),
        t("INSERT INTO S.gone SELECT seq, 'gone' FROM test.seq_1_to_2000"),
        t("CREATE TABLE S.trunc (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB"),
        t("INSERT INTO S.trunc SELECT seq, 'before' FROM test.seq_1_to_5000"),
        t("CREATE TABLE S.ren_from (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB"),
        t("INSERT INTO S.ren_from SELECT seq, 'ren' FROM test.seq_1_to_3000"),
        t("CREATE TABLE S.gone_my (id INT PRIMARY KEY) ENGINE=MyISAM"),
    ];
    run_sql(&src, &setup.iter().map(String::as_str).collect::<Vec<_>>()).await;
    checkpoint(&src).await;
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;

    let full = src.scratch("full");
    let inc1 = src.scratch("inc1");
    let inc2 = src.scratch("inc2");
    tokio::task::block_in_place(|| vendor_backup(&src, &full, None));
    load.wait_for_commits(100).await;
    let between1 = [
        t("CREATE TABLE S.born (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB"),
        t("INSERT INTO S.born SELECT seq, 'born' FROM test.seq_1_to_4000"),
        t("DROP TABLE S.gone, S.gone_my"),
        t("TRUNCATE TABLE S.trunc"),
        t("INSERT INTO S.trunc SELECT seq, 'after' FROM test.seq_1_to_300"),
        t("RENAME TABLE S.ren_from TO S.ren_to"),
        t("UPDATE S.ren_to SET v = 'renamed' WHERE id % 7 = 0"),
    ];
    run_sql(
        &src,
        &between1.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    checkpoint(&src).await;
    load.wait_for_commits(100).await;
    tokio::task::block_in_place(|| vendor_backup(&src, &inc1, Some(&full)));
    load.wait_for_commits(100).await;
    let between2 = [
        t("TRUNCATE TABLE S.born"),
        t("INSERT INTO S.born VALUES (1, 'again')"),
        t("CREATE TABLE S.late (id INT PRIMARY KEY) ENGINE=InnoDB"),
        t("INSERT INTO S.late SELECT seq FROM test.seq_1_to_100"),
        t("INSERT INTO S.trunc SELECT seq + 1000, 'more' FROM test.seq_1_to_300"),
    ];
    run_sql(
        &src,
        &between2.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    load.wait_for_commits(100).await;
    tokio::task::block_in_place(|| vendor_backup(&src, &inc2, Some(&inc1)));
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    assert_eq!(backup_type(&inc1), "incremental");
    assert!(
        inc1.join(format!("{s}/ren_to.ibd.delta")).is_file(),
        "the runbook means to exercise deltas, including a renamed table's"
    );

    // Refused: an incremental onto a base whose rollback has run.
    let rolled = src.scratch("rolled-back");
    copy_dir(&full, &rolled).unwrap();
    assert_success(&xb_prepare_args(&src, &rolled, &[], None));
    assert_eq!(backup_type(&rolled), "full-prepared");
    let out = xb_prepare_args(&src, &rolled, &["--apply-log-only"], Some(&inc1));
    assert_failure_mentions(&out, &["backup_type = full-prepared", "--apply-log-only"]);
    assert_eq!(out.status.code(), Some(37));

    // The base, redo applied only: no page beyond the copied log.
    let out = xb_prepare_args(&src, &full, &["--apply-log-only"], None);
    assert_success(&out);
    assert_eq!(backup_type(&full), "log-applied");
    let above = pages_above(&full, checkpoint_value(&full, "last_lsn"));
    assert!(above.is_empty(), "pages written past the log: {above:?}");

    // Refused, base unchanged: out of order, and a base given as increment.
    let before = std::fs::read_to_string(full.join("xtrabackup_checkpoints")).unwrap();
    let out = xb_prepare_args(&src, &full, &["--apply-log-only"], Some(&inc2));
    let (to, from) = (
        checkpoint_value(&full, "to_lsn").to_string(),
        checkpoint_value(&inc2, "from_lsn").to_string(),
    );
    assert_failure_mentions(&out, &[&to, &from, "does not follow"]);
    assert_eq!(out.status.code(), Some(37));
    let out = xb_prepare_args(&src, &full, &["--apply-log-only"], Some(&rolled));
    assert_failure_mentions(&out, &["expected incremental"]);
    assert_eq!(out.status.code(), Some(37));
    assert_eq!(
        std::fs::read_to_string(full.join("xtrabackup_checkpoints")).unwrap(),
        before
    );

    // inc1, redo applied only, then inc2 with the rollback.
    let out = xb_prepare_args(&src, &full, &["--apply-log-only"], Some(&inc1));
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("merged the incremental"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(backup_type(&full), "log-applied");
    assert_eq!(
        checkpoint_value(&full, "to_lsn"),
        checkpoint_value(&inc1, "to_lsn")
    );
    let above = pages_above(&full, checkpoint_value(&full, "last_lsn"));
    assert!(above.is_empty(), "pages written past the log: {above:?}");
    assert!(!full.join(format!("{s}/gone.ibd")).exists(), "dropped");
    assert!(!full.join(format!("{s}/gone.frm")).exists(), "dropped");
    assert!(!full.join(format!("{s}/ren_from.ibd")).exists(), "renamed");
    let out = xb_prepare_args(&src, &full, &[], Some(&inc2));
    assert_success(&out);
    assert_eq!(backup_type(&full), "full-prepared");
    assert_eq!(
        checkpoint_value(&full, "last_lsn"),
        checkpoint_value(&inc2, "last_lsn")
    );

    // Restored: every table equals the source after binlog replay from
    // inc2's coordinates.
    start_and_compare(&src, &full, &[&s], "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb1011_full_and_two_incrementals_restore_to_equal_tables() {
    full_and_two_incrementals(Flavor::MariaDb1011).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb105_full_and_two_incrementals_restore_to_equal_tables() {
    full_and_two_incrementals(Flavor::MariaDb105).await;
}
