//! Runbook: restore a prepared backup with `xb-cli copy-back` /
//! `move-back` into a fresh datadir, start a server on it, and compare
//! every table with the source. Also what a restore refuses (each before
//! writing anything), and a restore that runs out of space: it fails,
//! marks the datadir, and the server refuses to start on what it left.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};
use xb_testing::verify::{check_tables, replay_binlog, table_checksums};

/// `xb-cli copy-back|move-back --target-dir BACKUP ARGS…`.
fn xb_restore(verb: &str, backup: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg(verb)
        .arg("--target-dir")
        .arg(backup)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// An option file as a DBA keeps one for the new server: `[mysqld]` with
/// `datadir` and `extra` lines.
fn option_file(dir: &Path, datadir: &Path, extra: &str) -> PathBuf {
    let f = dir.join("new-server.cnf");
    std::fs::write(
        &f,
        format!(
            "[client]\nuser = xb\n[mysqld]\ndatadir = {}\n{extra}",
            datadir.display()
        ),
    )
    .unwrap();
    f
}

/// Every entry under `dir`: size, mtime and inode, so any write shows.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, i64, u64)> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p.clone());
            }
            out.insert(
                p.strip_prefix(dir).unwrap().to_path_buf(),
                (m.len(), m.mtime_nsec(), m.ino()),
            );
        }
    }
    out
}

/// A load of `tables` small InnoDB tables in schema `s`, optionally with
/// `DATA DIRECTORY = remote`.
fn small_load(remote: Option<&Path>) -> LoadSpec {
    LoadSpec {
        schema: "s".into(),
        innodb_tables: 2,
        rows_per_table: 500,
        writers: 2,
        data_directory: remote.map(Path::to_path_buf),
        ..LoadSpec::default()
    }
}

/// Starts a server of the source's flavour on the restored `datadir`,
/// checks every table, rolls it forward with the source's binlog from the
/// backup's `xtrabackup_binlog_info` (the restore leaves that file in the
/// backup) and compares every table with `want`.
async fn start_and_compare_restored(
    src: &TestServer,
    backup: &Path,
    datadir: &Path,
    mysqld_args: &str,
    want: &BTreeMap<String, Option<u64>>,
) -> TestServer {
    let info = std::fs::read_to_string(backup.join("xtrabackup_binlog_info")).unwrap();
    let mut fields = info.split_whitespace();
    let file = fields.next().unwrap().to_string();
    let pos: u64 = fields.next().unwrap().parse().unwrap();
    let restored = TestServer::start_on_with_args(src.flavor(), datadir, mysqld_args)
        .expect("a server starts on the restored datadir");
    let mut rconn = restored.conn().await.unwrap();
    let bad = check_tables(&mut rconn, &["s"]).await.unwrap();
    assert!(bad.is_empty(), "CHECK TABLE on the restore: {bad:?}");
    replay_binlog(src, &file, pos, &restored).expect("binlog replay");
    let got = table_checksums(&mut rconn, &["s"]).await.unwrap();
    assert!(!want.is_empty());
    assert_eq!(&got, want, "restored tables differ from the source");
    restored
}

/// The source's tables once the load has stopped.
async fn source_state(src: &TestServer) -> BTreeMap<String, Option<u64>> {
    let mut c = src.conn().await.unwrap();
    table_checksums(&mut c, &["s"]).await.unwrap()
}

/// Total size of the files a restore of `backup` writes before its redo
/// (the redo being `ib_logfile0` or `#innodb_redo/`), plus the marker and
/// the placeholder log.
fn data_bytes(backup: &Path) -> u64 {
    tree(backup)
        .into_iter()
        .filter(|(p, _)| {
            let s = p.to_string_lossy();
            !(s.starts_with("ib_logfile") || s.starts_with("#innodb_redo"))
        })
        .filter(|(p, _)| backup.join(p).is_file())
        .map(|(_, (len, _, _))| len)
        .sum()
}

