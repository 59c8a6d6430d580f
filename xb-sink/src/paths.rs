//! Path safety: every name that comes from a stream or a caller is checked
//! before it touches the file system, so nothing lands outside the target.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use crate::SinkError;

/// Longest path xbstream readers accept (MySQL's `FN_REFLEN` minus the NUL).
pub(crate) const MAX_PATH: usize = 511;

/// Checks that `rel` is a plain relative path of normal components.
pub(crate) fn check_rel(rel: &str) -> Result<&Path, SinkError> {
    let bad = |reason| SinkError::UnsafePath {
        path: rel.to_string(),
        reason,
    };
    if rel.is_empty() {
        return Err(bad("empty path"));
    }
    if rel.len() > MAX_PATH {
        return Err(bad("longer than 511 bytes"));
    }
    if rel.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(bad("absolute path"));
    }
    // judged on the raw text: Path::components would hide "a/./b" and "a//b"
    for seg in rel.split('/') {
        match seg {
            ".." => return Err(bad("contains '..'")),
            "" | "." => return Err(bad("not a plain relative path")),
            _ => {}
        }
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(bad("not a plain relative path"));
    }
    Ok(p)
}

/// Joins `rel` under `root`, creating missing parent directories and
/// refusing any existing ancestor that is a symlink or not a directory.
pub(crate) fn prepare_path(root: &Path, rel: &str) -> Result<PathBuf, SinkError> {
    let p = check_rel(rel)?;
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = p.components().collect();
    let n = comps.len();
    for (i, c) in comps.into_iter().enumerate() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(SinkError::UnsafePath {
                    path: rel.to_string(),
                    reason: "a component is a symbolic link",
                });
            }
            Ok(m) if i + 1 < n && !m.is_dir() => {
                return Err(SinkError::UnsafePath {
                    path: rel.to_string(),
                    reason: "a parent component is not a directory",
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if i + 1 < n {
                    match fs::create_dir(&cur) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                            // a concurrent creator won the race; re-check it
                            let m = fs::symlink_metadata(&cur)
                                .map_err(|e| SinkError::io(cur.display(), e))?;
                            if !m.is_dir() {
                                return Err(SinkError::UnsafePath {
                                    path: rel.to_string(),
                                    reason: "a parent component is not a directory",
                                });
                            }
                        }
                        Err(e) => return Err(SinkError::io(cur.display(), e)),
                    }
                }
            }
            Err(e) => return Err(SinkError::io(cur.display(), e)),
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(check_rel(bad).is_err(), "{bad:?}");
        }
        assert!(check_rel(&"a".repeat(512)).is_err());
        for good in ["ibdata1", "db/t.ibd", "a/b/c"] {
            assert!(check_rel(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn symlinked_parents_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("db")).unwrap();
        let e = prepare_path(d.path(), "db/t.ibd").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let ok = prepare_path(d.path(), "x/y/z").unwrap();
        assert!(d.path().join("x/y").is_dir());
        assert_eq!(ok, d.path().join("x/y/z"));
    }
}
