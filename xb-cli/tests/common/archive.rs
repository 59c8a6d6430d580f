//! Steps shared by the binlog-archive and point-in-time runbooks: the
//! archiver as a process, and where it stands.

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use xb_testing::server::TestServer;

/// `xb-cli binlog-archive` following `src` into `dir`.
pub fn spawn_archiver(src: &TestServer, dir: &Path, status: &Path) -> tokio::process::Child {
    spawn_archiver_with(src, dir, status, &[], &[])
}

/// [`spawn_archiver`] with more options and environment (an object store's
/// endpoint and credentials).
pub fn spawn_archiver_with(
    src: &TestServer,
    dir: &Path,
    status: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("binlog-archive")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(src.port().to_string())
        .args(["--user", "xb", "--password=xb"])
        .arg(format!("--target-dir={}", dir.display()))
        .arg(format!("--status-file={}", status.display()))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The server's binlog files and their sizes, oldest first.
pub async fn server_logs(src: &TestServer) -> Vec<(String, u64)> {
    let mut conn = src.conn().await.unwrap();
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
    conn.disconnect().await.unwrap();
    rows.into_iter()
        .map(|r| (r.get::<String, _>(0).unwrap(), r.get::<u64, _>(1).unwrap()))
        .collect()
}

pub fn status(path: &Path) -> serde_json::Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until the status file says the archive holds, fsynced, all the
/// server has written.
pub async fn wait_caught_up(src: &TestServer, status_file: &Path) {
    let (file, size) = server_logs(src).await.pop().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(status_file);
        if s["file"] == file.as_str() && s["durable_pos"] == size {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the archive did not reach {file}:{size} within 60 s; its status: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn stop_with_sigterm(child: tokio::process::Child) -> std::process::Output {
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the archiver ends within 30 s of SIGTERM")
        .unwrap()
}

/// Ledger rows `from..=to`, a rotation after every `rotate_every`.
pub async fn write_ledger(src: &TestServer, from: u32, to: u32, rotate_every: u32) {
    let mut conn = src.conn().await.unwrap();
    for seq in from..=to {
        conn.query_drop(format!(
            "INSERT INTO pitr.ledger VALUES ({seq}, NOW(6), REPEAT('x', {}))",
            seq % 40
        ))
        .await
        .unwrap();
        if seq % rotate_every == 0 {
            conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
        }
    }
    conn.disconnect().await.unwrap();
}

/// The ledger: one row per transaction, numbered in commit order, so the
/// state at any point is exactly the rows up to it.
pub fn create_ledger(src: &TestServer) {
    src.sql(
        "CREATE DATABASE pitr; CREATE TABLE pitr.ledger (seq INT PRIMARY KEY, at DATETIME(6), note VARCHAR(40))",
    )
    .unwrap();
}
