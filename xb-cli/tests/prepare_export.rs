//! Runbook: `xb-cli prepare --export`, then one table at a time imported
//! from the backup into another live server (`DISCARD TABLESPACE`, the
//! `.ibd` and `.cfg` copied in, `IMPORT TABLESPACE`), on MySQL 9.7 and
//! MariaDB 10.11, and the checksum compared with the source's.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{assert_failure_mentions, assert_success, run_xb_backup, xb_prepare_args};
use mysql_async::prelude::Queryable;
use xb_testing::server::{Flavor, TestServer};

/// The exported tables: a secondary index and a few thousand rows, a
/// partitioned one, and one with a column added in place (`INSTANT`),
/// whose rows of two shapes the importing server reads right only with the
/// `.cfg` (MySQL refuses it without).
const TABLES: &[&str] = &["items", "parts", "instant"];

/// The source's schema `xe`: the [`TABLES`], a MyISAM table (no `.cfg`, no
/// warning) and one in the system tablespace (a warning).
async fn fill_source(src: &TestServer) {
    let mut c = src.conn().await.unwrap();
    let shared = if src.flavor().is_mysql() {
        "CREATE TABLE xe.shared (id INT PRIMARY KEY) TABLESPACE innodb_system"
    } else {
        // MariaDB has no TABLESPACE clause: file_per_table off while it is made
        "SET GLOBAL innodb_file_per_table = 0; CREATE TABLE xe.shared (id INT PRIMARY KEY) ENGINE=InnoDB; SET GLOBAL innodb_file_per_table = 1"
    };
    let rows = (1..=3000)
        .map(|n| format!("({}, 'row {n}')", n % 97))
        .collect::<Vec<_>>()
        .join(",");
    for sql in [
        "CREATE DATABASE xe",
        "CREATE TABLE xe.items (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, v VARCHAR(64), KEY k_idx (k)) ENGINE=InnoDB",
        &format!("INSERT INTO xe.items (k, v) VALUES {rows}"),
        "UPDATE xe.items SET v = CONCAT(v, ' updated') WHERE k = 5",
        "DELETE FROM xe.items WHERE k = 7",
        "CREATE TABLE xe.parts (id INT PRIMARY KEY, d VARCHAR(20)) ENGINE=InnoDB PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE)",
        "INSERT INTO xe.parts SELECT id, v FROM xe.items WHERE id < 300",
        "CREATE TABLE xe.instant (id INT PRIMARY KEY, a INT) ENGINE=InnoDB",
        "INSERT INTO xe.instant SELECT id, k FROM xe.items WHERE id < 500",
        "ALTER TABLE xe.instant ADD COLUMN b VARCHAR(20) NOT NULL DEFAULT 'dflt', ALGORITHM=INSTANT",
        "INSERT INTO xe.instant SELECT id, k, 'new' FROM xe.items WHERE id >= 500 AND id < 900",
        "CREATE TABLE xe.plain (id INT PRIMARY KEY) ENGINE=MyISAM",
        "INSERT INTO xe.plain VALUES (1), (2)",
        shared,
        "INSERT INTO xe.shared VALUES (1)",
    ] {
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// `CHECKSUM TABLE xe.t` on `server`.
async fn checksum(server: &TestServer, table: &str) -> Option<u64> {
    let mut c = server.conn().await.unwrap();
    let row: Option<(String, Option<u64>)> = c
        .query_first(format!("CHECKSUM TABLE xe.{table} EXTENDED"))
        .await
        .unwrap();
    row.unwrap().1
}

/// The backup's files of table `t` (its own, or its partitions') ending in `ext`.
fn files_of(backup: &Path, t: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(backup.join("xe"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().to_lowercase();
            p.extension().is_some_and(|x| x == ext)
                && (stem == t || stem.starts_with(&format!("{t}#p#")))
        })
        .collect();
    out.sort();
    out
}

/// Imports `xe.t` from `backup` into `dest` as a DBA would: the source's
/// definition, `DISCARD TABLESPACE`, the `.ibd` files (and `.cfg` files
/// with `with_cfg`) copied into the datadir owned as the datadir is,
/// `IMPORT TABLESPACE`. The import's result.
async fn import(
    src: &TestServer,
    dest: &TestServer,
    backup: &Path,
    t: &str,
    with_cfg: bool,
) -> Result<(), mysql_async::Error> {
    let mut s = src.conn().await.unwrap();
    let (_, create): (String, String) = s
        .query_first(format!("SHOW CREATE TABLE xe.{t}"))
        .await
        .unwrap()
        .unwrap();
    let mut d = dest.conn().await.unwrap();
    d.query_drop("CREATE DATABASE IF NOT EXISTS xe")
        .await
        .unwrap();
    d.query_drop(format!("DROP TABLE IF EXISTS xe.{t}"))
        .await
        .unwrap();
    // a refused import leaves its copied files behind, which DROP TABLE keeps
    let into = dest.datadir().join("xe");
    for ext in ["ibd", "cfg"] {
        for f in files_of(dest.datadir(), t, ext) {
            std::fs::remove_file(f).unwrap();
        }
    }
    d.query_drop("USE xe").await.unwrap();
    d.query_drop(create).await.unwrap();
    d.query_drop(format!("ALTER TABLE xe.{t} DISCARD TABLESPACE"))
        .await
        .unwrap();
    let owner = std::fs::metadata(&into).unwrap();
    let mut files = files_of(backup, t, "ibd");
    if with_cfg {
        files.extend(files_of(backup, t, "cfg"));
    }
    for f in files {
        let to = into.join(f.file_name().unwrap());
        std::fs::copy(&f, &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    d.query_drop(format!("ALTER TABLE xe.{t} IMPORT TABLESPACE"))
        .await
}

async fn export_runbook(flavor: Flavor) {
    let src = TestServer::start(flavor).unwrap();
    fill_source(&src).await;
    let dir = src.scratch("b");
    let dir_s = dir.to_string_lossy().into_owned();
    assert_success(&run_xb_backup(&src, &["--target-dir", &dir_s]).await);
    let dest = TestServer::start(flavor).unwrap();

    // refused before anything changes
    let out = xb_prepare_args(&src, &dir, &["--export", "--apply-log-only"], None);
    assert_failure_mentions(
        &out,
        &["--export cannot go with --apply-log-only", "hint: "],
    );
    assert_eq!(out.status.code(), Some(30));
    let cps = std::fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap();
    assert!(cps.contains("backup_type = full-backuped"), "{cps}");

    let out = xb_prepare_args(&src, &dir, &["--export"], None);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("xb: warning: `xe`.`shared` not exported"),
        "{stderr}"
    );
    assert!(!stderr.contains("`xe`.`plain`"), "{stderr}");
    for t in TABLES {
        let ibd = files_of(&dir, t, "ibd");
        let cfg = files_of(&dir, t, "cfg");
        assert!(!ibd.is_empty(), "{t}: no .ibd");
        let want: Vec<PathBuf> = ibd.iter().map(|p| p.with_extension("cfg")).collect();
        assert_eq!(cfg, want, "{t}: a .cfg beside each .ibd");
    }
    assert!(files_of(&dir, "plain", "cfg").is_empty());

    // without its .cfg, MySQL refuses the table of two row shapes
    // (ER_TABLE_SCHEMA_MISMATCH, "CFG file is must … with row versions");
    // MariaDB imports a table without .cfg by reading the .ibd's own
    // metadata, as it documents
    let without = import(&src, &dest, &dir, "instant", false).await;
    if flavor.is_mysql() {
        match without {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1808, "{e}"),
            other => panic!("MySQL imported an INSTANT table without .cfg: {other:?}"),
        }
    } else {
        without.unwrap();
    }
    for t in TABLES {
        if *t == "parts" && !flavor.is_mysql() {
            // MariaDB 10.11 cannot DISCARD the tablespace of a partitioned
            // table (error 1031); its partitions' .cfg files are checked above
            continue;
        }
        import(&src, &dest, &dir, t, true)
            .await
            .unwrap_or_else(|e| panic!("IMPORT TABLESPACE xe.{t}: {e}"));
        let want = checksum(&src, t).await;
        assert!(want.is_some());
        assert_eq!(checksum(&dest, t).await, want, "xe.{t} imported differs");
    }

    // --export on the prepared backup (XtraBackup allows it): the server
    // starts once more, applies nothing and writes the files again
    for t in TABLES {
        for f in files_of(&dir, t, "cfg") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let out = xb_prepare_args(&src, &dir, &["--export"], None);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was prepared already"), "{stderr}");
    for t in TABLES {
        let want: Vec<PathBuf> = files_of(&dir, t, "ibd")
            .iter()
            .map(|p| p.with_extension("cfg"))
            .collect();
        assert_eq!(files_of(&dir, t, "cfg"), want, "{t}: .cfg again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_97_tables_import_from_an_exported_backup() {
    export_runbook(Flavor::MySql97).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_1011_tables_import_from_an_exported_backup() {
    export_runbook(Flavor::MariaDb1011).await;
}
