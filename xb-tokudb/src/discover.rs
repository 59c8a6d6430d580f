//! Does the server run TokuDB, where are its directories, and which files in
//! them belong to a TokuDB backup.
//!
//! File names (TokuFT's own naming):
//!
//! | kind | pattern | where |
//! |---|---|---|
//! | table/index dictionaries | `*.tokudb` | datadir tree and `tokudb_data_dir` |
//! | metadata | `tokudb.directory`, `tokudb.environment`, `tokudb.rollback` | `tokudb_data_dir` (datadir when empty) |
//! | recovery log | `log<digits>.tokulog<digits>` | top level of `tokudb_log_dir` (datadir when empty) |
//! | lock files | `__tokudb_lock_dont_delete_me_*` | never copied: they only guard a live directory |

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::error::TokuError;
use crate::sql::SqlSession;

/// The statement that decides whether any TokuDB statement is ever sent.
pub const PLUGIN_PROBE: &str = "SELECT COUNT(*) FROM information_schema.plugins \
     WHERE plugin_name = 'TokuDB' AND plugin_status = 'ACTIVE'";
/// Reads the three directories in one round trip.
pub const DIRS_QUERY: &str = "SELECT @@datadir, @@tokudb_data_dir, @@tokudb_log_dir";

/// Metadata files that are not `*.tokudb` but belong to the data step.
pub const METADATA_FILES: [&str; 3] = ["tokudb.directory", "tokudb.environment", "tokudb.rollback"];

static LOG_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^log[0-9]+\.tokulog[0-9]+$").ok());

/// Backup-relative prefix for data files outside the datadir.
pub const DATA_DIR_PREFIX: &str = "tokudb_data_dir";
/// Backup-relative prefix for log files outside the datadir.
pub const LOG_DIR_PREFIX: &str = "tokudb_log_dir";

/// The server's TokuDB directories, resolved to absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokuDirs {
    /// `@@datadir`.
    pub datadir: PathBuf,
    /// `@@tokudb_data_dir`, or the datadir when empty.
    pub data_dir: PathBuf,
    /// `@@tokudb_log_dir`, or the datadir when empty.
    pub log_dir: PathBuf,
}

impl TokuDirs {
    /// Resolve the variables as the server does: empty means the datadir, a
    /// relative path is relative to the datadir (mysqld runs with the datadir as
    /// its working directory).
    pub fn resolve(datadir: &str, tokudb_data_dir: &str, tokudb_log_dir: &str) -> Self {
        let datadir = PathBuf::from(datadir.trim_end_matches('/').to_string() + "/")
            .components()
            .collect::<PathBuf>();
        let one = |v: &str| {
            if v.is_empty() {
                datadir.clone()
            } else {
                datadir.join(v).components().collect()
            }
        };
        Self {
            data_dir: one(tokudb_data_dir),
            log_dir: one(tokudb_log_dir),
            datadir,
        }
    }
}

/// One TokuDB file on the server and its name inside the backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokuFile {
    /// Absolute path on the server.
    pub path: PathBuf,
    /// `/`-separated name inside the backup: relative to the datadir, or under
    /// [`DATA_DIR_PREFIX`] / [`LOG_DIR_PREFIX`] for directories outside it.
    pub rel: String,
}

/// `true` for names copied in the data step (under the checkpoint lock).
pub fn is_data_file_name(name: &str) -> bool {
    (name.ends_with(".tokudb") && name.len() > ".tokudb".len()) || METADATA_FILES.contains(&name)
}

/// `true` for TokuDB recovery-log names (`log000000000012.tokulog29`).
pub fn is_log_file_name(name: &str) -> bool {
    LOG_NAME.as_ref().is_some_and(|re| re.is_match(name))
}

