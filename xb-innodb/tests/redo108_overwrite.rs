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
