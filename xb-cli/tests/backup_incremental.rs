//! Runbook: the nightly routine of one full backup and incrementals on top,
//! under a write load with DDL between the backups. Each restore point
//! (the full, and the chain up to each incremental) is prepared, started
//! on a fresh server, rolled forward with the binlog from its own
//! coordinates and compared with the source table for table. One
//! incremental goes through a compressed stream and `xb-cli extract`.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::vendor::copy_dir;

/// DDL run on the source after the backup of the same index: what each
/// incremental must carry (new tables copied whole as deltas, a truncated
/// table under a new space id, a dropped and a renamed table, a rebuild).
const BETWEEN: [&[&str]; 3] = [
    &[
        "CREATE TABLE xbload.born1 (id INT PRIMARY KEY, v VARCHAR(30)) ENGINE=InnoDB",
        "INSERT INTO xbload.born1 VALUES (1,'after the full'),(2,'x')",
        "TRUNCATE TABLE xbload.extra1",
        "INSERT INTO xbload.extra1 VALUES (100,'after truncate')",
    ],
    &[
        "DROP TABLE xbload.extra2",
        "RENAME TABLE xbload.extra3 TO xbload.extra3b",
        "ALTER TABLE xbload.born1 ADD COLUMN w INT NOT NULL DEFAULT 5",
    ],
    &[
        "ALTER TABLE xbload.sbtest2 FORCE",
        "CREATE TABLE xbload.born3 (id INT PRIMARY KEY) ENGINE=InnoDB",
        "INSERT INTO xbload.born3 VALUES (3)",
    ],
];

