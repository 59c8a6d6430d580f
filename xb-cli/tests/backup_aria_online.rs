//! Runbook: on MariaDB, transactional Aria tables are copied while the
//! server writes them (at `BACKUP STAGE START`), not while commits are
//! blocked. Writes, a log file switch and DDL on those tables go on after
//! their copy; the restore, through both `xb-cli prepare` and
//! `mariadb-backup --prepare`, equals the source table for table after
//! binlog replay. Copies that DDL replaced, renamed or dropped are taken
//! back and the tables copied again; a `--lock-ddl=off` backup fails on
//! the same DDL, naming the files.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::server::{Flavor, TestServer};

/// The smallest Aria log file the server takes: a few MiB of writes
/// during the backup switch it to a new one.
const SMALL_ARIA_LOG: &str = "--aria-log-file-size=8388608";

/// Number of the newest `aria_log.N` in `dir`.
fn newest_aria_log(dir: &std::path::Path) -> u32 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("aria_log.")?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

async fn aria_tables_copied_while_written(off: bool) {
    let args = format!("{BINLOG_ARGS} {SMALL_ARIA_LOG}");
    let src = TestServer::start_with_args(Flavor::MariaDb1011, &args).expect("source");
    let mut conn = src.conn().await.unwrap();
    let mut setup = vec!["CREATE DATABASE ar".to_string()];
    // copied first (by name), then changed by DDL while the big one copies
    for t in ["a_dropped", "a_rebuilt", "a_renamed", "a_truncated", "hot"] {
        setup.push(format!(
            "CREATE TABLE ar.{t} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200), \
             n INT NOT NULL DEFAULT 0, KEY (v)) ENGINE=Aria TRANSACTIONAL=1"
        ));
        setup.push(format!(
            "INSERT INTO ar.{t} (v) SELECT CONCAT('{t}', seq) FROM ar.seq_1_to_3000"
        ));
    }
    // not crash-safe: copied while commits are blocked, as before
    setup.push("CREATE TABLE ar.plain (id INT PRIMARY KEY) ENGINE=Aria TRANSACTIONAL=0".into());
    setup.push("INSERT INTO ar.plain SELECT seq FROM ar.seq_1_to_500".into());
    // ~50 MiB: at 8 MiB/s its copy lasts about six seconds
    setup.push(
        "CREATE TABLE ar.z_big (id INT PRIMARY KEY, pad CHAR(255), n INT NOT NULL DEFAULT 0) \
         ENGINE=Aria TRANSACTIONAL=1"
            .into(),
    );
    setup.push(
        "INSERT INTO ar.z_big (id, pad) SELECT seq, REPEAT('z', 255) FROM ar.seq_1_to_200000"
            .into(),
    );
    for sql in &setup {
        conn.query_drop(sql.as_str())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let log_at_start = newest_aria_log(src.datadir());
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let mode = if off {
        "--lock-ddl=off"
    } else {
        "--lock-ddl=reduced"
    };
    let backup = spawn_xb_backup(&src, &["--target-dir", &target_s, "--throttle", "8", mode]);
    wait_until(
        "the big Aria table's copy starts",
        Duration::from_secs(180),
        || target.join("ar/z_big.MAD").exists(),
    )
    .await;
    let mut backup = backup;
    let after_copy: &[&str] = &[
        // some 20 MiB of Aria log: the server switches to a new log file
        "INSERT INTO ar.hot (v) SELECT CONCAT(seq, REPEAT('h', 190)) FROM ar.seq_1_to_60000",
        "UPDATE ar.hot SET n = n + 1 WHERE id % 3 = 0",
        // the table being copied, written under the copy
        "UPDATE ar.z_big SET n = 1, pad = REPEAT('y', 255) WHERE id % 7 = 0",
        "TRUNCATE TABLE ar.a_truncated",
        "INSERT INTO ar.a_truncated (v) VALUES ('after truncate')",
        "DROP TABLE ar.a_dropped",
        "RENAME TABLE ar.a_renamed TO ar.b_renamed",
        "ALTER TABLE ar.a_rebuilt ADD COLUMN w INT NOT NULL DEFAULT 5, ALGORITHM=COPY",
        "CREATE TABLE ar.born (id INT PRIMARY KEY) ENGINE=Aria TRANSACTIONAL=1",
        "INSERT INTO ar.born VALUES (1), (2)",
    ];
    run_beside_the_backup(&mut conn, &mut backup, after_copy).await;
    let log_after = newest_aria_log(src.datadir());
    let out = finish_within_on(&src, backup, Duration::from_secs(200)).await;
    if off {
        assert_failure_mentions(&out, &["ar/a_dropped.MAD", "ar/a_renamed.MAI"]);
        assert_eq!(out.status.code(), Some(24));
        return;
    }
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let start = err
        .find("transactional Aria table(s) while the server writes them")
        .unwrap_or_else(|| panic!("the Aria tables are copied at START:\n{err}"));
    let flush = err.find("BACKUP STAGE FLUSH").unwrap();
    assert!(start < flush, "Aria copy before FLUSH:\n{err}");
    assert!(err.contains("copy the Aria log's tail"), "{err}");
    // both files of the dropped, renamed, rebuilt and truncated tables
    // (TRUNCATE empties them in place: its fences moved)
    assert!(
        err.contains("DDL changed 8 file(s) copied before BLOCK_DDL"),
        "{err}"
    );
    assert!(
        log_after > log_at_start,
        "the writes switched the Aria log ({log_at_start} → {log_after})"
    );
    for n in log_at_start..=log_after {
        let log = format!("aria_log.{n:08}");
        assert!(target.join(&log).exists(), "{log} is in the backup");
    }
    for gone in ["ar/a_dropped.MAD", "ar/a_renamed.MAI"] {
        assert!(!target.join(gone).exists(), "{gone} is not in the backup");
    }
    for here in [
        "ar/b_renamed.MAD",
        "ar/a_rebuilt.MAI",
        "ar/born.MAD",
        "ar/plain.MAD",
    ] {
        assert!(target.join(here).exists(), "{here} is in the backup");
    }
    // writes after the backup come back through binlog replay
    conn.query_drop("UPDATE ar.hot SET n = n + 10 WHERE id < 100")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let vendor_copy = src.scratch("backup-for-mariadb-backup");
    xb_testing::vendor::copy_dir(&target, &vendor_copy).unwrap();
    xb_prepare_and_compare(&src, &target, &["ar"]).await;
    restore_and_compare(&src, &vendor_copy, &["ar"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_transactional_aria_tables_are_copied_while_written_and_restore() {
    aria_tables_copied_while_written(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_lock_ddl_off_fails_on_ddl_after_an_aria_tables_copy() {
    aria_tables_copied_while_written(true).await;
}
