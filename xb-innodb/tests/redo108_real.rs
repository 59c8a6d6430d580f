//! The MariaDB 10.8+ redo reader against live MariaDB 10.11 and 11.8 servers:
//! the checkpoint we read is the server's, and scanning from it reaches the
//! server's flushed LSN.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_innodb::redo108::{Log108, Scanner108};
use xb_testing::server::{Flavor, TestServer};

async fn status_lsns(conn: &mut mysql_async::Conn) -> (u64, u64, u64) {
    let row: Option<(String, String, String)> =
        conn.query_first("SHOW ENGINE INNODB STATUS").await.unwrap();
    let text = row.unwrap().2;
    let grab = |label: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}"));
        line[label.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        grab("Log sequence number"),
        grab("Log flushed up to"),
        grab("Last checkpoint at"),
    )
}

async fn checkpoint_and_scan_match_the_server(flavor: Flavor) {
    let s = TestServer::start(flavor).unwrap();
    let mut conn = s.conn().await.unwrap();
    conn.query_drop("CREATE DATABASE d").await.unwrap();
    conn.query_drop(
        "CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(200)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    for _ in 0..50 {
        conn.query_drop(
            "INSERT INTO d.t (v) VALUES (REPEAT('x',200)),(REPEAT('y',200)),(REPEAT('z',200))",
        )
        .await
        .unwrap();
    }
    conn.query_drop("SET GLOBAL innodb_log_checkpoint_now=ON")
        .await
        .ok();
    // A quiet moment: the LSNs did not move while we read the checkpoint and
    // scanned, so the file and the status describe the same log. Background
    // work (statistics, purge) can write at any time, so retry until that
    // holds, never by weakening the comparison.
    let log = Log108::open(&s.datadir().join("ib_logfile0")).unwrap();
    let mut attempt = 0;
    let (cp, end, copied, after) = loop {
        attempt += 1;
        assert!(attempt <= 50, "the server never stayed quiet for one scan");
        let before = status_lsns(&mut conn).await;
        let cp = log.latest_checkpoint().unwrap();
        let mut scanner = Scanner108::new(cp.lsn);
        // the server vouches for its log up to what it flushed (the last
        // block is otherwise held back while the server may rewrite it)
        scanner.trust_up_to(before.1);
        let mut copied = 0usize;
        let end = scanner
            .poll(&log, &mut |b| {
                copied += b.len();
                Ok(())
            })
            .unwrap();
        let after = status_lsns(&mut conn).await;
        if before == after {
            break (cp, end, copied, after);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        cp.lsn, after.2,
        "checkpoint in the file vs Last checkpoint at"
    );
    assert_eq!(end, after.1, "end of valid log vs Log flushed up to");
    assert_eq!(copied as u64, end - cp.lsn);
}

#[tokio::test]
async fn mariadb_10_11() {
    checkpoint_and_scan_match_the_server(Flavor::MariaDb1011).await;
}

#[tokio::test]
async fn mariadb_11_8() {
    checkpoint_and_scan_match_the_server(Flavor::MariaDb118).await;
}
