//! Runbook: prepare a MariaDB 10.11 backup with xb's own `prepare` (the real
//! server's crash recovery, no vendor tool) and prove it restores the same
//! data as the vendor's `mariadb-backup --prepare` of the very same backup.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use xb_core::prepare::{PrepareError, PrepareOptions, prepare};
use xb_testing::load::{LoadSpec, WriteLoad, prepare as load_data};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::vendor::{copy_dir, mariadb_backup, mariadb_backup_prepare, server_binary};
use xb_testing::verify::{check_tables, replay_binlog, table_checksums};

fn options(src: &TestServer, dir: &std::path::Path) -> PrepareOptions {
    PrepareOptions::new(dir)
        .server_binary(server_binary(src))
        .server_defaults_file(src.run_dir().join("my.cnf"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xb_prepare_and_vendor_prepare_give_identical_tables() {
    let src =
        TestServer::start_with_args(Flavor::MariaDb1011, "--log-bin=binlog --server-id=1").unwrap();
    let spec = LoadSpec {
        non_innodb: true,
        aria: true,
        ..LoadSpec::default()
    };
    load_data(src.opts(), &spec).await.unwrap();
    let load = WriteLoad::start(src.opts(), &spec);
    load.wait_for_commits(300).await;
    let vendor_dir = src.scratch("vendor");
    let backup = {
        let target = vendor_dir.clone();
        let s = &src;
        tokio::task::block_in_place(|| mariadb_backup(s, &target))
    };
    backup.unwrap();
    load.wait_for_commits(100).await;
    load.stop().await.unwrap();

    let xb_dir = src.scratch("xb");
    copy_dir(&vendor_dir, &xb_dir).unwrap();
    mariadb_backup_prepare(&src, &vendor_dir).unwrap();
    let report = prepare(&options(&src, &xb_dir)).unwrap();
    assert!(report.log_end_lsn >= report.last_lsn, "{report:?}");
    assert!(report.first_lsn <= report.to_lsn, "{report:?}");
    let cps = std::fs::read_to_string(xb_dir.join("xtrabackup_checkpoints")).unwrap();
    assert!(cps.starts_with("backup_type = full-prepared\n"), "{cps}");
    // The server really recovered the copied log, from the backup's checkpoint.
    let log = std::fs::read_to_string(xb_dir.join("xb_prepare.log")).unwrap();
    assert!(
        log.contains(&format!(
            "Starting crash recovery from checkpoint LSN={}",
            report.first_lsn
        )),
        "{log}"
    );

    let info = std::fs::read_to_string(xb_dir.join("xtrabackup_binlog_info")).unwrap();
    let mut f = info.split_whitespace();
    let (file, pos) = (
        f.next().unwrap().to_string(),
        f.next().unwrap().parse::<u64>().unwrap(),
    );

    let vendor = TestServer::start_on(Flavor::MariaDb1011, &vendor_dir).unwrap();
    let ours = TestServer::start_on(Flavor::MariaDb1011, &xb_dir).unwrap();
    let mut vconn = vendor.conn().await.unwrap();
    let mut oconn = ours.conn().await.unwrap();
    assert!(
        check_tables(&mut oconn, &[&spec.schema])
            .await
            .unwrap()
            .is_empty()
    );
    let v_sums = table_checksums(&mut vconn, &[&spec.schema]).await.unwrap();
    let o_sums = table_checksums(&mut oconn, &[&spec.schema]).await.unwrap();
    assert_eq!(o_sums.len(), 6);
    assert_eq!(
        o_sums, v_sums,
        "same backup, two prepares, different tables"
    );

    replay_binlog(&src, &file, pos, &ours).unwrap();
    let mut sconn = src.conn().await.unwrap();
    let want = table_checksums(&mut sconn, &[&spec.schema]).await.unwrap();
    assert_eq!(
        table_checksums(&mut oconn, &[&spec.schema]).await.unwrap(),
        want
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_refuses_what_it_cannot_restore() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let dir = src.scratch("b");
    tokio::task::block_in_place(|| mariadb_backup(&src, &dir)).unwrap_or_else(|e| panic!("{e}"));

    // not a backup
    let err = prepare(&options(&src, src.datadir())).unwrap_err();
    assert!(matches!(err, PrepareError::NotABackup { .. }), "{err}");

    // a truncated redo copy cannot reach last_lsn
    let trunc = src.scratch("trunc");
    copy_dir(&dir, &trunc).unwrap();
    let cp_text = std::fs::read_to_string(trunc.join("xtrabackup_checkpoints")).unwrap();
    let bumped = cp_text
        .lines()
        .map(|l| match l.strip_prefix("last_lsn = ") {
            Some(v) => format!("last_lsn = {}", v.parse::<u64>().unwrap() + 4096),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(trunc.join("xtrabackup_checkpoints"), bumped + "\n").unwrap();
    let err = prepare(&options(&src, &trunc)).unwrap_err();
    assert!(matches!(err, PrepareError::LogTooShort { .. }), "{err}");
    assert!(err.to_string().contains("ib_logfile0"), "{err}");

    // no server binary
    let err =
        prepare(&PrepareOptions::new(&dir).server_binary("/nonexistent/mariadbd")).unwrap_err();
    assert!(matches!(err, PrepareError::ServerNotFound { .. }), "{err}");
    assert!(err.hint().contains("--server-binary"));

    // a server of another release series is refused by its version, typed
    let opt = std::env::var("XB_OPT").unwrap_or_else(|_| "/opt".into());
    let other = std::path::Path::new(&opt).join("xb-mariadb118/sbin/mariadbd");
    let err = prepare(&options(&src, &dir).server_binary(&other)).unwrap_err();
    match &err {
        PrepareError::ServerMismatch {
            server_version,
            backup_version,
            ..
        } => {
            assert!(server_version.starts_with("11.8."), "{err}");
            assert!(backup_version.starts_with("10.11."), "{err}");
        }
        _ => panic!("expected ServerMismatch, got {err}"),
    }

    // an incomplete backup
    let inc = src.scratch("inc");
    copy_dir(&dir, &inc).unwrap();
    std::fs::write(inc.join(xb_core::prepare::INCOMPLETE_MARKER), b"").unwrap();
    let err = prepare(&options(&src, &inc)).unwrap_err();
    assert!(matches!(err, PrepareError::Incomplete { .. }), "{err}");

    // prepared once, refused twice
    prepare(&options(&src, &dir)).unwrap();
    let err = prepare(&options(&src, &dir)).unwrap_err();
    assert!(matches!(err, PrepareError::WrongBackupType { .. }), "{err}");
}
