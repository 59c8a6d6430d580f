//! The DDL marker files a vendor backup may hold (`.del`, `.ren`, `.new`),
//! applied in mariadb-backup's order before recovery.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::{PrepareError, io_err};

/// Applies `.del`, then `.ren`, then `.new` marker files left by DDL during
/// a vendor backup. Returns how many were applied.
pub(super) fn apply_ddl_markers(dir: &Path) -> Result<usize, PrepareError> {
    let mut markers: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if path.is_dir() {
            for sub in fs::read_dir(&path).map_err(io_err(&path))? {
                markers.push(sub.map_err(io_err(&path))?.path());
            }
        } else {
            markers.push(path);
        }
    }
    let ext_is = |p: &Path, e: &str| p.extension().is_some_and(|x| x == e);
    let mut applied = 0;
    for p in markers.iter().filter(|p| ext_is(p, "del")) {
        let ibd = p.with_extension("ibd");
        if ibd.exists() {
            fs::remove_file(&ibd).map_err(io_err(&ibd))?;
        }
        fs::remove_file(p).map_err(io_err(p))?;
        applied += 1;
    }
    for p in markers.iter().filter(|p| ext_is(p, "ren")) {
        let new_name = fs::read_to_string(p).map_err(io_err(p))?;
        let new_name = new_name.trim();
        let from = p.with_extension("ibd");
        let to = dir.join(new_name.trim_start_matches("./"));
        if from.exists() {
            fs::rename(&from, &to).map_err(io_err(&from))?;
        }
        fs::remove_file(p).map_err(io_err(p))?;
        applied += 1;
    }
    for p in markers.iter().filter(|p| ext_is(p, "new")) {
        let to = p.with_extension("ibd");
        fs::rename(p, &to).map_err(io_err(p))?;
        applied += 1;
    }
    Ok(applied)
}