/// A restore onto a disk that fills up before the redo log is in: exit
/// code 46 naming the file, the marker in the datadir saying why, and,
/// once there is space again, a real server of the flavour refuses to
/// start on what was left (the server's own refusal: the datadir holds
/// the system tables by then, which is what the test scripts look for
/// before they start one).
fn a_full_disk_leaves_a_datadir_no_server_starts_on(src: &TestServer, backup: &Path) {
    let dir = scratch_dir("xb-full-");
    let datadir = dir.path().join("data");
    let data = data_bytes(backup);
    let all: u64 = tree(backup).values().map(|(len, _, _)| len).sum();
    // room for the data, with slack for block rounding, the marker and
    // the placeholder log; the redo (tens of MiB) cannot fit as well
    let slack = 4096;
    assert!(
        all - data > 4 * slack * 1024,
        "the redo is too small for this test"
    );
    let size = data / 1024 + slack;
    let fs = SmallFs::mount(&datadir, &format!("{size}k"));
    let out = xb_restore(
        "copy-back",
        backup,
        &["--datadir", datadir.to_str().unwrap(), "--parallel", "2"],
    );
    assert_failure_mentions(
        &out,
        &["No space left on device", "xb_restore_incomplete", "hint: "],
    );
    assert_eq!(out.status.code(), Some(46), "exit code of a failed restore");
    let marker = std::fs::read_to_string(datadir.join("xb_restore_incomplete")).unwrap();
    assert!(marker.contains("restore failed"), "{marker}");
    assert!(marker.contains("No space left on device"), "{marker}");
    let system = if src.flavor().is_mysql() {
        "mysql.ibd"
    } else {
        "mysql/global_priv.frm"
    };
    assert!(
        datadir.join(system).is_file(),
        "the data went in before the redo"
    );
    // space is freed, and someone starts the server anyway
    let grown = Command::new("mount")
        .args(["-o", "remount,size=1g"])
        .arg(&datadir)
        .status()
        .unwrap();
    assert!(grown.success());
    let started = TestServer::start_on(src.flavor(), &datadir);
    let log = std::fs::read_to_string(dir.path().join("data.run/error.log")).unwrap_or_default();
    assert!(
        started.is_err(),
        "a server started on a half-restored datadir:\n{log}"
    );
    let why = if src.flavor().is_mysql() {
        "Neither found #innodb_redo subdirectory"
    } else {
        "ib_logfile0"
    };
    assert!(log.contains(why), "the server's refusal:\n{log}");
    drop(fs);
}

/// MariaDB 10.11 with two tables kept outside the datadir (`DATA
/// DIRECTORY`), written during the backup. After `xb-cli prepare` the
/// source is stopped and its outside directory moved away (the host was
/// lost); `copy-back` through an option file puts each table's file back
/// at its original absolute path, and the restored server has the
/// source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb1011_copy_back_puts_remote_tables_back_where_they_were() {
    let mut src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    let remote = src.scratch("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let backup = backup_under_load(&src, &small_load(Some(&remote)), &[]).await;
    let want = source_state(&src).await;
    xb_prepare(&src, &backup);
    src.stop().unwrap();
    // its files must not be shared with the restored server
    let lost = src.scratch("remote-lost");
    std::fs::rename(&remote, &lost).unwrap();

    let new = scratch_dir("xb-new-");
    let datadir = new.path().join("data");
    let cnf = option_file(new.path(), &datadir, "");
    let out = xb_restore(
        "copy-back",
        &backup,
        &["--defaults-file", cnf.to_str().unwrap()],
    );
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("copy-back completed OK"), "{stderr}");
    for t in ["sbtest1", "sbtest2"] {
        let file = remote.join("s").join(format!("{t}.ibd"));
        assert!(file.is_file(), "{} is not back", file.display());
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(!datadir.join("s").join(format!("{t}.ibd")).exists());
        assert!(datadir.join("s").join(format!("{t}.isl")).is_file());
    }
    // backup-only files stay in the backup; ib_buffer_pool is restored
    for f in [
        "xtrabackup_checkpoints",
        "xtrabackup_info",
        "backup-my.cnf",
        "xb_source",
    ] {
        assert!(!datadir.join(f).exists(), "{f} was copied into the datadir");
    }
    assert!(!datadir.join("xb_restore_incomplete").exists());
    let mode = std::fs::metadata(datadir.join("ibdata1")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o640);
    start_and_compare_restored(&src, &backup, &datadir, "", &want).await;
}

