//! Every tablespace of real datadirs validates clean, for each server
//! flavour and page size the servers allow, with a mix of row formats; one
//! flipped byte in a copy is caught with its page number; and a live,
//! written-to server's files read with no false corruption.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use mysql_async::prelude::Queryable;
use xb_innodb::pagereader::{PageReadError, RetryPolicy, TablespaceReader};
use xb_testing::server::{Flavor, TestServer};

fn tablespaces(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.join("ibdata1")];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() && !name.starts_with('#') {
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "ibd") {
                    out.push(f);
                }
            }
        } else if name.starts_with("undo") || name.ends_with(".ibd") {
            out.push(p);
        }
    }
    out
}

fn read_all(
    path: &std::path::Path,
    page_size: usize,
    policy: RetryPolicy,
) -> Result<(u64, u64), PageReadError> {
    let system = path.file_name().unwrap() == "ibdata1";
    // MariaDB 10.5+ creates tablespaces as full_crc32 (its default)
    let mut r = TablespaceReader::open_with(path, page_size, true, system, policy)?.unwrap();
    let mut buf = Vec::new();
    let mut total = 0;
    loop {
        let n = r.next_chunk(&mut buf)?;
        if n == 0 {
            return Ok((total, r.retries()));
        }
        total += n as u64;
    }
}

/// Row formats each flavour and page size accepts.
fn tables(flavor: Flavor, page_size: usize) -> Vec<(&'static str, &'static str)> {
    let mut t = vec![
        ("dyn", "ROW_FORMAT=DYNAMIC"),
        ("red", "ROW_FORMAT=REDUNDANT"),
        ("cmp", "ROW_FORMAT=COMPACT"),
    ];
    if page_size <= 16384 {
        t.push((
            "zip",
            if page_size == 4096 {
                "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=2"
            } else {
                "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8"
            },
        ));
    }
    if !flavor.is_mysql() {
        t.push(("pc", "PAGE_COMPRESSED=1"));
    }
    t
}

async fn datadir_validates(flavor: Flavor, page_size: usize) {
    let args = if page_size == 16384 {
        String::new()
    } else {
        format!("--innodb-page-size={page_size}")
    };
    let mut s = TestServer::start_with_args(flavor, &args).unwrap();
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE d").await.unwrap();
    for (t, opts) in tables(flavor, page_size) {
        c.query_drop(format!("CREATE TABLE d.{t} (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(500)) ENGINE=InnoDB {opts}"))
            .await
            .unwrap_or_else(|e| panic!("{t} {opts}: {e}"));
        c.query_drop(format!("INSERT INTO d.{t} (v) VALUES (REPEAT(UUID(), 10))"))
            .await
            .unwrap();
        for _ in 0..11 {
            c.query_drop(format!(
                "INSERT INTO d.{t} (v) SELECT REPEAT(UUID(), 10) FROM d.{t}"
            ))
            .await
            .unwrap();
        }
    }
    c.disconnect().await.unwrap();
    s.stop().unwrap();
    let files = tablespaces(s.datadir());
    assert!(files.len() >= 5, "{files:?}");
    let mut bytes = 0;
    for f in &files {
        let (n, _) = read_all(f, page_size, RetryPolicy::default())
            .unwrap_or_else(|e| panic!("{flavor:?} {page_size}: {e}"));
        bytes += n;
    }
    assert!(bytes > 4 << 20);
    // one flipped byte in a copy of a table is caught, with its page number
    let copy = s.scratch("dyn.ibd");
    std::fs::copy(s.datadir().join("d/dyn.ibd"), &copy).unwrap();
    let mut b = std::fs::read(&copy).unwrap();
    b[3 * page_size + 200] ^= 1;
    std::fs::write(&copy, b).unwrap();
    let quick = RetryPolicy {
        tries: 2,
        delay: std::time::Duration::from_millis(1),
    };
    match read_all(&copy, page_size, quick) {
        Err(PageReadError::Corrupt { page, tries, .. }) => assert_eq!((page, tries), (3, 2)),
        other => panic!("{flavor:?} {page_size}: flip not caught: {other:?}"),
    }
}

#[tokio::test]
async fn mariadb_10_11_16k() {
    datadir_validates(Flavor::MariaDb1011, 16384).await;
}
#[tokio::test]
async fn mariadb_10_11_4k() {
    datadir_validates(Flavor::MariaDb1011, 4096).await;
}
#[tokio::test]
async fn mariadb_10_11_64k() {
    datadir_validates(Flavor::MariaDb1011, 65536).await;
}
#[tokio::test]
async fn mariadb_10_5_16k() {
    datadir_validates(Flavor::MariaDb105, 16384).await;
}
#[tokio::test]
async fn mariadb_11_8_16k() {
    datadir_validates(Flavor::MariaDb118, 16384).await;
}
#[tokio::test]
async fn mysql_9_7_16k() {
    datadir_validates(Flavor::MySql97, 16384).await;
}
#[tokio::test]
async fn mysql_9_7_4k() {
    datadir_validates(Flavor::MySql97, 4096).await;
}
#[tokio::test]
async fn mysql_9_7_64k() {
    datadir_validates(Flavor::MySql97, 65536).await;
}

/// Files read while the server writes them: torn pages are re-read, never
/// reported as corruption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_files_under_writes_read_without_false_corruption() {
    use xb_testing::load::{LoadSpec, WriteLoad, prepare};
    let s = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec {
        rows_per_table: 5000,
        pad_len: 600,
        ..LoadSpec::default()
    };
    prepare(s.opts(), &spec).await.unwrap();
    let load = WriteLoad::start(s.opts(), &spec);
    load.wait_for_commits(100).await;
    let dir = s.datadir().to_path_buf();
    let reads = tokio::task::spawn_blocking(move || {
        let mut passes = 0;
        for _ in 0..20 {
            for f in tablespaces(&dir) {
                read_all(&f, 16384, RetryPolicy::default())
                    .unwrap_or_else(|e| panic!("false corruption: {e}"));
            }
            passes += 1;
        }
        passes
    })
    .await
    .unwrap();
    let stats = load.stop().await.unwrap();
    assert_eq!(reads, 20);
    assert!(
        stats.commits > 100,
        "the load ran during the reads: {stats:?}"
    );
}

/// `O_DIRECT` reads hand out the same bytes as buffered reads.
#[tokio::test]
async fn direct_io_reads_the_same_bytes() {
    let mut s = TestServer::start(Flavor::MariaDb1011).unwrap();
    let mut c = s.conn().await.unwrap();
    c.query_drop("CREATE DATABASE d").await.unwrap();
    c.query_drop(
        "CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(500)) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    c.query_drop("INSERT INTO d.t (v) VALUES (REPEAT('x', 400))")
        .await
        .unwrap();
    for _ in 0..13 {
        c.query_drop("INSERT INTO d.t (v) SELECT REPEAT(UUID(), 10) FROM d.t")
            .await
            .unwrap();
    }
    c.disconnect().await.unwrap();
    s.stop().unwrap();
    let path = s.datadir().join("d/t.ibd");
    let read = |direct: bool| {
        let mut r = TablespaceReader::open_with(&path, 16384, true, false, RetryPolicy::default())
            .unwrap()
            .unwrap()
            .with_direct_io(direct);
        let mut all = Vec::new();
        loop {
            let chunk = r.next_pages().unwrap();
            if chunk.is_empty() {
                return all;
            }
            all.extend_from_slice(chunk);
        }
    };
    let buffered = read(false);
    assert!(buffered.len() > 1 << 20);
    assert_eq!(read(true), buffered);
    assert_eq!(buffered, std::fs::read(&path).unwrap());
}
