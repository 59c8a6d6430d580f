//! Runbook: a backup holds every tablespace the server has, not only the
//! ones a walk of the datadir finds by name, wherever it lives, and
//! restores with them. Never a "completed OK" that restores to a server missing a
//! table or an undo tablespace.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

/// MySQL 9.7: an undo tablespace made with `CREATE UNDO TABLESPACE … '.ibu'`
/// and a general tablespace in the datadir are in the backup, and the
/// restore has the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_undo_and_general_tablespaces_are_in_the_backup_and_restore() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let mut c = src.conn().await.unwrap();
    for sql in [
        "CREATE UNDO TABLESPACE extra_undo ADD DATAFILE 'extra_undo.ibu'",
        "CREATE TABLESPACE shared_ts ADD DATAFILE 'shared_ts.ibd'",
        "CREATE DATABASE ts",
        "CREATE TABLE ts.in_general (id INT PRIMARY KEY, v VARCHAR(40)) TABLESPACE shared_ts",
        "CREATE TABLE ts.per_table (id INT PRIMARY KEY, v VARCHAR(40))",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    for t in ["in_general", "per_table"] {
        c.query_drop(format!(
            "INSERT INTO ts.{t} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
             SELECT i, REPEAT('x', 30) FROM n"
        ))
        .await
        .unwrap();
    }
    drop(c);
    let target = src.scratch("backup");
    let out = run_xb_backup(&src, &["--target-dir", target.to_str().unwrap()]).await;
    assert_success(&out);
    for f in ["extra_undo.ibu", "shared_ts.ibd", "ts/per_table.ibd"] {
        assert!(target.join(f).is_file(), "{f} is missing from the backup");
    }
    xb_prepare_and_compare(&src, &target, &["ts"]).await;
}

/// The write load of the remote-table runbooks: schema `far`, two tables
/// created with `DATA DIRECTORY = remote`.
fn far_load(remote: &Path) -> LoadSpec {
    LoadSpec {
        schema: "far".into(),
        innodb_tables: 2,
        rows_per_table: 1_000,
        writers: 2,
        data_directory: Some(remote.to_path_buf()),
        ..LoadSpec::default()
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
            continue;
        }
        let m = std::fs::metadata(&p).unwrap();
        out.push((p.clone(), std::fs::read(&p).unwrap(), m.modified().unwrap()));
    }
    out.sort();
    out
}

/// Tablespace names and files of `server` (`information_schema.FILES`),
/// temporary ones left out.
async fn mysql_files(server: &TestServer) -> Vec<(String, String, String)> {
    let mut c = server.conn().await.unwrap();
    c.query(
        "SELECT TABLESPACE_NAME, FILE_NAME, FILE_TYPE FROM information_schema.FILES \
         WHERE ENGINE = 'InnoDB' AND FILE_TYPE <> 'TEMPORARY' ORDER BY TABLESPACE_NAME",
    )
    .await
    .unwrap()
}

