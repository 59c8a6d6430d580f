//! Runbook: `xb-cli prepare` on a backup, and on something that is not one.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

mod common;

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_failure_mentions, assert_success, run_xb_backup};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::vendor::{mariadb_backup, server_binary};

/// `/opt/xb-FLAVOR/sbin/NAME`: a server binary of one of the test roots.
fn opt_binary(flavor: Flavor, name: &str) -> PathBuf {
    let opt = std::env::var("XB_OPT").unwrap_or_else(|_| "/opt".into());
    Path::new(&opt)
        .join(format!("xb-{}", flavor.name()))
        .join("sbin")
        .join(name)
}

/// Every entry under `dir`: kind, size, mtime, mode and a hash of the
/// bytes, so any change to the backup shows as a difference.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64, u64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mut h = DefaultHasher::new();
            if m.is_dir() {
                todo.push(p.clone());
            } else if m.is_file() {
                h.write(&std::fs::read(&p).unwrap());
            }
            let key = p.strip_prefix(dir).unwrap().to_path_buf();
            out.insert(
                key,
                (m.mode(), m.len(), m.mtime(), m.mtime_nsec(), h.finish()),
            );
        }
    }
    out
}

/// A `--server-defaults-file` that includes the source's own and adds an
/// `init-file` whose SQL creates the schema `xb_init_probe` (and turns the
/// event scheduler on), as a careless or hostile option file might.
fn probe_defaults_file(src: &TestServer) -> PathBuf {
    let sql = src.scratch("init.sql");
    std::fs::write(
        &sql,
        "CREATE DATABASE xb_init_probe;\nCREATE TABLE xb_init_probe.t (a INT) ENGINE=InnoDB;\n",
    )
    .unwrap();
    let cnf = src.scratch("user.cnf");
    std::fs::write(
        &cnf,
        format!(
            "!include {}\n[mysqld]\ninit-file={}\nevent-scheduler=ON\n",
            src.run_dir().join("my.cnf").display(),
            sql.display()
        ),
    )
    .unwrap();
    cnf
}

/// `xb-cli prepare --target-dir DIR ARGS…`, with `path` as PATH when given.
fn xb_prepare(dir: &Path, args: &[&std::ffi::OsStr], path: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["prepare", "--target-dir"]).arg(dir).args(args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    cmd.output().unwrap()
}

