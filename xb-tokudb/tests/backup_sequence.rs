//! Runbook: back up a TokuDB server that is busy writing, and check that the
//! copy is the one the locks promise.
//!
//! Every test runs against `xb-tokusim`, a MySQL-protocol server that keeps
//! rewriting its `.tokudb` files unless the checkpoint lock is held and keeps
//! appending to its `.tokulog` files until FLUSH TABLES WITH READ LOCK.

// Test code: helpers outside #[test] fns may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{WatchingCopier, busy_sim, connect, six_steps};
use xb_tokudb::{HookError, NoHook, ReadLockHook, SqlSession, TokuOptions};
use xb_tokusim::engine::{parse_data_file, parse_log_records};
use xb_tokusim::{Event, Outcome, SimConfig};

/// A hook that asks the server, on the backup's own session, whether the
/// checkpoint lock is still held while the read lock is.
#[derive(Default)]
struct AskingHook {
    answer: Arc<Mutex<Option<String>>>,
}

impl<S: SqlSession> ReadLockHook<S> for AskingHook {
    async fn under_read_lock(&mut self, session: &mut S) -> Result<(), HookError> {
        let rows = session
            .query_rows("SHOW VARIABLES LIKE 'tokudb_checkpoint_lock'")
            .await?;
        *self.answer.lock().unwrap() = rows.first().and_then(|r| r.get(1).cloned().flatten());
        Ok(())
    }
}

#[tokio::test]
async fn a_full_backup_sends_the_six_steps_in_order_and_releases_everything() {
    let sim = busy_sim(SimConfig::default()).await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;

    let dirs = xb_tokudb::probe(&mut conn)
        .await
        .unwrap()
        .expect("plugin is active");
    let mut hook = AskingHook::default();
    let copier = Arc::new(WatchingCopier::new(target.path(), sim.clone()));
    let manifest = xb_tokudb::run(
        &mut conn,
        &dirs,
        copier.clone(),
        &mut hook,
        &TokuOptions::default(),
    )
    .await
    .unwrap();

    // The order of the statements, with the hook's query under the read lock.
    let mut expected = six_steps();
    expected.insert(4, "SHOW VARIABLES LIKE 'tokudb_checkpoint_lock'".into());
    assert_eq!(sim.statements(), expected);
    assert_eq!(hook.answer.lock().unwrap().as_deref(), Some("ON"));
    // Timestamps never go backwards.
    let times: Vec<_> = sim
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Statement { at, outcome, .. } => {
                assert_eq!(outcome, Outcome::Ok);
                Some(at)
            }
            Event::SessionEnded { .. } => None,
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    // Data files were copied under the checkpoint lock and before the read
    // lock; log files under both.
    let seen = copier.seen.lock().unwrap().clone();
    let (data, logs): (Vec<_>, Vec<_>) = seen
        .iter()
        .partition(|o| o.rel.ends_with(".tokudb") || o.rel.starts_with("tokudb."));
    assert_eq!(data.len(), 7);
    assert!(
        data.iter().all(|o| o.checkpoint_locked && !o.read_locked),
        "{data:?}"
    );
    assert!(!logs.is_empty());
    assert!(
        logs.iter().all(|o| o.checkpoint_locked && o.read_locked),
        "{logs:?}"
    );

    // Nothing is held afterwards, with the connection still open.
    assert!(sim.checkpoint_lock_holders().is_empty());
    assert!(sim.read_lock_holders().is_empty());

    // The manifest names what was copied, for the backup metadata.
    let rels: Vec<_> = manifest.data_files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(
        rels,
        [
            "_test_t1_main_2_1_1d.tokudb",
            "_test_t1_status_2_1_1d.tokudb",
            "test/t2_main_3_1_1d.tokudb",
            "test/t2_status_3_1_1d.tokudb",
            "tokudb.directory",
            "tokudb.environment",
            "tokudb.rollback",
        ]
    );
    assert!(
        manifest
            .log_files
            .iter()
            .all(|f| f.rel.ends_with(".tokulog27"))
    );
    let info = manifest.info_lines();
    assert!(info.contains("tokudb_included = 1\n"), "{info}");
    assert!(info.contains("tokudb_data_files = 7\n"), "{info}");
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn copied_data_files_are_the_generation_taken_under_the_checkpoint_lock() {
    let sim = busy_sim(SimConfig::default()).await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let dirs = xb_tokudb::probe(&mut conn).await.unwrap().unwrap();
    let copier = Arc::new(WatchingCopier::new(target.path(), sim.clone()));
    xb_tokudb::run(
        &mut conn,
        &dirs,
        copier,
        &mut NoHook,
        &TokuOptions::default().parallel(3),
    )
    .await
    .unwrap();

    let at_lock = sim
        .generations_at_checkpoint_lock()
        .expect("checkpoint lock was taken");
    assert!(
        at_lock.values().all(|g| *g > 1),
        "the writer ran before the lock: {at_lock:?}"
    );
    for (rel, generation) in &at_lock {
        let bytes = fs::read(target.path().join(rel)).unwrap();
        assert_eq!(
            parse_data_file(&bytes),
            Some(*generation),
            "{rel}: torn or from another generation"
        );
    }
    // The files really were live: the server moved on once the lock was off.
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s
            .generations_now()
            .iter()
            .all(|(k, g)| *g > at_lock[k]))
            .await
    );
}

