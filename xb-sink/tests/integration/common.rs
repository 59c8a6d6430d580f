//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::path::Path;

use xb_sink::Datasink;

/// The tests' in-memory stream.
pub use xb_sink::SharedBuf;

/// Writes `files` through `sink`, each in pieces of `piece` bytes, files
/// interleaved from several threads, then finishes the sink.
pub fn write_files(sink: &dyn Datasink, files: &BTreeMap<String, Vec<u8>>, piece: usize) {
    std::thread::scope(|s| {
        for (name, data) in files {
            s.spawn(move || {
                let mut f = sink.open(name, data.len() as u64).unwrap();
                for p in data.chunks(piece.max(1)) {
                    f.write(p).unwrap();
                }
                f.close().unwrap();
            });
        }
    });
    sink.finish().unwrap();
}

/// Every regular file under `root`, by relative path.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Data that compresses somewhat, like table pages: runs and noise.
pub fn pagey(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|i| {
            if (i / 512) % 3 == 0 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            } else {
                (i % 7) as u8
            }
        })
        .collect()
}

/// A sample backup-like file set.
pub fn sample_files() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    m.insert("ibdata1".to_string(), pagey(3 << 20, 1));
    m.insert("db1/t1.ibd".to_string(), pagey(700_000, 2));
    m.insert("db1/t2.frm".to_string(), b"frm bytes".to_vec());
    // one directory level only: mbstream cannot create nested directories
    // (and mariadb-backup never needs it)
    m.insert("db2/x.MAD".to_string(), pagey(65_537, 3));
    m.insert("empty_file".to_string(), Vec::new());
    m.insert("xtrabackup_info".to_string(), b"tool_name = xb\n".to_vec());
    m
}

/// Runs a program from the MariaDB 10.11 private root through scripts/db.sh.
pub fn mariadb_tool(prog: &str) -> std::process::Command {
    let mut c = std::process::Command::new(xb_testing::server::db_script());
    c.arg("mariadb1011").arg("exec").arg(prog);
    c
}

/// Panics with a short description of how two trees differ (names, sizes,
/// first differing offset) instead of dumping their bytes.
pub fn assert_same_tree(
    got: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("{k}: missing ({} bytes expected)", v.len())),
            Some(g) if g != v => {
                let at = g
                    .iter()
                    .zip(v)
                    .position(|(a, b)| a != b)
                    .unwrap_or(g.len().min(v.len()));
                diffs.push(format!(
                    "{k}: {} bytes vs {} expected, first difference at {at}",
                    g.len(),
                    v.len()
                ));
            }
            Some(_) => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("{k}: unexpected"));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}
