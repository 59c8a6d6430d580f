//! Runbook: the server laps a redo reader that fell behind. The reader must
//! say the log it needed was overwritten, never hand out the newer bytes as
//! if they were the old ones.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_innodb::redo108::{Log108, Redo108Error, Scanner108};
use xb_testing::server::{Flavor, TestServer};

#[tokio::test]
async fn a_lapped_reader_reports_overwritten_redo() {
    let s = TestServer::start_with_args(Flavor::MariaDb1011, "--innodb-log-file-size=4M").unwrap();
    let log = Log108::open(&s.datadir().join("ib_logfile0")).unwrap();
    assert_eq!(log.size(), 4 << 20);
    let start = log.latest_checkpoint().unwrap().lsn;
    let mut scanner = Scanner108::new(start);
    // A reader that keeps up copies fine.
    let mut got = 0u64;
    scanner
        .poll(&log, &mut |b| {
            got += b.len() as u64;
            Ok(())
        })
        .unwrap();
    let behind = scanner.lsn();

    // Now fall behind: write about four times the log's capacity.
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE IF NOT EXISTS test")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE IF NOT EXISTS test.big (id INT PRIMARY KEY AUTO_INCREMENT, v LONGBLOB) ENGINE=InnoDB")
        .await
        .unwrap();
    for _ in 0..32 {
        c.query_drop("INSERT INTO test.big (v) VALUES (REPEAT('x', 512 * 1024))")
            .await
            .unwrap();
    }
    let cp = log.latest_checkpoint().unwrap();
    assert!(
        cp.lsn > behind + log.capacity(),
        "the server must have lapped the reader"
    );
    let err = scanner
        .poll(&log, &mut |_| Ok(()))
        .expect_err("a lapped reader must not succeed");
    match err {
        Redo108Error::Overwritten {
            needed, checkpoint, ..
        } => {
            assert_eq!(needed, behind);
            assert!(checkpoint > needed);
        }
        other => panic!("expected Overwritten, got {other}"),
    }
}

async fn status(c: &mut mysql_async::Conn, name: &str) -> u64 {
    let v: Option<String> = c
        .exec_first(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?",
            (name,),
        )
        .await
        .unwrap();
    v.unwrap_or_else(|| panic!("{name}")).parse().unwrap()
}

/// The other side of the runbook: a reader far behind the server's
/// checkpoint, but less than a capacity behind its write position, has
/// lost nothing and copies the whole backlog in one poll.
#[tokio::test]
async fn a_reader_behind_the_checkpoint_but_not_lapped_copies_the_backlog() {
    let s = TestServer::start_with_args(Flavor::MariaDb1011, "--innodb-log-file-size=32M").unwrap();
    let log = Log108::open(&s.datadir().join("ib_logfile0")).unwrap();
    let cap = log.capacity();
    let start = log.latest_checkpoint().unwrap().lsn;

    // A backlog of about half the log's capacity.
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE IF NOT EXISTS test")
        .await
        .unwrap();
    c.query_drop(
        "CREATE TABLE test.big (id INT PRIMARY KEY AUTO_INCREMENT, v LONGBLOB) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    while status(&mut c, "INNODB_LSN_CURRENT").await < start + cap / 2 {
        c.query_drop("INSERT INTO test.big (v) VALUES (REPEAT('x', 256 * 1024))")
            .await
            .unwrap();
    }
    // The server flushes its pages and checkpoints far past the reader
    // (more than the 4 MiB one read takes in).
    c.query_drop("SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0, innodb_max_dirty_pages_pct = 0")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while log.latest_checkpoint().unwrap().lsn < start + (8 << 20) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never checkpointed past LSN {}",
            start + (8 << 20)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let flushed = status(&mut c, "INNODB_LSN_FLUSHED").await;
    let cp = log.latest_checkpoint().unwrap().lsn;
    assert!(flushed < start + cap, "the reader must not be lapped");

    let mut scanner = Scanner108::new(start);
    // the server vouches for its log up to what it flushed
    scanner.trust_up_to(flushed);
    let mut copied = 0u64;
    let t = std::time::Instant::now();
    let end = scanner
        .poll(&log, &mut |b| {
            copied += b.len() as u64;
            Ok(())
        })
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        end >= flushed,
        "one poll reaches the end: {end} < {flushed}"
    );
    assert_eq!(copied, end - start);
    #[allow(clippy::cast_precision_loss)] // a figure to print
    let mib = copied as f64 / f64::from(1 << 20);
    println!(
        "backlog {mib:.1} MiB (checkpoint {} MiB past the reader) copied in one poll: {:.0} MiB/s",
        (cp - start) >> 20,
        mib / secs
    );
}
