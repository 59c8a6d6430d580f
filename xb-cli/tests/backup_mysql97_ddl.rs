//! Runbook: DDL on MySQL 9.7 while the backup runs, with the default
//! `--lock-ddl=reduced` and with per-table metadata locks, and an undo
//! tablespace truncated during the copy; each restores to the source's
//! tables after binlog replay.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

/// A source under write load with a table to drop (and whatever `setup`
/// makes), and a backup of it throttled to `mib` MiB/s running with
/// `extra`.
struct Running {
    src: TestServer,
    spec: LoadSpec,
    load: WriteLoad,
    target: std::path::PathBuf,
    backup: tokio::task::JoinHandle<std::process::Output>,
}

async fn start(setup: &[&str], mib: &str, extra: &[&str]) -> Running {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE TABLE xbload.doomed (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    for sql in setup {
        conn.query_drop(*sql).await.unwrap();
    }
    conn.disconnect().await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;
    let target = src.scratch("backup");
    // throttled, so the DDL below really overlaps the copy
    let mut args = vec![
        "--target-dir".to_string(),
        target.to_string_lossy().into_owned(),
        "--throttle".into(),
        mib.into(),
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
async fn ddl_with_the_default_reduced_lock() {
    let r = start(&[], "40", &[]).await;
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
    let r = start(&[], "40", &["--lock-ddl-per-table"]).await;
    // this runbook hung twice in full CI runs (never alone): if it runs
    // long, say who waits for what while it still does
    let watchdog = tokio::spawn(report_waits_after(r.src.opts(), Duration::from_secs(150)));
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
    watchdog.abort();
}

/// After `after`, prints the server's sessions and its metadata locks
/// (what a hung run is waiting for) to standard error, shown with the
/// test's timeout.
async fn report_waits_after(opts: mysql_async::Opts, after: Duration) {
    tokio::time::sleep(after).await;
    let Ok(mut c) = mysql_async::Conn::new(opts).await else {
        eprintln!("watchdog: cannot connect to the source");
        return;
    };
    for sql in [
        "SELECT ID, USER, COMMAND, TIME, STATE, LEFT(INFO, 120) FROM information_schema.PROCESSLIST",
        "SELECT m.OBJECT_TYPE, m.OBJECT_SCHEMA, m.OBJECT_NAME, m.LOCK_TYPE, m.LOCK_STATUS, t.PROCESSLIST_ID \
         FROM performance_schema.metadata_locks m JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID \
         WHERE m.OBJECT_SCHEMA IS NULL OR m.OBJECT_SCHEMA NOT IN ('performance_schema', 'mysql')",
    ] {
        match c.query::<mysql_async::Row, _>(sql).await {
            Ok(rows) => {
                eprintln!("watchdog: {sql}");
                for row in rows {
                    let cols: Vec<String> = (0..row.len())
                        .map(|i| match row.as_ref(i) {
                            Some(mysql_async::Value::Bytes(b)) => {
                                String::from_utf8_lossy(b).into_owned()
                            }
                            Some(mysql_async::Value::NULL) | None => "NULL".into(),
                            Some(v) => v.as_sql(true),
                        })
                        .collect();
                    eprintln!("  {}", cols.join(" | "));
                }
            }
            Err(e) => eprintln!("watchdog: {sql}: {e}"),
        }
    }
}

/// `--lock-ddl=reduced` (the default): `innodb_undo_001` truncated while
/// the InnoDB copy runs (MySQL gives it a new file and space id; only the
/// backup lock holds that off) is copied once the lock is taken, and the
/// restore equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undo_tablespace_truncated_during_the_copy_restores() {
    // a third undo tablespace: two must stay active
    let r = start(
        &["CREATE UNDO TABLESPACE third_undo ADD DATAFILE 'third_undo.ibu'"],
        "5",
        &[],
    )
    .await;
    let mut conn = r.src.conn().await.unwrap();
    let id =
        "SELECT SPACE FROM information_schema.INNODB_TABLESPACES WHERE NAME = 'innodb_undo_001'";
    let state =
        "SELECT STATE FROM information_schema.INNODB_TABLESPACES WHERE NAME = 'innodb_undo_001'";
    let before: u64 = conn.query_first(id).await.unwrap().unwrap();
    wait_until("the data copy starts", Duration::from_secs(60), || {
        data_copy_started(&r.target)
    })
    .await;
    conn.query_drop("ALTER UNDO TABLESPACE innodb_undo_001 SET INACTIVE")
        .await
        .unwrap();
    let mut waited = 0;
    while conn
        .query_first::<String, _>(state)
        .await
        .unwrap()
        .as_deref()
        != Some("empty")
    {
        assert!(
            waited < 600,
            "innodb_undo_001 was not truncated within 60 s"
        );
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.query_drop("ALTER UNDO TABLESPACE innodb_undo_001 SET ACTIVE")
        .await
        .unwrap();
    let after: u64 = conn.query_first(id).await.unwrap().unwrap();
    assert_ne!(
        before, after,
        "truncation gives the undo tablespace a new space id"
    );
    assert!(
        !r.backup.is_finished(),
        "the truncation was to happen during the copy"
    );
    conn.disconnect().await.unwrap();
    finish(r, |target, _| {
        let page0 = std::fs::read(target.join("undo_001")).unwrap();
        let copied = u32::from_be_bytes([page0[34], page0[35], page0[36], page0[37]]);
        assert_eq!(
            u64::from(copied),
            after,
            "the backup holds the truncated undo tablespace"
        );
    })
    .await;
}
