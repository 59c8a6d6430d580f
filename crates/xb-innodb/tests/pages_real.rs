//! Every tablespace of a real MariaDB datadir validates clean, and one
//! flipped byte in a copy is caught with its page number.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_innodb::pagereader::{PageReadError, RetryPolicy, TablespaceReader};
use xb_testing::server::{Flavor, TestServer};

fn tablespaces(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.join("ibdata1")];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "ibd") {
                    out.push(f);
                }
            }
        } else if p.file_name().unwrap().to_string_lossy().starts_with("undo") {
            out.push(p);
        }
    }
    out
}

fn read_all(path: &std::path::Path, policy: RetryPolicy) -> Result<u64, PageReadError> {
    let system = path.file_name().unwrap() == "ibdata1";
    let mut r = TablespaceReader::open(path, 16384, system, policy)?.unwrap();
    let mut buf = Vec::new();
    let mut total = 0;
    loop {
        let n = r.next_chunk(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

#[tokio::test]
async fn every_tablespace_of_a_mariadb_datadir_validates_and_a_flip_is_caught() {
    let mut s = TestServer::start(Flavor::MariaDb1011).unwrap();
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE d").await.unwrap();
    c.query_drop("CREATE DATABASE seq").await.unwrap();
    for (t, opts) in [
        ("dyn", ""),
        ("comp", "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8"),
        ("red", "ROW_FORMAT=REDUNDANT"),
        ("pc", "PAGE_COMPRESSED=1"),
    ] {
        c.query_drop(format!("CREATE TABLE d.{t} (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(500)) ENGINE=InnoDB {opts}")).await.unwrap();
        for _ in 0..20 {
            c.query_drop(format!(
                "INSERT INTO d.{t} (v) SELECT REPEAT(UUID(), 10) FROM seq.seq_1_to_100"
            ))
            .await
            .unwrap();
        }
    }
    c.disconnect().await.unwrap();
    s.stop().unwrap();
    let files = tablespaces(s.datadir());
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        read_all(f, RetryPolicy::default()).unwrap_or_else(|e| panic!("{e}"));
    }
    let copy = s.scratch("dyn.ibd");
    std::fs::copy(s.datadir().join("d/dyn.ibd"), &copy).unwrap();
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[3 * 16384 + 200] ^= 1;
    std::fs::write(&copy, bytes).unwrap();
    let quick = RetryPolicy {
        tries: 2,
        delay: std::time::Duration::from_millis(1),
    };
    match read_all(&copy, quick) {
        Err(PageReadError::Corrupt { page, tries, .. }) => assert_eq!((page, tries), (3, 2)),
        other => panic!("flip not caught: {other:?}"),
    }
}
