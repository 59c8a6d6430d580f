//! The shared real-server fixtures (`../shared/fixtures/innodb`, beside the
//! workspace): files written by servers no test here can start. They are
//! read where they are and never copied into the repository; zips are
//! unpacked into a temporary directory with `unzip`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture root, or `None` (with the reason printed) when it is absent:
/// a test without it says why and passes.
#[must_use]
pub fn root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/innodb");
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!(
            "skipped: no fixture directory at {} (the shared fixtures sit beside the workspace)",
            root.display()
        );
        None
    }
}

/// Unpacks the members of `zip` that match `patterns` into `into`.
///
/// # Panics
/// When `unzip` cannot run or fails (other than "no member matched").
pub fn unzip(zip: &Path, into: &Path, patterns: &[&str]) {
    std::fs::create_dir_all(into).expect("create the unzip directory");
    let out = Command::new("unzip")
        .arg("-qq")
        .arg("-o")
        .arg(zip)
        .args(patterns)
        .arg("-d")
        .arg(into)
        .output()
        .expect("the unzip command runs");
    // 11: no member matched a pattern (a zip with no tablespace)
    assert!(
        out.status.success() || out.status.code() == Some(11),
        "unzip {}: {}",
        zip.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