/// MariaDB 10.5 (which starts without `ib_logfile0`, making a new log, so
/// a half restore must hold a log it refuses): a first `copy-back` runs
/// out of space and leaves a datadir the server refuses; the second, with
/// four workers, restores the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb105_copy_back_after_a_full_disk() {
    let src = TestServer::start_with_args(Flavor::MariaDb105, BINLOG_ARGS).unwrap();
    let backup = backup_under_load(&src, &small_load(None), &[]).await;
    let want = source_state(&src).await;
    xb_prepare(&src, &backup);
    a_full_disk_leaves_a_datadir_no_server_starts_on(&src, &backup);

    let new = scratch_dir("xb-new-");
    let datadir = new.path().join("data");
    let cnf = option_file(new.path(), &datadir, "");
    let out = xb_restore(
        "copy-back",
        &backup,
        &["--defaults-file", cnf.to_str().unwrap(), "--parallel", "4"],
    );
    assert_success(&out);
    start_and_compare_restored(&src, &backup, &datadir, "", &want).await;
}

/// MariaDB 11.8 with the redo log kept apart
/// (`innodb_log_group_home_dir` in the option file): the log goes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_copy_back_honours_the_log_directory_of_the_option_file() {
    let src = TestServer::start_with_args(Flavor::MariaDb118, BINLOG_ARGS).unwrap();
    let backup = backup_under_load(&src, &small_load(None), &[]).await;
    let want = source_state(&src).await;
    xb_prepare(&src, &backup);

    let new = scratch_dir("xb-new-");
    let datadir = new.path().join("data");
    let logs = new.path().join("redo");
    let cnf = option_file(
        new.path(),
        &datadir,
        &format!("innodb_log_group_home_dir = {}\n", logs.display()),
    );
    let out = xb_restore(
        "copy-back",
        &backup,
        &["--defaults-file", cnf.to_str().unwrap()],
    );
    assert_success(&out);
    assert!(logs.join("ib_logfile0").is_file());
    assert!(!datadir.join("ib_logfile0").exists());
    start_and_compare_restored(
        &src,
        &backup,
        &datadir,
        &format!("--innodb-log-group-home-dir={}", logs.display()),
        &want,
    )
    .await;
}

/// MySQL 9.7 with two tables kept outside the datadir (in a directory of
/// `innodb_directories`). The source is stopped and its outside directory
/// moved away (the host was lost); a first `copy-back` runs out of space
/// and leaves a datadir MySQL refuses; the second puts each file back at
/// the path `xtrabackup_tablespaces` records, and the restored server has
/// the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql97_copy_back_after_a_full_disk_puts_remote_tables_back() {
    let remote_dir = scratch_dir("xb-remote-");
    let remote = remote_dir.path().to_path_buf();
    let dirs_arg = format!("--innodb-directories={}", remote.display());
    let mut src =
        TestServer::start_with_args(Flavor::MySql97, &format!("{dirs_arg} {BINLOG_ARGS}")).unwrap();
    let backup = backup_under_load(&src, &small_load(Some(&remote)), &[]).await;
    let want = source_state(&src).await;
    xb_prepare(&src, &backup);
    src.stop().unwrap();
    let lost = src.scratch("remote-lost");
    std::fs::rename(&remote, &lost).unwrap();
    a_full_disk_leaves_a_datadir_no_server_starts_on(&src, &backup);
    // as the hint says: remove what the failed restore wrote, outside the
    // datadir too, before trying again
    assert!(remote.join("s/sbtest1.ibd").is_file());
    std::fs::remove_dir_all(&remote).unwrap();

    let new = scratch_dir("xb-new-");
    let datadir = new.path().join("data");
    let cnf = option_file(new.path(), &datadir, "");
    let out = xb_restore(
        "copy-back",
        &backup,
        &["--defaults-file", cnf.to_str().unwrap(), "--parallel", "2"],
    );
    assert_success(&out);
    for t in ["sbtest1", "sbtest2"] {
        let file = remote.join("s").join(format!("{t}.ibd"));
        assert!(file.is_file(), "{} is not back", file.display());
        assert!(!datadir.join("s").join(format!("{t}.ibd")).exists());
    }
    start_and_compare_restored(&src, &backup, &datadir, &dirs_arg, &want).await;
}