/// MySQL 9.7 keeping three kinds of tablespace outside its datadir, in a
/// directory of `innodb_directories`: load tables created with `DATA
/// DIRECTORY` (written to during the backup), a general tablespace with an
/// absolute `ADD DATAFILE` and an undo tablespace with an absolute path;
/// one more `DATA DIRECTORY` table is created right before the backup, so
/// its creation is in the copied redo, and dropped on the source after it.
/// `xb-cli prepare`, run with the source stopped and given the source's
/// settings (`innodb_directories` among them), leaves every file of that
/// directory as it was (bytes, times, no new file where the dropped table
/// was); a server started on the prepared backup finds every tablespace
/// inside its datadir and has the source's rows in every table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_tablespaces_outside_the_datadir_are_backed_up_and_restore_after_xb_prepare() {
    let remote_dir = scratch_dir("xb-remote-");
    let remote = remote_dir.path().to_path_buf();
    let r = remote.display();
    let mut src = TestServer::start_with_args(
        Flavor::MySql97,
        &format!("--innodb-directories={r} {BINLOG_ARGS}"),
    )
    .expect("source");
    let mut c = src.conn().await.unwrap();
    for sql in [
        format!("CREATE UNDO TABLESPACE ext_undo ADD DATAFILE '{r}/ext_undo.ibu'"),
        format!("CREATE TABLESPACE ext_gen ADD DATAFILE '{r}/ext_gen.ibd'"),
        "CREATE DATABASE ts".into(),
        "CREATE TABLE ts.in_general (id INT PRIMARY KEY, v VARCHAR(40)) TABLESPACE ext_gen".into(),
        "INSERT INTO ts.in_general WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
         SELECT i, REPEAT('x', 30) FROM n"
            .into(),
    ] {
        c.query_drop(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    drop(c);
    let spec = far_load(&remote);
    let during = remote.join("ts").join("during.ibd");
    let target = backup_under_load_with(
        &src,
        &spec,
        &[],
        &[
            format!(
                "CREATE TABLE ts.during (id INT PRIMARY KEY, v VARCHAR(40)) DATA DIRECTORY = '{r}'"
            ),
            "INSERT INTO ts.during SELECT * FROM ts.in_general".into(),
        ],
    )
    .await;
    // where XtraBackup 8.0 keeps each kind, and the list of where they were
    for f in [
        "ext_undo.ibu",
        "ext_gen.ibd",
        "far/sbtest1.ibd",
        "far/sbtest2.ibd",
        "ts/during.ibd",
    ] {
        assert!(target.join(f).is_file(), "{f} is missing from the backup");
    }
    let list: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(target.join("xtrabackup_tablespaces")).unwrap(),
    )
    .unwrap();
    let mut listed: Vec<(String, String)> = list["external_tablespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("tablespace_name"), s("file_name"))
        })
        .collect();
    listed.sort();
    let mut want: Vec<(String, String)> = mysql_files(&src)
        .await
        .into_iter()
        .filter(|(_, file, _)| file.starts_with(&r.to_string()))
        .map(|(name, file, _)| (name, file))
        .collect();
    want.sort();
    assert_eq!(want.len(), 5, "{want:?}");
    assert_eq!(listed, want);
    // the table's creation is in the copied redo, naming the source's file
    let needle = during.display().to_string();
    let redo_names = std::fs::read_dir(target.join("#innodb_redo"))
        .unwrap()
        .any(|f| {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        });
    assert!(redo_names, "the copied redo should name {needle}");
    let mut c = src.conn().await.unwrap();
    c.query_drop("DROP TABLE ts.during").await.unwrap();
    drop(c);
    assert!(!during.exists());
    // prepare with the source's settings, innodb_directories among them
    let defaults = src.scratch("source-defaults.cnf");
    std::fs::write(
        &defaults,
        format!(
            "!include {}\n[mysqld]\ninnodb-directories={r}\n",
            src.run_dir().join("my.cnf").display()
        ),
    )
    .unwrap();
    src.stop().unwrap();
    let before = snapshot(&remote);
    xb_prepare_with_defaults(&src, &target, &defaults);
    assert!(
        snapshot(&remote) == before,
        "prepare touched the source's files outside its datadir"
    );
    assert!(!during.exists(), "prepare created the dropped table's file");
    src.restart().unwrap();
    start_and_compare(&src, &target, &["far", "ts"], "").await;
    // the restored server keeps every tablespace inside its datadir
    let restored = TestServer::start_on(src.flavor(), &target).expect("restored again");
    let got = mysql_files(&restored).await;
    let names = |v: &[(String, String, String)]| -> Vec<String> {
        v.iter().map(|(n, _, _)| n.clone()).collect()
    };
    assert_eq!(names(&got), names(&mysql_files(&src).await));
    for (name, file, _) in &got {
        assert!(file.starts_with("./"), "{name} at {file}");
    }
    let mut rc = restored.conn().await.unwrap();
    let undo: Option<String> = rc
        .query_first(
            "SELECT STATE FROM information_schema.INNODB_TABLESPACES WHERE NAME = 'ext_undo'",
        )
        .await
        .unwrap();
    assert_eq!(undo.as_deref(), Some("active"));
}