#[test]
fn prepare_makes_a_backup_restorable_and_says_so() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let dir = src.scratch("b");
    mariadb_backup(&src, &dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["prepare", "--target-dir"])
        .arg(&dir)
        .arg("--server-binary")
        .arg(server_binary(&src))
        .arg("--server-defaults-file")
        .arg(src.run_dir().join("my.cnf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("prepare completed OK"), "{stderr}");
    let restored = TestServer::start_on(Flavor::MariaDb1011, &dir).unwrap();
    let tables = restored.sql("SELECT COUNT(*) FROM mysql.user").unwrap();
    assert!(tables.trim().parse::<u32>().unwrap() >= 1);
}

#[test]
fn prepare_of_a_non_backup_fails_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["prepare", "--target-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(30), "{stderr}");
    assert!(
        stderr.contains("xtrabackup_checkpoints is missing"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(!stderr.contains("completed OK"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_backup_is_refused_by_mariadb_unchanged_and_prepared_by_mysql() {
    let src = TestServer::start(Flavor::MySql97).unwrap();
    let dir = src.scratch("b");
    let dir_s = dir.to_string_lossy().into_owned();
    assert_success(&run_xb_backup(&src, &["--target-dir", &dir_s]).await);
    let before = snapshot(&dir);
    let version = |bin: &Path| {
        let out = Command::new(bin).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let word = text.split_whitespace().skip_while(|w| *w != "Ver").nth(1);
        word.unwrap().to_string()
    };
    let mysqld = opt_binary(Flavor::MySql97, "mysqld");
    let mysql_version = version(&mysqld);
    assert!(mysql_version.starts_with("9.7."), "{mysql_version}");

    // named explicitly: the MariaDB 10.11 server, and MariaDB 11.8's binary
    // that is called mysqld
    for bin in [
        opt_binary(Flavor::MariaDb1011, "mariadbd"),
        opt_binary(Flavor::MariaDb118, "mysqld"),
    ] {
        let out = xb_prepare(&dir, &["--server-binary".as_ref(), bin.as_os_str()], None);
        let mariadb_version = version(&bin);
        assert!(mariadb_version.contains("MariaDB"), "{mariadb_version}");
        assert_failure_mentions(
            &out,
            &[
                &bin.display().to_string(),
                &mariadb_version,
                &mysql_version,
                "MariaDB cannot recover a MySQL backup",
                "hint: ",
                "--server-binary",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(33),
            "exit code of a wrong server binary"
        );
        assert_eq!(snapshot(&dir), before, "the refused backup changed");
    }
    // found in PATH: only MariaDB binaries there (mariadbd and mysqld; the
    // wrappers in /opt run `env` from /usr/bin)
    let path = std::env::join_paths([
        opt_binary(Flavor::MariaDb118, ""),
        PathBuf::from("/usr/bin"),
        PathBuf::from("/bin"),
    ])
    .unwrap();
    let out = xb_prepare(&dir, &[], Some(Path::new(&path)));
    assert_failure_mentions(&out, &["11.8.", &mysql_version, "MariaDB cannot recover"]);
    assert_eq!(snapshot(&dir), before, "the refused backup changed");

    // the right one, found in PATH after MariaDB ones, prepares it
    let path = std::env::join_paths([
        opt_binary(Flavor::MariaDb1011, ""),
        opt_binary(Flavor::MySql97, ""),
        PathBuf::from("/usr/bin"),
        PathBuf::from("/bin"),
    ])
    .unwrap();
    // with an inherited init-file that would create a schema: it must not run
    let cnf = probe_defaults_file(&src);
    let out = xb_prepare(
        &dir,
        &["--server-defaults-file".as_ref(), cnf.as_os_str()],
        Some(Path::new(&path)),
    );
    assert_success(&out);
    assert!(!dir.join("xb_init_probe").exists(), "the init-file ran");
    let log = std::fs::read_to_string(dir.join("xb_prepare.log")).unwrap();
    assert!(log.contains(&mysql_version), "{log}");
    let restored = TestServer::start_on(Flavor::MySql97, &dir).unwrap();
    let users = restored.sql("SELECT COUNT(*) FROM mysql.user").unwrap();
    assert!(users.trim().parse::<u32>().unwrap() >= 1, "{users}");
}

#[test]
fn a_mariadb_backup_is_refused_by_another_series_or_mysql_and_left_unchanged() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let dir = src.scratch("b");
    mariadb_backup(&src, &dir).unwrap();
    let before = snapshot(&dir);
    for (bin, why) in [
        (
            opt_binary(Flavor::MariaDb105, "mariadbd"),
            "same major.minor",
        ),
        (
            opt_binary(Flavor::MariaDb118, "mariadbd"),
            "same major.minor",
        ),
        (
            opt_binary(Flavor::MySql97, "mysqld"),
            "MySQL cannot recover a MariaDB",
        ),
    ] {
        let out = xb_prepare(&dir, &["--server-binary".as_ref(), bin.as_os_str()], None);
        assert_failure_mentions(&out, &["10.11.", why, "hint: "]);
        assert_eq!(
            snapshot(&dir),
            before,
            "{} changed the backup",
            bin.display()
        );
    }
}

#[test]
fn an_init_file_in_the_server_defaults_file_does_not_run_during_recovery() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let dir = src.scratch("b");
    mariadb_backup(&src, &dir).unwrap();
    let cnf = probe_defaults_file(&src);
    let bin = server_binary(&src);
    let out = xb_prepare(
        &dir,
        &[
            "--server-binary".as_ref(),
            bin.as_os_str(),
            "--server-defaults-file".as_ref(),
            cnf.as_os_str(),
        ],
        None,
    );
    assert_success(&out);
    assert!(
        !dir.join("xb_init_probe").exists(),
        "the init-file ran during recovery"
    );
    let restored = TestServer::start_on(Flavor::MariaDb1011, &dir).unwrap();
    let found = restored
        .sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'xb_init_probe'")
        .unwrap();
    assert_eq!(found.trim(), "0");
    // the restore itself is sound
    let users = restored.sql("SELECT COUNT(*) FROM mysql.user").unwrap();
    assert!(users.trim().parse::<u32>().unwrap() >= 1, "{users}");
}
