//! The DDL marker files a vendor backup may hold (`.del`, `.ren`, `.new`),
//! applied in mariadb-backup's order before recovery.
//!
//! A marker is data from disk that makes prepare delete or rename files, so
//! it is held to the backup directory: the new name in a `.ren` must be a
//! relative path without `..`, and no marker, no file a marker names and no
//! directory on the way to one may be a symbolic link (a link would carry
//! the delete or rename, and later the server's writes, outside the
//! backup). Every marker is checked before the first is applied, so a
//! refused backup is left as it was.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::error::{PrepareError, UnsafeMarkerPath, io_err};

/// What one marker asks for, with every path checked to stay inside.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// `t.del`: remove `t.ibd` (if present) and the marker.
    Delete { marker: PathBuf, ibd: PathBuf },
    /// `t.ren`: rename `t.ibd` (if present) to the name the marker holds.
    Rename {
        marker: PathBuf,
        from: PathBuf,
        to: PathBuf,
    },
    /// `t.new`: the marker becomes `t.ibd`.
    Install { marker: PathBuf, to: PathBuf },
}

fn refused(marker: &Path, problem: UnsafeMarkerPath) -> PrepareError {
    PrepareError::UnsafeMarker {
        marker: marker.to_path_buf(),
        problem,
    }
}

fn marker_kind(p: &Path) -> Option<&'static str> {
    match p.extension()?.to_str()? {
        "del" => Some("del"),
        "ren" => Some("ren"),
        "new" => Some("new"),
        _ => None,
    }
}

/// Refuses `path` if it is a symbolic link (a missing path is fine: the
/// step that needs it fails on its own, or skips it, as before).
fn not_a_link(marker: &Path, path: &Path) -> Result<(), PrepareError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(
            marker,
            UnsafeMarkerPath::Symlink(path.to_path_buf()),
        )),
        _ => Ok(()),
    }
}

/// The marker files in `dir` and its subdirectories (one level, as the
/// vendor tools write them), refusing a marker that is itself a link or
/// that lies in a linked directory. Nothing is changed.
fn find_markers(dir: &Path) -> Result<Vec<PathBuf>, PrepareError> {
    let mut markers = Vec::new();
    let mut take = |path: PathBuf, is_link: bool| {
        if marker_kind(&path).is_none() {
            Ok(())
        } else if is_link {
            Err(refused(&path, UnsafeMarkerPath::Symlink(path.clone())))
        } else {
            markers.push(path);
            Ok(())
        }
    };
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            for sub in fs::read_dir(&path).map_err(io_err(&path))? {
                let sub = sub.map_err(io_err(&path))?;
                let is_link = sub.file_type().map_err(io_err(&sub.path()))?.is_symlink();
                take(sub.path(), is_link)?;
            }
        } else if kind.is_symlink() && path.is_dir() {
            // Not descended into; but a marker there would act on files
            // outside the backup, so its presence is refused, not ignored.
            for sub in fs::read_dir(&path).map_err(io_err(&path))? {
                let sub = sub.map_err(io_err(&path))?.path();
                if marker_kind(&sub).is_some() {
                    return Err(refused(&sub, UnsafeMarkerPath::Symlink(path)));
                }
            }
        } else {
            take(path, kind.is_symlink())?;
        }
    }
    markers.sort();
    Ok(markers)
}

/// The path a `.ren` marker's text names, under `dir`: relative, with no
/// `..`, no symbolic link on the way nor at the end. The text is a
/// tablespace name, `db/table` as mariadb-backup writes it (and xb), or a
/// file name (`./db/table.ibd`); a name gets its `.ibd`.
fn rename_target(dir: &Path, marker: &Path, text: &str) -> Result<PathBuf, PrepareError> {
    let trimmed = text.trim();
    let with_ext;
    let names_a_file = Path::new(trimmed)
        .components()
        .next_back()
        .is_some_and(|c| matches!(c, Component::Normal(_)));
    let name = if trimmed.ends_with(".ibd") || !names_a_file {
        trimmed
    } else {
        with_ext = format!("{trimmed}.ibd");
        with_ext.as_str()
    };
    let mut to = dir.to_path_buf();
    let mut parts = 0;
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => {
                to.push(part);
                parts += 1;
                // each step, the last one too, must be no link
                not_a_link(marker, &to)?;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(refused(marker, UnsafeMarkerPath::ParentDir(name.into())));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(marker, UnsafeMarkerPath::Absolute(name.into())));
            }
        }
    }
    if parts == 0 {
        return Err(refused(marker, UnsafeMarkerPath::Empty));
    }
    Ok(to)
}