/// MariaDB source (of `flavor`) whose load tables were created with `DATA
/// DIRECTORY` (the datadir holds only their `.isl`), backed up while the
/// load writes to them; returns the source, the remote directory and the
/// backup, checked to hold each table's file where a local one would be
/// and its `.isl` naming the source's file.
async fn remote_tables_backup(flavor: Flavor) -> (TestServer, PathBuf, PathBuf) {
    let src = TestServer::start_with_args(flavor, BINLOG_ARGS).expect("source");
    let remote = src.scratch("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let spec = far_load(&remote);
    let target = backup_under_load(&src, &spec, &[]).await;
    for t in ["sbtest1", "sbtest2"] {
        let source_file = remote.join("far").join(format!("{t}.ibd"));
        assert!(
            source_file.is_file(),
            "the table's file is outside the datadir"
        );
        assert!(!src.datadir().join("far").join(format!("{t}.ibd")).exists());
        assert!(target.join("far").join(format!("{t}.ibd")).is_file());
        let isl = std::fs::read_to_string(target.join("far").join(format!("{t}.isl"))).unwrap();
        assert_eq!(Path::new(isl.trim_end()), source_file);
    }
    (src, remote, target)
}

/// Row counts of the load's tables on `server`.
async fn far_counts(server: &TestServer) -> Vec<u64> {
    let mut c = server.conn().await.unwrap();
    let mut out = Vec::new();
    for t in ["sbtest1", "sbtest2"] {
        let n: Option<u64> = c
            .query_first(format!("SELECT COUNT(*) FROM far.{t}"))
            .await
            .unwrap();
        out.push(n.unwrap());
    }
    out
}

/// MariaDB 10.11 (10.8+ log): see [`remote_tables_restore_after_xb_prepare`].
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_data_directory_tables_are_backed_up_and_restore_after_xb_prepare() {
    remote_tables_restore_after_xb_prepare(Flavor::MariaDb1011).await;
}

/// MariaDB 10.5 (512-byte-block log, where a file name can cross a block
/// boundary): see [`remote_tables_restore_after_xb_prepare`].
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_10_5_data_directory_tables_are_backed_up_and_restore_after_xb_prepare() {
    remote_tables_restore_after_xb_prepare(Flavor::MariaDb105).await;
}

/// Tables created with `DATA DIRECTORY` are backed up under a write load;
/// `xb-cli prepare` recovers the backup's own copies and never opens the
/// source's files (proved with the source stopped: its remote files keep
/// their bytes and times); the `.isl` files still name the source's files
/// afterwards; a restore that places each file in a new directory named
/// by its `.isl` has the source's rows in every table.
async fn remote_tables_restore_after_xb_prepare(flavor: Flavor) {
    let (mut src, remote, target) = remote_tables_backup(flavor).await;
    let names = log_file_names(&target, flavor);
    assert!(
        names.iter().any(|n| Path::new(n).starts_with(&remote)),
        "the copied log should name the source's remote files: {names:?}"
    );
    let isl_before = snapshot_isl(&target);
    src.stop().unwrap();
    let before = snapshot(&remote);
    xb_prepare(&src, &target);
    assert!(
        snapshot(&remote) == before,
        "prepare touched the source's remote files"
    );
    assert_eq!(
        snapshot_isl(&target),
        isl_before,
        ".isl files as the backup had them"
    );
    src.restart().unwrap();
    let placed = place_remote_tables(&target, &src.scratch("restored-remote"));
    assert_eq!(placed.len(), 2);
    start_and_compare(&src, &target, &["far"], "").await;
    let restored = TestServer::start_on(src.flavor(), &target).expect("restored again");
    assert_eq!(far_counts(&restored).await, far_counts(&src).await);
}

/// The same backup prepared by `mariadb-backup --prepare` restores the
/// same way: the vendor's tool needs nothing more from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_data_directory_tables_restore_after_mariadb_backup_prepare() {
    let (mut src, remote, target) = remote_tables_backup(Flavor::MariaDb1011).await;
    src.stop().unwrap();
    let before = snapshot(&remote);
    vendor_prepare(&src, &target);
    assert!(
        snapshot(&remote) == before,
        "prepare touched the source's remote files"
    );
    src.restart().unwrap();
    let placed = place_remote_tables(&target, &src.scratch("restored-remote"));
    assert_eq!(placed.len(), 2);
    for (_, was) in &placed {
        assert!(Path::new(was.trim_end()).starts_with(&remote), "{was}");
    }
    start_and_compare(&src, &target, &["far"], "").await;
}

