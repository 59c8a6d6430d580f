//! What a backup copies from a datadir, sorted into the stages that copy it.
//!
//! Files are picked by name: the InnoDB system and undo tablespaces, every
//! `*.ibd` in a database directory, the non-InnoDB table files by their
//! suffixes, and the Aria control file and logs. Everything else (binlogs,
//! the server's redo, temporary tablespaces, pid files, ...) is left out by
//! construction.

use std::path::{Path, PathBuf};

use super::data_copy::{Job, Kind};
use super::server::ServerFacts;

/// Suffixes of non-transactional table files and table metadata, copied
/// while DDL and non-transactional writes are blocked.
const NON_INNODB: &[&str] = &[
    "frm", "isl", "MYD", "MYI", "MRG", "TRG", "TRN", "ARM", "ARZ", "CSM", "CSV", "opt", "par",
];
/// Aria table files: crash-safe, copied with the Aria log while commits are blocked.
const ARIA: &[&str] = &["MAD", "MAI"];

/// The copy list of one datadir.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// InnoDB tablespaces.
    pub innodb: Vec<Job>,
    /// Non-InnoDB tables and metadata (MyISAM, CSV, ARCHIVE, .frm, ...).
    pub non_innodb: Vec<Job>,
    /// Aria tables, `aria_log_control` and `aria_log.*`.
    pub aria: Vec<Job>,
}

fn job(src: PathBuf, rel: String, kind: Kind) -> Job {
    let size = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
    Job {
        src,
        rel,
        kind,
        size,
    }
}

fn ext(p: &Path) -> Option<&str> {
    p.extension().and_then(|e| e.to_str())
}

/// Names of the system tablespace files in `innodb_data_file_path`
/// (`ibdata1:12M;ibdata2:50M:autoextend`).
#[must_use]
pub fn system_files(data_file_path: &str) -> Vec<String> {
    data_file_path
        .split(';')
        .filter_map(|spec| spec.split(':').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Lists what to copy from the server's datadir.
///
/// # Errors
/// The datadir (or a database directory) cannot be read.
pub fn list(facts: &ServerFacts) -> Result<Manifest, String> {
    let datadir = Path::new(&facts.datadir);
    let read =
        |d: &Path| std::fs::read_dir(d).map_err(|e| format!("cannot list {}: {e}", d.display()));
    let mut m = Manifest::default();
    let home = if facts.data_home_dir.is_empty() {
        datadir.to_path_buf()
    } else {
        datadir.join(&facts.data_home_dir)
    };
    for f in system_files(&facts.data_file_path) {
        m.innodb
            .push(job(home.join(&f), f.clone(), Kind::Tablespace));
    }
    let undo_dir = datadir.join(facts.undo_directory.trim_start_matches("./"));
    for e in read(&undo_dir)? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("undo")
            && name[4..].chars().all(|c| c.is_ascii_digit())
            && name.len() > 4
        {
            m.innodb.push(job(e.path(), name, Kind::Tablespace));
        }
    }
    for e in read(datadir)? {
        let e = e.map_err(|e| e.to_string())?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_file() && (name == "aria_log_control" || name.starts_with("aria_log.")) {
            m.aria.push(job(path, name, Kind::Plain));
            continue;
        }
        if !path.is_dir() || name.starts_with('#') || name.starts_with('.') || name == "lost+found"
        {
            continue;
        }
        for f in read(&path)? {
            let f = f.map_err(|e| e.to_string())?;
            let fp = f.path();
            if !fp.is_file() {
                continue;
            }
            let rel = format!("{name}/{}", f.file_name().to_string_lossy());
            match ext(&fp) {
                Some("ibd") => m.innodb.push(job(fp, rel, Kind::Tablespace)),
                Some(x) if ARIA.contains(&x) => m.aria.push(job(fp, rel, Kind::Plain)),
                Some(x) if NON_INNODB.contains(&x) => m.non_innodb.push(job(fp, rel, Kind::Plain)),
                _ => {}
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tablespace_names() {
        assert_eq!(system_files("ibdata1:12M:autoextend"), ["ibdata1"]);
        assert_eq!(
            system_files("ibdata1:12M;ibdata2:50M:autoextend"),
            ["ibdata1", "ibdata2"]
        );
    }

    #[test]
    fn files_are_sorted_into_stages_and_the_rest_is_left_out() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "ibdata1",
            "undo001",
            "ib_logfile0",
            "ibtmp1",
            "binlog.000001",
            "binlog.index",
            "aria_log_control",
            "aria_log.00000001",
            "ib_buffer_pool",
            "db/t.ibd",
            "db/t.frm",
            "db/m.MYD",
            "db/m.MYI",
            "db/a.MAD",
            "db/a.MAI",
            "db/db.opt",
            "#rocksdb/x.sst",
            "db/#sql-1.frm.tmp",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let facts = ServerFacts {
            version: "10.11.18-MariaDB".into(),
            version_num: (10, 11, 18),
            mariadb: true,
            datadir: root.display().to_string(),
            log_dir: root.display().to_string(),
            page_size: 16384,
            data_file_path: "ibdata1:12M:autoextend".into(),
            data_home_dir: String::new(),
            undo_directory: "./".into(),
            undo_tablespaces: 1,
            log_file_size: 0,
            checksum_algorithm: "full_crc32".into(),
            compression_level: "6".into(),
            log_bin: false,
        };
        let m = list(&facts).unwrap();
        let rels = |v: &[Job]| {
            let mut r: Vec<String> = v.iter().map(|j| j.rel.clone()).collect();
            r.sort();
            r
        };
        assert_eq!(rels(&m.innodb), ["db/t.ibd", "ibdata1", "undo001"]);
        assert_eq!(
            rels(&m.non_innodb),
            ["db/db.opt", "db/m.MYD", "db/m.MYI", "db/t.frm"]
        );
        assert_eq!(
            rels(&m.aria),
            [
                "aria_log.00000001",
                "aria_log_control",
                "db/a.MAD",
                "db/a.MAI"
            ]
        );
    }
}
