//! `--export`: the files `ALTER TABLE … IMPORT TABLESPACE` needs, made by
//! the prepare server itself.
//!
//! An `.ibd` alone imports only as far as the importing server can guess
//! its layout (MariaDB guesses for simple tables, MySQL refuses without a
//! `.cfg` when the definition differs in anything it cannot check). The
//! `.cfg` (and the `.cfp` holding the key of an encrypted table) describes
//! the table as the server that wrote it knew it. Its format belongs to
//! each server release, so xb writes none itself: while the prepare server
//! is still up on the recovered backup, `FLUSH TABLES … FOR EXPORT` has it
//! write them. The server deletes them again on `UNLOCK TABLES`, so each is
//! read while the lock is held and written back once it is released.
//!
//! Tables are locked in batches of [`BATCH`], so a server with thousands of
//! tables never holds one giant lock list. A batch the server refuses is
//! retried one table at a time: a table it refuses alone (or one for which
//! it writes no `.cfg`: a table in the system tablespace or a MySQL general
//! tablespace, which cannot be imported alone) becomes a
//! [`NotExported`] warning, never a failure. The system schemas are
//! skipped, as are tables of other engines (their files are copied whole by
//! the backup and need no `.cfg`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::error::{PrepareError, io_err};

/// Tables locked by one `FLUSH TABLES … FOR EXPORT`.
pub(super) const BATCH: usize = 100;

/// Schemas whose tables are the server's own, never exported.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "sys", "performance_schema", "information_schema"];

/// What `--export` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportReport {
    /// InnoDB tables the export was asked of (system schemas aside).
    pub tables: usize,
    /// `.cfg` and `.cfp` files left beside the `.ibd` files.
    pub files: usize,
    /// Tables that cannot be imported from this backup, and why.
    pub not_exported: Vec<NotExported>,
}

/// A table `--export` could give no `.cfg`: a warning, not a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotExported {
    /// `` `db`.`table` ``.
    pub table: String,
    /// Why (the server's words when it refused the lock).
    pub reason: String,
}

/// A table as SQL names it and as InnoDB names its files.
#[derive(Debug, Clone)]
struct Table {
    schema: String,
    name: String,
}

impl Table {
    fn quoted(&self) -> String {
        crate::run::server::quote_table(&self.schema, &self.name)
    }
}

/// The server's file name for an identifier (its `filename` character
/// set) when the name is ASCII: letters, digits and `_` stay, any other
/// character becomes `@` and four hex digits. `None` for a name with other
/// characters, whose encoding has tables of its own: such a table's files
/// are still found (its schema's directory is searched with the others),
/// only no warning is given when none appears.
fn file_name(ident: &str) -> Option<String> {
    let mut out = String::with_capacity(ident.len());
    for c in ident.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("@{:04x}", u32::from(c)));
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether the file stem `stem` (`t`, or a partition's `t#p#p0`, `t#P#p0`)
/// belongs to the table whose file name is `table`.
fn stem_of(stem: &str, table: &str) -> bool {
    let stem = stem.to_ascii_lowercase();
    let table = table.to_ascii_lowercase();
    stem == table || stem.starts_with(&format!("{table}#p#"))
}

/// Writes the `.cfg`/`.cfp` files of every InnoDB table of the server
/// listening on `socket`, whose datadir is `dir` (see the module docs).
/// `timeout` bounds the wait for recovered transactions to roll back.
///
/// # Errors
/// [`PrepareError::Export`] when the session fails (the server cannot be
/// reached, or refuses a statement that is not a table's lock),
/// [`PrepareError::Io`] when a file cannot be read or written back.
pub(super) fn export_tables(
    socket: &Path,
    dir: &Path,
    timeout: Duration,
) -> Result<ExportReport, PrepareError> {
    super::session::on_recovered(socket, dir, timeout, async |conn: &mut Conn| {
        let tables = list_tables(conn)
            .await
            .map_err(super::session::failed(dir, "listing the InnoDB tables"))?;
        let mut report = ExportReport {
            tables: tables.len(),
            ..ExportReport::default()
        };
        for batch in tables.chunks(BATCH) {
            export_batch(conn, dir, batch, &mut report).await?;
        }
        Ok(report)
    })
}

/// The InnoDB base tables outside the system schemas, in name order.
async fn list_tables(conn: &mut Conn) -> Result<Vec<Table>, mysql_async::Error> {
    let skip = SYSTEM_SCHEMAS
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    // MariaDB calls a system-versioned table so; it is a base table too
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE ENGINE = 'InnoDB' AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
             AND TABLE_SCHEMA NOT IN ({skip}) ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(schema, name)| Table { schema, name })
        .collect())
}

/// Locks `batch` for export, keeps the files the server wrote, unlocks,
/// and writes them back. A refused batch is retried table by table.
async fn export_batch(
    conn: &mut Conn,
    dir: &Path,
    batch: &[Table],
    report: &mut ExportReport,
) -> Result<(), PrepareError> {
    match flush_for_export(conn, dir, batch).await? {
        Ok(files) => {
            settle(dir, batch, files, report)?;
        }
        Err(refusal) if batch.len() == 1 => report.not_exported.push(NotExported {
            table: batch[0].quoted(),
            reason: format!("the server refused FLUSH TABLES … FOR EXPORT: {refusal}"),
        }),
        Err(_) => {
            for one in batch {
                Box::pin(export_batch(conn, dir, std::slice::from_ref(one), report)).await?;
            }
        }
    }
    Ok(())
}

