//! Runbook: before the first nightly backup of a server, the DBA runs
//! `xb-cli backup --dry-run`. It connects, checks, samples the redo the
//! server writes under its load, and says what the backup would copy and
//! lock, without writing a byte to the target or taking a lock. What would
//! make the backup fail comes back as a problem with exit code 3 (a target
//! on a file system too small, an open-files limit too low), or as the very
//! error and code the backup would end with (a user without privileges).
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON on stdout ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The locks the dry run plans, in order.
fn locks_of(doc: &serde_json::Value) -> Vec<&str> {
    doc["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lock"].as_str().unwrap())
        .collect()
}

fn verdict<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_checks_plans_and_touches_nothing() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec {
        rows_per_table: 5_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;

    // under load: everything fine, the redo rate seen, nothing written
    let target = src.scratch("nightly/backup");
    let t = target.to_string_lossy().into_owned();
    let out = run_xb_backup(&src, &["--target-dir", &t, "--dry-run", "--json"]).await;
    assert_success(&out);
    let doc = json_of(&out);
    assert!(!target.exists(), "a dry run writes nothing: {doc}");
    assert!(
        doc["innodb"]["files"].as_u64().unwrap() >= spec.innodb_tables as u64,
        "{doc}"
    );
    assert!(
        doc["redo_bytes_per_s"].as_f64().unwrap() > 0.0,
        "the load's redo: {doc}"
    );
    for name in ["privileges", "TLS", "redo", "open files", "free space"] {
        assert_ne!(verdict(&doc, name)["verdict"], "problem", "{doc}");
    }
    let locks = locks_of(&doc);
    assert_eq!(
        locks,
        [
            "BACKUP STAGE START",
            "BACKUP STAGE FLUSH",
            "BACKUP STAGE BLOCK_DDL",
            "BACKUP STAGE BLOCK_COMMIT"
        ],
        "{doc}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(" xb: would lock BACKUP STAGE BLOCK_COMMIT: blocks commits")
            && stderr.contains(" xb: dry run: nothing in the way of the backup"),
        "{stderr}"
    );
    // and it took no lock: the backup it planned runs and completes next
    load.wait_for_commits(50).await;
    load.stop().await.unwrap();

    // a target on a file system too small for the data: a problem, exit 3
    let mount = src.scratch("small-fs");
    let _fs = SmallFs::mount(&mount, "4m");
    let small = mount.join("backup").to_string_lossy().into_owned();
    let out = run_xb_backup(&src, &["--target-dir", &small, "--dry-run", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let doc = json_of(&out);
    assert_eq!(verdict(&doc, "free space")["verdict"], "problem", "{doc}");
    assert_failure_mentions(&out, &["free space: ", "GiB free on", "hint: "]);

    // an open-files limit too low for the copy workers: a problem, exit 3
    let cmd = with_open_files_limit(
        &xb_backup_command(&src, &["--target-dir", &t, "--dry-run", "--parallel", "8"]),
        48,
    );
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_failure_mentions(
        &out,
        &["open files: the open-files limit is 48", "ulimit -n"],
    );

    // a user without the privileges: the backup's own error and code
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("CREATE USER 'weak'@'%' IDENTIFIED BY 'weak'")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["backup", "--host", "127.0.0.1", "--port"])
        .arg(src.port().to_string())
        .args([
            "--user",
            "weak",
            "--password=weak",
            "--dry-run",
            "--target-dir",
        ])
        .arg(&target);
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(12), "{out:?}");
    assert_failure_mentions(&out, &["privilege", "RELOAD"]);
    assert!(!target.exists());
}

/// `cmd` started by a shell that lowers its open-files limit first, as
/// `ulimit -n` in a DBA's shell does.
fn with_open_files_limit(cmd: &std::process::Command, n: u64) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    sh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_on_mysql_plans_the_instance_lock_and_log_status() {
    let src = TestServer::start(Flavor::MySql97).unwrap();
    let mut conn = src.conn().await.unwrap();
    conn.query_drop(
        "CREATE DATABASE shop; CREATE TABLE shop.notes (id INT PRIMARY KEY) ENGINE=MyISAM",
    )
    .await
    .unwrap();
    conn.disconnect().await.unwrap();
    let target = src.scratch("backup");
    let out = run_xb_backup(
        &src,
        &[
            "--target-dir",
            &target.to_string_lossy(),
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_success(&out);
    let doc = json_of(&out);
    let locks = locks_of(&doc);
    assert_eq!(
        locks,
        [
            "LOCK INSTANCE FOR BACKUP",
            "FLUSH TABLES … WITH READ LOCK on the non-transactional tables",
            "performance_schema.log_status"
        ],
        "{doc}"
    );
    assert!(doc["redo_capacity"].as_u64().unwrap() > 0, "{doc}");
    assert!(!target.exists());
}
