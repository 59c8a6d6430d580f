//! Runbook: the weekly proof that the nightly chain restores. A full and two
//! incrementals of a MariaDB 10.11 under write load are verified as one
//! chain (linked in order, or named where they are not), then restored for
//! real with `verify --restore-test`: copied to scratch, prepared by the
//! matching server, every table checked by it. The backups themselves are
//! left as taken. A table the source had already broken is copied
//! faithfully (every checksum agrees) and only the restore test names it.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};

fn verify(src: &TestServer, args: &[&str], dirs: &[&Path]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("verify")
        .args(args)
        .arg("--server-binary")
        .arg(xb_testing::vendor::server_binary(src))
        .arg("--server-defaults-file")
        .arg(src.run_dir().join("my.cnf"))
        .args(dirs)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = common::files_under(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_is_verified_and_restored_in_scratch() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.unwrap();
    let mut conn = src.conn().await.unwrap();
    conn.query_drop(
        "CREATE TABLE xbload.ledger (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=MyISAM; \
         INSERT INTO xbload.ledger SELECT seq, CONCAT('entry ', seq) FROM xbload.seq_1_to_500",
    )
    .await
    .unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;

    let full = src.scratch("sunday");
    let mon = src.scratch("monday");
    let tue = src.scratch("tuesday");
    let mut base = None::<PathBuf>;
    for dir in [&full, &mon, &tue] {
        let d = dir.to_string_lossy().into_owned();
        let mut args = vec!["--target-dir".to_string(), d];
        if let Some(b) = &base {
            args.push(format!("--incremental-basedir={}", b.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_success(&run_xb_backup(&src, &args).await);
        load.wait_for_commits(100).await;
        base = Some(dir.clone());
    }
    load.stop().await.unwrap();

    // the chain in order verifies; out of order, the broken link is named
    let out = verify(&src, &[], &[&full, &mon, &tue]);
    assert!(out.status.success(), "{out:?}");
    let out = verify(&src, &[], &[&full, &tue, &mon]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // the link is broken where Tuesday's from_lsn is not Sunday's to_lsn,
    // or (the checkpoint stood still, the LSNs agree) where Monday ends
    // before Tuesday
    assert!(
        stdout.contains(&format!("FAILED {}: from_lsn", tue.display()))
            || stdout.contains(&format!("FAILED {}: ends at LSN", mon.display())),
        "{stdout}"
    );
    let out = verify(&src, &[], &[&mon, &tue]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a chain starts with a full: {out:?}"
    );

    // restored for real, and the backups left as taken
    let before: Vec<_> = [&full, &mon, &tue].iter().map(|d| files_under(d)).collect();
    let scratch = src.scratch("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let s = scratch.to_string_lossy().into_owned();
    let out = verify(
        &src,
        &["--restore-test", "--scratch", &s, "--json"],
        &[&full, &mon, &tue],
    );
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked = doc["report"]["tables_checked"].as_u64().unwrap();
    assert!(
        checked > spec.innodb_tables as u64,
        "every table of the source, the system's too: {doc}"
    );
    let after: Vec<_> = [&full, &mon, &tue].iter().map(|d| files_under(d)).collect();
    assert!(before == after, "the restore test changed a backup");
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "a passed test leaves no copy behind"
    );

    // a table the source broke: backed up faithfully, caught only by the restore
    let mut conn = src.conn().await.unwrap();
    conn.query_drop("FLUSH TABLES xbload.ledger").await.unwrap();
    conn.disconnect().await.unwrap();
    let myi = src.datadir().join("xbload/ledger.MYI");
    let mut bytes = std::fs::read(&myi).unwrap();
    // the key file's record count (big-endian, after the 24-byte header and
    // the open count, changed and sort-key bytes) now says 505 rows
    bytes[28..36].copy_from_slice(&505u64.to_be_bytes());
    std::fs::write(&myi, bytes).unwrap();
    let broken = src.scratch("wednesday");
    let out = run_xb_backup(&src, &["--target-dir", &broken.to_string_lossy()]).await;
    assert_success(&out);
    let out = verify(&src, &[], &[&broken]);
    assert!(out.status.success(), "every checksum agrees: {out:?}");
    let out = verify(&src, &["--restore-test", "--scratch", &s], &[&broken]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAILED `xbload`.`ledger`: CHECK TABLE")),
        "{stdout}"
    );
    assert!(
        stdout.contains("the restore test's prepared copy is kept in"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        1,
        "kept to be looked at"
    );
}
