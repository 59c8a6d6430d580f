//! The MySQL 8.0.30+ redo reader against a live MySQL 9.7: the checkpoint we
//! find (searching every `#ib_redoN`) is the server's, and scanning from it
//! reaches the end of what the server wrote, across file switches.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_innodb::redo8030::{Log8030, Scanner8030};
use xb_testing::server::{Flavor, TestServer};

/// (LSN, checkpoint LSN, log written up to, log flushed up to).
async fn lsns(conn: &mut mysql_async::Conn) -> (u64, u64, u64, u64) {
    let row: (String,) = conn
        .query_first("SELECT STORAGE_ENGINES FROM performance_schema.log_status")
        .await
        .unwrap()
        .unwrap();
    let grab = |key: &str| -> u64 {
        let at = row.0.find(key).unwrap() + key.len();
        row.0[at..]
            .trim_start_matches([':', ' ', '"'])
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let status: (String, String, String) = conn
        .query_first("SHOW ENGINE INNODB STATUS")
        .await
        .unwrap()
        .unwrap();
    let line = |key: &str| -> u64 {
        status
            .2
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        grab("\"LSN\""),
        grab("\"LSN_checkpoint\""),
        line("Log written up to"),
        line("Log flushed up to"),
    )
}

#[tokio::test]
async fn checkpoint_and_scan_match_mysql_across_file_switches() {
    let s = TestServer::start(Flavor::MySql97).unwrap();
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE d").await.unwrap();
    c.query_drop("CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v LONGBLOB) ENGINE=InnoDB")
        .await
        .unwrap();
    let mut log = Log8030::open(&s.datadir().join("#innodb_redo")).unwrap();
    let first = log.latest_checkpoint().unwrap();
    let mut scanner = Scanner8030::new(first.lsn);
    let mut copied = 0u64;
    // ~10 MiB of redo: several 3.2 MiB files, copied as they are written
    for _ in 0..20 {
        c.query_drop("INSERT INTO d.t (v) VALUES (REPEAT('x', 512 * 1024))")
            .await
            .unwrap();
        scanner
            .poll(&mut log, &mut |b| {
                copied += b.len() as u64;
                Ok(())
            })
            .unwrap();
    }
    let files_seen = log.files().len();
    // Background work can write at any time: retry until the LSNs did not
    // move while we read the checkpoint and scanned (bounded).
    let (mut before, mut cp, mut after, mut end);
    let mut attempt = 0;
    loop {
        attempt += 1;
        assert!(attempt <= 50, "the server never stayed quiet for one scan");
        before = lsns(&mut c).await;
        cp = log.latest_checkpoint().unwrap();
        end = scanner
            .poll(&mut log, &mut |b| {
                copied += b.len() as u64;
                Ok(())
            })
            .unwrap();
        after = lsns(&mut c).await;
        // Quiet also means written == flushed: the scan reads what was
        // written to the files, which may be ahead of the last fsync.
        if before == after && after.2 == after.3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        cp.lsn, after.1,
        "checkpoint from the files vs log_status LSN_checkpoint"
    );
    assert_eq!(end, after.2, "end of valid log vs Log written up to");
    assert!(
        matches!(
            scanner.stop,
            xb_innodb::be::BlockStop::Partial | xb_innodb::be::BlockStop::End
        ),
        "a live log ends cleanly: {:?}",
        scanner.stop
    );
    assert!(end - first.lsn > 8 << 20, "the scan crossed files");
    assert!(files_seen >= 2, "{files_seen} files");
    let mut tail = 0u64;
    scanner
        .tail(&mut |b| {
            tail += b.len() as u64;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        copied + tail,
        end.div_ceil(512) * 512 - Scanner8030::block_start(first.lsn)
    );
}
