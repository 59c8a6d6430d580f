//! Runbook: the backup's session is killed, or the server dies, in the
//! middle of a long (throttled) copy on MariaDB 10.11. The backup must end
//! within seconds with an error that says which of the two happened, not
//! copy on for the rest of the hour; the target stays marked incomplete,
//! and no backup lock is left on the server.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::time::{Duration, Instant};

use common::*;
use xb_testing::load::{LoadSpec, prepare};
use xb_testing::server::{Flavor, TestServer};

/// A throttled backup of a MariaDB 10.11 with the lock-inspection plugin
/// loaded, caught in the middle of its data copy: (server, target, the
/// running xb-cli, xb's main connection id, the one holding the backup lock).
async fn backup_caught_mid_copy(
    throttle: &str,
) -> (
    TestServer,
    std::path::PathBuf,
    tokio::process::Child,
    String,
) {
    let src = TestServer::start(Flavor::MariaDb1011).expect("source");
    src.sql("INSTALL SONAME 'metadata_lock_info'").unwrap();
    prepare(src.opts(), &LoadSpec::default())
        .await
        .expect("load data");
    // 60 MiB more to copy (MariaDB's sequence engine fills it at once)
    src.sql(
        "CREATE TABLE xbload.big (id INT PRIMARY KEY, pad VARCHAR(1024)) ENGINE=InnoDB; \
         INSERT INTO xbload.big SELECT seq, REPEAT('x', 1000) FROM xbload.seq_1_to_60000",
    )
    .unwrap();
    let target = src.scratch("backup");
    let child = spawn_throttled_backup(&src, &target, throttle, &["--parallel", "2"]).await;
    let holder = backup_lock_holders(&src);
    assert_eq!(
        holder.len(),
        1,
        "one session holds the backup lock: {holder:?}"
    );
    let id = holder[0].clone();
    (src, target, child, id)
}

/// Connection ids holding MariaDB's backup lock (BACKUP STAGE).
fn backup_lock_holders(src: &TestServer) -> Vec<String> {
    src.sql(
        "SELECT THREAD_ID FROM information_schema.METADATA_LOCK_INFO WHERE LOCK_TYPE = 'Backup lock'",
    )
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect()
}

/// The checks after a lost backup: failed with code 16 and `words` in the
/// error, a hint that does not send the DBA after privileges, and the
/// target marked incomplete.
fn assert_lost(out: &std::process::Output, target: &std::path::Path, words: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("xb-cli said:\n{stderr}");
    assert_failure_mentions(out, &[words]);
    assert_eq!(
        out.status.code(),
        Some(16),
        "exit code of a lost session:\n{stderr}"
    );
    let hint = stderr
        .lines()
        .find(|l| l.contains(" xb: hint: "))
        .unwrap_or_else(|| panic!("no hint:\n{stderr}"));
    assert!(!hint.contains("privilege"), "{hint}");
    assert!(
        target.join(INCOMPLETE_MARKER).exists(),
        "the target must stay marked incomplete"
    );
}

/// DDL on a copied table goes through at once: nothing blocks it any more.
fn assert_ddl_not_blocked(src: &TestServer) {
    src.sql(
        "SET SESSION lock_wait_timeout = 5; ALTER TABLE xbload.sbtest1 ADD COLUMN after_backup INT",
    )
    .expect("DDL must not wait for a backup lock");
}

/// A DBA (or pt-kill) kills xb's main connection while the data copy runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connection_ends_the_backup_within_seconds() {
    // 1 MiB/s: the copy takes a minute and a half, far longer than the
    // bound on noticing the loss
    let (src, target, child, id) = backup_caught_mid_copy("1").await;

    src.sql(&format!("KILL {id}")).unwrap();
    let killed_at = Instant::now();
    let out = finish_within(child, Duration::from_secs(300)).await;
    let took = killed_at.elapsed();
    eprintln!("xb-cli ended {took:?} after the KILL");

    assert!(
        took < Duration::from_secs(15),
        "the kill was noticed only after {took:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_lost(&out, &target, "connection killed");
    assert_failure_mentions(&out, &[&format!("connection {id}")]);
    assert_eq!(
        backup_lock_holders(&src),
        Vec::<String>::new(),
        "no backup lock left"
    );
    assert_ddl_not_blocked(&src);
}

/// The server dies (SIGKILL: a crash, the OOM killer) while the data copy runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_death_ends_the_backup_within_seconds() {
    // 1 MiB/s, as above
    let (mut src, target, child, _id) = backup_caught_mid_copy("1").await;

    src.kill_hard().unwrap();
    let killed_at = Instant::now();
    let out = finish_within(child, Duration::from_secs(300)).await;
    let took = killed_at.elapsed();
    eprintln!("xb-cli ended {took:?} after the server died");

    assert!(
        took < Duration::from_secs(15),
        "the dead server was noticed only after {took:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_lost(&out, &target, "server gone");
    // back up again after crash recovery: nothing of the backup is held
    src.restart().unwrap();
    assert_eq!(
        backup_lock_holders(&src),
        Vec::<String>::new(),
        "no backup lock left"
    );
    assert_ddl_not_blocked(&src);
}

/// Someone kills the watcher's own connection: that is no reason to fail
/// the backup (the watcher reconnects), which completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_only_the_watcher_does_not_fail_the_backup() {
    let (src, target, child, main_id) = backup_caught_mid_copy("8").await;
    // xb's sessions are the main one (holding the backup lock) and the
    // watcher's, which connects at its first look
    let others = || {
        src.sql(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'xb' AND ID <> {main_id}"
        ))
        .unwrap()
    };
    wait_until("the watcher connects", Duration::from_secs(10), || {
        !others().trim().is_empty()
    })
    .await;
    let watcher = others();
    let watcher: Vec<&str> = watcher.lines().collect();
    assert_eq!(watcher.len(), 1, "one other xb session: {watcher:?}");
    src.sql(&format!("KILL {}", watcher[0])).unwrap();

    let out = finish_within(child, Duration::from_secs(300)).await;
    assert_success(&out);
    assert!(!target.join(INCOMPLETE_MARKER).exists());
}
