//! Runbooks: backups straight into object storage, on a real MariaDB 10.11
//! and real object servers started by `scripts/objstore.sh` (s3s-fs for S3,
//! Azurite for Azure Blob).
//!
//! A DBA sends the nightly backup (compressed, encrypted) and an
//! incremental on top of it into a bucket while the server takes writes,
//! lists the bucket, downloads the full and the incremental and restores
//! them: the tables equal the source's. A store that dies mid-backup, a
//! killed xb, wrong credentials, a missing bucket all fail loudly and never
//! leave something `xb-cli` would restore; a slow link only makes it slower.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{
    BACKUP_LIMIT, BINLOG_ARGS, assert_failure_mentions, assert_success, finish_within_on,
    start_and_compare, wait_until, xb_backup_command, xb_prepare_args,
};
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::objstore::{SlowLink, StoreKind, StoreServer};
use xb_testing::server::{Flavor, TestServer};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn xb(store_env: &[(&'static str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(args)
        .envs(store_env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `xb-cli backup --target URL EXTRA…` with the store's environment, in
/// the background, its output captured.
fn spawn_backup_to(
    src: &TestServer,
    store_env: &[(&'static str, String)],
    url: &str,
    extra: &[&str],
) -> tokio::process::Child {
    let mut args = vec!["--target", url];
    args.extend_from_slice(extra);
    let mut cmd = xb_backup_command(src, &args);
    cmd.envs(store_env.iter().map(|(k, v)| (*k, v.as_str())));
    tokio::process::Command::from(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn backup_to(
    src: &TestServer,
    store_env: &[(&'static str, String)],
    url: &str,
    extra: &[&str],
) -> Output {
    finish_within_on(
        src,
        spawn_backup_to(src, store_env, url, extra),
        BACKUP_LIMIT,
    )
    .await
}

/// `xb-cli list URL --json`, parsed.
fn listing(store_env: &[(&'static str, String)], url: &str) -> Vec<serde_json::Value> {
    let out = xb(store_env, &["list", url, "--json"]);
    assert_success(&out);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

fn entry<'a>(list: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list:?}"))
}

fn extract_from(store_env: &[(&'static str, String)], url: &str, dir: &Path) -> Output {
    let d = dir.to_string_lossy().into_owned();
    xb(
        store_env,
        &[
            "extract",
            "--from",
            url,
            "-C",
            &d,
            "--decompress",
            "--decrypt",
            "AES256",
            "--encrypt-key",
            KEY,
            "--parallel",
            "4",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nightly_backup_and_an_incremental_go_to_s3_under_load_and_restore_equal() {
    let s3 = StoreServer::start(StoreKind::S3).unwrap();
    s3.make_bucket("backups").unwrap();
    let env = s3.env();
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    let spec = LoadSpec {
        aria: true,
        non_innodb: true,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(300).await;
    // small parts, so the system tablespace and the redo go up as
    // multipart uploads, several parts in flight
    let opts = [
        "--compress",
        "--encrypt",
        "AES256",
        "--encrypt-key",
        KEY,
        "--parallel",
        "4",
        "--object-part-size",
        "5",
        "--object-concurrency",
        "3",
    ];
    let full = backup_to(&src, &env, "s3://backups/db1/full", &opts).await;
    if !full.status.success() {
        eprintln!("DIAG {}", s3.diagnosis());
    }
    assert_success(&full);
    assert!(String::from_utf8_lossy(&full.stderr).contains("completed OK"));
    load.wait_for_commits(300).await;
    let mut inc_opts = opts.to_vec();
    inc_opts.extend(["--incremental-basedir", "s3://backups/db1/full"]);
    let inc = backup_to(&src, &env, "s3://backups/db1/inc1", &inc_opts).await;
    assert_success(&inc);
    load.wait_for_commits(200).await;
    load.stop().await.expect("load ran without errors");

    // the bucket as a DBA sees it
    let list = listing(&env, "s3://backups/db1");
    assert_eq!(list.len(), 2, "{list:?}");
    let (f, i) = (entry(&list, "full"), entry(&list, "inc1"));
    assert_eq!(f["complete"], true);
    assert_eq!(f["backup_type"], "full-backuped");
    assert_eq!(i["complete"], true);
    assert_eq!(i["backup_type"], "incremental");
    assert_eq!(
        i["from_lsn"], f["to_lsn"],
        "the incremental starts where the full ends"
    );
    assert!(f["bytes"].as_u64().unwrap() > 1 << 20, "{f}");
    let table = xb(&env, &["list", "s3://backups/db1"]);
    assert_success(&table);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("inc1") && table.contains("complete"),
        "{table}"
    );

    // download both, checked against their manifests, and restore the chain
    let base = src.scratch("restore");
    let incdir = src.scratch("inc1");
    assert_success(&extract_from(&env, "s3://backups/db1/full", &base));
    assert_success(&extract_from(&env, "s3://backups/db1/inc1", &incdir));
    assert!(base.join("ibdata1").exists() && !base.join("ibdata1.zst.xbcrypt").exists());
    let out = xb_prepare_args(&src, &base, &["--apply-log-only"], None);
    assert_success(&out);
    let out = xb_prepare_args(&src, &base, &[], Some(&incdir));
    assert_success(&out);
    start_and_compare(&src, &base, &[&spec.schema], "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_cut_short_by_a_dead_store_or_a_killed_xb_is_never_restored() {
    let s3 = StoreServer::start(StoreKind::S3).unwrap();
    s3.make_bucket("backups").unwrap();
    let env = s3.env();
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec {
        rows_per_table: 20_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.unwrap();
    let objects = |name: &str| {
        let dir = s3.bucket_dir("backups").join(name);
        walk(&dir)
    };

    // 1. xb killed (SIGKILL) in the middle of its copy
    let slow = ["--throttle", "2", "--parallel", "1"];
    let mut child = spawn_backup_to(&src, &env, "s3://backups/db1/killed", &slow);
    wait_until("the first data objects", Duration::from_secs(60), || {
        objects("db1/killed").iter().any(|p| p.ends_with(".ibd"))
    })
    .await;
    child.start_kill().unwrap();
    let _ = child.wait().await;

    // 2. the store dies under a running backup
    let mut cut = slow.to_vec();
    cut.extend(["--object-retry-timeout", "5"]);
    let child = spawn_backup_to(&src, &env, "s3://backups/db1/cut", &cut);
    wait_until("the first data objects", Duration::from_secs(60), || {
        objects("db1/cut").iter().any(|p| p.ends_with(".ibd"))
    })
    .await;
    s3.kill().unwrap();
    let out = finish_within_on(&src, child, BACKUP_LIMIT).await;
    assert_failure_mentions(&out, &["object store s3://backups/db1/cut", "failed"]);
    assert_eq!(out.status.code(), Some(20), "a target failure's exit code");
    // the store comes back: both are there, marked incomplete, and refused
    s3.restart().unwrap();
    let list = listing(&env, "s3://backups/db1");
    for name in ["killed", "cut"] {
        assert_eq!(entry(&list, name)["complete"], false, "{list:?}");
        let dir = src.scratch(&format!("x-{name}"));
        let out = xb(
            &env,
            &[
                "extract",
                "--from",
                &format!("s3://backups/db1/{name}"),
                "-C",
                &dir.to_string_lossy(),
            ],
        );
        assert_failure_mentions(&out, &["is not a complete backup"]);
        assert!(
            walk(&dir).is_empty(),
            "files extracted from an incomplete backup"
        );
    }
    // an incomplete backup is no base for an incremental either
    let out = backup_to(
        &src,
        &env,
        "s3://backups/db1/inc",
        &["--incremental-basedir", "s3://backups/db1/cut"],
    )
    .await;
    assert_failure_mentions(&out, &["did not complete"]);
    // the same name again is refused; a new name succeeds
    let out = backup_to(&src, &env, "s3://backups/db1/cut", &[]).await;
    assert_failure_mentions(&out, &["s3://backups/db1/cut", "not empty"]);
    let out = backup_to(&src, &env, "s3://backups/db1/rerun", &[]).await;
    assert_success(&out);
    assert_eq!(
        entry(&listing(&env, "s3://backups/db1"), "rerun")["complete"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_and_a_missing_bucket_are_named_before_anything_is_copied() {
    let s3 = StoreServer::start(StoreKind::S3).unwrap();
    s3.make_bucket("backups").unwrap();
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();

    let mut env = s3.env();
    for kv in &mut env {
        if kv.0 == "AWS_SECRET_ACCESS_KEY" {
            kv.1 = "not-the-secret".into();
        }
    }
    let out = backup_to(&src, &env, "s3://backups/db1/full", &[]).await;
    assert_failure_mentions(&out, &["refused the credentials", "AWS_SECRET_ACCESS_KEY"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("not-the-secret"),
        "the secret was printed"
    );
    assert_eq!(out.status.code(), Some(20));

    let out = backup_to(&src, &s3.env(), "s3://no-such-bucket/db1/full", &[]).await;
    assert_failure_mentions(&out, &["the bucket does not exist", "create the bucket"]);
    assert!(
        walk(&s3.bucket_dir("backups")).is_empty(),
        "objects written"
    );

    let out = backup_to(&src, &s3.env(), "s3://AK:SK@backups/x", &[]).await;
    assert_failure_mentions(&out, &["credentials do not belong in the URL"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_over_a_slow_link_completes() {
    let s3 = StoreServer::start(StoreKind::S3).unwrap();
    s3.make_bucket("backups").unwrap();
    // 4 MiB/s each way, shared by every connection
    let link = SlowLink::start(s3.port(), 4 << 20).unwrap();
    let mut env = s3.env();
    for kv in &mut env {
        if kv.0 == "AWS_ENDPOINT_URL" {
            kv.1 = format!("http://127.0.0.1:{}", link.port());
        }
    }
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec {
        rows_per_table: 20_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.unwrap();
    let started = std::time::Instant::now();
    let out = backup_to(
        &src,
        &env,
        "s3://backups/db1/slow",
        &["--object-part-size", "5", "--object-concurrency", "4"],
    )
    .await;
    assert_success(&out);
    let took = started.elapsed();
    let list = listing(&env, "s3://backups/db1");
    let b = entry(&list, "slow");
    assert_eq!(b["complete"], true);
    // the link was really the limit: the bytes could not pass faster
    let bytes = b["bytes"].as_u64().unwrap();
    assert!(
        took.as_secs_f64() >= bytes as f64 / f64::from(4u32 << 20) * 0.9,
        "{bytes} bytes in {took:?} through a 4 MiB/s link"
    );
    let dir = src.scratch("slow");
    let out = xb(
        &env,
        &[
            "extract",
            "--from",
            "s3://backups/db1/slow",
            "-C",
            &dir.to_string_lossy(),
            "-p",
            "4",
        ],
    );
    assert_success(&out);
    assert!(dir.join("ibdata1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_goes_to_azure_blob_and_restores_equal() {
    let az = StoreServer::start(StoreKind::Azure).unwrap();
    az.make_bucket("backups").unwrap();
    let env = az.env();
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;
    let out = backup_to(
        &src,
        &env,
        "azure://backups/db1/full",
        &["--compress", "--object-part-size", "5"],
    )
    .await;
    assert_success(&out);
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");
    let list = listing(&env, "azure://backups/db1");
    assert_eq!(entry(&list, "full")["complete"], true, "{list:?}");
    let dir = src.scratch("restore");
    let out = xb(
        &env,
        &[
            "extract",
            "--from",
            "azure://backups/db1/full",
            "-C",
            &dir.to_string_lossy(),
            "--decompress",
            "-p",
            "4",
        ],
    );
    assert_success(&out);
    let out = xb_prepare_args(&src, &dir, &[], None);
    assert_success(&out);
    start_and_compare(&src, &dir, &[&spec.schema], "").await;
}

/// Every file under `dir` (none while it does not exist yet).
fn walk(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    common::files_under(dir)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}
