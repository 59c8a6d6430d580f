//! Runbook: hot backup of a live MariaDB 10.11 with `xb-cli backup`, restored
//! with the vendor's `mariadb-backup --prepare`, started as a real server,
//! checked, rolled forward with the source's binlog and compared table by table.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

/// The whole runbook on a directory target while InnoDB, MyISAM and Aria
/// tables are written during the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_to_directory_under_write_load_restores_to_equal_tables() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec {
        non_innodb: true,
        aria: true,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;

    let target = src.scratch("backup");
    let out = run_xb_backup(
        &src,
        &["--target-dir", &target.to_string_lossy(), "--parallel", "2"],
    )
    .await;
    assert_success(&out);
    load.wait_for_commits(200).await;
    load.stop().await.expect("load ran without errors");

    assert!(
        !target.join(INCOMPLETE_MARKER).exists(),
        "complete backup keeps no marker"
    );
    for f in [
        "ib_logfile0",
        "ibdata1",
        "xtrabackup_checkpoints",
        "xtrabackup_info",
        "xtrabackup_binlog_info",
        "backup-my.cnf",
    ] {
        assert!(target.join(f).is_file(), "{f} missing in the backup");
    }
    restore_and_compare(&src, &target, &[&spec.schema]).await;
}

/// `--stream=xbstream` piped into the vendor's `mbstream -x`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_streamed_into_mbstream_restores_to_equal_tables() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;

    let stream = src.scratch("backup.xbstream");
    let out = run_xb_backup_to_file(&src, &["--stream=xbstream"], &stream).await;
    assert_success(&out);
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");

    let target = src.scratch("extracted");
    std::fs::create_dir_all(&target).unwrap();
    let file = std::fs::File::open(&stream).unwrap();
    let mbstream = src
        .tool("mbstream")
        .args(["-x", "-C", &target.to_string_lossy()])
        .stdin(file)
        .output()
        .unwrap();
    assert!(
        mbstream.status.success(),
        "mbstream -x failed: {}",
        String::from_utf8_lossy(&mbstream.stderr)
    );
    restore_and_compare(&src, &target, &[&spec.schema]).await;
}

/// CREATE, ALTER and DROP issued while the backup runs: the backup stays
/// consistent (DDL waits for the backup lock or lands in the redo) and the
/// restore matches the source after binlog replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_during_backup_restores_to_equal_tables() {
    use mysql_async::prelude::Queryable;
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE TABLE xbload.doomed (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO xbload.doomed VALUES (1),(2),(3)")
        .await
        .unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;

    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let backup = tokio::spawn({
        // throttled, so the DDL below really overlaps the copy
        let args = [
            "--target-dir".to_string(),
            target_s,
            "--throttle".into(),
            "20".into(),
        ];
        let cmd = xb_backup_command(&src, &args.iter().map(String::as_str).collect::<Vec<_>>());
        async move {
            tokio::task::spawn_blocking(move || output_of(cmd))
                .await
                .unwrap()
        }
    });
    // DDL from another session while the backup is running.
    let ddl = [
        "CREATE TABLE xbload.born (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
        "INSERT INTO xbload.born VALUES (1,'a'),(2,'b')",
        "ALTER TABLE xbload.sbtest1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
        "DROP TABLE xbload.doomed",
        "ALTER TABLE xbload.sbtest2 ENGINE=InnoDB",
    ];
    for sql in ddl {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let out = backup.await.unwrap();
    assert_success(&out);
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    conn.disconnect().await.unwrap();
    restore_and_compare(&src, &target, &[&spec.schema]).await;
}

/// `--databases` keeps the named schema (and the system schemas) only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_backup_keeps_only_the_named_database() {
    use mysql_async::prelude::Queryable;
    let src = TestServer::start(Flavor::MariaDb1011).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE DATABASE other").await.unwrap();
    conn.query_drop("CREATE TABLE other.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    let target = src.scratch("backup");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &target.to_string_lossy(),
            "--databases",
            "xbload",
        ],
    )
    .await;
    assert_success(&out);
    assert!(target.join("xbload/sbtest1.ibd").is_file());
    assert!(
        target.join("mysql").is_dir(),
        "system schemas are always kept"
    );
    assert!(!target.join("other").exists(), "other database left out");
    let info = std::fs::read_to_string(target.join("xtrabackup_info")).unwrap();
    assert!(info.contains("\npartial = Y\n"), "{info}");
}

