//! `xb-cli extract` as a DBA runs it: a compressed, encrypted stream on
//! standard input is unpacked into a directory; a hostile stream is refused
//! with a message that names the path, and cannot make it use much memory.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use xb_sink::{Compress, Compression, Datasink, Encrypt, EncryptKey, SharedBuf, XbStreamWriter};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn xb_extract(stream: &[u8], args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .arg("extract")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(stream);
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn an_encrypted_compressed_stream_is_unpacked_with_the_key() {
    let out = SharedBuf::default();
    let enc = Encrypt::new(
        Box::new(XbStreamWriter::new(Box::new(out.clone()))),
        EncryptKey::from_arg(KEY).unwrap(),
        2,
    );
    let sink = Compress::new(Box::new(enc), Compression::Zstd { level: 1 }, 2);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
    for name in ["ibdata1", "db/t.ibd"] {
        let mut f = sink.open(name, 0).unwrap();
        f.write(&data).unwrap();
        f.close().unwrap();
    }
    sink.finish().unwrap();
    let stream = out.bytes();

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("restore");
    let t = target.to_str().unwrap();
    let res = xb_extract(
        &stream,
        &[
            "-C",
            t,
            "--decompress",
            "--decrypt=AES256",
            "--encrypt-key",
            KEY,
        ],
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(std::fs::read(target.join("ibdata1")).unwrap(), data);
    assert_eq!(std::fs::read(target.join("db/t.ibd")).unwrap(), data);
    assert!(
        !String::from_utf8_lossy(&res.stderr).contains(KEY),
        "the key was logged"
    );

    // the wrong algorithm for the key length is refused before reading
    let res = xb_extract(
        &stream,
        &["-C", t, "--decrypt=AES128", "--encrypt-key", KEY],
    );
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("needs 16"));
}

#[test]
fn a_stream_with_a_parent_path_is_refused_and_says_why() {
    let path = b"../evil";
    let mut s = b"XBSTCK01\0E".to_vec();
    s.extend_from_slice(&(path.len() as u32).to_le_bytes());
    s.extend_from_slice(path);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let res = xb_extract(&s, &["-C", target.to_str().unwrap()]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("refusing unsafe path \"../evil\""), "{err}");
    assert!(!dir.path().join("evil").exists());
}

/// Peak resident set (`VmHWM`) of a running process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    kib << 10
}

#[test]
fn a_chunk_that_claims_a_terabyte_keeps_memory_bounded_and_fails_naming_the_file() {
    const BODY: usize = 192 << 20;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xb-cli"))
        .args(["extract", "-C"])
        .arg(&target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut head = b"XBSTCK01\0P".to_vec();
    head.extend_from_slice(&7u32.to_le_bytes());
    head.extend_from_slice(b"ibdata1");
    head.extend_from_slice(&(1u64 << 40).to_le_bytes());
    head.extend_from_slice(&0u64.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    // far more body than the bound, so buffering the chunk would show; the
    // stream stays open, so the process is still alive to be measured
    let block = vec![0x5au8; 1 << 20];
    let mut fed = stdin.write_all(&head).is_ok();
    for _ in 0..BODY / block.len() {
        fed = fed && stdin.write_all(&block).is_ok();
    }
    let peak = peak_rss(child.id());
    drop(stdin);
    let res = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(fed, "xb-cli stopped reading early: {err}");
    assert!(!res.status.success());
    assert!(err.contains("payload of ibdata1 truncated"), "{err}");
    assert!(err.contains(&format!("of {} bytes", 1u64 << 40)), "{err}");
    // two 10 MiB payload pieces (one growing from the other), the 1 MiB
    // input buffer, and the program itself
    let bound = 48 << 20;
    assert!(
        peak < bound,
        "xb-cli extract peaked at {} MiB resident (bound {} MiB)",
        peak >> 20,
        bound >> 20
    );
}

/// A one-file stream, as xb's own writer makes it: `path` holding `data`.
fn one_file(path: &str, data: &[u8]) -> Vec<u8> {
    let out = SharedBuf::default();
    let sink = XbStreamWriter::new(Box::new(out.clone()));
    let mut f = sink.open(path, 0).unwrap();
    f.write(data).unwrap();
    f.close().unwrap();
    sink.finish().unwrap();
    out.bytes()
}

#[test]
fn a_non_empty_directory_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let d = dir.path().to_str().unwrap();
    let stream = one_file("ibdata1", b"pages");
    let res = xb_extract(&stream, &["-C", d]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!(
            "target directory {d} is not empty: it holds notes.txt"
        )),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("--force-non-empty-directories"),
        "{err}"
    );
    assert!(!dir.path().join("ibdata1").exists());

    let res = xb_extract(&stream, &["-C", d, "--force-non-empty-directories"]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(std::fs::read(dir.path().join("ibdata1")).unwrap(), b"pages");
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"mine"
    );
}

#[test]
fn a_symlink_in_the_target_pointing_outside_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("ibdata1")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("db")).unwrap();
    let d = dir.path().to_str().unwrap();
    for (path, link) in [("ibdata1", "ibdata1"), ("db/t.ibd", "db")] {
        let res = xb_extract(
            &one_file(path, b"evil"),
            &["-C", d, "--force-non-empty-directories"],
        );
        assert!(!res.status.success());
        let err = String::from_utf8_lossy(&res.stderr);
        let link = dir.path().join(link);
        assert!(
            err.contains(&format!(
                "refusing to write {path}: {} is a symbolic link",
                link.display()
            )),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}
