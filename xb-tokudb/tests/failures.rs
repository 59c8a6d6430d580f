//! Runbook: everything that can go wrong mid-backup, and the promise that the
//! server is never left with TokuDB's checkpoint lock or the global read lock.
//!
//! On the real server both locks are session scoped: `tokudb_checkpoint_lock`
//! is a session variable whose lock is dropped when the session ends, and
//! FLUSH TABLES WITH READ LOCK ends with its connection. So a dropped
//! connection releases them by itself (the simulator records the session end
//! and what it released), and a reconnect finds them free. When the
//! connection survives, xb releases them explicitly before returning.

// Test code: helpers outside #[test] fns may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::{FailingCopier, busy_sim, connect, eio, enospc, six_steps};
use xb_tokudb::{
    CHECKPOINT_LOCK_OFF, CHECKPOINT_LOCK_ON, HookError, LocalDirCopier, NoHook, PLUGIN_PROBE,
    READ_LOCK, ReadLockHook, SqlSession, Step, TokuError, TokuOptions, UNLOCK_TABLES,
};
use xb_tokusim::{Event, Fault, Outcome, PluginState, SimConfig, TokuSim};

fn no_locks_held(sim: &TokuSim) -> bool {
    sim.checkpoint_lock_holders().is_empty() && sim.read_lock_holders().is_empty()
}

fn aborted(e: &TokuError) -> (Step, &TokuError, usize) {
    match e {
        TokuError::Aborted {
            step,
            cause,
            release_errors,
            ..
        } => (*step, cause.as_ref(), release_errors.len()),
        other => panic!("expected an aborted sequence, got {other}"),
    }
}

async fn run_with(
    sim: &Arc<TokuSim>,
    conn: &mut mysql_async::Conn,
    copier: Arc<dyn xb_tokudb::FileCopier>,
) -> Result<xb_tokudb::TokuManifest, TokuError> {
    let dirs = xb_tokudb::probe(conn).await.unwrap().unwrap();
    let _ = sim;
    xb_tokudb::run(conn, &dirs, copier, &mut NoHook, &TokuOptions::default()).await
}

#[tokio::test]
async fn a_server_without_the_plugin_never_receives_a_tokudb_statement() {
    for plugin in [PluginState::Absent, PluginState::Disabled] {
        let sim = busy_sim(SimConfig {
            plugin,
            ..SimConfig::default()
        })
        .await;
        let mut conn = connect(&sim).await;
        assert_eq!(
            xb_tokudb::probe(&mut conn).await.unwrap(),
            None,
            "{plugin:?}"
        );
        assert_eq!(sim.statements(), [PLUGIN_PROBE], "{plugin:?}");
        // And the simulator would have refused one: the variable does not exist.
        let e = conn.exec(CHECKPOINT_LOCK_ON).await.unwrap_err();
        assert_eq!(e.code, Some(1193), "{plugin:?}: {e}");
    }
}

#[tokio::test]
async fn a_copy_error_on_a_data_file_releases_the_checkpoint_lock() {
    let sim = busy_sim(SimConfig::default()).await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let copier = Arc::new(FailingCopier {
        inner: LocalDirCopier::new(target.path()),
        pred: |rel: &str| rel == "test/t2_main_3_1_1d.tokudb",
        make_error: eio,
    });
    let e = run_with(&sim, &mut conn, copier).await.unwrap_err();
    let (step, cause, release_errors) = aborted(&e);
    assert_eq!(step, Step::CopyData);
    assert!(
        matches!(cause, TokuError::Copy { rel, .. } if rel == "test/t2_main_3_1_1d.tokudb"),
        "{cause}"
    );
    assert_eq!(release_errors, 0);
    let s = sim.statements();
    assert_eq!(
        &s[2..],
        [CHECKPOINT_LOCK_ON, CHECKPOINT_LOCK_OFF],
        "no read lock after a failed data copy"
    );
    // Released explicitly: the connection is still open.
    assert!(no_locks_held(&sim));
    assert!(conn.query_rows("SELECT @@version").await.is_ok());
}