/// A compressed, encrypted stream: extracted (decrypted and decompressed on
/// the way) by `xb-cli extract`, then prepared and restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compressed_encrypted_stream_restores_to_equal_tables() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;
    let key = src.scratch("backup.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let key_s = key.to_string_lossy().into_owned();
    let stream = src.scratch("backup.xbstream");
    let out = run_xb_backup_to_file(
        &src,
        &[
            "--stream=xbstream",
            "--compress=zstd",
            "--encrypt=AES256",
            "--encrypt-key-file",
            &key_s,
        ],
        &stream,
    )
    .await;
    assert_success(&out);
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");

    // the stream holds no readable data file
    let raw = std::fs::read(&stream).unwrap();
    assert!(
        raw.windows(20).any(|w| w == b"sbtest1.ibd.zst.xbcr"),
        "data files are named .zst.xbcrypt"
    );
    let target = src.scratch("extracted");
    let ex = std::process::Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["extract"])
        .arg(&stream)
        .arg("-C")
        .arg(&target)
        .args([
            "--decompress",
            "--decrypt=AES256",
            "--encrypt-key-file",
            &key_s,
        ])
        .output()
        .unwrap();
    assert!(
        ex.status.success(),
        "extract: {}",
        String::from_utf8_lossy(&ex.stderr)
    );
    assert!(target.join("xbload/sbtest1.ibd").is_file());
    restore_and_compare(&src, &target, &[&spec.schema]).await;
}

/// MariaDB 10.6+ lists only the tablespaces it has opened since it started.
/// A backup taken right after a restart, before any statement touched the
/// tables, keeps every one of them (none is taken for dropped during the
/// copy and marked for deletion at prepare), and restores equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_right_after_a_restart_keeps_the_tables_not_opened_yet() {
    // without the buffer pool's reload, which opens the tablespaces whose
    // pages it reads back
    let args = format!("{BINLOG_ARGS} --innodb-buffer-pool-load-at-startup=OFF");
    let mut src = TestServer::start_with_args(Flavor::MariaDb1011, &args).expect("source");
    let spec = LoadSpec {
        rows_per_table: 2_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    // a slow shutdown purges everything: after the restart no purge opens
    // the tables either
    src.sql("SET GLOBAL innodb_fast_shutdown = 0")
        .expect("slow shutdown");
    src.restart().expect("restart");
    let opened = src
        .sql("SELECT COUNT(*) FROM information_schema.INNODB_SYS_TABLESPACES WHERE NAME LIKE 'xbload/%'")
        .expect("the server's list");
    assert_eq!(opened.trim(), "0", "the load's tables are not open yet");
    let target = src.scratch("backup");
    assert_success(&run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await);
    let markers: Vec<_> = files_under(&target)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "del" || e == "ren"))
        .collect();
    assert!(
        markers.is_empty(),
        "no table was dropped or renamed: {markers:?}"
    );
    xb_prepare_and_compare(&src, &target, &["xbload"]).await;
}

/// On a server that writes nothing, the redo copy has nothing to catch up
/// before the locks: the block the log ends in is copied only at the end,
/// and the catch-up does not wait for it (it once spent its whole 5 s of
/// patience there, twice per backup, once with DDL blocked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_servers_backup_locks_without_waiting_on_the_redo_copy() {
    idle_backup_does_not_wait_on_the_redo_copy(Flavor::MariaDb1011).await;
}
