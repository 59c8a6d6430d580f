//! Reading the backup a restore starts from: is it ready, and what does
//! it hold. Only reads.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{RestoreError, io_err};
use super::plan::{Listed, Listing};
use crate::checkpoints::Checkpoints;
use crate::optfile;
use crate::prepare::{FULL_PREPARED, INCOMPLETE_MARKER, LOG_APPLIED};
use crate::run::external;

/// Checks that `dir` holds a complete, fully prepared backup.
///
/// # Errors
/// [`RestoreError::NotABackup`], [`RestoreError::Incomplete`],
/// [`RestoreError::LogApplied`], [`RestoreError::NotPrepared`], or
/// [`RestoreError::BadBackup`] for a damaged `xtrabackup_checkpoints`.
pub fn check(dir: &Path) -> Result<Checkpoints, RestoreError> {
    let cp_file = dir.join("xtrabackup_checkpoints");
    if !cp_file.is_file() {
        return Err(RestoreError::NotABackup {
            dir: dir.to_path_buf(),
        });
    }
    if dir.join(INCOMPLETE_MARKER).exists() {
        return Err(RestoreError::Incomplete {
            dir: dir.to_path_buf(),
        });
    }
    let text = fs::read_to_string(&cp_file).map_err(io_err(&cp_file))?;
    let cps = Checkpoints::parse(&text).map_err(|reason| RestoreError::BadBackup {
        file: cp_file.clone(),
        reason,
    })?;
    match cps.backup_type.as_str() {
        FULL_PREPARED => Ok(cps),
        LOG_APPLIED => Err(RestoreError::LogApplied {
            dir: dir.to_path_buf(),
        }),
        _ => Err(RestoreError::NotPrepared {
            dir: dir.to_path_buf(),
            backup_type: cps.backup_type,
        }),
    }
}

#[derive(Deserialize)]
struct ListEntry {
    file_name: String,
    tablespace_name: String,
    tablespace_type: String,
}

#[derive(Deserialize)]
struct List {
    external_tablespaces: Vec<ListEntry>,
}

/// The tablespaces `xtrabackup_tablespaces` lists (none without the file).
fn listed(dir: &Path) -> Result<Vec<Listed>, RestoreError> {
    let file = dir.join(external::LIST_FILE);
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&file)(e)),
    };
    let list: List = serde_json::from_str(&text).map_err(|e| RestoreError::BadBackup {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    Ok(list
        .external_tablespaces
        .into_iter()
        .map(|e| Listed {
            name: e.tablespace_name,
            path: PathBuf::from(e.file_name),
            undo: e.tablespace_type == "UNDO_LOG",
        })
        .collect())
}

/// The system tablespace's file names, from `innodb_data_file_path` in the
/// backup's `backup-my.cnf` (`ibdata1:12M;ibdata2:…:autoextend`); `ibdata1`
/// when it says nothing.
fn system_files(dir: &Path) -> Result<Vec<String>, RestoreError> {
    let cnf = dir.join("backup-my.cnf");
    if !cnf.is_file() {
        return Ok(vec!["ibdata1".into()]);
    }
    let opts = optfile::read_groups(&cnf, &["mysqld"])?;
    Ok(crate::run::files::system_file_names(
        &opts.get("innodb_data_file_path").unwrap_or_default(),
    ))
}

/// Walks the backup: its files, empty directories and `.isl` contents,
/// plus the tablespace list and the system tablespace's names. Symbolic
/// links are not followed (a backup holds none; one there would copy
/// whatever it points at).
///
/// # Errors
/// [`RestoreError::Io`] when something cannot be read;
/// [`RestoreError::BadBackup`] for a damaged tablespace list.
pub fn list(dir: &Path) -> Result<Listing, RestoreError> {
    let mut out = Listing {
        listed: listed(dir)?,
        system_files: system_files(dir)?,
        ..Listing::default()
    };
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let abs = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&rel)
        };
        let mut any = false;
        for e in fs::read_dir(&abs).map_err(io_err(&abs))? {
            let e = e.map_err(io_err(&abs))?;
            any = true;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                return Err(RestoreError::BadBackup {
                    file: e.path(),
                    reason: "the name is not UTF-8".into(),
                });
            };
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = e.file_type().map_err(io_err(&e.path()))?;
            if kind.is_dir() {
                todo.push(child);
            } else if kind.is_file() {
                if name.ends_with(".isl") {
                    let p = e.path();
                    let text = fs::read_to_string(&p).map_err(io_err(&p))?;
                    out.isl.push((child.clone(), text));
                }
                out.files.push(child);
            } else {
                return Err(RestoreError::BadBackup {
                    file: e.path(),
                    reason: "not a regular file or directory".into(),
                });
            }
        }
        if !any && !rel.is_empty() {
            out.empty_dirs.push(rel);
        }
    }
    out.files.sort();
    out.empty_dirs.sort();
    Ok(out)
}
