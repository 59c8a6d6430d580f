//! Runbook: DDL on MySQL 9.7 while the backup runs, with the default backup
//! lock and with per-table metadata locks; both restore to the source's
//! tables after binlog replay.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

/// A source under write load with a table to drop, and a throttled backup
/// of it running with `extra`.
struct Running {
    src: TestServer,
    spec: LoadSpec,
    load: WriteLoad,
    target: std::path::PathBuf,
    backup: tokio::task::JoinHandle<std::process::Output>,
}

async fn start(extra: &[&str]) -> Running {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE TABLE xbload.doomed (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;
    let target = src.scratch("backup");
    // throttled, so the DDL below really overlaps the copy
    let mut args = vec![
        "--target-dir".to_string(),
        target.to_string_lossy().into_owned(),
        "--throttle".into(),
        "40".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_string()));
    let cmd = xb_backup_command(&src, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let backup = tokio::task::spawn_blocking(move || output_of(cmd));
    Running {
        src,
        spec,
        load,
        target,
        backup,
    }
}

/// Waits for the backup, then restores it and compares; `check` looks at
/// the backup and xb's output before prepare changes anything.
async fn finish(r: Running, check: impl FnOnce(&std::path::Path, &str)) {
    let out = r.backup.await.unwrap();
    assert_success(&out);
    check(&r.target, &String::from_utf8_lossy(&out.stderr));
    r.load.wait_for_commits(100).await;
    r.load.stop().await.expect("load ran without errors");
    xb_prepare_and_compare(&r.src, &r.target, &[&r.spec.schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_with_the_backup_lock() {
    let r = start(&[]).await;
    let mut conn = r.src.conn().await.unwrap();
    for sql in [
        "CREATE TABLE xbload.born (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "INSERT INTO xbload.born VALUES (1,'a'),(2,'b')",
        "ALTER TABLE xbload.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
        "DROP TABLE xbload.doomed",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.disconnect().await.unwrap();
    finish(r, |_, _| {}).await;
}

/// With `--lock-ddl-per-table`, DDL on a table xb has locked waits for xb,
/// and holds the server's backup lock in intention mode while it waits: xb
/// must let it finish before its own `LOCK INSTANCE FOR BACKUP`, never
/// wait on it (that was a hang until the lock-wait timeout), and copy again
/// what it changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_with_per_table_metadata_locks() {
    let r = start(&["--lock-ddl-per-table"]).await;
    let mut conn = r.src.conn().await.unwrap();
    // xb's metadata-lock session is the only one that touches `doomed`
    let holds = "SELECT COUNT(*) FROM performance_schema.metadata_locks \
                 WHERE OBJECT_SCHEMA = 'xbload' AND OBJECT_NAME = 'doomed' AND LOCK_STATUS = 'GRANTED'";
    let mut waited = 0;
    while conn.query_first::<u64, _>(holds).await.unwrap() != Some(1) {
        assert!(waited < 600, "xb never took its metadata locks");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.query_drop("CREATE TABLE xbload.born (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO xbload.born VALUES (1,'a'),(2,'b')")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    // three kinds of DDL wait for xb at once: in place, rebuild, drop
    let ddl = [
        "ALTER TABLE xbload.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
        "ALTER TABLE xbload.sbtest2 FORCE",
        "DROP TABLE xbload.doomed",
    ]
    .map(|sql| {
        let opts = r.src.opts();
        tokio::spawn(async move {
            let mut c = mysql_async::Conn::new(opts).await.unwrap();
            c.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            c.disconnect().await.unwrap();
        })
    });
    finish(r, |target, err| {
        assert!(
            err.contains("DDL waited for xb's metadata locks on 3 table(s)"),
            "the yield is reported: {err}"
        );
        // copied again after the DDL ran; the drop leaves a marker
        for f in [
            "xbload/sbtest1.new",
            "xbload/sbtest2.new",
            "xbload/doomed.del",
        ] {
            assert!(target.join(f).exists(), "{f} is in the backup");
        }
    })
    .await;
    for d in ddl {
        d.await.unwrap();
    }
}
