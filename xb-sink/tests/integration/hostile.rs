//! Broken and malicious streams: every failure is a typed error, nothing is
//! written outside the target, and a full disk says so.

use std::path::Path;

use proptest::prelude::*;
use xb_sink::xbstream::FLAG_REWRITE;
use xb_sink::{Datasink, ExtractOptions, SinkError, XbStreamWriter};

use crate::common::{SharedBuf, read_tree, sample_files, write_files};

fn chunk(kind: u8, path: &str, body: &[u8]) -> Vec<u8> {
    flagged(0, kind, path, body)
}

fn flagged(flags: u8, kind: u8, path: &str, body: &[u8]) -> Vec<u8> {
    let mut c = b"XBSTCK01".to_vec();
    c.push(flags);
    c.push(kind);
    c.extend_from_slice(&(path.len() as u32).to_le_bytes());
    c.extend_from_slice(path.as_bytes());
    c.extend_from_slice(body);
    c
}

fn payload(path: &str, offset: u64, data: &[u8]) -> Vec<u8> {
    chunk(b'P', path, &payload_body(offset, data))
}

/// What follows the path in a `P` chunk.
fn payload_body(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut b = (data.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// Extracts into `outer/target` and checks that `outer` holds nothing else.
fn extract_fenced(stream: &[u8]) -> (tempfile::TempDir, Result<xb_sink::ExtractStats, SinkError>) {
    let outer = tempfile::tempdir().unwrap();
    let r = xb_sink::extract(
        stream,
        &outer.path().join("target"),
        &ExtractOptions::default(),
    );
    assert_only_target(outer.path());
    (outer, r)
}

fn assert_only_target(outer: &Path) {
    let names: Vec<_> = std::fs::read_dir(outer)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n == "target"),
        "written outside the target: {names:?}"
    );
}

#[test]
fn absolute_and_dotdot_paths_are_refused_by_name() {
    for bad in ["/tmp/evil", "../evil", "a/../../evil", "./../evil"] {
        let s = payload(bad, 0, b"x");
        let (_d, r) = extract_fenced(&s);
        let e = r.unwrap_err();
        assert!(matches!(e, SinkError::UnsafePath { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("refusing unsafe path"), "{e}");
    }
}

#[test]
fn a_symlink_planted_in_the_target_is_not_followed() {
    let outer = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let target = outer.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), target.join("db")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("f")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("new"), target.join("g")).unwrap();
    // the links make the target non-empty: refused before anything is read
    let s = payload("f", 0, b"evil");
    let e = xb_sink::extract(&s[..], &target, &ExtractOptions::default()).unwrap_err();
    assert!(matches!(e, SinkError::TargetNotEmpty { .. }), "{e:?}");
    // told to go ahead, each link is still refused by name, whether the
    // stream creates the file, rewrites it (MariaDB's flag 0x02) or goes
    // through a linked directory; sequential and parallel alike
    let force = ExtractOptions::default().with_force_non_empty_directories(true);
    for parallel in [1, 3] {
        let opts = force.clone().with_parallel(parallel);
        for (flags, path, link) in [
            (0, "db/t.ibd", "db"),
            (0, "f", "f"),
            (FLAG_REWRITE, "f", "f"),
            (FLAG_REWRITE, "g", "g"),
            (FLAG_REWRITE, "db/t.ibd", "db"),
        ] {
            let mut s = flagged(flags, b'P', path, &payload_body(0, b"evil"));
            s.extend(chunk(b'E', path, b""));
            let e = xb_sink::extract(&s[..], &target, &opts).unwrap_err();
            let want = target.join(link).display().to_string();
            assert!(
                matches!(e, SinkError::Symlink { path: ref p, link: ref l } if p == path && *l == want),
                "{flags} {path}: {e:?}"
            );
            let text = e.to_string();
            assert!(text.contains(path) && text.contains("hint:"), "{text}");
        }
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
}

#[test]
fn a_non_empty_target_is_refused_unless_forced() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("notes.txt"), b"mine").unwrap();
    let mut s = payload("db/t.ibd", 0, b"abc");
    s.extend(chunk(b'E', "db/t.ibd", b""));
    let e = xb_sink::extract(&s[..], d.path(), &ExtractOptions::default()).unwrap_err();
    let dir = d.path().display().to_string();
    assert!(
        matches!(e, SinkError::TargetNotEmpty { dir: ref got, ref entry } if *got == dir && entry == "notes.txt"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("--force-non-empty-directories"), "{text}");
    assert!(!d.path().join("db").exists(), "written before refusing");
    for parallel in [1, 2] {
        let opts = ExtractOptions::default()
            .with_force_non_empty_directories(true)
            .with_parallel(parallel);
        let t = d.path().join(format!("p{parallel}"));
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("notes.txt"), b"mine").unwrap();
        let st = xb_sink::extract(&s[..], &t, &opts).unwrap();
        assert_eq!(st.files, 1);
        assert_eq!(std::fs::read(t.join("db/t.ibd")).unwrap(), b"abc");
        assert_eq!(std::fs::read(t.join("notes.txt")).unwrap(), b"mine");
    }
}

#[test]
fn out_of_order_chunks_are_refused_with_both_offsets() {
    let mut s = payload("f", 0, b"abc");
    s.extend(payload("f", 7, b"def"));
    let (_d, r) = extract_fenced(&s);
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            SinkError::OutOfOrder {
                got: 7,
                want: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("out-of-order chunk for f"), "{e}");
}

