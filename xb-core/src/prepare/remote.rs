//! Keeping recovery inside the backup when the source kept tables outside
//! its datadir (MariaDB `DATA DIRECTORY`).
//!
//! Such a table's file is in the backup at `<db>/<table>.ibd`, and its
//! `<db>/<table>.isl` still names the source's path, so a restore knows
//! where the file belongs. But a server started on the backup would reach
//! the source's path twice (found by experiment with MariaDB 10.11):
//! - redo recovery opens each tablespace at the path the log's FILE_
//!   records name, absolute for these tables, whatever the `.isl` says: on
//!   the source's host that is the live server's own file, which recovery
//!   then writes (and creates, when the log holds the table's creation);
//! - once recovery is done, opening the table follows the `.isl`.
//!
//! So for the recovery, and only then, [`Redirect`] rewrites every
//! absolute FILE_ name of the copied log to the backup's own file, by a
//! relative name of the same length (`./././<db>/<table>.ibd`: the log's
//! bytes must not move), and every `.isl` to the backup's own file; the
//! original `.isl` contents go back afterwards on every exit path, and the
//! log's when recovery failed before replacing it (a prepared backup's log
//! is the server's new one, which names nothing of the source).
//!
//! Both MariaDB log formats are rewritten: 10.8+ mini-transactions
//! (`redo108_names`, their CRC-32C recomputed) and 10.5–10.7 blocks
//! (`redo105_names`, where a name may cross a block boundary and each
//! touched block's CRC-32C is recomputed).

use std::fs;
use std::path::{Path, PathBuf};

use xb_innodb::redo::RedoFormat;
use xb_innodb::redo105_names;
use xb_innodb::redo108_names::{self, LogPatch, revert};

use super::error::{PrepareError, io_err};

