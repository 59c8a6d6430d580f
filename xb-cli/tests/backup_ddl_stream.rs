//! Runbook: a stream of DDL runs through a backup taken with
//! `--lock-ddl=reduced`. The DDL completes while the backup copies (it is
//! not queued behind the backup), writes to MyISAM tables go on, and the
//! restore equals the source after binlog replay, table for table: dropped
//! tables absent, renamed ones under their new names. On MariaDB both
//! `xb-cli prepare` and `mariadb-backup --prepare` restore it. The same
//! stream through an incremental restores through `xb-cli prepare` of the
//! chain, on both.
//! With `--lock-ddl=off` DDL during the copy fails the backup, named, and
//! a backup no DDL ran through restores.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

/// Tables the stream changes, made before the backup starts. Those it
/// drops, renames and truncates are the largest, so the copy (largest
/// first) has opened them before the stream runs: their copies are then
/// the ones that need markers.
const SETUP: &[&str] = &[
    "CREATE TABLE xbload.doomed LIKE xbload.sbtest1",
    "CREATE TABLE xbload.to_rename LIKE xbload.sbtest1",
    "CREATE TABLE xbload.to_truncate LIKE xbload.sbtest1",
    "INSERT INTO xbload.doomed SELECT * FROM xbload.sbtest1",
    "INSERT INTO xbload.to_rename SELECT * FROM xbload.sbtest1",
    "INSERT INTO xbload.to_truncate SELECT * FROM xbload.sbtest1",
    // twice the rows of any other table: copied first, so the stream can
    // start right away and ends long before the copy does
    "INSERT INTO xbload.doomed (k, c, pad) SELECT k, c, pad FROM xbload.sbtest1",
    "INSERT INTO xbload.to_rename (k, c, pad) SELECT k, c, pad FROM xbload.sbtest1",
    "INSERT INTO xbload.to_truncate (k, c, pad) SELECT k, c, pad FROM xbload.sbtest1",
    "CREATE TABLE xbload.copy_altered (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
    "INSERT INTO xbload.copy_altered SELECT id, c FROM xbload.sbtest1 LIMIT 300",
    "CREATE TABLE xbload.probe (id INT AUTO_INCREMENT PRIMARY KEY, at BIGINT) ENGINE=MyISAM",
];

/// The DDL stream: every kind the issue names, and a table created and
/// dropped inside the backup window.
const STREAM: &[&str] = &[
    "CREATE TABLE xbload.born (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
    "INSERT INTO xbload.born VALUES (1,'a'),(2,'b')",
    "ALTER TABLE xbload.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
    "ALTER TABLE xbload.sbtest2 ADD INDEX by_c (c), ALGORITHM=INPLACE",
    "ALTER TABLE xbload.copy_altered ADD COLUMN w INT DEFAULT 3, ALGORITHM=COPY",
    "ALTER TABLE xbload.sbtest3 FORCE",
    "RENAME TABLE xbload.to_rename TO xbload.renamed",
    "TRUNCATE TABLE xbload.to_truncate",
    "INSERT INTO xbload.to_truncate (id, c) VALUES (1, 'after truncate')",
    "DROP TABLE xbload.doomed",
    "CREATE TABLE xbload.selected ENGINE=InnoDB AS SELECT id, k, c FROM xbload.sbtest4 LIMIT 500",
    "CREATE TABLE xbload.ephemeral (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT INTO xbload.ephemeral VALUES (1),(2),(3)",
    "DROP TABLE xbload.ephemeral",
];

