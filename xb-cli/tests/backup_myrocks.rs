//! Runbook: a MariaDB 10.11 with MyRocks tables, written during the backup.
//! The RocksDB checkpoint taken under BLOCK_COMMIT lands in `#rocksdb/` and
//! the restore equals the source after binlog replay.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use common::*;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

const ROCKS: &str = "--plugin-load-add=ha_rocksdb";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn myrocks_tables_under_write_load_restore_to_equal_tables() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, &format!("{BINLOG_ARGS} {ROCKS}"))
        .expect("source");
    let spec = LoadSpec {
        rocksdb: true,
        innodb_tables: 2,
        ..LoadSpec::default()
    };
    let target = backup_under_load(&src, &spec, &[]).await;
    let rocks: Vec<String> = std::fs::read_dir(target.join("#rocksdb"))
        .expect("#rocksdb in the backup")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        rocks.iter().any(|f| f.starts_with("MANIFEST-")),
        "{rocks:?}"
    );
    assert!(rocks.iter().any(|f| f.ends_with(".sst")), "{rocks:?}");
    assert!(
        !src.datadir()
            .join("#rocksdb/mariabackup-checkpoint")
            .exists(),
        "the server-side checkpoint is removed after the copy"
    );
    restore_and_compare_with(&src, &target, &[&spec.schema], ROCKS).await;
}
