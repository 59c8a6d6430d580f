//! Shared steps of the CLI runbooks: run `xb-cli backup` against a test
//! server, and prove a backup by restoring it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod archive;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use xb_testing::load::{LoadSpec, WriteLoad, prepare};
use xb_testing::server::{Flavor, TestServer};
use xb_testing::verify::{check_tables, replay_binlog, table_checksums};

/// Source servers write a binlog, so restores can be rolled forward.
pub const BINLOG_ARGS: &str = "--log-bin=binlog --server-id=1";

/// File that marks a target directory whose backup did not complete.
pub const INCOMPLETE_MARKER: &str = "xtrabackup_incomplete";

/// The `xb-cli backup` command line for `server`, plus `extra` options.
pub fn xb_backup_command(server: &TestServer, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.arg("backup")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(server.port().to_string())
        .args(["--user", "xb", "--password=xb"])
        .args(extra)
        .stdin(Stdio::null());
    cmd
}

/// Runs a command to completion, capturing its output.
pub fn output_of(mut cmd: Command) -> Output {
    cmd.output().expect("xb-cli runs")
}

/// Runs `xb-cli backup` to its end; one that runs past [`BACKUP_LIMIT`]
/// fails the test with its output and the server's sessions.
pub async fn run_xb_backup(server: &TestServer, extra: &[&str]) -> Output {
    let child = spawn_xb_backup(server, extra);
    finish_within_on(server, child, BACKUP_LIMIT).await
}

/// Longer than any backup of the suite takes on a busy CI machine, and
/// shorter than the runner's own limit: a hung backup fails its test with
/// the backup's output and the server's sessions, not a bare timeout.
pub const BACKUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

/// Runs `xb-cli backup` with its standard output sent to `file`, as
/// [`run_xb_backup`].
pub async fn run_xb_backup_to_file(server: &TestServer, extra: &[&str], file: &Path) -> Output {
    let child = spawn_xb_backup_to_file(server, extra, file);
    finish_within_on(server, child, BACKUP_LIMIT).await
}

/// `xb-cli backup EXTRA…` in the background with its standard output sent
/// to `file` (a stream), its standard error captured.
pub fn spawn_xb_backup_to_file(
    server: &TestServer,
    extra: &[&str],
    file: &Path,
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::from(xb_backup_command(server, extra));
    cmd.stdout(std::fs::File::create(file).unwrap())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().expect("xb-cli starts")
}

/// Asserts exit 0, printing stderr otherwise.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "xb-cli failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a non-zero exit whose stderr mentions every one of `needles`
/// and never claims success.
pub fn assert_failure_mentions(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success:\n{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr should mention {n:?}:\n{stderr}");
    }
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("completed OK"),
        "a failure must not claim success:\n{all}"
    );
}

/// Prepares `target` with the vendor's `mariadb-backup --prepare`, starts a
/// server on it, checks every table, replays the source's binlog from the
/// recorded coordinates and compares `CHECKSUM TABLE` of every table.
pub async fn restore_and_compare(src: &TestServer, target: &Path, schemas: &[&str]) {
    restore_and_compare_with(src, target, schemas, "").await;
}

/// [`restore_and_compare`], starting the restored server with `mysqld_args`.
pub async fn restore_and_compare_with(
    src: &TestServer,
    target: &Path,
    schemas: &[&str],
    mysqld_args: &str,
) {
    vendor_prepare(src, target);
    start_and_compare(src, target, schemas, mysqld_args).await;
}

/// `mariadb-backup --prepare` of `target`, with the source flavour's tool.
pub fn vendor_prepare(src: &TestServer, target: &Path) {
    let prep = src
        .tool("mariadb-backup")
        .args(["--prepare", &format!("--target-dir={}", target.display())])
        .output()
        .unwrap();
    assert!(
        prep.status.success(),
        "mariadb-backup --prepare failed:\n{}",
        String::from_utf8_lossy(&prep.stderr)
    );
}

