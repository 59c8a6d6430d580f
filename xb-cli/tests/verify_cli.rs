//! Runbook: `xb-cli verify` on a backup taken under write load from a real
//! MariaDB 10.11, with no server. A clean backup and its stream verify; a
//! flipped byte in a data file or in the copied redo, a missing file, a
//! tampered or damaged manifest, a truncated stream and a wrong incremental
//! base are each caught and named, with exit code 3.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_success, backup_under_load_with, run_xb_backup_to_file};
use xb_testing::load::LoadSpec;
use xb_testing::server::{Flavor, TestServer};

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("verify")
        .args(args)
        .output()
        .unwrap()
}

/// Asserts exit 3 and a `FAILED FILE: …` line for `file` containing `what`.
fn assert_caught(out: &Output, file: &str, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("FAILED {file}: ")) && l.contains(what)),
        "no FAILED line for {file} saying {what:?}:\n{stdout}"
    );
}

fn copy_of(src: &Path, name: &str) -> std::path::PathBuf {
    let dst = src.with_file_name(name);
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

fn flip(file: &Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[b[0] ^ 0x20]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_passes_a_clean_backup_and_names_every_damage() {
    let src = TestServer::start(Flavor::MariaDb1011).unwrap();
    let spec = LoadSpec::default();
    // the table whose pages get damaged is flushed first: the pages of a
    // table just loaded are still all zeros on disk (its data is in the redo)
    let flush = [
        "FLUSH TABLES xbload.sbtest1 FOR EXPORT".to_string(),
        "UNLOCK TABLES".to_string(),
    ];
    let backup = backup_under_load_with(&src, &spec, &[], &flush).await;
    let b = backup.to_string_lossy().into_owned();

    let out = verify(&[&b, "--json"]);
    assert_success(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    assert!(doc["report"]["pages"].as_u64().unwrap() > 100, "{doc}");
    assert!(
        doc["report"]["redo_checked_to"].as_u64().unwrap() > 0,
        "{doc}"
    );

    // a flipped byte inside a page of a table
    // (a page the server has written: one still all zeros on disk is a
    // page never initialised, which a flipped byte does not make invalid)
    let c = copy_of(&backup, "flipped-data");
    let table = c.join("xbload/sbtest1.ibd");
    let pages = std::fs::read(&table).unwrap();
    let written = pages
        .chunks(16384)
        .enumerate()
        .skip(1)
        .find(|(_, p)| p.iter().any(|&b| b != 0))
        .map(|(i, _)| i)
        .expect("a written page");
    flip(&table, written as u64 * 16384 + 200);
    let out = verify(&[&c.to_string_lossy()]);
    assert_caught(&out, "xbload/sbtest1.ibd", "XXH3-128");
    assert_caught(&out, "xbload/sbtest1.ibd", &format!("page {written}:"));

    // a flipped byte in the middle of the copied redo's records
    let c = copy_of(&backup, "flipped-redo");
    let log = c.join("ib_logfile0");
    let len = std::fs::metadata(&log).unwrap().len();
    assert!(
        len > 12288 + 4096,
        "the load wrote too little redo: {len} bytes"
    );
    flip(&log, 12288 + (len - 12288) / 2);
    let out = verify(&[&c.to_string_lossy()]);
    assert_caught(&out, "ib_logfile0", "XXH3-128");
    assert_caught(&out, "ib_logfile0", "short of last_lsn");

    // a file gone
    let c = copy_of(&backup, "missing");
    std::fs::remove_file(c.join("xbload/sbtest2.ibd")).unwrap();
    assert_caught(
        &verify(&[&c.to_string_lossy()]),
        "xbload/sbtest2.ibd",
        "is missing",
    );

    // a manifest edited to bless other bytes, and one damaged
    let c = copy_of(&backup, "tampered");
    let m = c.join("xb_manifest.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let files = doc["files"].as_array_mut().unwrap();
    let e = files
        .iter_mut()
        .find(|e| e["path"] == "xbload/sbtest3.ibd")
        .unwrap();
    e["xxh3"] = serde_json::Value::from("00".repeat(16));
    std::fs::write(&m, serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_caught(
        &verify(&[&c.to_string_lossy()]),
        "xbload/sbtest3.ibd",
        "the manifest says 0000",
    );
    std::fs::write(&m, b"{ not json").unwrap();
    assert_caught(
        &verify(&[&c.to_string_lossy()]),
        "xb_manifest.json",
        "not a manifest",
    );

    // a full backup is no incremental of itself
    let out = verify(&[&b, "--base", &b]);
    assert_caught(&out, ".", "does not continue the base");

    // the same server as a stream: whole, then cut
    let stream = src.scratch("backup.xbs");
    let out = run_xb_backup_to_file(&src, &["--stream=xbstream"], &stream).await;
    assert_success(&out);
    let s = stream.to_string_lossy().into_owned();
    let out = verify(&["--stream", &s]);
    assert_success(&out);
    let raw = std::fs::read(&stream).unwrap();
    let cut = src.scratch("cut.xbs");
    std::fs::write(&cut, &raw[..raw.len() * 2 / 3]).unwrap();
    let out = verify(&["--stream", &cut.to_string_lossy()]);
    assert_caught(&out, "xb_manifest.json", "is not in the stream");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the stream cannot be read on") || stdout.contains("has no end"),
        "the cut is not named:\n{stdout}"
    );
}
