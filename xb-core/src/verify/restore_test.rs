//! `verify --restore-test`: the proof a DBA trusts most, a restore that
//! was actually done. The chain is copied to a scratch directory (the
//! backup itself stays as taken), prepared there by the server of the
//! source's family and release (the full with `apply_log_only`, each
//! incremental merged, the last one rolled back), and that server, still
//! up on the recovered data, runs `CHECK TABLE` on every table before it
//! shuts down cleanly.
//!
//! A failure anywhere is a [`Problem`](super::Problem): the prepare, the
//! server, a table. The scratch copy is removed when everything passed and
//! kept (its path in the report) when something did not, to be looked at.

use std::path::{Path, PathBuf};

use super::Report;
use crate::prepare::{PrepareOptions, prepare};

/// Where and with what the restore test runs.
#[derive(Debug, Clone)]
pub struct RestoreTest {
    /// A directory with room for a copy of the chain; a new directory is
    /// made inside it.
    pub scratch: PathBuf,
    /// The server and its settings for each prepare (binary, option file,
    /// buffer pool, timeout); its directory, incremental and steps are set
    /// here for each.
    pub server: PrepareOptions,
}

/// File name endings of data xb stored compressed or encrypted: prepare
/// needs them decoded (`xb-cli extract` does it) first.
const ENCODED: &[&str] = &[".zst", ".lz4", ".qp", ".xbcrypt"];

/// Runs the restore test of `chain` (a full, then its incrementals in
/// order), adding what fails to `r`.
pub fn restore_test(chain: &[PathBuf], t: &RestoreTest, r: &mut Report) {
    let Some(full) = chain.first() else {
        return;
    };
    let encoded = chain.iter().find_map(|dir| {
        super::list_files(dir).ok().and_then(|files| {
            files
                .into_iter()
                .find(|f| ENCODED.iter().any(|e| f.ends_with(e)))
                .map(|f| dir.join(f))
        })
    });
    if let Some(f) = encoded {
        r.problem(
            ".",
            format!(
                "restore test: {} is stored compressed or encrypted; decode the backup with \
                 `xb-cli extract` (or the vendor's tools) and test that copy",
                f.display()
            ),
        );
        return;
    }
    let work = match tempfile::Builder::new()
        .prefix("xb-restore-test-")
        .tempdir_in(&t.scratch)
    {
        Ok(w) => w,
        Err(e) => {
            r.problem(
                ".",
                format!(
                    "restore test: cannot make a scratch directory in {}: {e}",
                    t.scratch.display()
                ),
            );
            return;
        }
    };
    let mut copies = Vec::with_capacity(chain.len());
    for (i, dir) in chain.iter().enumerate() {
        let to = work.path().join(if i == 0 {
            "full".to_string()
        } else {
            format!("incremental-{i}")
        });
        if let Err(e) = copy_tree(dir, &to) {
            r.problem(
                ".",
                format!(
                    "restore test: copying {} to the scratch directory: {e}",
                    dir.display()
                ),
            );
            return;
        }
        copies.push(to);
    }
    let opts = |last: bool| {
        let mut o = t.server.clone().apply_log_only(!last).check_tables(last);
        o.target_dir.clone_from(&copies[0]);
        o.incremental_dir = None;
        o.export = false;
        o
    };
    let incs = &copies[1..];
    let mut steps: Vec<PrepareOptions> = vec![opts(incs.is_empty())];
    for (i, inc) in incs.iter().enumerate() {
        steps.push(opts(i + 1 == incs.len()).incremental_dir(inc));
    }
    let before = r.problems.len();
    for (i, step) in steps.iter().enumerate() {
        let what = match i {
            0 => format!("{}", full.display()),
            n => format!("the incremental {}", chain[n].display()),
        };
        match prepare(step) {
            Ok(rep) => {
                if let Some(c) = rep.checked {
                    r.tables_checked = Some(c.tables);
                    for (table, why) in c.failed {
                        r.problem(&table, format!("CHECK TABLE on the restored copy: {why}"));
                    }
                }
            }
            Err(e) => {
                r.problem(
                    ".",
                    format!(
                        "restore test: preparing {what} failed: {e} (hint: {})",
                        e.hint()
                    ),
                );
                break;
            }
        }
    }
    if r.problems.len() > before {
        let kept = work.keep();
        r.notes.push(format!(
            "the restore test's prepared copy is kept in {} to be looked at",
            kept.display()
        ));
    }
}

/// Copies every file under `from` to the same place under `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for rel in super::list_files(from)? {
        let dest = to.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from.join(&rel), &dest)?;
    }
    std::fs::create_dir_all(to)
}