/// Runs the stream against `src` while a throttled backup copies, and
/// proves the outcome; returns the backup directory. With `incremental`
/// (extra options, for both backups), the backup the stream runs through
/// is an incremental on a full backup taken just before; its directory
/// comes back too.
async fn ddl_stream_through_a_backup(
    flavor: Flavor,
    incremental: Option<&[&str]>,
) -> (TestServer, std::path::PathBuf, Option<std::path::PathBuf>) {
    let src = TestServer::start_with_args(flavor, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        rows_per_table: 20_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    for sql in SETUP {
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;
    let full = match incremental {
        Some(extra) => {
            let full = src.scratch("full");
            let full_s = full.to_string_lossy().into_owned();
            let args = [&["--target-dir", full_s.as_str()][..], extra].concat();
            assert_success(&run_xb_backup(&src, &args).await);
            load.wait_for_commits(100).await;
            Some(full)
        }
        None => None,
    };
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    // throttled, so the copy lasts well past the stream
    let started = Instant::now();
    let mut args = vec![
        "--target-dir",
        &target_s,
        "--throttle",
        "5",
        "--json",
        "--lock-ddl=reduced",
    ];
    let full_s = full.as_ref().map(|f| f.to_string_lossy().into_owned());
    if let (Some(extra), Some(base)) = (incremental, &full_s) {
        args.extend(["--incremental-basedir", base.as_str()]);
        args.extend_from_slice(extra);
    }
    let mut backup = spawn_xb_backup(&src, &args);
    wait_until(
        "the copy reaches the tables the stream drops and renames",
        Duration::from_secs(120),
        || {
            [
                "xbload/doomed.ibd",
                "xbload/to_rename.ibd",
                "xbload/to_truncate.ibd",
            ]
            .iter()
            // an incremental's copy of them is a delta, or for a table
            // whose first page the server has not written yet (MariaDB), a
            // whole `.new`
            .all(|f| {
                target.join(f).exists()
                    || target.join(format!("{f}.delta")).exists()
                    || target.join(f.replace(".ibd", ".new")).exists()
            })
        },
    )
    .await;
    let whole = |t: &str| target.join(format!("xbload/{t}.new")).exists();
    let (doomed_whole, to_rename_whole) = (whole("doomed"), whole("to_rename"));

    // MyISAM writes and the DDL stream, side by side
    let probe_opts = src.opts();
    let stop_probe = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = tokio::spawn({
        let stop = stop_probe.clone();
        async move {
            let mut c = mysql_async::Conn::new(probe_opts).await.unwrap();
            let mut slowest = Duration::ZERO;
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let t = Instant::now();
                c.query_drop("INSERT INTO xbload.probe (at) VALUES (UNIX_TIMESTAMP())")
                    .await
                    .unwrap();
                slowest = slowest.max(t.elapsed());
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            c.disconnect().await.unwrap();
            (n, slowest)
        }
    });
    let probing_since = Instant::now();
    let mut during = 0;
    let mut slowest_ddl = Duration::ZERO;
    for sql in STREAM {
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(150), conn.query_drop(*sql)).await {
            Ok(r) => r.unwrap_or_else(|e| panic!("{sql}: {e}")),
            Err(_) => {
                eprintln!(
                    "{sql} hangs; the server's sessions:\n{}",
                    processlist(&src).await
                );
                // fails with the backup's output if it still runs
                let out = finish_within_on(&src, backup, Duration::ZERO).await;
                panic!(
                    "{sql} hangs after the backup ended:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        slowest_ddl = slowest_ddl.max(t.elapsed());
        if backup.try_wait().unwrap().is_none() {
            during += 1;
        }
    }
    // MyISAM writes for a few seconds of the copy, however quick the DDL
    let probed = probing_since.elapsed();
    if probed < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_secs(4) - probed).await;
    }
    let stream_done = started.elapsed().as_secs_f64();
    stop_probe.store(true, std::sync::atomic::Ordering::Release);
    let still_copying = backup.try_wait().unwrap().is_none();
    let (inserts, slowest_insert) = probe.await.unwrap();
    let out = finish_within_on(&src, backup, Duration::from_secs(200)).await;
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    // the DDL was not queued until the backup's end
    assert!(
        still_copying && during == STREAM.len(),
        "only {during} of {} statements completed while the backup ran (slowest {slowest_ddl:?}):\n{err}",
        STREAM.len()
    );
    assert!(
        slowest_insert < Duration::from_secs(2) && inserts > 20,
        "MyISAM writes during the copy: {inserts}, slowest {slowest_insert:?}"
    );
    // the report says DDL was blocked only after the stream, briefly
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ddl: Vec<&serde_json::Value> = summary["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["blocks"] == "DDL")
        .collect();
    assert_eq!(ddl.len(), 1, "one DDL lock: {summary}");
    let (at, held) = (
        ddl[0]["taken_at_seconds"].as_f64().unwrap(),
        ddl[0]["held_seconds"].as_f64().unwrap(),
    );
    // blocked only after the stream; in a full backup, for less than the
    // copy took (an incremental's copy is quick, and the tables the stream
    // touched are copied again whole, throttled, while DDL is blocked)
    assert!(
        at > stream_done && (full.is_some() || held < at),
        "DDL blocked at {at:.1}s for {held:.1}s; the stream ended at {stream_done:.1}s: {summary}"
    );
    assert!(err.contains("DDL blocked"), "{err}");
    eprintln!(
        "figures: {} DDL statements, all done {stream_done:.1}s into the backup, slowest {slowest_ddl:?}; \
         {inserts} MyISAM inserts during the copy, slowest {slowest_insert:?}; DDL blocked at {at:.1}s for {held:.2}s",
        STREAM.len()
    );
    assert!(
        err.contains("DDL ran during the copy"),
        "the backup says what it made good:\n{err}"
    );
    // the dropped and renamed tables' copies carry their markers; an
    // incremental's whole copies of them are taken back instead (and the
    // renamed table copied whole under its new name)
    let doomed = if doomed_whole {
        None
    } else {
        Some("xbload/doomed.del")
    };
    let renamed = if to_rename_whole {
        "xbload/renamed.new"
    } else {
        "xbload/to_rename.ren"
    };
    for f in doomed
        .into_iter()
        .chain([renamed, "xbload/to_truncate.new"])
    {
        assert!(target.join(f).exists(), "{f} is in the backup:\n{err}");
    }
    for (whole, f) in [
        (doomed_whole, "xbload/doomed.new"),
        (to_rename_whole, "xbload/to_rename.new"),
    ] {
        assert!(!(whole && target.join(f).exists()), "{f} was taken back");
    }
    eprintln!("whole copies taken back: doomed {doomed_whole}, to_rename {to_rename_whole}");
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    conn.disconnect().await.unwrap();
    (src, target, full)
}

/// `xb-cli prepare` of `full` with `--apply-log-only`, then of the
/// incremental `inc` on it; the restore equals the source.
async fn prepare_incremental_and_compare(
    src: &TestServer,
    full: &std::path::Path,
    inc: &std::path::Path,
) {
    assert_success(&xb_prepare_args(src, full, &["--apply-log-only"], None));
    assert_success(&xb_prepare_args(src, full, &[], Some(inc)));
    start_and_compare(src, full, &["xbload"], "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_ddl_stream_during_the_copy_restores_with_both_prepares() {
    let (src, target, _) = ddl_stream_through_a_backup(Flavor::MariaDb1011, None).await;
    let vendor_copy = src.scratch("backup-for-mariadb-backup");
    xb_testing::vendor::copy_dir(&target, &vendor_copy).unwrap();
    xb_prepare_and_compare(&src, &target, &["xbload"]).await;
    restore_and_compare(&src, &vendor_copy, &["xbload"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_97_ddl_stream_during_the_copy_restores_with_xb_prepare() {
    let (src, target, _) = ddl_stream_through_a_backup(Flavor::MySql97, None).await;
    // the in-place index build wrote its pages past the redo: copied again
    assert!(target.join("xbload/sbtest2.new").exists());
    xb_prepare_and_compare(&src, &target, &["xbload"]).await;
}

/// MariaDB: the stream through an incremental.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_ddl_stream_during_an_incremental_restores_with_xb_prepare() {
    let (src, inc, full) = ddl_stream_through_a_backup(Flavor::MariaDb1011, Some(&[])).await;
    let full = full.unwrap();
    // an incremental (which tables are deltas depends on what the server
    // flushed: one whose first page is not on disk yet is copied whole)
    let cps = std::fs::read_to_string(inc.join("xtrabackup_checkpoints")).unwrap();
    assert!(cps.contains("backup_type = incremental"), "{cps}");
    assert!(
        files_under(&inc)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "delta")),
        "an incremental holds deltas"
    );
    prepare_incremental_and_compare(&src, &full, &inc).await;
}

/// MySQL: the stream through an incremental.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_97_ddl_stream_during_an_incremental_restores_with_xb_prepare() {
    let (src, inc, full) = ddl_stream_through_a_backup(Flavor::MySql97, Some(&[])).await;
    let full = full.unwrap();
    assert!(
        inc.join("xbload/sbtest4.ibd.delta").exists(),
        "an incremental"
    );
    assert!(inc.join("xbload/sbtest2.new").exists());
    prepare_incremental_and_compare(&src, &full, &inc).await;
}

/// `--lock-ddl=off`: a table dropped while the copy runs fails the backup
/// (exit 24, the table named, the target marked incomplete); the same
/// backup with no DDL running completes and restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_lock_ddl_off_fails_on_ddl_during_the_copy_and_not_without() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let mut conn = src.conn().await.unwrap();
    for sql in [
        "CREATE DATABASE offdb",
        "CREATE TABLE offdb.kept (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
        "INSERT INTO offdb.kept SELECT seq, 'kept' FROM offdb.seq_1_to_1000",
        // the largest table: the copy (largest first) opens it early
        "CREATE TABLE offdb.gone (id INT PRIMARY KEY, pad CHAR(200)) ENGINE=InnoDB",
        "INSERT INTO offdb.gone SELECT seq, 'x' FROM offdb.seq_1_to_40000",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let failed = src.scratch("off-with-ddl");
    let failed_s = failed.to_string_lossy().into_owned();
    let backup = spawn_xb_backup(
        &src,
        &[
            "--target-dir",
            &failed_s,
            "--throttle",
            "1",
            "--lock-ddl=off",
        ],
    );
    wait_until(
        "the copy opens offdb/gone.ibd",
        Duration::from_secs(120),
        || failed.join("offdb/gone.ibd").exists(),
    )
    .await;
    // not queued behind the backup: no DDL lock is held during the copy
    let t = Instant::now();
    conn.query_drop("DROP TABLE offdb.gone").await.unwrap();
    let drop_took = t.elapsed();
    let out = finish_within(backup, Duration::from_secs(300)).await;
    assert_failure_mentions(
        &out,
        &[
            "DDL ran during the copy",
            "offdb/gone.ibd",
            "--lock-ddl=reduced",
        ],
    );
    assert_eq!(out.status.code(), Some(24));
    assert!(failed.join(INCOMPLETE_MARKER).exists());
    assert!(
        drop_took < Duration::from_secs(5),
        "DROP TABLE waited {drop_took:?} for the backup"
    );

    let target = src.scratch("off-quiet");
    let target_s = target.to_string_lossy().into_owned();
    assert_success(&run_xb_backup(&src, &["--target-dir", &target_s, "--lock-ddl=off"]).await);
    conn.disconnect().await.unwrap();
    xb_prepare_and_compare(&src, &target, &["offdb"]).await;
}

/// MariaDB, `BACKUP STAGE FLUSH`: the MyISAM tables no statement uses are
/// copied one at a time under `BACKUP LOCK`, while DDL goes on. A table
/// dropped, renamed or truncated after its copy and before `BLOCK_DDL` is
/// taken back from the backup (in a stream, by a remove chunk that
/// `mbstream -x` obeys) and the new name copied; the restore equals the
/// source. With `--lock-ddl=off` the same DDL fails the backup instead,
/// naming the files.
async fn myisam_copied_at_flush_while_ddl_goes_on(stream: bool, off: bool) {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        rows_per_table: 2_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    let mut setup = vec!["CREATE DATABASE fl".to_string()];
    // copied first (by name), then touched by DDL while the big one copies
    for t in ["a_dropped", "a_renamed", "a_truncated", "a_kept"] {
        setup.push(format!(
            "CREATE TABLE fl.{t} (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=MyISAM"
        ));
        setup.push(format!(
            "INSERT INTO fl.{t} SELECT seq, '{t}' FROM fl.seq_1_to_3000"
        ));
    }
    // ~50 MiB: at 8 MiB/s its copy lasts about six seconds (a stream shows
    // it only once its first 10 MiB chunk is out)
    setup.push("CREATE TABLE fl.z_big (id INT PRIMARY KEY, pad CHAR(255)) ENGINE=MyISAM".into());
    setup.push("INSERT INTO fl.z_big SELECT seq, REPEAT('z', 255) FROM fl.seq_1_to_200000".into());
    for sql in &setup {
        conn.query_drop(sql.as_str())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(50).await;
    let target = src.scratch("backup");
    let stream_file = src.scratch("backup.xbstream");
    let mut backup = if stream {
        spawn_xb_backup_to_file(
            &src,
            &["--stream=xbstream", "--throttle", "8"],
            &stream_file,
        )
    } else {
        let target_s = target.to_string_lossy().into_owned();
        let mode = if off {
            "--lock-ddl=off"
        } else {
            "--lock-ddl=reduced"
        };
        spawn_xb_backup(&src, &["--target-dir", &target_s, "--throttle", "8", mode])
    };
    // a stream is scanned from where the last look ended (re-reading all
    // of it on every poll lags on a busy machine)
    let mut scanned = 0u64;
    wait_until(
        "the FLUSH stage copies the big MyISAM table",
        Duration::from_secs(180),
        || {
            if stream {
                stream_names_since(&stream_file, &mut scanned, b"fl/z_big.MYD")
            } else {
                target.join("fl/z_big.MYD").exists()
            }
        },
    )
    .await;
    let ddl = [
        "DROP TABLE fl.a_dropped",
        "RENAME TABLE fl.a_renamed TO fl.b_renamed",
        "TRUNCATE TABLE fl.a_truncated",
        "CREATE TABLE fl.born (id INT PRIMARY KEY) ENGINE=InnoDB",
        "ALTER TABLE xbload.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
    ];
    // with off, only the MyISAM tables' DDL, which only the FLUSH-stage
    // copy can see
    let ddl = if off { &ddl[..3] } else { &ddl[..] };
    run_beside_the_backup(&mut conn, &mut backup, ddl).await;
    let out = finish_within_on(&src, backup, Duration::from_secs(200)).await;
    if off {
        load.stop().await.expect("load ran without errors");
        assert_failure_mentions(&out, &["fl/a_dropped.MYD", "fl/a_renamed.MYD"]);
        assert_eq!(out.status.code(), Some(24));
        return;
    }
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BACKUP STAGE FLUSH: copy") && err.contains("under BACKUP LOCK"),
        "{err}"
    );
    // MYD and MYI of the dropped, renamed and truncated tables
    assert!(
        err.contains("DDL changed 6 file(s) copied before BLOCK_DDL"),
        "{err}"
    );
    // FLUSH holds back new writes to MyISAM tables: reported as a lock
    let writes = err
        .lines()
        .find(|l| l.contains("writes to non-transactional tables blocked"))
        .unwrap_or_else(|| panic!("the report names the write lock:\n{err}"));
    assert!(writes.contains("by BACKUP STAGE FLUSH"), "{writes}");
    if stream {
        std::fs::create_dir_all(&target).unwrap();
        let extracted = src
            .tool("mbstream")
            .args(["-x", "-C", &target.to_string_lossy()])
            .stdin(std::fs::File::open(&stream_file).unwrap())
            .output()
            .unwrap();
        assert!(
            extracted.status.success(),
            "mbstream -x failed: {}",
            String::from_utf8_lossy(&extracted.stderr)
        );
    }
    for gone in ["fl/a_dropped.MYD", "fl/a_dropped.frm", "fl/a_renamed.MYI"] {
        assert!(!target.join(gone).exists(), "{gone} is not in the backup");
    }
    // the InnoDB table made after the InnoDB copy comes as a whole `.new`
    for here in [
        "fl/b_renamed.MYD",
        "fl/b_renamed.frm",
        "fl/a_kept.MYD",
        "fl/born.new",
    ] {
        assert!(target.join(here).exists(), "{here} is in the backup");
    }
    load.wait_for_commits(50).await;
    load.stop().await.expect("load ran without errors");
    conn.disconnect().await.unwrap();
    xb_prepare_and_compare(&src, &target, &["fl", "xbload"]).await;
}

/// Whether `needle` occurs in `file` from `*from` on (a little before, so
/// a name cut by the previous look is found); moves `*from` to the end.
fn stream_names_since(file: &std::path::Path, from: &mut u64, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(file) else {
        return false;
    };
    let start = from.saturating_sub(needle.len() as u64);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return false;
    }
    *from = start + buf.len() as u64;
    buf.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_myisam_tables_are_copied_at_flush_while_ddl_goes_on() {
    myisam_copied_at_flush_while_ddl_goes_on(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_lock_ddl_off_fails_on_ddl_after_a_flush_stage_copy() {
    myisam_copied_at_flush_while_ddl_goes_on(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_myisam_copies_made_stale_by_ddl_are_taken_back_in_a_stream() {
    myisam_copied_at_flush_while_ddl_goes_on(true, false).await;
}

/// A MariaDB incremental under `--lock-ddl=reduced`: tables created since
/// the last flush have no first page on disk and are copied whole, as
/// `.new`. One renamed and one dropped after that copy are taken back from
/// the incremental (the renamed one copied whole again under its new
/// name), and the chain restores equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_1011_incremental_takes_back_a_young_tables_copy_that_ddl_changed() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        rows_per_table: 2_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(50).await;
    let full = src.scratch("full");
    assert_success(&run_xb_backup(&src, &["--target-dir", full.to_str().unwrap()]).await);
    let mut conn = src.conn().await.unwrap();
    // the largest tables, so the copy takes them first
    for t in ["young_renamed", "young_dropped"] {
        for sql in [
            format!("CREATE TABLE xbload.{t} (id INT PRIMARY KEY, pad CHAR(200)) ENGINE=InnoDB"),
            format!("INSERT INTO xbload.{t} SELECT seq, '{t}' FROM xbload.seq_1_to_60000"),
        ] {
            conn.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    let inc = src.scratch("inc");
    let inc_s = inc.to_string_lossy().into_owned();
    let full_s = full.to_string_lossy().into_owned();
    let mut backup = spawn_xb_backup(
        &src,
        &[
            "--target-dir",
            &inc_s,
            "--incremental-basedir",
            &full_s,
            "--throttle",
            "4",
        ],
    );
    wait_until(
        "the incremental copies the young tables whole",
        Duration::from_secs(120),
        || {
            ["xbload/young_renamed.new", "xbload/young_dropped.new"]
                .iter()
                .all(|f| inc.join(f).exists())
        },
    )
    .await;
    for sql in [
        "RENAME TABLE xbload.young_renamed TO xbload.grown_up",
        "DROP TABLE xbload.young_dropped",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(
            backup.try_wait().unwrap().is_none(),
            "{sql} waited for the backup"
        );
    }
    let out = finish_within_on(&src, backup, Duration::from_secs(200)).await;
    assert_success(&out);
    for gone in [
        "xbload/young_renamed.new",
        "xbload/young_dropped.new",
        "xbload/young_renamed.ren",
        "xbload/young_dropped.del",
    ] {
        assert!(!inc.join(gone).exists(), "{gone} is not in the incremental");
    }
    assert!(inc.join("xbload/grown_up.new").exists());
    load.wait_for_commits(50).await;
    load.stop().await.expect("load ran without errors");
    conn.disconnect().await.unwrap();
    prepare_incremental_and_compare(&src, &full, &inc).await;
}
