//! Runbook: a MySQL-family server with the TokuDB plugin, backed up hot.
//!
//! No TokuDB server can be installed anywhere, so the server here is two
//! things behind one port: the TokuDB simulator (`xb-tokusim`), which
//! answers the plugin probe, the `@@tokudb_*` variables and the checkpoint
//! lock and keeps rewriting its `.tokudb` files and appending to its logs,
//! in front of a real MySQL 9.7 under write load, which gets every other
//! statement. So the TokuDB steps run inside the real backup flow (redo
//! copy, backup lock, binlog coordinates) and the restore is still proven on
//! a real server:
//!
//! 1. the six TokuDB steps happen in order, between `LOCK INSTANCE FOR
//!    BACKUP` and `UNLOCK INSTANCE`, with `log_status` read under the read lock;
//! 2. the `.tokudb` files in the backup are the ones the checkpoint lock
//!    froze, and the `.tokulog` files hold every record up to the read lock;
//! 3. `xtrabackup_info` says TokuDB files are included;
//! 4. `xb-cli prepare`, a server on the backup, binlog replay: every InnoDB
//!    table equals the source;
//! 5. a server without the plugin never receives a TokuDB statement;
//! 6. a dropped connection, a refused read lock, a connection lost under the
//!    read lock and a full target each fail the backup with a clear error,
//!    leave it marked incomplete, and leave no lock behind, TokuDB's or the
//!    real server's.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;
use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};
use xb_tokusim::engine::{parse_data_file, parse_log_records};
use xb_tokusim::{Backend, Fault, PluginState, SimConfig, TokuSim};

/// The simulator in front of `src`, TokuDB files in `src`'s datadir.
async fn toku_in_front_of(src: &TestServer, config: SimConfig) -> TokuSim {
    let config = SimConfig {
        backend: Some(Backend {
            opts: src.opts(),
            datadir: src.datadir().to_path_buf(),
        }),
        ..config
    };
    let sim = TokuSim::start(config).await.unwrap();
    // the engine is live before the backup starts
    assert!(
        sim.wait_for(Duration::from_secs(10), |s| s.activity().0 > 5)
            .await,
        "the simulated TokuDB writer must be rewriting its files"
    );
    sim
}

/// `xb-cli backup` against the simulator's port.
async fn xb_backup_via(sim: &TokuSim, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.arg("backup")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(sim.addr().port().to_string())
        .args(["--user", "xb", "--password=xb"])
        .args(extra)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap()
}

/// Index of the first statement equal to `sql`, failing the test if absent.
fn position(statements: &[String], sql: &str) -> usize {
    statements
        .iter()
        .position(|s| s.eq_ignore_ascii_case(sql))
        .unwrap_or_else(|| panic!("{sql:?} was never sent; statements: {statements:#?}"))
}

/// Both TokuDB locks are gone on the simulator, and the real server takes
/// a write (so its read lock is gone too).
async fn assert_no_lock_left(sim: &TokuSim, src: &TestServer) {
    assert!(
        sim.wait_for(Duration::from_secs(10), |s| s
            .checkpoint_lock_holders()
            .is_empty()
            && s.read_lock_holders().is_empty())
            .await,
        "TokuDB locks left behind: checkpoint {:?}, read {:?}",
        sim.checkpoint_lock_holders(),
        sim.read_lock_holders()
    );
    let mut c = src.conn().await.unwrap();
    c.query_drop("SET SESSION lock_wait_timeout = 10")
        .await
        .unwrap();
    c.query_drop("CREATE DATABASE IF NOT EXISTS lockcheck")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE IF NOT EXISTS lockcheck.t (i INT) ENGINE=InnoDB")
        .await
        .unwrap();
    c.query_drop("INSERT INTO lockcheck.t VALUES (1)")
        .await
        .expect("the real server must take writes after a failed backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokudb_steps_run_inside_the_backup_and_the_restore_equals_the_source() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec {
        non_innodb: true,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.expect("load data");
    let sim = toku_in_front_of(&src, SimConfig::default()).await;
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(200).await;
    let target = src.scratch("backup");
    let out = xb_backup_via(&sim, &["--target-dir", &target.to_string_lossy(), "--json"]).await;
    assert_success(&out);
    load.wait_for_commits(100).await;
    load.stop().await.expect("load ran without errors");

    // 1. the order of the steps inside the backup
    let st = sim.statements();
    let order = [
        "LOCK INSTANCE FOR BACKUP",
        xb_tokudb::CHECKPOINT_LOCK_ON,
        xb_tokudb::READ_LOCK,
        "SELECT LOCAL, STORAGE_ENGINES FROM performance_schema.log_status",
        xb_tokudb::UNLOCK_TABLES,
        xb_tokudb::CHECKPOINT_LOCK_OFF,
        "UNLOCK INSTANCE",
    ];
    let at: Vec<usize> = order.iter().map(|s| position(&st, s)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "steps out of order: {:?}",
        order.iter().zip(&at).collect::<Vec<_>>()
    );
    assert_eq!(
        st.iter()
            .filter(|s| s.eq_ignore_ascii_case(xb_tokudb::READ_LOCK))
            .count(),
        1,
        "one read lock, the TokuDB sequence's, also covers the MyISAM table"
    );

    // 2. data files as frozen by the checkpoint lock; logs up to the read lock
    let frozen = assert_toku_files(&sim, &target, "", "");
    // 3. the metadata
    let info = std::fs::read_to_string(target.join("xtrabackup_info")).unwrap();
    assert!(info.contains("tokudb_included = 1"), "{info}");
    assert!(
        info.contains(&format!("tokudb_data_files = {}", frozen.len())),
        "{info}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tokudb"]["data_files"], frozen.len());

    // 4. InnoDB and MyISAM restore to the source
    drop(sim);
    xb_prepare_and_compare(&src, &target, &[&spec.schema]).await;
}