/// The `.isl` files of the backup in `dir` (`<db>/<table>.isl`).
///
/// # Errors
/// [`PrepareError::Io`] when a directory cannot be listed.
fn isl_files(dir: &Path) -> Result<Vec<PathBuf>, PrepareError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let db = e.map_err(io_err(dir))?.path();
        if !db.is_dir() {
            continue;
        }
        for f in fs::read_dir(&db).map_err(io_err(&db))? {
            let p = f.map_err(io_err(&db))?.path();
            if p.extension().is_some_and(|x| x == "isl") && p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The name recovery is given instead of an absolute `name`: the backup's
/// own `<db>/<file>`, relative to the datadir, led by as many `./` (and one
/// `/` more for an odd difference) as keep the length. `None` for a
/// relative name, which is inside the backup already.
fn local_name(name: &[u8]) -> Option<Vec<u8>> {
    if name.first() != Some(&b'/') {
        return None;
    }
    let mut parts = name.rsplit(|&c| c == b'/');
    let file = parts.next().filter(|f| !f.is_empty())?;
    let db = parts.next().filter(|d| !d.is_empty())?;
    let tail = [db, b"/", file].concat();
    // an absolute "/<dir>/<db>/<file>" is at least 3 longer than "<db>/<file>"
    let pad = name.len().checked_sub(tail.len()).filter(|&p| p >= 2)?;
    let mut out = b"./".repeat(pad / 2);
    if pad % 2 == 1 {
        out.push(b'/');
    }
    out.extend(tail);
    Some(out)
}

/// Recovery pointed at the backup's own files (see the module docs); put
/// back by [`Redirect::restore`], or on drop when an error ends prepare.
#[derive(Debug)]
pub(super) struct Redirect {
    /// Each `.isl` and what it held.
    isl: Vec<(PathBuf, Vec<u8>)>,
    /// The log and the bytes rewritten in it.
    log: Option<(PathBuf, Vec<LogPatch>)>,
}

impl Redirect {
    /// Rewrites the `.isl` files and the log of the backup in `dir`.
    /// Nothing to do (and nothing done) without `.isl` files or absolute
    /// names in a MariaDB log. What was changed before a failure is
    /// put back.
    ///
    /// # Errors
    /// [`PrepareError::Io`], [`PrepareError::RemoteLog`].
    pub(super) fn apply(dir: &Path, format: RedoFormat) -> Result<Redirect, PrepareError> {
        let mut r = Redirect {
            isl: Vec::new(),
            log: None,
        };
        for isl in isl_files(dir)? {
            let before = fs::read(&isl).map_err(io_err(&isl))?;
            let own = isl.with_extension("ibd");
            fs::write(&isl, own.as_os_str().as_encoded_bytes()).map_err(io_err(&isl))?;
            tracing::info!(isl = %isl.display(), was = %String::from_utf8_lossy(&before), "recovery uses the backup's own file");
            r.isl.push((isl, before));
        }
        let file = dir.join("ib_logfile0");
        let rewritten = match format {
            RedoFormat::MariaDb108 => {
                redo108_names::rewrite_file_names(&file, &local_name).map_err(|e| e.to_string())
            }
            RedoFormat::MariaDb105 => {
                redo105_names::rewrite_file_names(&file, &local_name).map_err(|e| e.to_string())
            }
            _ => Ok(Vec::new()),
        };
        let patches = rewritten.map_err(|reason| PrepareError::RemoteLog {
            file: file.clone(),
            reason,
        })?;
        if !patches.is_empty() {
            tracing::info!(file = %file.display(), patches = patches.len(), "absolute file names in the log point at the backup");
            r.log = Some((file, patches));
        }
        Ok(r)
    }

    /// How many `.isl` files recovery was pointed away from.
    pub(super) fn isl_count(&self) -> usize {
        self.isl.len()
    }

    /// Puts the `.isl` files back; the log's rewritten names too unless
    /// `recovered` (the server has replaced that log by then).
    ///
    /// # Errors
    /// [`PrepareError::Io`] naming the file that could not be put back.
    pub(super) fn restore(mut self, recovered: bool) -> Result<(), PrepareError> {
        if recovered {
            self.log = None;
        }
        self.put_back()
    }

    fn put_back(&mut self) -> Result<(), PrepareError> {
        let mut first_err = None;
        for (isl, before) in self.isl.drain(..) {
            if let Err(e) = fs::write(&isl, &before) {
                tracing::error!(isl = %isl.display(), error = %e, "could not put the .isl back");
                first_err.get_or_insert(PrepareError::Io {
                    path: isl,
                    source: e,
                });
            }
        }
        if let Some((file, patches)) = self.log.take() {
            if let Err(e) = revert(&file, &patches) {
                first_err.get_or_insert(PrepareError::RemoteLog {
                    file,
                    reason: e.to_string(),
                });
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        // an error path: put everything back that can be; the error that
        // ended prepare is the one reported
        let _ = self.put_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_names_become_local_names_of_the_same_length() {
        for name in [
            "/srv/remote/ts/far.ibd",
            "/r/ts/far.ibd",
            "/very/long/remote/dir/ts/t#P#p0.ibd",
        ] {
            let got = local_name(name.as_bytes()).unwrap();
            let got = String::from_utf8(got).unwrap();
            assert_eq!(got.len(), name.len(), "{got}");
            assert!(got.starts_with("./"), "{got}");
            let file = name.rsplit('/').next().unwrap();
            assert!(got.ends_with(&format!("/ts/{file}")), "{got}");
            // the same file, seen from the datadir
            assert_eq!(
                Path::new(&got).components().collect::<PathBuf>(),
                Path::new(&format!("./ts/{file}"))
                    .components()
                    .collect::<PathBuf>()
            );
        }
        assert_eq!(local_name(b"./ts/t.ibd"), None);
        assert_eq!(local_name(b"/t.ibd"), None);
    }

    #[test]
    fn isl_files_are_pointed_at_the_backup_and_put_back_on_every_path() {
        let d = tempfile::tempdir().unwrap();
        let ts = d.path().join("ts");
        fs::create_dir(&ts).unwrap();
        fs::write(ts.join("far.isl"), "/srv/remote/ts/far.ibd").unwrap();
        fs::write(ts.join("far.ibd"), "x").unwrap();
        // MySQL's format is not rewritten: only the .isl files change
        let r = Redirect::apply(d.path(), RedoFormat::MySql8030).unwrap();
        assert_eq!(r.isl_count(), 1);
        assert_eq!(
            fs::read_to_string(ts.join("far.isl")).unwrap(),
            ts.join("far.ibd").display().to_string()
        );
        r.restore(true).unwrap();
        assert_eq!(
            fs::read_to_string(ts.join("far.isl")).unwrap(),
            "/srv/remote/ts/far.ibd"
        );
        // dropped on an error path: put back too
        drop(Redirect::apply(d.path(), RedoFormat::MySql8030).unwrap());
        assert_eq!(
            fs::read_to_string(ts.join("far.isl")).unwrap(),
            "/srv/remote/ts/far.ibd"
        );
        // a 10.8 backup without its log: the .isl rewritten first is put back
        let e = Redirect::apply(d.path(), RedoFormat::MariaDb108).unwrap_err();
        assert!(matches!(e, PrepareError::RemoteLog { .. }), "{e}");
        assert_eq!(
            fs::read_to_string(ts.join("far.isl")).unwrap(),
            "/srv/remote/ts/far.ibd"
        );
        // the same for a 10.5 backup without its log
        let e = Redirect::apply(d.path(), RedoFormat::MariaDb105).unwrap_err();
        assert!(matches!(e, PrepareError::RemoteLog { .. }), "{e}");
        assert_eq!(
            fs::read_to_string(ts.join("far.isl")).unwrap(),
            "/srv/remote/ts/far.ibd"
        );
    }
}