#[test]
fn renames_and_deletes_apply_in_stream_order_also_in_parallel() {
    let mut s = Vec::new();
    for i in 0..6 {
        let name = format!("d/f{i}");
        s.extend(payload(&name, 0, name.as_bytes()));
        s.extend(chunk(b'E', &name, b""));
    }
    let mut r = 4u32.to_le_bytes().to_vec();
    r.extend_from_slice(b"d/g0");
    s.extend(chunk(b'R', "d/f0", &r));
    s.extend(chunk(b'D', "d/f1", b""));
    s.extend(payload("d/f1", 0, b"again"));
    s.extend(chunk(b'E', "d/f1", b""));
    let mut bad = 6u32.to_le_bytes().to_vec();
    bad.extend_from_slice(b"../esc");
    for parallel in [1, 3] {
        let d = tempfile::tempdir().unwrap();
        let opts = ExtractOptions::default().with_parallel(parallel);
        let st = xb_sink::extract(&s[..], d.path(), &opts).unwrap();
        assert_eq!(st.files, 7);
        let tree = read_tree(d.path());
        assert_eq!(tree.get("d/g0").map(Vec::as_slice), Some(&b"d/f0"[..]));
        assert_eq!(tree.get("d/f1").map(Vec::as_slice), Some(&b"again"[..]));
        assert!(!tree.contains_key("d/f0"));
        assert_eq!(tree.len(), 6);
        let mut evil = s.clone();
        evil.extend(chunk(b'R', "d/f2", &bad));
        let outer = tempfile::tempdir().unwrap();
        let e = xb_sink::extract(&evil[..], &outer.path().join("target"), &opts).unwrap_err();
        assert!(matches!(e, SinkError::UnsafePath { .. }), "{e}");
        assert_only_target(outer.path());
    }
}

#[test]
fn a_second_extraction_into_the_same_directory_fails() {
    let mut s = payload("f", 0, b"abc");
    s.extend(chunk(b'E', "f", b""));
    let d = tempfile::tempdir().unwrap();
    xb_sink::extract(&s[..], d.path(), &ExtractOptions::default()).unwrap();
    let e = xb_sink::extract(&s[..], d.path(), &ExtractOptions::default()).unwrap_err();
    assert!(matches!(e, SinkError::TargetNotEmpty { .. }), "{e}");
    // forced into the non-empty directory, the file itself is still not
    // overwritten
    let force = ExtractOptions::default().with_force_non_empty_directories(true);
    let e = xb_sink::extract(&s[..], d.path(), &force).unwrap_err();
    assert!(matches!(e, SinkError::Exists { .. }), "{e}");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"abc");
}

#[test]
fn a_truncated_stream_is_an_error_at_every_cut() {
    let out = SharedBuf::default();
    let sink = XbStreamWriter::with_chunk_size(Box::new(out.clone()), 4096);
    let mut files = sample_files();
    files.retain(|_, v| v.len() < 100_000);
    write_files(&sink, &files, 1000);
    let stream = out.bytes();
    for cut in (0..stream.len()).step_by(97).skip(1) {
        let (d, r) = extract_fenced(&stream[..cut]);
        if r.is_ok() {
            // A cut that falls between chunks while no file is open is a
            // valid, shorter stream (xbstream has no end marker; which cuts
            // do depends on how the writer threads interleaved). It must
            // then hold only whole files, never a silently partial one.
            let got = read_tree(&d.path().join("target"));
            for (name, bytes) in &got {
                assert_eq!(
                    Some(bytes),
                    files.get(name),
                    "a stream cut at {cut} of {} left {name} partial",
                    stream.len()
                );
            }
            assert!(
                got.len() < files.len(),
                "a cut stream cannot hold every file"
            );
        }
    }
    let (d, r) = extract_fenced(&stream);
    r.unwrap();
    assert_eq!(read_tree(&d.path().join("target")), files);
}

#[test]
fn a_full_disk_is_a_no_space_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let sink = XbStreamWriter::new(Box::new(full));
    let mut f = sink.open("ibdata1", 0).unwrap();
    let r = f
        .write(&vec![7u8; 12 << 20])
        .and_then(|()| f.close())
        .and_then(|()| sink.finish());
    let e = r.unwrap_err();
    assert!(matches!(e, SinkError::NoSpace { .. }), "{e:?}");
    assert!(e.to_string().contains("no space left on device"), "{e}");
    assert!(e.to_string().contains("ibdata1"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic_or_escape(mut bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        if magic {
            let mut s = b"XBSTCK01".to_vec();
            s.append(&mut bytes);
            bytes = s;
        }
        let _ = extract_fenced(&bytes);
    }

    #[test]
    fn damaged_valid_streams_never_panic_or_escape(pos in any::<prop::sample::Index>(), val in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut s = payload("db/a", 0, b"hello");
        s.extend(payload("../b", 0, b"x"));
        s.extend(chunk(b'E', "db/a", b""));
        s.extend(payload("c", 0, b"world"));
        s.extend(chunk(b'E', "c", b""));
        let i = pos.index(s.len());
        s[i] = val;
        let n = cut.index(s.len() + 1);
        let _ = extract_fenced(&s[..n]);
    }
}
