//! Where a backup keeps a MySQL tablespace the source keeps outside its
//! datadir, and the list (`xtrabackup_tablespaces`) that remembers where
//! each one came from.
//!
//! MySQL keeps no link file for them (MariaDB's `.isl`): the data
//! dictionary alone holds the absolute path, and a backup is a directory
//! tree of its own. So each file is stored where XtraBackup 8.0 stores it,
//! which keeps both tools' backups interchangeable:
//! - a file-per-table tablespace (`DATA DIRECTORY`, name `db/table`) at
//!   `<db>/<file>`, where the table's file would be without `DATA
//!   DIRECTORY`;
//! - a general tablespace at `<name>.ibd` and an undo tablespace at
//!   `<name>.ibu` in the backup's root.
//!
//! The original absolute path of each goes into `xtrabackup_tablespaces`
//! (JSON, version 2), for a later copy-back to put the file back.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The file in the backup's root that lists the tablespaces kept outside
/// the source's datadir.
pub const LIST_FILE: &str = "xtrabackup_tablespaces";

/// One tablespace the source keeps outside its datadir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// The server's name for it (`db/table`, a general or undo
    /// tablespace's name).
    pub name: String,
    /// Its file on the source, absolute.
    pub path: PathBuf,
    /// An undo tablespace (`CREATE UNDO TABLESPACE`).
    pub undo: bool,
    /// Where the backup keeps it, relative to the backup's root.
    pub rel: String,
}

/// Where the backup keeps the tablespace `name` whose file is `path` (see
/// the module docs). `None` when the name cannot be a file name in the
/// backup's root (empty, `.`/`..`, a `/` or NUL in it), or a file-per-table
/// file is not a `.ibd` in a directory: storing it anywhere else would be a
/// layout no restore knows.
#[must_use]
pub fn backup_rel(name: &str, path: &Path, undo: bool) -> Option<String> {
    if name.contains('/') {
        // file-per-table: the server names the file <dir>/<db>/<table>.ibd
        let file = path.file_name()?.to_str()?;
        let db = path.parent()?.file_name()?.to_str()?;
        return (!undo && file.ends_with(".ibd")).then(|| format!("{db}/{file}"));
    }
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    plain.then(|| format!("{name}.{}", if undo { "ibu" } else { "ibd" }))
}

#[derive(Serialize)]
struct ListEntry<'a> {
    file_name: String,
    tablespace_name: &'a str,
    tablespace_type: &'static str,
}

#[derive(Serialize)]
struct List<'a> {
    version: u32,
    external_tablespaces: Vec<ListEntry<'a>>,
}

/// The text of [`LIST_FILE`] for `list`, as XtraBackup 8.0 writes it.
#[must_use]
pub fn render(list: &[External]) -> String {
    let doc = List {
        version: 2,
        external_tablespaces: list
            .iter()
            .map(|e| ListEntry {
                file_name: e.path.display().to_string(),
                tablespace_name: &e.name,
                tablespace_type: if e.undo { "UNDO_LOG" } else { "TABLESPACE" },
            })
            .collect(),
    };
    // serialising strings and numbers cannot fail
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_kept_where_xtrabackup_keeps_it() {
        let rel = |name: &str, path: &str, undo| backup_rel(name, Path::new(path), undo);
        assert_eq!(
            rel("db/t", "/r/db/t.ibd", false).as_deref(),
            Some("db/t.ibd")
        );
        assert_eq!(
            rel("db/t#p#p0", "/r/db/t#p#p0.ibd", false).as_deref(),
            Some("db/t#p#p0.ibd")
        );
        assert_eq!(rel("gen", "/r/x.ibd", false).as_deref(), Some("gen.ibd"));
        assert_eq!(rel("u1", "/r/u.ibu", true).as_deref(), Some("u1.ibu"));
        for bad in ["", ".", "..", "a\0b"] {
            assert_eq!(rel(bad, "/r/x.ibd", false), None, "{bad:?}");
        }
        assert_eq!(rel("db/t", "/t.ibd", false), None);
        assert_eq!(rel("db/t", "/r/db/t.frm", false), None);
    }

    #[test]
    fn the_list_names_each_original_path_and_type() {
        let list = [
            External {
                name: "gen".into(),
                path: "/r/g.ibd".into(),
                undo: false,
                rel: "gen.ibd".into(),
            },
            External {
                name: "u1".into(),
                path: "/r/u \"1\".ibu".into(),
                undo: true,
                rel: "u1.ibu".into(),
            },
        ];
        let v: serde_json::Value = serde_json::from_str(&render(&list)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": 2, "external_tablespaces": [
                {"file_name": "/r/g.ibd", "tablespace_name": "gen", "tablespace_type": "TABLESPACE"},
                {"file_name": "/r/u \"1\".ibu", "tablespace_name": "u1", "tablespace_type": "UNDO_LOG"},
            ]})
        );
    }
}
