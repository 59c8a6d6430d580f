//! Runbook: build replicas from backups.
//!
//! 1. A new replica of a primary (MySQL 9.7 by GTID auto-position,
//!    MariaDB 10.11 and 11.8 by `gtid_slave_pos`, MariaDB 10.5 by binlog
//!    file and position): back the primary up under a write load, prepare,
//!    copy-back into a fresh datadir, start a server on it with its own
//!    server-id, point it at the primary with the coordinates the backup
//!    recorded in `xtrabackup_binlog_info`, let it catch up once the
//!    load has stopped, and compare every table with the primary.
//! 2. A second replica from a replica's backup (MariaDB 10.11, MySQL 9.7): back up
//!    replica R1 with `--slave-info --safe-slave-backup` while the primary
//!    takes writes, build R2 from that backup with the statements in its
//!    `xtrabackup_slave_info`, so R2 replicates from the primary itself.
//!    Before that, a temporary table the primary's session keeps open (and
//!    R1 with it) makes `--safe-slave-backup` give up after its timeout
//!    (exit 26) with R1's SQL thread running again.
//! 3. `--slave-info` on a server that is not a replica: a warning and no
//!    `xtrabackup_slave_info`, and the backup succeeds.
//!
//! Every replica must show a row the primary wrote after the backup, so a
//! comparison can only pass once replication really ran.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::verify::table_checksums;

/// The MySQL primary: GTIDs on, so replicas find their place by GTID.
const MYSQL_PRIMARY: &str =
    "--gtid-mode=ON --enforce-gtid-consistency=ON --log-bin=binlog --server-id=1";

/// How long a replica may take to catch up with the primary.
const CATCH_UP_SECS: u32 = 90;

/// A small load: two InnoDB tables in schema `s`, two writers.
fn small_load() -> LoadSpec {
    LoadSpec {
        schema: "s".into(),
        innodb_tables: 2,
        rows_per_table: 500,
        writers: 2,
        ..LoadSpec::default()
    }
}

/// The account replicas connect with, created on the primary.
fn create_replication_user(primary: &TestServer) {
    primary
        .sql(
            "CREATE USER repl@'%' IDENTIFIED BY 'repl'; \
             GRANT REPLICATION SLAVE ON *.* TO repl@'%';",
        )
        .unwrap();
}

/// The GTID of the backup's consistent point: the third field of
/// `xtrabackup_binlog_info`.
fn backup_gtid(backup: &Path) -> String {
    let info = std::fs::read_to_string(backup.join("xtrabackup_binlog_info")).unwrap();
    let gtid = info
        .trim_end()
        .splitn(3, '\t')
        .nth(2)
        .unwrap_or_else(|| panic!("no GTID in xtrabackup_binlog_info: {info:?}"))
        .replace('\n', "");
    assert!(!gtid.is_empty(), "empty GTID in {info:?}");
    gtid
}

/// `xb-cli prepare` (with `tools`' server binary), `xb-cli copy-back` into
/// `dir/data`, and a server started there with `server_args`.
fn restore_new_server(
    tools: &TestServer,
    backup: &Path,
    dir: &Path,
    server_args: &str,
) -> TestServer {
    xb_prepare(tools, backup);
    let datadir = dir.join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["copy-back", "--target-dir"])
        .arg(backup)
        .arg("--datadir")
        .arg(&datadir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out);
    // MySQL: the copy carries the primary's server_uuid; a replica needs
    // its own, which the server makes when the file is missing
    let _ = std::fs::remove_file(datadir.join("auto.cnf"));
    TestServer::start_on_with_args(tools.flavor(), &datadir, server_args)
        .expect("a server starts on the restored datadir")
}

/// `CHANGE … TO` the primary's address and the replication account.
fn source_is(primary: &TestServer) -> String {
    if primary.flavor().is_mysql() {
        format!(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={}, \
             SOURCE_USER='repl', SOURCE_PASSWORD='repl', GET_SOURCE_PUBLIC_KEY=1;",
            primary.port()
        )
    } else {
        format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
             MASTER_USER='repl', MASTER_PASSWORD='repl';",
            primary.port()
        )
    }
}