/// The file names in the FILE_ records of the MariaDB backup's log in
/// `target` (read from a copy, by the parser prepare uses; a 10.5 name may
/// cross a block boundary, so a byte search would miss it).
fn log_file_names(target: &Path, flavor: Flavor) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ib_logfile0");
    std::fs::copy(target.join("ib_logfile0"), &copy).unwrap();
    let names = std::cell::RefCell::new(Vec::new());
    let seen = |n: &[u8]| {
        names
            .borrow_mut()
            .push(String::from_utf8_lossy(n).into_owned());
        None
    };
    if flavor == Flavor::MariaDb105 {
        xb_innodb::redo105_names::rewrite_file_names(&copy, &seen).unwrap();
    } else {
        xb_innodb::redo108_names::rewrite_file_names(&copy, &seen).unwrap();
    }
    names.into_inner()
}

/// Each `.isl` of a backup with its contents.
fn snapshot_isl(target: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(target.join("far")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "isl") {
            out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// MySQL 9.7 initialised with `innodb_undo_directory` and
/// `innodb_data_home_dir` outside its datadir: the system tablespace and
/// the undo tablespaces live elsewhere. They are in the backup, prepare
/// (given the source's own settings, which name those directories) never
/// touches the source's files, and the restore has the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_undo_and_system_tablespaces_outside_the_datadir_restore() {
    let elsewhere = scratch_dir("xb-system-");
    let (undo, home) = (elsewhere.path().join("undo"), elsewhere.path().join("home"));
    for d in [&undo, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    let settings = format!(
        "--innodb-undo-directory={} --innodb-data-home-dir={}",
        undo.display(),
        home.display()
    );
    let mut src =
        TestServer::start_with_args(Flavor::MySql97, &format!("{settings} {BINLOG_ARGS}"))
            .expect("source");
    assert!(
        home.join("ibdata1").is_file(),
        "the system tablespace is outside"
    );
    assert!(
        std::fs::read_dir(&undo).unwrap().count() >= 2,
        "the undo tablespaces are outside"
    );
    let spec = LoadSpec {
        innodb_tables: 2,
        rows_per_table: 1_000,
        writers: 2,
        ..LoadSpec::default()
    };
    let target = backup_under_load(&src, &spec, &[]).await;
    assert!(target.join("ibdata1").is_file(), "{}", target.display());
    src.stop().unwrap();
    let before = snapshot(elsewhere.path());
    let defaults = src.scratch("source-defaults.cnf");
    std::fs::write(
        &defaults,
        format!(
            "!include {}\n[mysqld]\ninnodb-undo-directory={}\ninnodb-data-home-dir={}\n",
            src.run_dir().join("my.cnf").display(),
            undo.display(),
            home.display()
        ),
    )
    .unwrap();
    xb_prepare_with_defaults(&src, &target, &defaults);
    assert!(
        snapshot(elsewhere.path()) == before,
        "prepare touched the source's files"
    );
    src.restart().unwrap();
    start_and_compare(&src, &target, &[&spec.schema], "").await;
}
