//! The simulator's own promises, checked through a real MySQL client, so the
//! xb-tokudb tests that lean on them can fail for the right reasons.

// Test code: helpers outside #[test] fns may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use xb_tokusim::engine::parse_data_file;
use xb_tokusim::{Event, Outcome, SimConfig, TokuSim};

async fn connect(sim: &TokuSim) -> mysql_async::Conn {
    mysql_async::Conn::new(mysql_async::Opts::from_url(&sim.url()).unwrap())
        .await
        .unwrap()
}

/// Generation of every data file as read from disk right now.
fn on_disk(sim: &TokuSim) -> BTreeMap<String, Option<u64>> {
    let dir = sim.layout().data_dir;
    sim.generations_now()
        .keys()
        .map(|rel| {
            (
                rel.clone(),
                parse_data_file(&fs::read(dir.join(rel)).unwrap()),
            )
        })
        .collect()
}

#[tokio::test]
async fn data_files_change_until_the_checkpoint_lock_and_again_after_the_session_ends() {
    let sim = TokuSim::start(SimConfig::default()).await.unwrap();
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s.activity().0 > 3)
            .await
    );
    let before = on_disk(&sim);
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| on_disk(s) != before)
            .await,
        "files must be live without the lock"
    );

    let mut conn = connect(&sim).await;
    conn.query_drop("SET TOKUDB_CHECKPOINT_LOCK=ON")
        .await
        .unwrap();
    let locked = on_disk(&sim);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(on_disk(&sim), locked, "files must be frozen under the lock");
    let at_lock: BTreeMap<_, _> = sim
        .generations_at_checkpoint_lock()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    assert_eq!(locked, at_lock);

    drop(conn);
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s
            .checkpoint_lock_holders()
            .is_empty())
            .await
    );
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| on_disk(s) != locked)
            .await
    );
}

#[tokio::test]
async fn the_log_stops_growing_under_ftwrl_and_resumes_after_unlock() {
    let sim = TokuSim::start(SimConfig::default()).await.unwrap();
    let mut conn = connect(&sim).await;
    conn.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .unwrap();
    let (_, appends) = sim.activity();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(sim.activity().1, appends);
    assert_eq!(sim.log_seq_at_read_lock(), Some(appends));
    conn.query_drop("UNLOCK TABLES").await.unwrap();
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| s.activity().1 > appends + 3)
            .await
    );
}

#[tokio::test]
async fn unknown_and_misplaced_statements_get_clear_errors_and_are_logged() {
    let sim = TokuSim::start(SimConfig::default()).await.unwrap();
    let mut conn = connect(&sim).await;
    let e = conn.query_drop("DROP DATABASE test").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("statement not simulated: DROP DATABASE test"),
        "{e}"
    );
    let e = conn
        .query_drop("SET GLOBAL tokudb_checkpoint_lock=ON")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SESSION variable"), "{e}");
    let v: Option<String> = conn.query_first("SELECT @@tokudb_log_dir").await.unwrap();
    assert_eq!(v.as_deref(), Some(""));
    let failed = sim
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::Statement {
                    outcome: Outcome::Error(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 2);
    assert!(sim.statements().contains(&"DROP DATABASE test".to_string()));
}