/// Points a restored server at the primary from the GTID the backup
/// recorded, and starts replication.
fn point_at_primary_by_gtid(replica: &TestServer, primary: &TestServer, gtid: &str) {
    let sql = if primary.flavor().is_mysql() {
        // the restored server's own GTID history is replaced by the backup's
        format!(
            "RESET BINARY LOGS AND GTIDS; SET GLOBAL gtid_purged='{gtid}'; {} \
             CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1; START REPLICA;",
            source_is(primary)
        )
    } else {
        format!(
            "SET GLOBAL gtid_slave_pos = '{gtid}'; {} \
             CHANGE MASTER TO MASTER_USE_GTID = slave_pos; START SLAVE;",
            source_is(primary)
        )
    };
    replica.sql(&sql).unwrap();
}

/// Waits (bounded) until `replica` has applied everything `primary` has
/// committed; fails with the replica's status otherwise.
async fn wait_caught_up(replica: &TestServer, primary: &TestServer) {
    let mut p = primary.conn().await.unwrap();
    let mut r = replica.conn().await.unwrap();
    let (gtid_sql, wait_sql) = if primary.flavor().is_mysql() {
        (
            "SELECT @@GLOBAL.gtid_executed",
            "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
        )
    } else {
        (
            "SELECT @@GLOBAL.gtid_binlog_pos",
            "SELECT MASTER_GTID_WAIT(?, ?)",
        )
    };
    let gtid: String = p.query_first(gtid_sql).await.unwrap().unwrap();
    for _ in 0..CATCH_UP_SECS {
        let waited: Option<i64> = r.exec_first(wait_sql, (gtid.clone(), 1)).await.unwrap();
        if waited == Some(0) {
            return;
        }
        // a replica whose applier stopped on an error will never get there
        let errno = replica_status(replica, "Last_SQL_Errno").await;
        if errno.as_deref().is_some_and(|e| e != "0") {
            break;
        }
    }
    let mut status = String::new();
    for col in [
        "Last_SQL_Error",
        "Last_IO_Error",
        "Executed_Gtid_Set",
        "Gtid_Slave_Pos",
    ] {
        if let Some(v) = replica_status(replica, col).await {
            status.push_str(&format!("{col}: {v}\n"));
        }
    }
    if primary.flavor().is_mysql() {
        let rows: Vec<(String, String)> = r
            .query(
                "SELECT CAST(WORKER_ID AS CHAR), LAST_ERROR_MESSAGE FROM \
                 performance_schema.replication_applier_status_by_worker WHERE LAST_ERROR_NUMBER <> 0",
            )
            .await
            .unwrap_or_default();
        for (w, msg) in rows {
            status.push_str(&format!("worker {w}: {msg}\n"));
        }
    }
    panic!("the replica did not reach the primary's {gtid} within {CATCH_UP_SECS} s:\n{status}");
}

/// A column of the first row of `SHOW REPLICA STATUS` (MariaDB keeps its
/// `Slave_…` and `Master_…` column names there).
async fn replica_status(server: &TestServer, column: &str) -> Option<String> {
    let mut c = server.conn().await.unwrap();
    let row: Option<mysql_async::Row> = c.query_first("SHOW REPLICA STATUS").await.unwrap();
    let row = row?;
    let i = row
        .columns_ref()
        .iter()
        .position(|col| col.name_str() == column)?;
    row.get_opt::<String, _>(i).and_then(Result::ok)
}

/// A table the primary gets after the backup: the replica has it only if
/// replication really ran.
fn write_after_backup(primary: &TestServer) {
    primary
        .sql(
            "CREATE TABLE s.after_backup (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB; \
             INSERT INTO s.after_backup VALUES (1, 'written after the backup');",
        )
        .unwrap();
}