#[tokio::test]
async fn copied_log_files_end_exactly_at_the_read_lock() {
    let sim = busy_sim(SimConfig::default()).await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let dirs = xb_tokudb::probe(&mut conn).await.unwrap().unwrap();
    let log_before = sim.activity().1;
    let copier = Arc::new(WatchingCopier {
        log_records_before_data: log_before + 20,
        ..WatchingCopier::new(target.path(), sim.clone())
    });
    let manifest = xb_tokudb::run(
        &mut conn,
        &dirs,
        copier,
        &mut NoHook,
        &TokuOptions::default(),
    )
    .await
    .unwrap();

    let last = sim.log_seq_at_read_lock().expect("read lock was taken");
    let mut seqs = Vec::new();
    for f in &manifest.log_files {
        let bytes = fs::read(target.path().join(&f.rel)).unwrap();
        seqs.extend(
            parse_log_records(&bytes).unwrap_or_else(|| panic!("{}: partial record", f.rel)),
        );
    }
    // The data copy waited for 20 more records, so the log grew well past
    // what it held when the backup began.
    assert!(
        last >= log_before + 20,
        "only {last} records before the read lock (started at {log_before})"
    );
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "missing or extra log records"
    );
    // Appends resumed after UNLOCK TABLES.
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s.activity().1 > last + 5)
            .await
    );
}

#[tokio::test]
async fn separate_tokudb_dirs_land_under_their_own_names_without_lock_files() {
    let sim = busy_sim(SimConfig {
        separate_data_dir: true,
        separate_log_dir: true,
        ..SimConfig::default()
    })
    .await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let dirs = xb_tokudb::probe(&mut conn).await.unwrap().unwrap();
    let layout = sim.layout();
    assert_eq!(dirs.data_dir, layout.data_dir);
    assert_eq!(dirs.log_dir, layout.log_dir);
    assert_ne!(dirs.data_dir, dirs.datadir);

    let copier = Arc::new(xb_tokudb::LocalDirCopier::new(target.path()));
    let manifest = xb_tokudb::run(
        &mut conn,
        &dirs,
        copier,
        &mut NoHook,
        &TokuOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(sim.statements(), six_steps());
    assert_eq!(manifest.data_files.len(), 7);
    assert!(
        manifest
            .data_files
            .iter()
            .all(|f| f.rel.starts_with("tokudb_data_dir/"))
    );
    assert!(
        manifest
            .log_files
            .iter()
            .all(|f| f.rel.starts_with("tokudb_log_dir/log"))
    );
    assert!(
        target
            .path()
            .join("tokudb_data_dir/tokudb.directory")
            .is_file()
    );
    assert!(
        target
            .path()
            .join("tokudb_data_dir/test/t2_main_3_1_1d.tokudb")
            .is_file()
    );
    // Only TokuDB files: no lock files, no other engines' files.
    let mut all = Vec::new();
    let mut stack = vec![target.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                all.push(p.file_name().unwrap().to_string_lossy().into_owned())
            }
        }
    }
    assert!(
        all.iter()
            .all(|n| !n.starts_with("__tokudb_lock") && n != "ibdata1" && !n.ends_with(".frm")),
        "{all:?}"
    );
    assert_eq!(
        all.len(),
        manifest.data_files.len() + manifest.log_files.len()
    );
}