/// The documented one-liner: `xb-cli backup --stream | xb-cli extract`,
/// `xb-cli prepare`, `xb-cli move-back`. The files are moved, not copied
/// (same inode), and the restored server has the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_back_from_an_extracted_stream() {
    let src = TestServer::start_with_args(Flavor::MariaDb1011, BINLOG_ARGS).unwrap();
    xb_testing::load::prepare(src.opts(), &small_load(None))
        .await
        .unwrap();
    let want = source_state(&src).await;
    let work = scratch_dir("xb-stream-");
    let d = work.path().join("backup");
    let new = work.path().join("new");
    let inodes = work.path().join("inodes");
    // README's one-liner, with the test server's binary and settings for
    // prepare, and the inodes of the prepared files noted before move-back
    let sh = format!(
        "set -o pipefail; {xb} backup --host 127.0.0.1 --port {port} --user xb --password=xb --stream=xbstream \
         | {xb} extract --directory {d} \
         && {xb} prepare --target-dir {d} --server-binary {bin} --server-defaults-file {cnf} \
         && find {d} -type f -printf '%i %P\\n' > {inodes} \
         && {xb} move-back --target-dir {d} --datadir {new}",
        xb = env!("CARGO_BIN_EXE_xb-cli"),
        port = src.port(),
        d = d.display(),
        bin = xb_testing::vendor::server_binary(&src).display(),
        cnf = src.run_dir().join("my.cnf").display(),
        inodes = inodes.display(),
        new = new.display(),
    );
    let out = Command::new("bash").args(["-c", &sh]).output().unwrap();
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("move-back completed OK"), "{stderr}");
    let before: BTreeMap<String, u64> = std::fs::read_to_string(&inodes)
        .unwrap()
        .lines()
        .map(|l| {
            let (ino, path) = l.split_once(' ').unwrap();
            (path.to_string(), ino.parse().unwrap())
        })
        .collect();
    for f in ["ibdata1", "s/sbtest1.ibd", "ib_logfile0"] {
        assert!(!d.join(f).exists(), "{f} is still in the backup: not moved");
        let ino = std::fs::metadata(new.join(f)).unwrap().ino();
        assert_eq!(Some(&ino), before.get(f), "{f} was copied, not moved");
    }
    assert!(d.join("xtrabackup_checkpoints").is_file());
    let restored = TestServer::start_on(src.flavor(), &new).unwrap();
    let mut c = restored.conn().await.unwrap();
    assert_eq!(table_checksums(&mut c, &["s"]).await.unwrap(), want);
}