/// Every table of `s` on the replica is the primary's, including the one
/// written after the backup.
async fn assert_same_tables(replica: &TestServer, primary: &TestServer) {
    let mut p = primary.conn().await.unwrap();
    let mut r = replica.conn().await.unwrap();
    let note: Option<String> = r
        .query_first("SELECT note FROM s.after_backup WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(note.as_deref(), Some("written after the backup"));
    let want = table_checksums(&mut p, &["s"]).await.unwrap();
    let got = table_checksums(&mut r, &["s"]).await.unwrap();
    assert!(want.len() >= 3, "{want:?}");
    assert_eq!(got, want, "the replica's tables differ from the primary's");
}

/// How a restored replica finds its place in the primary's binlog.
#[derive(Clone, Copy)]
enum Coordinates {
    /// The GTID set of `xtrabackup_binlog_info`.
    Gtid,
    /// Its binlog file and position (MariaDB `CHANGE MASTER TO
    /// MASTER_LOG_FILE, MASTER_LOG_POS`).
    FilePosition,
}

/// The binlog file and position of the backup's consistent point: the
/// first two fields of `xtrabackup_binlog_info`.
fn backup_file_position(backup: &Path) -> (String, u64) {
    let info = std::fs::read_to_string(backup.join("xtrabackup_binlog_info")).unwrap();
    let mut it = info.split('\t');
    let file = it.next().unwrap().trim().to_string();
    let pos = it.next().unwrap().trim().parse().unwrap();
    (file, pos)
}

/// Points a restored MariaDB server at the primary from the binlog file
/// and position the backup recorded, and starts replication.
fn point_at_primary_by_position(replica: &TestServer, primary: &TestServer, backup: &Path) {
    let (file, pos) = backup_file_position(backup);
    let sql = format!(
        "{} CHANGE MASTER TO MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, \
         MASTER_USE_GTID=no; START SLAVE;",
        source_is(primary)
    );
    replica.sql(&sql).unwrap();
}

/// Runbook 1 for one flavour.
async fn replica_from_primary_backup(flavor: Flavor, primary_args: &str, replica_args: &str) {
    replica_from_primary_backup_by(flavor, primary_args, replica_args, Coordinates::Gtid).await;
}

/// Runbook 1 for one flavour, the replica placed by `how`.
async fn replica_from_primary_backup_by(
    flavor: Flavor,
    primary_args: &str,
    replica_args: &str,
    how: Coordinates,
) {
    let primary = TestServer::start_with_args(flavor, primary_args).unwrap();
    create_replication_user(&primary);
    let backup = backup_under_load(&primary, &small_load(), &[]).await;
    write_after_backup(&primary);
    let dir = scratch_dir("xb-replica-");
    let replica = restore_new_server(&primary, &backup, dir.path(), replica_args);
    match how {
        Coordinates::Gtid => point_at_primary_by_gtid(&replica, &primary, &backup_gtid(&backup)),
        Coordinates::FilePosition => point_at_primary_by_position(&replica, &primary, &backup),
    }
    wait_caught_up(&replica, &primary).await;
    assert_same_tables(&replica, &primary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql97_replica_from_a_primary_backup_by_gtid() {
    replica_from_primary_backup(
        Flavor::MySql97,
        MYSQL_PRIMARY,
        "--gtid-mode=ON --enforce-gtid-consistency=ON --log-bin=binlog --server-id=2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb1011_replica_from_a_primary_backup_by_gtid_slave_pos() {
    replica_from_primary_backup(
        Flavor::MariaDb1011,
        BINLOG_ARGS,
        "--log-bin=binlog --server-id=2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_replica_from_a_primary_backup_by_gtid_slave_pos() {
    replica_from_primary_backup(
        Flavor::MariaDb118,
        BINLOG_ARGS,
        "--log-bin=binlog --server-id=2",
    )
    .await;
}

/// MariaDB 10.5, and by binlog file and position instead of GTID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb105_replica_from_a_primary_backup_by_file_and_position() {
    replica_from_primary_backup_by(
        Flavor::MariaDb105,
        BINLOG_ARGS,
        "--log-bin=binlog --server-id=2",
        Coordinates::FilePosition,
    )
    .await;
}

/// Runbook 2: R1 is a replica of the primary (built as in runbook 1); a
/// backup of R1 taken with `--slave-info --safe-slave-backup` while the
/// primary writes builds R2, which replicates from the primary using the
/// statements of `xtrabackup_slave_info`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb1011_second_replica_from_a_replica_backup_with_slave_info() {
    let primary = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    create_replication_user(&primary);
    let spec = small_load();
    let p_backup = backup_under_load(&primary, &spec, &[]).await;
    let r1_dir = scratch_dir("xb-r1-");
    let r1 = restore_new_server(
        &primary,
        &p_backup,
        r1_dir.path(),
        "--log-bin=binlog --log-slave-updates --server-id=2",
    );
    point_at_primary_by_gtid(&r1, &primary, &backup_gtid(&p_backup));
    wait_caught_up(&r1, &primary).await;

    // a session on the primary keeps a temporary table open; replicated
    // as a statement, R1 holds it too, and --safe-slave-backup gives up
    let mut holder = primary.conn().await.unwrap();
    holder
        .query_drop("SET SESSION binlog_format = 'STATEMENT'")
        .await
        .unwrap();
    holder
        .query_drop("CREATE TEMPORARY TABLE s.held_open (a INT)")
        .await
        .unwrap();
    let mut r1c = r1.conn().await.unwrap();
    for _ in 0..300 {
        let open: Option<(String, u64)> = r1c
            .query_first("SHOW GLOBAL STATUS LIKE 'Slave_open_temp_tables'")
            .await
            .unwrap();
        if open.is_some_and(|(_, n)| n > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = r1.scratch("r1-refused");
    let out = run_xb_backup(
        &r1,
        &[
            "--target-dir",
            refused.to_str().unwrap(),
            "--safe-slave-backup",
            "--safe-slave-backup-timeout=4",
        ],
    )
    .await;
    assert_failure_mentions(&out, &["1 open temporary table(s) after 4 s", "hint: "]);
    assert_eq!(out.status.code(), Some(26));
    assert_eq!(
        replica_status(&r1, "Slave_SQL_Running").await.as_deref(),
        Some("Yes"),
        "R1's SQL thread runs again after the refused backup"
    );
    holder
        .query_drop("DROP TEMPORARY TABLE s.held_open")
        .await
        .unwrap();
    drop(holder);

    // the primary takes writes while R1 is backed up
    let load = WriteLoad::start(primary.opts(), &spec);
    load.wait_for_commits(200).await;
    let r1_backup = r1.scratch("r1-backup");
    let out = run_xb_backup(
        &r1,
        &[
            "--target-dir",
            r1_backup.to_str().unwrap(),
            "--slave-info",
            "--safe-slave-backup",
        ],
    )
    .await;
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop the replica's SQL thread"), "{stderr}");
    assert!(stderr.contains("replica of source 127.0.0.1"), "{stderr}");
    load.wait_for_commits(200).await;
    load.stop().await.expect("load ran without errors");
    write_after_backup(&primary);
    assert_eq!(
        replica_status(&r1, "Slave_SQL_Running").await.as_deref(),
        Some("Yes"),
        "R1's SQL thread runs again after the backup"
    );

    let info = std::fs::read_to_string(r1_backup.join("xtrabackup_slave_info")).unwrap();
    assert!(
        info.starts_with("SET GLOBAL gtid_slave_pos = '0-1-"),
        "{info}"
    );
    assert!(
        info.ends_with("CHANGE MASTER TO master_use_gtid = slave_pos;\n"),
        "{info}"
    );
    let r2_dir = scratch_dir("xb-r2-");
    let r2 = restore_new_server(
        &r1,
        &r1_backup,
        r2_dir.path(),
        "--log-bin=binlog --server-id=3",
    );
    // the DBA's steps: the primary's address first (it resets the
    // position), then the backup's statements, then start
    r2.sql(&format!("{} {info} START SLAVE;", source_is(&primary)))
        .unwrap();
    wait_caught_up(&r2, &primary).await;
    assert_same_tables(&r2, &primary).await;
    assert_eq!(
        replica_status(&r2, "Master_Port").await,
        Some(primary.port().to_string()),
        "R2 replicates from the primary itself"
    );
}

/// Runbook 3: `--slave-info` (and `--safe-slave-backup`) on a server that
/// is not a replica: the backup completes, says so, and writes no
/// `xtrabackup_slave_info`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_info_on_a_server_that_is_not_a_replica_warns_and_writes_nothing() {
    let server = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    let target = server.scratch("backup");
    let out = run_xb_backup(
        &server,
        &[
            "--target-dir",
            target.to_str().unwrap(),
            "--replica-info",
            "--safe-slave-backup",
        ],
    )
    .await;
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: --slave-info: the server is not a replica"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: --safe-slave-backup: the server is not a replica"),
        "{stderr}"
    );
    assert!(target.join("xtrabackup_binlog_info").is_file());
    assert!(!target.join("xtrabackup_slave_info").exists());
}

/// Runbook 2 on MySQL 9.7: R1 replicates from the primary by GTID
/// auto-position; its backup with `--slave-info --safe-slave-backup`,
/// taken while the primary writes, holds `gtid_purged` and
/// `SOURCE_AUTO_POSITION=1`, and R2 built from it replicates from the
/// primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql97_second_replica_from_a_replica_backup_with_slave_info() {
    let replica_args = |id: u32| {
        format!("--gtid-mode=ON --enforce-gtid-consistency=ON --log-bin=binlog --server-id={id}")
    };
    let primary = TestServer::start_with_args(Flavor::MySql97, MYSQL_PRIMARY).unwrap();
    create_replication_user(&primary);
    let spec = small_load();
    let p_backup = backup_under_load(&primary, &spec, &[]).await;
    let r1_dir = scratch_dir("xb-r1-");
    let r1 = restore_new_server(&primary, &p_backup, r1_dir.path(), &replica_args(2));
    point_at_primary_by_gtid(&r1, &primary, &backup_gtid(&p_backup));
    wait_caught_up(&r1, &primary).await;

    let load = WriteLoad::start(primary.opts(), &spec);
    load.wait_for_commits(200).await;
    let r1_backup = r1.scratch("r1-backup");
    let out = run_xb_backup(
        &r1,
        &[
            "--target-dir",
            r1_backup.to_str().unwrap(),
            "--replica-info",
            "--safe-slave-backup",
        ],
    )
    .await;
    assert_success(&out);
    load.wait_for_commits(200).await;
    load.stop().await.expect("load ran without errors");
    write_after_backup(&primary);
    assert_eq!(
        replica_status(&r1, "Replica_SQL_Running").await.as_deref(),
        Some("Yes"),
        "R1's SQL thread runs again after the backup"
    );

    let info = std::fs::read_to_string(r1_backup.join("xtrabackup_slave_info")).unwrap();
    assert!(info.starts_with("SET GLOBAL gtid_purged='"), "{info}");
    assert!(
        info.ends_with("';\nCHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1;\n"),
        "{info}"
    );
    let r2_dir = scratch_dir("xb-r2-");
    // R1's replication settings are InnoDB tables, so R2 inherits them:
    // it starts with replication off and forgets them first
    let r2_args = format!("{} --skip-replica-start", replica_args(3));
    let r2 = restore_new_server(&r1, &r1_backup, r2_dir.path(), &r2_args);
    r2.sql(&format!(
        "RESET REPLICA ALL; RESET BINARY LOGS AND GTIDS; {} {info} START REPLICA;",
        source_is(&primary)
    ))
    .unwrap();
    wait_caught_up(&r2, &primary).await;
    assert_same_tables(&r2, &primary).await;
    assert_eq!(
        replica_status(&r2, "Source_Port").await,
        Some(primary.port().to_string()),
        "R2 replicates from the primary itself"
    );
}
