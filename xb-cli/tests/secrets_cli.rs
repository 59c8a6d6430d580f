//! Runbook: a password or an encryption key typed on the command line does
//! not stay readable by other local users in `ps` while the backup runs.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap its fixtures has failed

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The process's argument list as `ps` reads it.
fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

#[test]
fn secrets_on_the_command_line_are_scrubbed_from_ps() {
    // a "server" that accepts and never answers keeps xb-cli waiting in connect
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let target = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["backup", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--user", "backup", "--password=pw-S3cret-42"])
        .args([
            "--encrypt=AES256",
            "--encrypt-key",
            "0123456789abcdef0123456789abcdef",
        ])
        .arg("--target-dir")
        .arg(target.path().join("b"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _held = silent.accept().unwrap();
    // the connection attempt has begun: start-up, and the scrub, are done
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = cmdline(child.id());
        if shown.contains("--password=xxx") || Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(shown.contains("backup"), "read the right process: {shown}");
    assert!(!shown.contains("pw-S3cret-42"), "password visible: {shown}");
    assert!(
        !shown.contains("0123456789abcdef"),
        "encryption key visible: {shown}"
    );
    assert!(
        shown.contains("--password=xxxxxxxxxxxx"),
        "the option stays, its value is masked: {shown}"
    );
}