/// Prepares `target` with `xb-cli prepare` (the flavour's own server binary
/// runs the recovery), then the same checks as [`restore_and_compare`].
pub async fn xb_prepare_and_compare(src: &TestServer, target: &Path, schemas: &[&str]) {
    xb_prepare(src, target);
    start_and_compare(src, target, schemas, "").await;
}

/// `xb-cli prepare` of `target` with the source flavour's server binary.
pub fn xb_prepare(src: &TestServer, target: &Path) {
    xb_prepare_with_defaults(src, target, &src.run_dir().join("my.cnf"));
}

/// `xb-cli prepare --target-dir BASE ARGS…` (and `--incremental-dir INC`)
/// with the source's server binary and option file; the output, to check.
pub fn xb_prepare_args(src: &TestServer, base: &Path, args: &[&str], inc: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xb-cli"));
    cmd.args(["prepare", "--target-dir"])
        .arg(base)
        .arg("--server-binary")
        .arg(xb_testing::vendor::server_binary(src))
        .arg("--server-defaults-file")
        .arg(src.run_dir().join("my.cnf"))
        .args(args);
    if let Some(inc) = inc {
        cmd.arg("--incremental-dir").arg(inc);
    }
    cmd.output().unwrap()
}

/// Pages of the backup's InnoDB files whose FIL_PAGE_LSN is above `lsn`
/// (16 KiB pages): after an `--apply-log-only` recovery there must be none,
/// or the recovery server wrote pages in an LSN space of its own, which
/// the next incremental's redo would then skip.
pub fn pages_above(dir: &Path, lsn: u64) -> Vec<(PathBuf, u64, u64)> {
    let mut out = Vec::new();
    for p in innodb_files(dir) {
        let bytes = std::fs::read(&p).unwrap();
        for (no, page) in bytes.chunks_exact(16_384).enumerate() {
            let page_lsn = u64::from_be_bytes(page[16..24].try_into().unwrap());
            if page_lsn > lsn {
                out.push((p.clone(), no as u64, page_lsn));
            }
        }
    }
    out
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The InnoDB data files under `dir` (`*.ibd`, `ibdata1`, `undo0*`).
pub fn innodb_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".ibd") || name == "ibdata1" || name.starts_with("undo0")
        })
        .collect()
}