/// What a restore refuses, each with its exit code, a message naming the
/// fix, and nothing written: a backup never prepared, one prepared with
/// `--apply-log-only`, an incomplete one, an unknown `--chown` user, a
/// destination that cannot be written, a datadir that is not empty.
/// `--force-non-empty-directories` adds files next to others but never
/// replaces one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_write_nothing_and_name_the_fix() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let raw = src.scratch("raw");
    assert_success(&run_xb_backup(&src, &["--target-dir", raw.to_str().unwrap()]).await);
    let log_applied = src.scratch("log-applied");
    xb_testing::vendor::copy_dir(&raw, &log_applied).unwrap();
    assert_success(&xb_prepare_args(
        &src,
        &log_applied,
        &["--apply-log-only"],
        None,
    ));
    let prepared = src.scratch("prepared");
    xb_testing::vendor::copy_dir(&raw, &prepared).unwrap();
    xb_prepare(&src, &prepared);
    let incomplete = src.scratch("incomplete");
    xb_testing::vendor::copy_dir(&prepared, &incomplete).unwrap();
    std::fs::write(incomplete.join("xtrabackup_incomplete"), "").unwrap();

    let work = scratch_dir("xb-refuse-");
    let datadir = work.path().join("data");
    let d = datadir.to_str().unwrap();
    let refused = |backup: &Path, args: &[&str], code: i32, needles: &[&str]| {
        let before = (tree(backup), tree(work.path()));
        let mut all = vec!["--datadir", d];
        all.extend_from_slice(args);
        let out = xb_restore("copy-back", backup, &all);
        assert_failure_mentions(&out, needles);
        assert_eq!(out.status.code(), Some(code), "{needles:?}");
        assert!(
            (tree(backup), tree(work.path())) == before,
            "a refused restore wrote something ({needles:?})"
        );
    };
    refused(
        &raw,
        &[],
        40,
        &[
            "not prepared",
            "full-backuped",
            "xb-cli prepare --target-dir",
        ],
    );
    refused(
        &log_applied,
        &[],
        40,
        &[
            "log-applied",
            "--apply-log-only",
            "without --apply-log-only",
        ],
    );
    refused(&incomplete, &[], 40, &["incomplete", "take a new backup"]);
    refused(
        &prepared,
        &["--chown", "no-such-user-xb"],
        42,
        &["no such user"],
    );
    // a destination on a read-only file system (root ignores mode bits)
    let ro = work.path().join("ro");
    let ro_fs = SmallFs::mount(&ro, "1m");
    let remount = |how: &str| {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&ro)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    remount("ro");
    let out = xb_restore(
        "copy-back",
        &prepared,
        &["--datadir", ro.join("data").to_str().unwrap()],
    );
    assert_failure_mentions(
        &out,
        &[&format!("{} is not writable", ro.display()), "hint: "],
    );
    assert_eq!(out.status.code(), Some(45));
    remount("rw");
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        0,
        "wrote to {}",
        ro.display()
    );
    drop(ro_fs);

    // a datadir with a file in it
    std::fs::create_dir_all(&datadir).unwrap();
    std::fs::write(datadir.join("notes.txt"), "keep me").unwrap();
    refused(
        &prepared,
        &[],
        43,
        &[
            &format!("{d} is not empty"),
            "--force-non-empty-directories",
        ],
    );
    // one holding a file the backup has: refused even when forced
    std::fs::write(datadir.join("ibdata1"), "not mine to replace").unwrap();
    refused(
        &prepared,
        &["--force-non-empty-directories"],
        44,
        &[&format!("{d}/ibdata1 already exists"), "never overwrites"],
    );
    // forced, with nothing in the way: the restore adds its files
    std::fs::remove_file(datadir.join("ibdata1")).unwrap();
    let out = xb_restore(
        "copy-back",
        &prepared,
        &[
            "--datadir",
            d,
            "--force-non-empty-directories",
            "--chown",
            "nobody",
        ],
    );
    assert_success(&out);
    // given to --chown's user, what was there before left alone
    let uid = |p: &Path| std::fs::metadata(p).unwrap().uid();
    assert_eq!(uid(&datadir.join("ibdata1")), 65534);
    assert_eq!(uid(&datadir.join("mysql")), 65534);
    assert_eq!(uid(&datadir.join("notes.txt")), 0);
    assert_eq!(
        std::fs::read_to_string(datadir.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert!(datadir.join("ibdata1").is_file());
    assert!(datadir.join("mysql/global_priv.frm").is_file());
    // the backup is still whole: copy-back leaves it as it was
    assert!(prepared.join("ibdata1").is_file());
    a_failed_move_back_leaves_the_backup_whole(&prepared);
}

/// Regular files under `dir` with their size and inode.
fn files(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| dir.join(p).is_file())
        .map(|(p, (len, _, ino))| (p, (len, ino)))
        .collect()
}

/// A `move-back` on one file system (hard links) that fails part-way (the
/// file system runs out of inodes after a few files): exit 46, the datadir
/// marked, and every file the move had linked is back in the backup, the
/// same inode.
fn a_failed_move_back_leaves_the_backup_whole(prepared: &Path) {
    let dir = scratch_dir("xb-inodes-");
    let mnt = dir.path().join("fs");
    let fs = SmallFs::mount(&mnt, "1g");
    let backup = mnt.join("backup");
    xb_testing::vendor::copy_dir(prepared, &backup).unwrap();
    let df = Command::new("df")
        .args(["--output=iused"])
        .arg(&mnt)
        .output()
        .unwrap();
    let used: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // tmpfs counts a hard link as an inode: the datadir, the marker, the
    // placeholder log, and three more (a link or two and a directory)
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,nr_inodes={}", used + 6)])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let before = files(&backup);
    let new = mnt.join("new");
    let out = xb_restore("move-back", &backup, &["--datadir", new.to_str().unwrap()]);
    assert_failure_mentions(&out, &["No space left on device", "xb_restore_incomplete"]);
    assert_eq!(out.status.code(), Some(46));
    assert!(new.join("xb_restore_incomplete").is_file());
    assert_eq!(
        files(&backup),
        before,
        "the failed move-back lost backup files"
    );
    assert!(!new.join("ibdata1").exists());
    drop(fs);
}