#[tokio::test]
async fn a_full_target_during_the_log_copy_releases_both_locks() {
    let sim = busy_sim(SimConfig::default()).await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let copier = Arc::new(FailingCopier {
        inner: LocalDirCopier::new(target.path()),
        pred: |rel: &str| rel.contains(".tokulog"),
        make_error: enospc,
    });
    let e = run_with(&sim, &mut conn, copier).await.unwrap_err();
    let (step, cause, _) = aborted(&e);
    assert_eq!(step, Step::CopyLogs);
    assert!(matches!(cause, TokuError::Copy { source, .. } if source.raw_os_error() == Some(28)));
    let msg = e.to_string();
    assert!(msg.contains("backup target is full"), "{msg}");
    assert!(msg.contains("step 4"), "{msg}");
    let s = sim.statements();
    assert_eq!(
        &s[2..],
        [
            CHECKPOINT_LOCK_ON,
            READ_LOCK,
            UNLOCK_TABLES,
            CHECKPOINT_LOCK_OFF
        ]
    );
    assert!(no_locks_held(&sim));
}

#[tokio::test]
async fn a_refused_read_lock_still_turns_the_checkpoint_lock_off() {
    let sim = busy_sim(SimConfig::default()).await;
    sim.inject(Fault::ErrorOn {
        needle: READ_LOCK.into(),
    });
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let e = run_with(
        &sim,
        &mut conn,
        Arc::new(LocalDirCopier::new(target.path())),
    )
    .await
    .unwrap_err();
    let (step, cause, release_errors) = aborted(&e);
    assert_eq!(step, Step::ReadLock);
    assert!(matches!(cause, TokuError::Sql { sql, .. } if sql == READ_LOCK));
    assert_eq!(release_errors, 0);
    let s = sim.statements();
    assert_eq!(
        &s[2..],
        [
            CHECKPOINT_LOCK_ON,
            READ_LOCK,
            UNLOCK_TABLES,
            CHECKPOINT_LOCK_OFF
        ]
    );
    assert!(no_locks_held(&sim));
}

#[tokio::test]
async fn a_failed_unlock_tables_still_turns_the_checkpoint_lock_off() {
    let sim = busy_sim(SimConfig::default()).await;
    sim.inject(Fault::ErrorOn {
        needle: UNLOCK_TABLES.into(),
    });
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let e = run_with(
        &sim,
        &mut conn,
        Arc::new(LocalDirCopier::new(target.path())),
    )
    .await
    .unwrap_err();
    assert_eq!(aborted(&e).0, Step::UnlockTables);
    assert_eq!(
        sim.statements().last().map(String::as_str),
        Some(CHECKPOINT_LOCK_OFF)
    );
    assert!(sim.checkpoint_lock_holders().is_empty());
    // The read lock is still the session's; ending the session frees it.
    assert_eq!(sim.read_lock_holders().len(), 1);
    drop(conn);
    assert!(sim.wait_for(Duration::from_secs(5), no_locks_held).await);
}

struct FailingHook;

impl<S: SqlSession> ReadLockHook<S> for FailingHook {
    async fn under_read_lock(&mut self, _session: &mut S) -> Result<(), HookError> {
        Err(io::Error::other("myisam copy failed").into())
    }
}

#[tokio::test]
async fn a_failing_read_lock_hook_releases_both_locks() {
    let sim = busy_sim(SimConfig::default()).await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let dirs = xb_tokudb::probe(&mut conn).await.unwrap().unwrap();
    let copier = Arc::new(LocalDirCopier::new(target.path()));
    let e = xb_tokudb::run(
        &mut conn,
        &dirs,
        copier,
        &mut FailingHook,
        &TokuOptions::default(),
    )
    .await
    .unwrap_err();
    let (step, cause, _) = aborted(&e);
    assert_eq!(step, Step::ReadLock);
    assert!(matches!(cause, TokuError::Hook(_)));
    assert!(e.to_string().contains("myisam copy failed"));
    assert_eq!(sim.statements(), six_steps());
    assert!(no_locks_held(&sim));
}

