//! The MariaDB 10.5 redo reader against a live MariaDB 10.5: the checkpoint
//! we read is the server's, and scanning from it reaches the flushed LSN.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_innodb::redo105::{Log105, Scanner105};
use xb_testing::server::{Flavor, TestServer};

async fn status(conn: &mut mysql_async::Conn) -> (u64, u64) {
    let row: (String, String, String) = conn
        .query_first("SHOW ENGINE INNODB STATUS")
        .await
        .unwrap()
        .unwrap();
    let grab = |label: &str| -> u64 {
        row.2
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    (grab("Log flushed up to"), grab("Last checkpoint at"))
}

#[tokio::test]
async fn checkpoint_and_scan_match_mariadb_10_5() {
    let s = TestServer::start(Flavor::MariaDb105).unwrap();
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE d").await.unwrap();
    c.query_drop("CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v LONGBLOB) ENGINE=InnoDB")
        .await
        .unwrap();
    let log = Log105::open(&s.datadir().join("ib_logfile0")).unwrap();
    let first = log.latest_checkpoint().unwrap();
    let mut scanner = Scanner105::new(first.lsn);
    for _ in 0..10 {
        c.query_drop("INSERT INTO d.t (v) VALUES (REPEAT('x', 256 * 1024))")
            .await
            .unwrap();
        scanner.poll(&log, &mut |_| Ok(())).unwrap();
    }
    // Background work can write at any time: retry until the LSNs did not
    // move while we read the checkpoint and scanned (bounded).
    let (mut before, mut cp, mut after, mut end);
    let mut attempt = 0;
    loop {
        attempt += 1;
        assert!(attempt <= 50, "the server never stayed quiet for one scan");
        before = status(&mut c).await;
        cp = log.latest_checkpoint().unwrap();
        end = scanner.poll(&log, &mut |_| Ok(())).unwrap();
        after = status(&mut c).await;
        if before == after {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(cp.lsn, after.1, "checkpoint vs Last checkpoint at");
    assert_eq!(end, after.0, "end of valid log vs Log flushed up to");
    assert!(
        matches!(
            scanner.stop,
            xb_innodb::be::BlockStop::Partial | xb_innodb::be::BlockStop::End
        ),
        "a live log ends cleanly: {:?}",
        scanner.stop
    );
    assert!(end > first.lsn + (2 << 20));
}

async fn lsn_status(c: &mut mysql_async::Conn, name: &str) -> u64 {
    let v: Option<String> = c
        .exec_first(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?",
            (name,),
        )
        .await
        .unwrap();
    v.unwrap_or_else(|| panic!("{name}")).parse().unwrap()
}

/// A reader far behind the server's checkpoint, but less than a capacity
/// behind its write position, has lost nothing: one poll copies it all.
#[tokio::test]
async fn a_reader_behind_the_checkpoint_but_not_lapped_copies_the_backlog() {
    let s = TestServer::start_with_args(Flavor::MariaDb105, "--innodb-log-file-size=32M").unwrap();
    let log = Log105::open(&s.datadir().join("ib_logfile0")).unwrap();
    let cap = log.capacity();
    let start = log.latest_checkpoint().unwrap().lsn;
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE d").await.unwrap();
    c.query_drop("CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v LONGBLOB) ENGINE=InnoDB")
        .await
        .unwrap();
    while lsn_status(&mut c, "INNODB_LSN_CURRENT").await < start + cap / 2 {
        c.query_drop("INSERT INTO d.t (v) VALUES (REPEAT('x', 256 * 1024))")
            .await
            .unwrap();
    }
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
    let flushed = lsn_status(&mut c, "INNODB_LSN_FLUSHED").await;
    assert!(flushed < start + cap, "the reader must not be lapped");
    let mut scanner = Scanner105::new(start);
    let mut copied = 0u64;
    let end = scanner
        .poll(&log, &mut |b| {
            copied += b.len() as u64;
            Ok(())
        })
        .unwrap();
    assert!(
        end >= flushed,
        "one poll reaches the end: {end} < {flushed}"
    );
    assert_eq!(copied, (end / 512 - start / 512) * 512, "whole blocks");
}
