//! Runbook: tables dropped while the backup copies (MySQL 9.7 with
//! `--lock-ddl-per-table`, where only the InnoDB tables are protected from
//! DDL until the end). Their files were listed at the start and are gone
//! when their turn comes: the backup completes, and tells the DBA which
//! files it did not find, in its closing line and in `--json`.
//!
//! (On MariaDB, and on MySQL with the default `LOCK INSTANCE FOR BACKUP`,
//! a DROP TABLE waits for the backup lock until the copy is over, so no
//! file can vanish there.)
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, prepare};
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_dropped_during_the_copy_are_reported_as_vanished() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    prepare(src.opts(), &LoadSpec::default())
        .await
        .expect("load data");
    let mut conn = src.conn().await.unwrap();
    for t in ["gone1", "gone2"] {
        conn.query_drop(format!(
            "CREATE TABLE xbload.{t} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM"
        ))
        .await
        .unwrap();
        conn.query_drop(format!("INSERT INTO xbload.{t} VALUES (1,'a'),(2,'b')"))
            .await
            .unwrap();
    }

    // throttled, so the DROP lands while the InnoDB files are copied, after
    // the MyISAM files were listed and before their turn
    let target = src.scratch("backup");
    let child =
        spawn_throttled_backup(&src, &target, "8", &["--lock-ddl-per-table", "--json"]).await;
    conn.query_drop("SET SESSION lock_wait_timeout = 10")
        .await
        .unwrap();
    conn.query_drop("DROP TABLE xbload.gone1, xbload.gone2")
        .await
        .expect("MyISAM tables are not locked by --lock-ddl-per-table");
    assert!(
        !data_copy_done(&target),
        "the DROP must land during the copy: make the copy slower"
    );
    let out = finish_within(child, Duration::from_secs(300)).await;
    assert_success(&out);
    conn.disconnect().await.unwrap();

    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let vanished: Vec<&str> = summary["vanished"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"vanished\" list in {summary}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "xbload/gone1.MYD",
        "xbload/gone1.MYI",
        "xbload/gone2.MYD",
        "xbload/gone2.MYI",
    ] {
        assert!(vanished.contains(&f), "{f} not in {vanished:?}");
        assert!(!target.join(f).exists(), "{f} cannot be in the backup");
    }
    assert!(
        vanished.iter().all(|f| f.starts_with("xbload/gone")),
        "only the dropped tables vanished: {vanished:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let closing = format!(
        "{} files vanished during the copy (dropped tables): xbload/gone1",
        vanished.len()
    );
    assert!(
        stderr.contains(&closing),
        "closing line: {closing:?}\n{stderr}"
    );
    assert!(!target.join(INCOMPLETE_MARKER).exists());
}

/// The InnoDB copy is over once the backup holds non-InnoDB files.
fn data_copy_done(target: &std::path::Path) -> bool {
    target.join("xbload").join("sbtest1.ibd").exists() && target.join("mysql.ibd").exists()
}