async fn sql_all(conn: &mut mysql_async::Conn, stmts: &[&str]) {
    for sql in stmts {
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Has the server write every dirty page: tables created a moment ago
/// have no page 0 on disk yet, and an incremental copies such a table
/// whole (as `.new`), which is right but not what the checks below look at.
async fn flush_dirty_pages(conn: &mut mysql_async::Conn) {
    conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .await
        .unwrap();
    let sql = "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'";
    for _ in 0..300 {
        let dirty: Option<(String, String)> = conn.query_first(sql).await.unwrap();
        if dirty.is_some_and(|(_, v)| v == "0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")
        .await
        .unwrap();
}

/// Full backup plus three incrementals of `src` under load; the second
/// incremental is a zstd xbstream extracted with `xb-cli extract`.
async fn chain(src: &TestServer, spec: &LoadSpec, extra: &[&str]) -> Vec<PathBuf> {
    prepare(src.opts(), spec).await.expect("load data");
    let mut conn = src.conn().await.unwrap();
    for t in ["extra1", "extra2", "extra3"] {
        sql_all(
            &mut conn,
            &[
                &format!(
                    "CREATE TABLE xbload.{t} (id INT PRIMARY KEY, v VARCHAR(30)) ENGINE=InnoDB"
                ),
                &format!("INSERT INTO xbload.{t} VALUES (1,'{t}'),(2,'{t}')"),
            ],
        )
        .await;
    }
    if extra.contains(&"--page-tracking") {
        conn.query_drop("INSTALL COMPONENT 'file://component_mysqlbackup'")
            .await
            .unwrap();
    }
    flush_dirty_pages(&mut conn).await;
    let load = WriteLoad::start(src.opts(), spec);
    load.wait_for_commits(200).await;
    let full = src.scratch("full");
    let mut args = vec!["--target-dir", full.to_str().unwrap()];
    args.extend_from_slice(extra);
    assert_success(&run_xb_backup(src, &args).await);
    let mut backups = vec![full];
    let fallback = regex::Regex::new(
        r"page tracking covers changes from LSN (\d+), after the base LSN (\d+): every page is read",
    )
    .unwrap();
    for (i, ddl) in BETWEEN.iter().enumerate() {
        sql_all(&mut conn, ddl).await;
        load.wait_for_commits(100).await;
        let base = backups.last().unwrap().to_str().unwrap().to_string();
        let inc = src.scratch(&format!("inc{}", i + 1));
        if i == 1 {
            let stream = src.scratch("inc2.xbstream");
            // this one reads every page, whatever `extra` says, and goes
            // through compression and encryption
            let key = src.scratch("inc2.key");
            std::fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
            let key = key.to_string_lossy().into_owned();
            let args = [
                "--stream=xbstream",
                "--compress=zstd",
                "--encrypt=AES256",
                "--encrypt-key-file",
                &key,
                "--incremental-basedir",
                &base,
            ];
            let out = run_xb_backup_to_file(src, &args, &stream).await;
            assert_success(&out);
            let x = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
                .arg("extract")
                .arg(&stream)
                .arg("-C")
                .arg(&inc)
                .args([
                    "--decompress",
                    "--decrypt=AES256",
                    "--encrypt-key-file",
                    &key,
                ])
                .output()
                .unwrap();
            assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
            // deltas compressed and encrypted, their .meta as the vendor
            // tools read it
            let raw = std::fs::read(&stream).unwrap();
            let has = |s: &[u8]| raw.windows(s.len()).any(|w| w == s);
            assert!(
                has(b"sbtest1.ibd.delta.zst.xbcrypt"),
                "the delta is transformed"
            );
            assert!(
                has(b"sbtest1.ibd.meta") && has(b"space_id = "),
                "the .meta is in the clear"
            );
        } else {
            let mut args = vec![
                "--target-dir",
                inc.to_str().unwrap(),
                "--incremental-basedir",
                &base,
            ];
            args.extend_from_slice(extra);
            let out = run_xb_backup(src, &args).await;
            assert_success(&out);
            let err = String::from_utf8_lossy(&out.stderr);
            // the base was tracked, so the server's list is what is read;
            // unless the server had not checkpointed past the start of
            // tracking by the base's end (a server with room in its log
            // may not for minutes, seen on a busy CI machine): then every
            // page is, and the warning must give exactly that reason
            if extra.contains(&"--page-tracking") {
                match fallback.captures(&err) {
                    Some(c) => {
                        let (from, base_lsn): (u64, u64) =
                            (c[1].parse().unwrap(), c[2].parse().unwrap());
                        let cps = std::fs::read_to_string(
                            Path::new(&base).join("xtrabackup_checkpoints"),
                        )
                        .unwrap();
                        assert!(
                            from > base_lsn && cps.contains(&format!("to_lsn = {base_lsn}\n")),
                            "inc{} read every page for a wrong reason:\n{err}\nbase: {cps}",
                            i + 1
                        );
                    }
                    None => assert!(
                        err.contains("changed pages listed by the server")
                            && !err.contains("every page is read"),
                        "inc{} did not use the server's list:\n{err}",
                        i + 1
                    ),
                }
            }
        }
        backups.push(inc);
    }
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    conn.disconnect().await.unwrap();
    backups
}

/// What an incremental holds: deltas and their `.meta`, never a whole
/// `.ibd` of a table that existed at the base, and checkpoints that chain.
fn assert_incremental(base: &Path, inc: &Path, strict: bool) {
    assert_incremental_of(base, inc, "xbload/sbtest1", strict);
}

fn assert_incremental_of(base: &Path, inc: &Path, table: &str, strict: bool) {
    let read = |p: &Path| std::fs::read_to_string(p.join("xtrabackup_checkpoints")).unwrap();
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (b, i) = (read(base), read(inc));
    assert!(i.contains("backup_type = incremental"), "{i}");
    assert_eq!(
        field(&i, "from_lsn"),
        field(&b, "to_lsn"),
        "the chain links"
    );
    let info = std::fs::read_to_string(inc.join("xtrabackup_info")).unwrap();
    assert!(info.contains("incremental = Y"), "{info}");
    let sb = inc.join(format!("{table}.ibd"));
    assert!(!sb.exists(), "{table} is whole in an incremental");
    let meta = std::fs::read_to_string(inc.join(format!("{table}.ibd.meta"))).unwrap();
    assert!(meta.contains("space_id = "), "{meta}");
    let delta = std::fs::metadata(inc.join(format!("{table}.ibd.delta")))
        .unwrap()
        .len();
    let whole = std::fs::metadata(base.join(format!("{table}.ibd")))
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    // a changed-page list names every page flushed since the base, which
    // on a small table under load can be all of it, grown since: only a
    // scan is held to less than the base's table
    if strict {
        assert!(
            delta < whole,
            "the delta ({delta} B) is smaller than the table ({whole} B)"
        );
    }
}

/// The restore point after `incs` incrementals, prepared by mariadb-backup
/// in copies: its prepare moves files out of an incremental directory, as
/// a DBA learns the hard way.
fn vendor_chain(src: &TestServer, backups: &[PathBuf], incs: usize) -> PathBuf {
    let dir = src.scratch(&format!("restore{incs}"));
    copy_dir(&backups[0], &dir).unwrap();
    vendor_prepare(src, &dir);
    for (i, original) in backups[1..=incs].iter().enumerate() {
        let inc = src.scratch(&format!("restore{incs}-inc{}", i + 1));
        copy_dir(original, &inc).unwrap();
        let out = src
            .tool("mariadb-backup")
            .arg("--prepare")
            .arg(format!("--target-dir={}", dir.display()))
            .arg(format!("--incremental-dir={}", inc.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-backup --prepare --incremental-dir={} failed:\n{}",
            inc.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// Pages MySQL 9.7 writes past the log at every `innodb_force_recovery`
/// level (`APPLY_LOG_ONLY_MYSQL` in `xb-core/src/prepare/recovery.rs`):
/// the transaction-system page and `mysql.innodb_dynamic_metadata`'s root.
const MYSQL_OWN_PAGES: [(&str, u64); 2] = [("ibdata1", 5), ("mysql.ibd", 5)];

/// The restore point after `incs` incrementals, prepared by `xb-cli
/// prepare`: the full and every incremental but the last with
/// `--apply-log-only`, after which no page may carry an LSN past the
/// copied log but the few the server always writes (a rolled-back
/// transaction the source committed would: the next incremental's redo
/// then skips those pages).
fn xb_chain(src: &TestServer, backups: &[PathBuf], incs: usize) -> PathBuf {
    let dir = src.scratch(&format!("xb-restore{incs}"));
    copy_dir(&backups[0], &dir).unwrap();
    let step = |inc: Option<&Path>, last: bool| {
        let args: &[&str] = if last { &[] } else { &["--apply-log-only"] };
        let out = xb_prepare_args(src, &dir, args, inc);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "xb-cli prepare {args:?} --incremental-dir {inc:?} failed:\n{stderr}"
        );
        if !last {
            let own: &[(&str, u64)] = match src.flavor() {
                Flavor::MySql97 => &MYSQL_OWN_PAGES,
                _ => &[],
            };
            let above: Vec<_> = pages_above(&dir, prepared_log_end(&stderr))
                .into_iter()
                .filter(|(file, no, _)| {
                    !own.iter()
                        .any(|(name, n)| file.file_name().unwrap() == *name && no == n)
                })
                .collect();
            assert!(above.is_empty(), "pages written past the log: {above:?}");
        }
    };
    step(None, incs == 0);
    for (i, inc) in backups[1..=incs].iter().enumerate() {
        step(Some(inc), i + 1 == incs);
    }
    dir
}

async fn xb_restores_every_point(flavor: Flavor, extra: &[&str]) {
    let src = TestServer::start_with_args(flavor, BINLOG_ARGS).expect("source");
    let spec = LoadSpec::default();
    let backups = chain(&src, &spec, extra).await;
    for pair in backups.windows(2) {
        assert_incremental(&pair[0], &pair[1], extra.is_empty());
    }
    for incs in 0..backups.len() {
        let dir = xb_chain(&src, &backups, incs);
        start_and_compare(&src, &dir, &[&spec.schema], "").await;
    }
}

async fn vendor_restores_every_point(flavor: Flavor) {
    let src = TestServer::start_with_args(flavor, BINLOG_ARGS).expect("source");
    let spec = LoadSpec::default();
    let backups = chain(&src, &spec, &[]).await;
    for pair in backups.windows(2) {
        assert_incremental(&pair[0], &pair[1], true);
    }
    for incs in 0..backups.len() {
        let dir = vendor_chain(&src, &backups, incs);
        start_and_compare(&src, &dir, &[&spec.schema], "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_full_and_three_incrementals_restore_at_each_point_with_mariadb_backup() {
    vendor_restores_every_point(Flavor::MariaDb1011).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb105_chain_restores_at_each_point_with_its_mariadb_backup() {
    vendor_restores_every_point(Flavor::MariaDb105).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb118_chain_restores_at_each_point_with_its_mariadb_backup() {
    vendor_restores_every_point(Flavor::MariaDb118).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_chain_restores_at_each_point_with_xb_prepare() {
    xb_restores_every_point(Flavor::MariaDb1011, &[]).await;
}

/// MySQL 9.7 under a write load with DDL between the backups, the full
/// backup and the first and third incrementals with `--page-tracking`
/// (each incremental reads the server's list of changed pages): each point
/// prepared by xb equals the source. Under
/// load a backup catches transactions the source had prepared but not yet
/// committed; `--apply-log-only` must leave them as they are (the
/// incremental's redo commits them), see `APPLY_LOG_ONLY_MYSQL` in
/// `xb-core/src/prepare/recovery.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_chain_under_load_restores_at_each_point_with_xb_prepare() {
    xb_restores_every_point(Flavor::MySql97, &["--page-tracking"]).await;
}

/// MySQL 9.7 with `--page-tracking`: a full backup and two incrementals
/// with DML and DDL between them on a quiet server (one tracked, one
/// reading every page), prepared by xb, equal the source. The tracked one
/// reads the server's list: a quiet server is where a list bounded by an
/// LSN never becomes available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_chain_with_page_tracking_restores_with_xb_prepare() {
    let src = TestServer::start_with_args(Flavor::MySql97, BINLOG_ARGS).expect("source");
    let mut conn = src.conn().await.unwrap();
    sql_all(
        &mut conn,
        &[
            "INSTALL COMPONENT 'file://component_mysqlbackup'",
            "CREATE DATABASE q",
            "CREATE TABLE q.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200)) ENGINE=InnoDB",
            "INSERT INTO q.t (v) VALUES (REPEAT('a',200)),(REPEAT('b',200))",
            "CREATE TABLE q.gone (id INT PRIMARY KEY) ENGINE=InnoDB",
            "CREATE TABLE q.cut (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO q.cut VALUES (1),(2)",
        ],
    )
    .await;
    for _ in 0..10 {
        sql_all(&mut conn, &["INSERT INTO q.t (v) SELECT v FROM q.t"]).await;
    }
    flush_dirty_pages(&mut conn).await;
    // the full backup waits (30 s at most) for the checkpoint to pass the
    // start of tracking; a quiet server that keeps a few pages dirty may
    // not get there in time (the backup then warns, and no incremental on
    // it can be tracked), so the server writes its pages out meanwhile
    sql_all(&mut conn, &["SET GLOBAL innodb_max_dirty_pages_pct = 0"]).await;
    let dir = |n: &str| src.scratch(n).to_string_lossy().into_owned();
    let (full, inc1, inc2) = (dir("full"), dir("inc1"), dir("inc2"));
    let tracked = ["--page-tracking"];
    assert_success(
        &run_xb_backup(
            &src,
            &[&["--target-dir", full.as_str()][..], &tracked].concat(),
        )
        .await,
    );
    sql_all(
        &mut conn,
        &["SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT"],
    )
    .await;
    sql_all(
        &mut conn,
        &[
            "UPDATE q.t SET v = 'changed' WHERE id % 97 = 0",
            "CREATE TABLE q.born (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO q.born VALUES (1)",
            "TRUNCATE TABLE q.cut",
            "INSERT INTO q.cut VALUES (9)",
        ],
    )
    .await;
    flush_dirty_pages(&mut conn).await;
    let out = run_xb_backup(
        &src,
        &[
            &[
                "--target-dir",
                inc1.as_str(),
                "--incremental-basedir",
                full.as_str(),
            ][..],
            &tracked,
        ]
        .concat(),
    )
    .await;
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed pages listed by the server") && !err.contains("every page is read"),
        "the tracked incremental did not use the server's list:\n{err}"
    );
    sql_all(
        &mut conn,
        &[
            "DROP TABLE q.gone",
            "UPDATE q.t SET v = 'again' WHERE id % 89 = 0",
            "ALTER TABLE q.t ADD COLUMN w INT NOT NULL DEFAULT 3",
        ],
    )
    .await;
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            inc2.as_str(),
            "--incremental-basedir",
            inc1.as_str(),
        ],
    )
    .await;
    assert_success(&out);
    let backups: Vec<PathBuf> = [full, inc1, inc2].iter().map(PathBuf::from).collect();
    for pair in backups.windows(2) {
        assert_incremental_of(&pair[0], &pair[1], "q/t", false);
    }
    conn.disconnect().await.unwrap();
    let restored = xb_chain(&src, &backups, 2);
    start_and_compare(&src, &restored, &["q"], "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn page_tracking_needs_the_component_and_mysql() {
    let my = TestServer::start(Flavor::MySql97).expect("mysql");
    let target = my.scratch("t");
    let out = run_xb_backup(
        &my,
        &["--target-dir", target.to_str().unwrap(), "--page-tracking"],
    )
    .await;
    assert_failure_mentions(&out, &["component_mysqlbackup", "INSTALL COMPONENT"]);
    assert!(!target.exists(), "nothing was written");
    let maria = TestServer::start(Flavor::MariaDb1011).expect("mariadb");
    let out = run_xb_backup(
        &maria,
        &["--target-dir", target.to_str().unwrap(), "--page-tracking"],
    )
    .await;
    assert_failure_mentions(&out, &["--page-tracking is MySQL's"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_base_that_does_not_fit_is_refused_before_anything_is_written() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).expect("source");
    let other = TestServer::start(Flavor::MariaDb1011).expect("another server");
    let full = other.scratch("other-full");
    assert_success(&run_xb_backup(&other, &["--target-dir", full.to_str().unwrap()]).await);
    // another server's backup
    let target = src.scratch("inc");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            target.to_str().unwrap(),
            "--incremental-basedir",
            full.to_str().unwrap(),
        ],
    )
    .await;
    assert_failure_mentions(
        &out,
        &["incremental base", "was taken from", "--incremental-lsn"],
    );
    assert_eq!(out.status.code(), Some(25));
    assert!(!target.exists(), "nothing was written");
    // a directory that is no backup
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            target.to_str().unwrap(),
            "--incremental-basedir",
            "/",
        ],
    )
    .await;
    assert_failure_mentions(&out, &["has no xtrabackup_checkpoints"]);
    assert_eq!(out.status.code(), Some(25));
    // an LSN the server has not reached
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            target.to_str().unwrap(),
            "--incremental-lsn",
            "999999999999999",
        ],
    )
    .await;
    assert_failure_mentions(
        &out,
        &["newer than this server's current LSN", "full backup"],
    );
    assert!(!target.exists(), "nothing was written");
}