/// The export files of a locked batch, read while the lock is held.
type Held = BTreeMap<PathBuf, Vec<u8>>;

/// `FLUSH TABLES batch FOR EXPORT`, the export files read, `UNLOCK
/// TABLES`. The inner `Err` is the server's refusal of the lock.
async fn flush_for_export(
    conn: &mut Conn,
    dir: &Path,
    batch: &[Table],
) -> Result<Result<Held, mysql_async::ServerError>, PrepareError> {
    let list = batch
        .iter()
        .map(Table::quoted)
        .collect::<Vec<_>>()
        .join(", ");
    let fail = |step: &'static str| {
        move |source: mysql_async::Error| PrepareError::Export {
            dir: dir.to_path_buf(),
            step,
            source,
        }
    };
    match conn
        .query_drop(format!("FLUSH TABLES {list} FOR EXPORT"))
        .await
    {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) => return Ok(Err(e)),
        Err(e) => return Err(fail("FLUSH TABLES … FOR EXPORT")(e)),
    }
    let held = read_export_files(dir, batch);
    // unlocked whatever the read did: the lock list must not outlive it
    conn.query_drop("UNLOCK TABLES")
        .await
        .map_err(fail("UNLOCK TABLES"))?;
    held.map(Ok)
}

/// The directories the batch's files are in: each schema's, or every
/// directory of the backup when a schema's file name is not known.
fn schema_dirs(dir: &Path, batch: &[Table]) -> Result<Vec<PathBuf>, PrepareError> {
    let mut dirs = Vec::new();
    for t in batch {
        match file_name(&t.schema) {
            Some(name) => dirs.push(dir.join(name)),
            None => {
                let mut all = Vec::new();
                for e in fs::read_dir(dir).map_err(io_err(dir))? {
                    let p = e.map_err(io_err(dir))?.path();
                    if p.is_dir() {
                        all.push(p);
                    }
                }
                return Ok(all);
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Every `.cfg`/`.cfp` in the batch's schema directories, path and bytes
/// (a few kilobytes each).
fn read_export_files(dir: &Path, batch: &[Table]) -> Result<Held, PrepareError> {
    let mut held = Held::new();
    for d in schema_dirs(dir, batch)? {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            // a table's schema directory can only be missing for a name
            // encoded otherwise; its table is then reported as not exported
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&d)(e)),
        };
        for e in entries {
            let p = e.map_err(io_err(&d))?.path();
            if p.extension().is_some_and(|x| x == "cfg" || x == "cfp") {
                let bytes = fs::read(&p).map_err(io_err(&p))?;
                held.insert(p, bytes);
            }
        }
    }
    Ok(held)
}

/// Writes the held files back beside their `.ibd` (the server deleted them
/// on unlock) and records the batch's tables that got no `.cfg`.
fn settle(
    dir: &Path,
    batch: &[Table],
    held: Held,
    report: &mut ExportReport,
) -> Result<(), PrepareError> {
    for t in batch {
        let (Some(schema), Some(name)) = (file_name(&t.schema), file_name(&t.name)) else {
            continue;
        };
        let sdir = dir.join(&schema);
        let found = held.keys().any(|p| {
            p.parent() == Some(sdir.as_path())
                && p.extension().is_some_and(|x| x == "cfg")
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| stem_of(s, &name))
        });
        if !found {
            report.not_exported.push(NotExported {
                table: t.quoted(),
                reason: "the server wrote no .cfg: the table is not in a tablespace of its own \
                         (system or general tablespace), which cannot be imported alone"
                    .into(),
            });
        }
    }
    for (path, bytes) in held {
        let tmp = path.with_extension("xb-export.tmp");
        fs::write(&tmp, &bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        report.files += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_are_encoded_as_the_server_names_its_files() {
        assert_eq!(file_name("sbtest1").as_deref(), Some("sbtest1"));
        assert_eq!(file_name("a-b").as_deref(), Some("a@002db"));
        assert_eq!(file_name("my table$").as_deref(), Some("my@0020table@0024"));
        assert_eq!(file_name("tä"), None);
    }

    #[test]
    fn partitions_belong_to_their_table() {
        assert!(stem_of("t", "t"));
        assert!(stem_of("t#p#p0", "t"));
        assert!(stem_of("T#P#p1#SP#p1sp0", "t"));
        assert!(!stem_of("t2", "t"));
        assert!(!stem_of("t", "t2"));
    }

    #[test]
    fn held_files_are_written_back_and_tables_without_a_cfg_are_named() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("db")).unwrap();
        let batch = [
            Table {
                schema: "db".into(),
                name: "t".into(),
            },
            Table {
                schema: "db".into(),
                name: "p".into(),
            },
            Table {
                schema: "db".into(),
                name: "shared".into(),
            },
        ];
        let mut held = Held::new();
        for f in ["t.cfg", "t.cfp", "p#p#p0.cfg", "p#p#p1.cfg"] {
            held.insert(d.path().join("db").join(f), f.as_bytes().to_vec());
        }
        let mut report = ExportReport::default();
        settle(d.path(), &batch, held, &mut report).unwrap();
        assert_eq!(report.files, 4);
        assert_eq!(fs::read(d.path().join("db/t.cfp")).unwrap(), b"t.cfp");
        assert_eq!(report.not_exported.len(), 1);
        assert_eq!(report.not_exported[0].table, "`db`.`shared`");
        assert!(
            report.not_exported[0]
                .reason
                .contains("not in a tablespace of its own"),
            "{:?}",
            report.not_exported
        );
        assert!(!d.path().join("db/t.xb-export.tmp").exists());
    }
}