/// Ask the server whether TokuDB is active and, only if it is, where its
/// directories are. `Ok(None)` means no TokuDB statement may be sent.
pub async fn probe<S: SqlSession>(session: &mut S) -> Result<Option<TokuDirs>, TokuError> {
    let rows = session
        .query_rows(PLUGIN_PROBE)
        .await
        .map_err(|source| TokuError::sql(PLUGIN_PROBE, source))?;
    let count = rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| TokuError::unexpected(PLUGIN_PROBE, format!("{rows:?}")))?;
    if count == 0 {
        tracing::info!("server has no active TokuDB plugin; skipping TokuDB steps");
        return Ok(None);
    }
    let rows = session
        .query_rows(DIRS_QUERY)
        .await
        .map_err(|source| TokuError::sql(DIRS_QUERY, source))?;
    match rows.first().map(Vec::as_slice) {
        Some([Some(datadir), data, log]) if !datadir.is_empty() => Ok(Some(TokuDirs::resolve(
            datadir,
            data.as_deref().unwrap_or(""),
            log.as_deref().unwrap_or(""),
        ))),
        _ => Err(TokuError::unexpected(DIRS_QUERY, format!("{rows:?}"))),
    }
}

/// Data files in the datadir tree and in `tokudb_data_dir`, sorted by `rel`,
/// each file once even when the directories overlap.
pub fn find_data_files(dirs: &TokuDirs) -> Result<Vec<TokuFile>, TokuError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(&dirs.datadir, &dirs.datadir, None, &mut seen, &mut out)?;
    if !dirs.data_dir.starts_with(&dirs.datadir) {
        walk(
            &dirs.data_dir,
            &dirs.data_dir,
            Some(DATA_DIR_PREFIX),
            &mut seen,
            &mut out,
        )?;
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: Option<&str>,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<TokuFile>,
) -> Result<(), TokuError> {
    let list_err = |source| TokuError::ListDir {
        dir: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let path = entry.path();
        // Not following symlinked directories keeps the walk finite.
        let kind = entry.file_type().map_err(list_err)?;
        if kind.is_dir() {
            walk(root, &path, prefix, seen, out)?;
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_data_file_name(name) || !path.is_file() {
            continue;
        }
        let key = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.insert(key) {
            out.push(TokuFile {
                rel: rel_name(root, &path, prefix),
                path,
            });
        }
    }
    Ok(())
}

fn rel_name(root: &Path, path: &Path, prefix: Option<&str>) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut parts: Vec<String> = prefix.map(str::to_string).into_iter().collect();
    parts.extend(
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Log files at the top level of `tokudb_log_dir`, oldest first.
pub fn find_log_files(dirs: &TokuDirs) -> Result<Vec<TokuFile>, TokuError> {
    let dir = &dirs.log_dir;
    let list_err = |source| TokuError::ListDir {
        dir: dir.clone(),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if !is_log_file_name(name) || !path.is_file() {
            continue;
        }
        let rel = match dir.strip_prefix(&dirs.datadir) {
            Ok(_) => rel_name(&dirs.datadir, &path, None),
            Err(_) => format!("{LOG_DIR_PREFIX}/{name}"),
        };
        out.push(TokuFile { path, rel });
    }
    out.sort_by_key(|f| log_number(&f.rel));
    Ok(out)
}

/// The log file's sequence number, for ordering `log9` before `log10` even
/// without zero padding.
fn log_number(rel: &str) -> (u64, String) {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let digits: String = name
        .trim_start_matches("log")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.parse().unwrap_or(u64::MAX), rel.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_names() {
        for yes in [
            "_test_t1_main_2_1_1d.tokudb",
            "t2_status_3_1_1d.tokudb",
            "tokudb.directory",
            "tokudb.environment",
            "tokudb.rollback",
        ] {
            assert!(is_data_file_name(yes), "{yes}");
        }
        for no in [
            ".tokudb",
            "x.tokudb.bak",
            "x.TOKUDB",
            "tokudb.directory~",
            "__tokudb_lock_dont_delete_me_data",
            "log000000000001.tokulog27",
            "t1.frm",
        ] {
            assert!(!is_data_file_name(no), "{no}");
        }
    }

    #[test]
    fn log_names() {
        for yes in [
            "log000000000001.tokulog27",
            "log1.tokulog25",
            "log000000000123.tokulog29",
        ] {
            assert!(is_log_file_name(yes), "{yes}");
        }
        for no in [
            "log.tokulog27",
            "log000000000001.tokulog",
            "log000000000001.tokulog27.bak",
            "xlog000000000001.tokulog27",
            "log00001.tokulog27~",
            "__tokudb_lock_dont_delete_me_logs",
            "tokudb.rollback",
            "LOG000000000001.tokulog27",
        ] {
            assert!(!is_log_file_name(no), "{no}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_numbered_log_name_matches(a in 0u64..u64::MAX, b in 0u32..1000) {
            let name = format!("log{:012}.tokulog{}", a, b);
            proptest::prop_assert!(is_log_file_name(&name));
        }

        #[test]
        fn names_with_extra_text_never_match(a in 0u64..1_000_000, pre in "[a-z_./]{1,6}", post in "[a-z_.~]{1,6}") {
            let base = format!("log{a:012}.tokulog27");
            let before = format!("{}{}", pre, base);
            let after = format!("{}{}", base, post);
            proptest::prop_assert!(!is_log_file_name(&before));
            proptest::prop_assert!(!is_log_file_name(&after));
            proptest::prop_assert!(!is_data_file_name(&base));
        }
    }

    #[test]
    fn resolve_defaults_and_relative_dirs() {
        let d = TokuDirs::resolve("/var/lib/mysql/", "", "");
        assert_eq!(d.datadir, PathBuf::from("/var/lib/mysql"));
        assert_eq!(d.data_dir, d.datadir);
        assert_eq!(d.log_dir, d.datadir);
        let d = TokuDirs::resolve("/var/lib/mysql", "toku_data", "/logs/toku");
        assert_eq!(d.data_dir, PathBuf::from("/var/lib/mysql/toku_data"));
        assert_eq!(d.log_dir, PathBuf::from("/logs/toku"));
    }

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn finds_files_in_datadir_tree_and_separate_dirs() {
        let root = tempfile::tempdir().unwrap();
        let dd = root.path().join("data");
        let td = root.path().join("toku");
        let ld = root.path().join("logs");
        for f in [
            "_db_t_main_1.tokudb",
            "db/t2_main_2.tokudb",
            "db/t2.frm",
            "ibdata1",
        ] {
            touch(&dd.join(f));
        }
        for f in [
            "tokudb.directory",
            "tokudb.rollback",
            "tokudb.environment",
            "_db_t3_main_4.tokudb",
            "__tokudb_lock_dont_delete_me_data",
        ] {
            touch(&td.join(f));
        }
        for f in [
            "log000000000010.tokulog27",
            "log9.tokulog27",
            "log1.tokulog27.tmp",
        ] {
            touch(&ld.join(f));
        }
        touch(&ld.join("sub/log000000000001.tokulog27"));
        let dirs = TokuDirs {
            datadir: dd.clone(),
            data_dir: td.clone(),
            log_dir: ld.clone(),
        };
        let rels: Vec<_> = find_data_files(&dirs)
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(
            rels,
            [
                "_db_t_main_1.tokudb",
                "db/t2_main_2.tokudb",
                "tokudb_data_dir/_db_t3_main_4.tokudb",
                "tokudb_data_dir/tokudb.directory",
                "tokudb_data_dir/tokudb.environment",
                "tokudb_data_dir/tokudb.rollback",
            ]
        );
        let logs: Vec<_> = find_log_files(&dirs)
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(
            logs,
            [
                "tokudb_log_dir/log9.tokulog27",
                "tokudb_log_dir/log000000000010.tokulog27"
            ]
        );
    }

    #[test]
    fn data_dir_inside_datadir_is_listed_once() {
        let root = tempfile::tempdir().unwrap();
        let dd = root.path().to_path_buf();
        touch(&dd.join("toku/tokudb.directory"));
        touch(&dd.join("toku/a.tokudb"));
        touch(&dd.join("log000000000001.tokulog27"));
        let dirs = TokuDirs::resolve(dd.to_str().unwrap(), "toku", "");
        let rels: Vec<_> = find_data_files(&dirs)
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(rels, ["toku/a.tokudb", "toku/tokudb.directory"]);
        let logs: Vec<_> = find_log_files(&dirs)
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(logs, ["log000000000001.tokulog27"]);
    }

    #[test]
    fn missing_log_dir_is_an_error_naming_it() {
        let dirs = TokuDirs::resolve("/nonexistent/xb-tokudb-test", "", "");
        let e = find_log_files(&dirs).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/xb-tokudb-test"), "{e}");
    }
}
