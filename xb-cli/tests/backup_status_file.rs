//! Runbook: an operator watches a running backup from another process
//! through `--status-file`. Every read of the file is a whole JSON
//! document; while the (throttled) copy runs it shows the phase, bytes done
//! of the total, an ETA and the redo copy; at the end it says completed,
//! with the locks the backup took. A backup that fails says so there too.
//! Its log is one kind of line, stamped, one per phase and per 10 % of the
//! copy; the same backup on a terminal draws a live bar instead, with log
//! lines written whole above it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{BACKUP_LIMIT, finish_within_on, spawn_xb_backup};
use xb_testing::load::{LoadSpec, prepare};
use xb_testing::server::{Flavor, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_backup_is_watched_through_its_status_file() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec {
        rows_per_table: 20_000,
        ..LoadSpec::default()
    };
    prepare(src.opts(), &spec).await.unwrap();
    let status = src.scratch("status.json");
    let target = src.scratch("backup");
    let (s, t) = (
        status.to_string_lossy().into_owned(),
        target.to_string_lossy().into_owned(),
    );
    let child = spawn_xb_backup(
        &src,
        &["--target-dir", &t, "--throttle", "4", "--status-file", &s],
    );

    let mut seen_running = None;
    let deadline = std::time::Instant::now() + BACKUP_LIMIT;
    let last = loop {
        if let Ok(raw) = std::fs::read(&status) {
            let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
                panic!(
                    "a half-written status file ({e}): {}",
                    String::from_utf8_lossy(&raw)
                )
            });
            if doc["state"] == "running"
                && doc["bytes_total"].as_u64().unwrap() > 0
                && doc["bytes_done"].as_u64().unwrap() > 0
                && doc["eta_seconds"].is_u64()
            {
                seen_running.get_or_insert(doc.clone());
            }
            if doc["state"] != "running" {
                break doc;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = finish_within_on(&src, child, BACKUP_LIMIT).await;
    common::assert_success(&out);

    // the log (not a terminal): every line stamped and in one style, the
    // copy reported per 10 % with its pace, files and the redo margin
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stamped = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d xb: ").unwrap();
    for l in stderr.lines() {
        assert!(
            stamped.is_match(l),
            "a line not in xb's style: {l:?}\n{stderr}"
        );
    }
    let steps: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" xb: copied "))
        .collect();
    assert!(
        (5..=10).contains(&steps.len()),
        "a line per 10 % of the copy:\n{stderr}"
    );
    assert!(
        steps
            .iter()
            .any(|l| l.contains("/s, ETA ") && l.contains(" files") && l.contains("redo lag ")),
        "the pace, files and redo margin:\n{stderr}"
    );
    assert!(
        stderr.contains(" xb: redo copy started checkpoint="),
        "the library's own events in the same style:\n{stderr}"
    );

    let running = seen_running.expect("never saw the copy under way with an ETA");
    assert!(
        running["bytes_done"].as_u64() < running["bytes_total"].as_u64(),
        "{running}"
    );
    assert_eq!(running["phase"], "copy InnoDB tablespaces", "{running}");
    assert!(
        running["redo_copied_lsn"].as_u64().unwrap() > 0,
        "{running}"
    );
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["bytes_done"], last["bytes_total"], "{last}");
    assert!(
        last["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("BLOCK_COMMIT")),
        "{last}"
    );
    assert_eq!(last["error"], serde_json::Value::Null);

    // the same target again: refused, and the status file says why
    let out = common::run_xb_backup(&src, &["--target-dir", &t, "--status-file", &s]).await;
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
    assert_eq!(doc["state"], "failed", "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("not empty"),
        "{doc}"
    );

    // on a terminal (`script` gives it one): a bar that is redrawn in
    // place, with the phase, files and ETA, and the log lines still whole
    let tty_target = src.scratch("backup-tty");
    let command = format!(
        "{} backup --host 127.0.0.1 --port {} --user xb --password=xb --target-dir {} --throttle 4",
        env!("CARGO_BIN_EXE_xb-cli"),
        src.port(),
        tty_target.display()
    );
    let child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script(1) from util-linux runs");
    let out = finish_within_on(&src, child, BACKUP_LIMIT).await;
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("\x1b[2K"),
        "the bar is redrawn in place:\n{screen}"
    );
    let bar = regex::Regex::new(
        r"copy InnoDB tablespaces \(\d+ of \d+ files[^\n]*\n?[^\n]*\[=+>? *\] +\d+% copied [^\n]*/s, ETA \d+m\d\ds",
    )
    .unwrap();
    assert!(
        bar.is_match(&screen),
        "a bar with the phase, files, pace and ETA:\n{screen}"
    );
    let whole =
        regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d xb: BACKUP STAGE FLUSH\r?\n").unwrap();
    assert!(
        whole.is_match(&screen),
        "a log line written whole over the bar:\n{screen}"
    );
    assert!(screen.contains(" xb: completed OK!"), "{screen}");
}