/// Reads and checks every marker; changes nothing.
fn plan(dir: &Path) -> Result<Vec<Step>, PrepareError> {
    let markers = find_markers(dir)?;
    let mut steps = Vec::with_capacity(markers.len());
    // mariadb-backup's order: every .del, then every .ren, then every .new
    for kind in ["del", "ren", "new"] {
        for marker in markers.iter().filter(|p| marker_kind(p) == Some(kind)) {
            let ibd = marker.with_extension("ibd");
            not_a_link(marker, &ibd)?;
            let marker = marker.clone();
            steps.push(match kind {
                "del" => Step::Delete { marker, ibd },
                "ren" => {
                    let text = fs::read_to_string(&marker).map_err(io_err(&marker))?;
                    let to = rename_target(dir, &marker, &text)?;
                    Step::Rename {
                        marker,
                        from: ibd,
                        to,
                    }
                }
                _ => Step::Install { marker, to: ibd },
            });
        }
    }
    Ok(steps)
}

/// Applies `.del`, then `.ren`, then `.new` marker files left by DDL during
/// a vendor backup, once all of them have been checked. Returns how many
/// were applied.
///
/// # Errors
/// [`PrepareError::UnsafeMarker`] (before anything changes) when a marker
/// would reach outside `dir`; [`PrepareError::Io`] naming the file.
pub(super) fn apply_ddl_markers(dir: &Path) -> Result<usize, PrepareError> {
    let steps = plan(dir)?;
    for step in &steps {
        match step {
            Step::Delete { marker, ibd } => {
                if ibd.exists() {
                    fs::remove_file(ibd).map_err(io_err(ibd))?;
                }
                fs::remove_file(marker).map_err(io_err(marker))?;
            }
            Step::Rename { marker, from, to } => {
                if from.exists() {
                    fs::rename(from, to).map_err(io_err(from))?;
                }
                fs::remove_file(marker).map_err(io_err(marker))?;
            }
            Step::Install { marker, to } => {
                fs::rename(marker, to).map_err(io_err(marker))?;
            }
        }
    }
    Ok(steps.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;

    /// A backup directory and, beside it, an "outside" directory holding
    /// files a hostile marker might aim at.
    struct Fixture {
        _root: tempfile::TempDir,
        backup: PathBuf,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let backup = root.path().join("backup");
        let outside = root.path().join("outside");
        fs::create_dir_all(backup.join("db")).unwrap();
        fs::create_dir_all(backup.join("etc")).unwrap();
        fs::create_dir_all(outside.join("db")).unwrap();
        for f in ["x", "x.ibd", "passwd", "db/t.ibd", "db/t.del"] {
            fs::write(outside.join(f), format!("outside {f}")).unwrap();
        }
        fs::write(backup.join("db/t.ibd"), "t").unwrap();
        Fixture {
            _root: root,
            backup,
            outside,
        }
    }

    /// Every file under `dir` (links not followed) with its bytes.
    fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    todo.push(e.path());
                } else if t.is_symlink() {
                    let target = fs::read_link(e.path()).unwrap();
                    out.insert(e.path(), target.into_os_string().into_encoded_bytes());
                } else {
                    out.insert(e.path(), fs::read(e.path()).unwrap());
                }
            }
        }
        out
    }

    /// Applies the markers, expecting a refusal of `marker` for `problem`,
    /// and that neither the backup nor the outside changed at all.
    fn assert_refused(f: &Fixture, marker: &Path, problem: fn(&UnsafeMarkerPath) -> bool) {
        let (inside, outside) = (tree(&f.backup), tree(&f.outside));
        let e = apply_ddl_markers(&f.backup).unwrap_err();
        match &e {
            PrepareError::UnsafeMarker {
                marker: m,
                problem: p,
            } => {
                assert_eq!(m, marker, "{e}");
                assert!(problem(p), "{e}");
            }
            other => panic!("expected UnsafeMarker, got {other}"),
        }
        assert!(e.to_string().contains(&marker.display().to_string()), "{e}");
        assert!(e.hint().contains("marker"), "{}", e.hint());
        assert_eq!(tree(&f.outside), outside, "something outside changed");
        assert_eq!(tree(&f.backup), inside, "the refused backup changed");
    }

    #[test]
    fn a_rename_out_with_dot_dot_is_refused() {
        let f = fixture();
        let m = f.backup.join("db/t.ren");
        fs::write(&m, "../outside/x\n").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::ParentDir(_)));
        // hidden behind a harmless start
        fs::write(&m, "./db/../../outside/x.ibd").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::ParentDir(_)));
        fs::remove_file(&m).unwrap();
        // deeper than the fixture, by a marker with no tablespace beside it
        let m = f.backup.join("db/p.ren");
        fs::write(&m, "../../etc/x").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::ParentDir(_)));
    }

    #[test]
    fn a_rename_to_an_absolute_path_is_refused() {
        let f = fixture();
        let m = f.backup.join("db/t.ren");
        let target = f.outside.join("passwd");
        fs::write(&m, target.display().to_string()).unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Absolute(_)));
        fs::remove_file(&m).unwrap();
        // the real file, named by a marker with no tablespace beside it, so
        // that even a broken check could only remove the marker
        let m = f.backup.join("db/p.ren");
        fs::write(&m, "/etc/passwd").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Absolute(_)));
    }

    #[test]
    fn an_empty_rename_is_refused() {
        let f = fixture();
        let m = f.backup.join("db/t.ren");
        fs::write(&m, " ./\n").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Empty));
    }

    #[test]
    fn a_rename_through_a_linked_directory_is_refused() {
        let f = fixture();
        fs::remove_dir(f.backup.join("etc")).unwrap();
        symlink(&f.outside, f.backup.join("etc")).unwrap();
        let m = f.backup.join("db/t.ren");
        fs::write(&m, "etc/x.ibd").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Symlink(_)));
        // onto a link at the end of the way
        symlink(f.outside.join("x"), f.backup.join("db/u.ibd")).unwrap();
        fs::write(&m, "db/u.ibd").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Symlink(_)));
    }

    #[test]
    fn markers_in_a_linked_database_directory_are_refused() {
        let f = fixture();
        // `db2` is a link to a directory outside holding t.del and t.ibd:
        // applying the marker would delete outside/db/t.ibd
        symlink(f.outside.join("db"), f.backup.join("db2")).unwrap();
        let m = f.backup.join("db2/t.del");
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Symlink(_)));
    }

    #[test]
    fn a_linked_marker_or_a_linked_tablespace_is_refused() {
        let f = fixture();
        // a .new that is a link would install a link as the tablespace
        let m = f.backup.join("db/n.new");
        symlink(f.outside.join("x.ibd"), &m).unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Symlink(_)));
        fs::remove_file(&m).unwrap();
        // a .del whose tablespace is a link
        symlink(f.outside.join("x.ibd"), f.backup.join("db/l.ibd")).unwrap();
        let m = f.backup.join("db/l.del");
        fs::write(&m, "").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Symlink(_)));
    }

    #[test]
    fn a_refused_marker_stops_the_others_too() {
        let f = fixture();
        // a sound .del sorts and runs first, but is not applied either
        fs::write(f.backup.join("db/t.del"), "").unwrap();
        let m = f.backup.join("db/z.ren");
        fs::write(&m, "/etc/passwd").unwrap();
        assert_refused(&f, &m, |p| matches!(p, UnsafeMarkerPath::Absolute(_)));
        assert!(f.backup.join("db/t.ibd").exists());
    }

    #[test]
    fn sound_markers_are_applied_in_order() {
        let f = fixture();
        let db = f.backup.join("db");
        fs::write(db.join("gone.ibd"), "gone").unwrap();
        fs::write(db.join("gone.del"), "").unwrap();
        fs::write(db.join("t.ren"), "./db/t2.ibd\n").unwrap();
        fs::write(db.join("n.new"), "fresh").unwrap();
        fs::write(f.backup.join("u.ren"), "u2.ibd").unwrap();
        fs::write(f.backup.join("u.ibd"), "u").unwrap();
        // a tablespace name, as mariadb-backup and xb write it
        fs::write(db.join("v.ren"), "db/v2").unwrap();
        fs::write(db.join("v.ibd"), "v").unwrap();
        let outside = tree(&f.outside);
        assert_eq!(apply_ddl_markers(&f.backup).unwrap(), 5);
        let names: Vec<String> = tree(&f.backup)
            .into_keys()
            .map(|p| p.strip_prefix(&f.backup).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["db/n.ibd", "db/t2.ibd", "db/v2.ibd", "u2.ibd"]);
        assert_eq!(fs::read(db.join("t2.ibd")).unwrap(), b"t");
        assert_eq!(fs::read(db.join("n.ibd")).unwrap(), b"fresh");
        assert_eq!(tree(&f.outside), outside);
    }
}