/// The LSN the copied log ends at, from `xb-cli prepare`'s report ("redo
/// applied from LSN A to B"): where the recovery server's own LSNs begin.
pub fn prepared_log_end(stderr: &str) -> u64 {
    let tail = stderr
        .split("redo applied from LSN ")
        .nth(1)
        .unwrap_or_else(|| panic!("no report in:\n{stderr}"));
    tail.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// [`xb_prepare`] with `defaults` as `--server-defaults-file` (the source's
/// own settings, as a DBA would pass them).
pub fn xb_prepare_with_defaults(src: &TestServer, target: &Path, defaults: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["prepare", "--target-dir"])
        .arg(target)
        .arg("--server-binary")
        .arg(xb_testing::vendor::server_binary(src))
        .arg("--server-defaults-file")
        .arg(defaults)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xb-cli prepare failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restores, as a DBA would by hand, the tables a MariaDB backup keeps for
/// a source that had them outside its datadir (`DATA DIRECTORY`): for each
/// `<db>/<table>.isl` in the prepared `target`, moves `<db>/<table>.ibd`
/// to `<new_dir>/<db>/<table>.ibd` and writes that path into the `.isl`
/// (MariaDB's way of moving such a table offline). Returns the `.isl`
/// files as they were (path, contents).
pub fn place_remote_tables(target: &Path, new_dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for db in std::fs::read_dir(target).unwrap() {
        let db = db.unwrap().path();
        if !db.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&db).unwrap() {
            let isl = f.unwrap().path();
            if isl.extension().is_none_or(|x| x != "isl") {
                continue;
            }
            let ibd = isl.with_extension("ibd");
            let dest = new_dir
                .join(db.file_name().unwrap())
                .join(ibd.file_name().unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::rename(&ibd, &dest).unwrap();
            let was = std::fs::read_to_string(&isl).unwrap();
            std::fs::write(&isl, dest.to_str().unwrap()).unwrap();
            found.push((isl, was));
        }
    }
    found.sort();
    found
}

/// Starts a server of the source's flavour on the prepared `target`, checks
/// every table, replays the source's binlog from the recorded coordinates
/// and compares `CHECKSUM TABLE` of every table with the source.
pub async fn start_and_compare(
    src: &TestServer,
    target: &Path,
    schemas: &[&str],
    mysqld_args: &str,
) {
    let info = std::fs::read_to_string(target.join("xtrabackup_binlog_info")).unwrap();
    let mut fields = info.split_whitespace();
    let file = fields.next().expect("binlog file").to_string();
    let pos: u64 = fields.next().expect("binlog position").parse().unwrap();
    let restored =
        TestServer::start_on_with_args(src.flavor(), target, mysqld_args).expect("restored server");
    let mut rconn = restored.conn().await.unwrap();
    let bad = check_tables(&mut rconn, schemas).await.unwrap();
    assert!(bad.is_empty(), "CHECK TABLE on the restore: {bad:?}");
    replay_binlog(src, &file, pos, &restored).expect("binlog replay");
    let mut sconn = src.conn().await.unwrap();
    let want = table_checksums(&mut sconn, schemas).await.unwrap();
    let got = table_checksums(&mut rconn, schemas).await.unwrap();
    assert!(!want.is_empty());
    assert_eq!(got, want, "restored tables differ from the source");
}

/// Loads `spec`, starts its write load, takes `xb-cli backup --target-dir`
/// (plus `extra`) while it runs, lets it write on, stops it; returns the
/// backup directory.
pub async fn backup_under_load(src: &TestServer, spec: &LoadSpec, extra: &[&str]) -> PathBuf {
    backup_under_load_with(src, spec, extra, &[]).await
}

/// [`backup_under_load`], running `just_before` (SQL statements) on the
/// source while the load writes, right before the backup starts.
pub async fn backup_under_load_with(
    src: &TestServer,
    spec: &LoadSpec,
    extra: &[&str],
    just_before: &[String],
) -> PathBuf {
    prepare(src.opts(), spec).await.expect("load data");
    let load = WriteLoad::start(src.opts(), spec);
    load.wait_for_commits(300).await;
    if !just_before.is_empty() {
        let mut c = src.conn().await.unwrap();
        for sql in just_before {
            mysql_async::prelude::Queryable::query_drop(&mut c, sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    let target = src.scratch("backup");
    let target_s = target.to_string_lossy().into_owned();
    let mut args = vec!["--target-dir", target_s.as_str()];
    args.extend_from_slice(extra);
    let out = run_xb_backup(src, &args).await;
    assert_success(&out);
    load.wait_for_commits(200).await;
    load.stop().await.expect("load ran without errors");
    target
}

/// A tmpfs of `size` (mount's syntax: `4m`) mounted on `dir`, unmounted
/// when dropped. Needs root, as the test machines give.
pub struct SmallFs(PathBuf);

impl SmallFs {
    /// Mounts it; fails the test when mounting is not possible.
    pub fn mount(dir: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success(), "this test mounts a tmpfs and needs root");
        SmallFs(dir.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `xb-cli backup` started in the background, its output captured; killed
/// if the test gives up on it (drops it).
pub fn spawn_xb_backup(server: &TestServer, extra: &[&str]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::from(xb_backup_command(server, extra));
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().expect("xb-cli starts")
}

/// `xb-cli backup --target-dir TARGET --throttle MIB EXTRA…` in the
/// background (see [`spawn_xb_backup`]), returned once its data copy has
/// begun: the throttle keeps the copy going while a runbook acts on the
/// server.
pub async fn spawn_throttled_backup(
    server: &TestServer,
    target: &Path,
    mib: &str,
    extra: &[&str],
) -> tokio::process::Child {
    let target_s = target.to_string_lossy().into_owned();
    let mut args = vec!["--target-dir", target_s.as_str(), "--throttle", mib];
    args.extend_from_slice(extra);
    let child = spawn_xb_backup(server, &args);
    wait_until(
        "the data copy starts",
        std::time::Duration::from_secs(60),
        || data_copy_started(target),
    )
    .await;
    child
}

/// Waits for a background backup, at most `limit`; then it is killed and
/// the test fails with what it had printed, so a hang says where it hung.
pub async fn finish_within(child: tokio::process::Child, limit: std::time::Duration) -> Output {
    finish_or_report(child, limit, None).await
}

/// [`finish_within`], and a hang also shows `server`'s process list.
pub async fn finish_within_on(
    server: &TestServer,
    child: tokio::process::Child,
    limit: std::time::Duration,
) -> Output {
    finish_or_report(child, limit, Some(server)).await
}

async fn finish_or_report(
    mut child: tokio::process::Child,
    limit: std::time::Duration,
    server: Option<&TestServer>,
) -> Output {
    use tokio::io::AsyncReadExt;
    async fn drain(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf).await;
        }
        buf
    }
    let stdout = tokio::spawn(drain(child.stdout.take()));
    let stderr = tokio::spawn(drain(child.stderr.take()));
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.expect("xb-cli status"),
        Err(_) => {
            let list = match server {
                Some(s) => processlist(s).await,
                None => String::new(),
            };
            let _ = child.kill().await;
            let err = stderr.await.unwrap_or_default();
            panic!(
                "xb-cli did not end within {limit:?}; it printed:\n{}\nthe server's sessions:\n{list}",
                String::from_utf8_lossy(&err)
            );
        }
    };
    Output {
        status,
        stdout: stdout.await.unwrap(),
        stderr: stderr.await.unwrap(),
    }
}

/// The server's process list, for a runbook's failure message when a
/// statement or a backup hangs.
pub async fn processlist(server: &TestServer) -> String {
    use mysql_async::prelude::Queryable;
    let Ok(mut c) = server.conn().await else {
        return "(no connection for SHOW FULL PROCESSLIST)".into();
    };
    let rows: Vec<mysql_async::Row> = c.query("SHOW FULL PROCESSLIST").await.unwrap_or_default();
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.as_ref(i).map_or("NULL".to_string(), |v| v.as_sql(true)))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `cond` every 100 ms until it holds; fails the test after `limit`.
pub async fn wait_until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// True once the data copy has begun writing tablespaces into `target`.
pub fn data_copy_started(target: &Path) -> bool {
    ["ibdata1", "mysql.ibd", "undo001", "undo_001"]
        .iter()
        .any(|f| target.join(f).exists())
}

/// A directory under the tests' scratch root (outside any server's
/// datadir), removed when dropped.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let base = std::env::var_os("XB_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap()
}

/// Runs each of `statements` on `conn` while `backup` runs, and fails the
/// runbook for one that completed only after the backup ended (it waited
/// behind the backup's locks instead of going on beside it).
pub async fn run_beside_the_backup(
    conn: &mut mysql_async::Conn,
    backup: &mut tokio::process::Child,
    statements: &[&str],
) {
    use mysql_async::prelude::Queryable;
    for sql in statements {
        let t = std::time::Instant::now();
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(
            backup.try_wait().unwrap().is_none(),
            "{sql} completed only after the backup ({:?})",
            t.elapsed()
        );
    }
}

/// A backup of an idle `flavor` server whose output has no warning that
/// the redo copy made no progress before a lock.
pub async fn idle_backup_does_not_wait_on_the_redo_copy(flavor: Flavor) {
    let src = TestServer::start(flavor).expect("source");
    let target = src.scratch("backup");
    let out = run_xb_backup(&src, &["--target-dir", &target.to_string_lossy()]).await;
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("the redo copy made no progress"),
        "the catch-up waited for log it cannot copy before the end:\n{err}"
    );
}