#[tokio::test]
async fn a_failed_release_is_reported_without_hiding_the_first_error() {
    let sim = busy_sim(SimConfig::default()).await;
    sim.inject(Fault::ErrorOn {
        needle: CHECKPOINT_LOCK_OFF.into(),
    });
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let copier = Arc::new(FailingCopier {
        inner: LocalDirCopier::new(target.path()),
        pred: |rel: &str| rel.ends_with(".tokudb"),
        make_error: enospc,
    });
    let e = run_with(&sim, &mut conn, copier).await.unwrap_err();
    let (step, _, release_errors) = aborted(&e);
    assert_eq!(step, Step::CopyData);
    assert_eq!(release_errors, 1);
    assert!(matches!(e.root_cause(), TokuError::Copy { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("backup target is full") && msg.contains("releasing locks also failed"),
        "{msg}"
    );
    // The server still has the lock on this session; closing it frees it.
    assert_eq!(sim.checkpoint_lock_holders().len(), 1);
    drop(conn);
    assert!(sim.wait_for(Duration::from_secs(5), no_locks_held).await);
}

/// The session the server saw end, and what it released at that moment.
fn session_end(sim: &TokuSim) -> Option<(bool, bool)> {
    sim.events().into_iter().find_map(|e| match e {
        Event::SessionEnded {
            released_read_lock,
            released_checkpoint_lock,
            ..
        } => Some((released_read_lock, released_checkpoint_lock)),
        Event::Statement { .. } => None,
    })
}

#[tokio::test]
async fn a_connection_dropped_under_the_checkpoint_lock_releases_it_with_the_session() {
    let sim = busy_sim(SimConfig::default()).await;
    sim.inject(Fault::DropAfter {
        needle: CHECKPOINT_LOCK_ON.into(),
    });
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let e = run_with(
        &sim,
        &mut conn,
        Arc::new(LocalDirCopier::new(target.path())),
    )
    .await
    .unwrap_err();
    assert_eq!(aborted(&e).0, Step::CheckpointLockOn);
    assert!(e.connection_lost(), "{e}");
    assert!(e.to_string().contains("ended"), "{e}");
    // The lock was taken, then the session ended and took it along.
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| session_end(s).is_some())
            .await
    );
    assert_eq!(session_end(&sim), Some((false, true)));
    assert!(no_locks_held(&sim));
    let dropped: Vec<_> = sim
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::Statement {
                    outcome: Outcome::Dropped,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(dropped.len(), 1);
    // A reconnect finds the lock free.
    let mut again = connect(&sim).await;
    let rows = again
        .query_rows("SHOW VARIABLES LIKE 'tokudb_checkpoint_lock'")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Some("tokudb_checkpoint_lock".into()),
            Some("OFF".into())
        ]]
    );
    // The server is writing its data files again.
    let (before, _) = sim.activity();
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s.activity().0 > before + 3)
            .await
    );
}

#[tokio::test]
async fn a_connection_dropped_under_the_read_lock_releases_both_locks_with_the_session() {
    let sim = busy_sim(SimConfig::default()).await;
    sim.inject(Fault::DropAfter {
        needle: READ_LOCK.into(),
    });
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let e = run_with(
        &sim,
        &mut conn,
        Arc::new(LocalDirCopier::new(target.path())),
    )
    .await
    .unwrap_err();
    let (step, _, release_errors) = aborted(&e);
    assert_eq!(step, Step::ReadLock);
    assert!(e.connection_lost());
    // Both release statements were attempted and failed on the dead connection.
    assert_eq!(release_errors, 2, "{e}");
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| session_end(s).is_some())
            .await
    );
    assert_eq!(session_end(&sim), Some((true, true)));
    assert!(no_locks_held(&sim));
    // The log writer resumed.
    let (_, before) = sim.activity();
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s.activity().1 > before + 3)
            .await
    );
}

#[tokio::test]
async fn a_connection_dropped_after_the_nth_statement_releases_both_locks() {
    // Statement 4 of the run is FLUSH TABLES WITH READ LOCK, counted over the server.
    let sim = busy_sim(SimConfig {
        faults: vec![Fault::DropAfterNth(4)],
        ..SimConfig::default()
    })
    .await;
    let target = tempfile::tempdir().unwrap();
    let mut conn = connect(&sim).await;
    let e = run_with(
        &sim,
        &mut conn,
        Arc::new(LocalDirCopier::new(target.path())),
    )
    .await
    .unwrap_err();
    assert_eq!(aborted(&e).0, Step::ReadLock);
    assert!(sim.wait_for(Duration::from_secs(5), no_locks_held).await);
}