/// The TokuDB files under `root` (data files under `data_prefix`, logs under
/// `log_prefix`) are the data files as the checkpoint lock froze them and
/// every log record up to the read lock; returns the frozen generations.
fn assert_toku_files(
    sim: &TokuSim,
    root: &Path,
    data_prefix: &str,
    log_prefix: &str,
) -> std::collections::BTreeMap<String, u64> {
    let frozen = sim.generations_at_checkpoint_lock().unwrap();
    assert!(
        sim.generations_now().values().sum::<u64>() > frozen.values().sum::<u64>(),
        "the engine must have gone on rewriting after the backup, or the check proves nothing"
    );
    for (rel, generation) in &frozen {
        let bytes = std::fs::read(root.join(data_prefix).join(rel)).unwrap();
        assert_eq!(
            parse_data_file(&bytes),
            Some(*generation),
            "{rel} must be the untorn file of the checkpoint lock"
        );
    }
    let last = sim.log_seq_at_read_lock().unwrap();
    let log_dir = root.join(log_prefix);
    let mut logs: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tokulog"))
        .collect();
    logs.sort();
    let records: Vec<u64> = logs
        .iter()
        .flat_map(|n| parse_log_records(&std::fs::read(log_dir.join(n)).unwrap()).unwrap())
        .collect();
    assert_eq!(
        records,
        (1..=last).collect::<Vec<_>>(),
        "TokuDB log records 1..={last} exactly"
    );
    frozen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokudb_dirs_outside_the_datadir_go_through_a_compressed_stream() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let config = SimConfig {
        separate_data_dir: true,
        separate_log_dir: true,
        ..SimConfig::default()
    };
    let sim = toku_in_front_of(&src, config).await;
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(100).await;
    let stream = src.scratch("backup.xbstream");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.arg("backup")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(sim.addr().port().to_string())
        .args([
            "--user",
            "xb",
            "--password=xb",
            "--stream=xbstream",
            "--compress=zstd",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stream).unwrap());
    let out = tokio::task::spawn_blocking(move || output_of(cmd))
        .await
        .unwrap();
    assert_success(&out);
    load.stop().await.expect("load ran without errors");
    let raw = std::fs::read(&stream).unwrap();
    assert!(
        raw.windows(20).any(|w| w == b"tokudb.directory.zst"),
        "TokuDB files go through the compression stage too"
    );
    let target = src.scratch("extracted");
    let ex = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("extract")
        .arg(&stream)
        .arg("-C")
        .arg(&target)
        .arg("--decompress")
        .output()
        .unwrap();
    assert!(
        ex.status.success(),
        "extract: {}",
        String::from_utf8_lossy(&ex.stderr)
    );
    assert_toku_files(
        &sim,
        &target,
        xb_tokudb::DATA_DIR_PREFIX,
        xb_tokudb::LOG_DIR_PREFIX,
    );
    drop(sim);
    xb_prepare_and_compare(&src, &target, &[&spec.schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_reporting_tokudb_is_refused_before_any_lock() {
    let src = TestServer::start(Flavor::MariaDb1011).expect("source");
    let sim = toku_in_front_of(&src, SimConfig::default()).await;
    let target = src.scratch("backup");
    let out = xb_backup_via(&sim, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(&out, &["unsupported", "TokuDB"]);
    let st = sim.statements();
    assert!(
        !st.iter()
            .any(|s| s.starts_with("BACKUP STAGE") && s != "BACKUP STAGE END"
                || s.contains("CHECKPOINT_LOCK=ON")),
        "nothing may be locked: {st:#?}"
    );
    assert!(target.join(INCOMPLETE_MARKER).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_without_tokudb_never_receives_a_tokudb_statement() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    let config = SimConfig {
        plugin: PluginState::Absent,
        ..SimConfig::default()
    };
    let sim = toku_in_front_of(&src, config).await;
    let target = src.scratch("backup");
    let out = xb_backup_via(&sim, &["--target-dir", &target.to_string_lossy()]).await;
    assert_success(&out);
    let toku: Vec<String> = sim
        .statements()
        .into_iter()
        .filter(|s| s.to_ascii_uppercase().contains("TOKUDB"))
        .collect();
    assert_eq!(
        toku,
        vec![
            xb_tokudb::PLUGIN_PROBE
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ],
        "only the plugin probe may mention TokuDB"
    );
    let info = std::fs::read_to_string(target.join("xtrabackup_info")).unwrap();
    assert!(!info.contains("tokudb"), "{info}");
    assert!(!target.join("tokudb.directory").exists());
}

/// One injected failure: the backup fails naming `needles`, the target
/// says it is incomplete, no lock is left.
async fn failing_backup(src: &TestServer, fault: Fault, needles: &[&str]) {
    let sim = toku_in_front_of(src, SimConfig::default()).await;
    sim.inject(fault.clone());
    let target = src.scratch(&format!("backup-{}", sim.addr().port()));
    let out = xb_backup_via(&sim, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(&out, needles);
    assert!(
        target.join(INCOMPLETE_MARKER).exists(),
        "{fault:?}: a failed backup must say it is incomplete"
    );
    assert!(!target.join("xtrabackup_info").exists());
    assert_no_lock_left(&sim, src).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_during_the_tokudb_steps_release_every_lock() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    let spec = LoadSpec::default();
    prepare(src.opts(), &spec).await.expect("load data");
    failing_backup(
        &src,
        Fault::DropAfter {
            needle: xb_tokudb::CHECKPOINT_LOCK_ON.into(),
        },
        &["TOKUDB_CHECKPOINT_LOCK", "hint:"],
    )
    .await;
    failing_backup(
        &src,
        Fault::ErrorOn {
            needle: xb_tokudb::READ_LOCK.into(),
        },
        &["FLUSH TABLES WITH READ LOCK", "hint:"],
    )
    .await;
    failing_backup(
        &src,
        Fault::DropAfter {
            needle: "performance_schema.log_status".into(),
        },
        &["log_status", "hint:"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_that_fills_up_during_the_tokudb_copy_fails_and_releases_the_lock() {
    let src = TestServer::start(Flavor::MySql97).expect("source");
    // room for everything but a big TokuDB table
    let innodb = innodb_bytes(src.datadir());
    let mount = src.scratch("small-fs");
    let _fs = SmallFs::mount(&mount, &format!("{}m", (innodb >> 20) + 48));
    let sim = toku_in_front_of(&src, SimConfig::default()).await;
    let big = std::fs::File::create(src.datadir().join("_big_main_9_1_1d.tokudb")).unwrap();
    big.set_len(256 << 20).unwrap();
    let target = mount.join("backup");
    let out = xb_backup_via(&sim, &["--target-dir", &target.to_string_lossy()]).await;
    assert_failure_mentions(&out, &["_big_main_9_1_1d.tokudb", "space", "hint:"]);
    assert!(target.join(INCOMPLETE_MARKER).exists());
    let st = sim.statements();
    assert!(
        position(&st, xb_tokudb::CHECKPOINT_LOCK_OFF)
            > position(&st, xb_tokudb::CHECKPOINT_LOCK_ON)
    );
    assert_no_lock_left(&sim, &src).await;
}

/// Bytes of the InnoDB files a backup of a fresh server copies.
fn innodb_bytes(datadir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![datadir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                if name != "#innodb_redo" && name != "#innodb_temp" {
                    dirs.push(e.path());
                }
            } else if name.ends_with(".ibd")
                || name.starts_with("ibdata")
                || name.starts_with("undo_")
            {
                total += meta.len();
            }
        }
    }
    total
}
