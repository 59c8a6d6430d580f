//! MariaDB: copies made before DDL is blocked, and how they are settled
//! once it is (`BACKUP STAGE BLOCK_DDL`).
//!
//! Two kinds of early copy, held to different tests:
//! - transactional Aria tables, copied at `START` while the server writes
//!   them ([`super::aria_copy`]): their writes are in the Aria log, so
//!   only DDL can make the copy stale, and it is still good if each file is
//!   the same file with the same redo fences ([`AriaMark`]) and the
//!   server's backup DDL log (`ddl.log`, kept from `BACKUP STAGE START` on)
//!   names no DDL on it;
//! - non-transactional tables copied at `FLUSH` ([`super::flush_copy`]),
//!   which no statement writes from then on: still good if the file has
//!   not changed at all ([`Stamp`]) and `ddl.log` names no DDL on it.
//!
//! A copy that is no longer good is taken back from the target, with every
//! other file of its table (an index copied before a rebuild would not
//! match the data copied after it), and the table, if it still exists, is
//! copied again with the rest, under the lock that stage holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use super::data_copy::Job;
use super::files::{self, Identity, Stamp};
use super::seams::Target;
use super::targets::take_back;
use crate::error::BackupError;

/// Name of the server's backup DDL log in the datadir.
const DDL_LOG: &str = "ddl.log";

/// The Aria control file: read before any Aria table is copied (recovery
/// must start from a checkpoint older than every copy) and written into
/// the backup last.
pub(super) const ARIA_CONTROL: &str = "aria_log_control";

/// The early copies of one backup.
#[derive(Debug, Default)]
pub(super) struct Early {
    /// Files copied at `FLUSH`, each with its stamp from before its copy.
    pub flush: HashMap<String, Stamp>,
    /// Aria files copied at `START`, each with its mark from before.
    pub aria: HashMap<String, AriaMark>,
    /// Aria log files copied so far, each with its stamp from before its
    /// copy (see [`super::aria_copy::copy_logs`]).
    pub logs: HashMap<String, Stamp>,
    /// `aria_log_control` as read before the Aria tables were copied:
    /// written into the backup at the end, naming the newest log copied.
    pub aria_control: Option<xb_aria::Control>,
}

/// What tells an Aria file copied while written from one DDL touched:
/// the file's [`Identity`] (DDL that makes new files, or renames them) and
/// its table's [`xb_aria::RedoFences`] (TRUNCATE, which empties the files
/// in place, REPAIR and OPTIMIZE: operations whose effect the Aria log does
/// not replay onto an older copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AriaMark {
    id: Identity,
    fences: Option<xb_aria::RedoFences>,
}

/// The [`AriaMark`] of the Aria file `path`; `None` when it is not there.
pub(super) fn aria_mark(path: &Path) -> Option<AriaMark> {
    Some(AriaMark {
        id: files::identity(path)?,
        fences: xb_aria::read_fences(&path.with_extension("MAI"))
            .ok()
            .flatten(),
    })
}

/// What [`Early::settle`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    /// Non-transactional files still to copy under `BLOCK_DDL`.
    pub rest: Vec<Job>,
    /// Aria files still to copy (logs among them), for
    /// [`super::aria_copy::split`] to sort into stages.
    pub aria_rest: Vec<Job>,
    /// Early copies that DDL made stale, taken back from the target.
    pub taken_back: Vec<String>,
    /// The control file read before the early Aria copies, if any: the
    /// one to write into the backup after the logs
    /// ([`super::aria_copy::control_for`]).
    pub aria_control: Option<xb_aria::Control>,
}

impl Early {
    /// Holds the early copies against the files listed under `BLOCK_DDL`
    /// (`tables`: non-transactional files and metadata; `aria`: Aria
    /// tables, control file and logs) and against `logged`, the tables the
    /// backup DDL log names. Takes back what DDL made stale and returns
    /// what is left to copy.
    ///
    /// # Errors
    /// [`BackupError::Target`] when the target cannot take a file back.
    pub(super) fn settle(
        self,
        target: &dyn Target,
        tables: Vec<Job>,
        aria: Vec<Job>,
        logged: &HashSet<(String, String)>,
    ) -> Result<Settled, BackupError> {
        let mut out = Settled::default();
        let (rest, mut taken) = settle_kind(target, self.flush, tables, logged, |job, was| {
            files::stamp(&job.src) == Some(*was)
        })?;
        out.rest = rest;
        let aria_control = self.aria_control;
        let aria: Vec<Job> = aria
            .into_iter()
            .filter(|j| !(aria_control.is_some() && j.rel == ARIA_CONTROL))
            .collect();
        let (aria_rest, aria_taken) = settle_kind(target, self.aria, aria, logged, |job, was| {
            aria_mark(&job.src) == Some(*was)
        })?;
        out.aria_rest = aria_rest;
        taken.extend(aria_taken);
        out.taken_back = taken;
        out.aria_control = aria_control;
        Ok(out)
    }
}

/// Settles one kind of early copy: `copied` against `now`, each file
/// still good when `good` says so and `logged` does not name its table.
fn settle_kind<V>(
    target: &dyn Target,
    mut copied: HashMap<String, V>,
    now: Vec<Job>,
    logged: &HashSet<(String, String)>,
    good: impl Fn(&Job, &V) -> bool,
) -> Result<(Vec<Job>, Vec<String>), BackupError> {
    // tables (by file stem: a partition is its own pair of files) with a
    // copy that is stale or gone
    let mut stale: BTreeSet<String> = BTreeSet::new();
    let by_rel: HashMap<&str, &Job> = now.iter().map(|j| (j.rel.as_str(), j)).collect();
    for (rel, was) in &copied {
        let fine =
            by_rel.get(rel.as_str()).is_some_and(|j| good(j, was)) && !log_names(logged, rel);
        if !fine {
            stale.insert(stem(rel).to_string());
        }
    }
    // what is left to copy is sorted out of `now` in place: with 100,000
    // tables a second list beside it was 8 MB
    let mut rest = now;
    let mut taken = Vec::new();
    let mut failed = None;
    rest.retain(|job| match copied.remove(&job.rel) {
        Some(_) if !stale.contains(stem(&job.rel)) => false,
        Some(_) => {
            if failed.is_none() {
                match take_back(target, &job.rel) {
                    Ok(()) => taken.push(job.rel.clone()),
                    Err(e) => failed = Some(e),
                }
            }
            true
        }
        None => true,
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let mut gone: Vec<String> = copied.into_keys().collect();
    gone.sort();
    for rel in gone {
        take_back(target, &rel)?;
        taken.push(rel);
    }
    Ok((rest, taken))
}

/// `db/t#P#p0.MAD` → `db/t#P#p0`: the files that belong together.
fn stem(rel: &str) -> &str {
    let cut = rel.rfind('/').map_or(0, |s| s + 1);
    match rel[cut..].find('.') {
        Some(dot) => &rel[..cut + dot],
        None => rel,
    }
}

/// Does the DDL log name the table that `rel` belongs to?
fn log_names(logged: &HashSet<(String, String)>, rel: &str) -> bool {
    let Some((db, file)) = rel.split_once('/') else {
        return false;
    };
    // file names encode '#' and '.', so either starts a suffix
    let table = file.split(['#', '.']).next().unwrap_or(file);
    logged.contains(&(db.to_string(), table.to_string()))
}

/// The tables (database and table, as the server names their files) that
/// the backup DDL log in `datadir` names, under their old and new names.
/// MariaDB starts this log at `BACKUP STAGE START`; a server without it
/// names none, and the early copies are held to their files alone.
///
/// # Errors
/// [`BackupError::Read`] when the log is there but cannot be read.
pub(super) fn ddl_logged(datadir: &Path) -> Result<HashSet<(String, String)>, BackupError> {
    let path = datadir.join(DDL_LOG);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => {
            return Err(BackupError::Read(super::seams::SeamError::Io {
                path: path.display().to_string(),
                message: format!("cannot read the backup DDL log: {e}"),
            }));
        }
    };
    Ok(parse_ddl_log(&text))
}

/// Lines of `time \t ACTION \t engine \t partitioned \t db \t table \t id
/// \t new engine \t partitioned \t new db \t new table \t new id`.
fn parse_ddl_log(text: &str) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        for (db, table) in [(4, 5), (9, 10)] {
            if let (Some(d), Some(t)) = (f.get(db), f.get(table))
                && !d.is_empty()
                && !t.is_empty()
            {
                out.insert(((*d).to_string(), (*t).to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::run::data_copy::Kind;
    use crate::run::targets::Taken;
    use std::os::unix::fs::FileExt;

    fn job(dir: &Path, rel: &str) -> Job {
        crate::run::files::job(dir.join(rel), rel.into(), Kind::Plain)
    }

    fn jobs(dir: &Path, rels: &[&str]) -> Vec<Job> {
        rels.iter().map(|r| job(dir, r)).collect()
    }

    fn put(dir: &Path, rel: &str, body: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// The files of real DDL, as MariaDB 10.11 logged it: a rename, an
    /// ALTER, a table created and dropped, a repair; names as files name them.
    const LOG: &str = "\
2026-12-03  2:17:24\tRENAME\tAria\t0\ta\tt\tid1\tAria\t0\ta\tt2\tid1
2026-12-03  2:17:24\tALTER\tAria\t0\ta\tt2\tid1\tAria\t0\ta\tt2\tid2
2026-12-03  2:17:24\tCREATE\tAria\t0\ta\tc\tid3\t\t0\t\t\t
2026-12-03  2:17:34\trepair\tAria\t0\ta\tt@002d1\tid4\t\t0\t\t\t
";

    #[test]
    fn the_ddl_log_names_old_and_new_tables() {
        let got = parse_ddl_log(LOG);
        let want: HashSet<(String, String)> =
            [("a", "t"), ("a", "t2"), ("a", "c"), ("a", "t@002d1")]
                .iter()
                .map(|(d, t)| ((*d).to_string(), (*t).to_string()))
                .collect();
        assert_eq!(got, want);
        assert!(log_names(&got, "a/t@002d1#P#p0.MAD"));
        assert!(log_names(&got, "a/t.MAI"));
        assert!(!log_names(&got, "a/t3.MAI"));
        assert!(!log_names(&got, "aria_log_control"));
    }

    #[test]
    fn settling_keeps_unchanged_flush_copies_and_takes_back_changed_and_gone_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let all = [
            "db/same.MYD",
            "db/grown.MYD",
            "db/renamed.MYD",
            "db/dropped.MYD",
        ];
        for rel in all {
            put(d, rel, b"before");
        }
        let mut early = Early::default();
        for rel in all {
            early
                .flush
                .insert(rel.into(), files::stamp(&d.join(rel)).unwrap());
        }
        // DDL between the early copy and BLOCK_DDL
        put(d, "db/grown.MYD", b"rebuilt, longer");
        std::fs::rename(d.join("db/renamed.MYD"), d.join("db/new_name.MYD")).unwrap();
        std::fs::remove_file(d.join("db/dropped.MYD")).unwrap();
        put(d, "db/in_use.MYD", b"x");
        let now = jobs(
            d,
            &[
                "db/same.MYD",
                "db/grown.MYD",
                "db/new_name.MYD",
                "db/in_use.MYD",
            ],
        );
        let target = Taken::default();
        let settled = early
            .settle(&target, now, Vec::new(), &HashSet::new())
            .unwrap();
        let rest: Vec<&str> = settled.rest.iter().map(|j| j.rel.as_str()).collect();
        assert_eq!(rest, ["db/grown.MYD", "db/new_name.MYD", "db/in_use.MYD"]);
        assert_eq!(
            settled.taken_back,
            ["db/grown.MYD", "db/dropped.MYD", "db/renamed.MYD"]
        );
        assert_eq!(*target.0.lock().unwrap(), settled.taken_back);
    }

    #[test]
    fn a_file_renamed_away_and_back_is_copied_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(d, "db/t.MYD", b"same bytes");
        let mut early = Early::default();
        early.flush.insert(
            "db/t.MYD".into(),
            files::stamp(&d.join("db/t.MYD")).unwrap(),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::rename(d.join("db/t.MYD"), d.join("db/u.MYD")).unwrap();
        std::fs::rename(d.join("db/u.MYD"), d.join("db/t.MYD")).unwrap();
        let settled = early
            .settle(
                &Taken::default(),
                jobs(d, &["db/t.MYD"]),
                Vec::new(),
                &HashSet::new(),
            )
            .unwrap();
        assert_eq!(settled.taken_back, ["db/t.MYD"]);
    }

    #[test]
    fn aria_copies_written_since_stay_and_ddl_takes_back_whole_tables() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let tables = ["hot", "rebuilt", "renamed", "logged", "emptied"];
        let control = xb_aria::Control::parse(&CONTROL).unwrap();
        let mut early = Early {
            aria_control: Some(control.clone()),
            ..Early::default()
        };
        put(d, ARIA_CONTROL, b"control");
        for t in tables {
            for ext in ["MAI", "MAD"] {
                let rel = format!("db/{t}.{ext}");
                // an Aria index header: magic, then the state's fences
                let mut body = vec![0u8; 64];
                body[..4].copy_from_slice(&[254, 254, 9, 3]);
                put(d, &rel, if ext == "MAI" { &body } else { b"pages" });
                early
                    .aria
                    .insert(rel.clone(), aria_mark(&d.join(&rel)).unwrap());
            }
        }
        put(d, "aria_log.00000001", b"log");
        // written in place: still the same files
        std::fs::write(d.join("db/hot.MAD"), b"more pages, written since").unwrap();
        // TRUNCATE: both files emptied in place, the skip-redo fence moved
        let mut emptied = std::fs::read(d.join("db/emptied.MAI")).unwrap();
        emptied[42..49].copy_from_slice(&[1, 0, 0, 9, 9, 9, 0]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("db/emptied.MAI"))
            .unwrap()
            .write_all_at(&emptied, 0)
            .unwrap();
        // ALTER: a new data file, the index rewritten in place
        std::fs::remove_file(d.join("db/rebuilt.MAD")).unwrap();
        put(d, "db/rebuilt.MAD", b"new");
        // RENAME: the same inodes under another name
        for ext in ["MAI", "MAD"] {
            std::fs::rename(
                d.join(format!("db/renamed.{ext}")),
                d.join(format!("db/moved.{ext}")),
            )
            .unwrap();
        }
        let logged: HashSet<(String, String)> = [("db".to_string(), "logged".to_string())].into();
        let now = jobs(
            d,
            &[
                ARIA_CONTROL,
                "aria_log.00000001",
                "db/hot.MAD",
                "db/hot.MAI",
                "db/rebuilt.MAD",
                "db/rebuilt.MAI",
                "db/moved.MAD",
                "db/moved.MAI",
                "db/logged.MAD",
                "db/logged.MAI",
                "db/emptied.MAD",
                "db/emptied.MAI",
            ],
        );
        let target = Taken::default();
        let settled = early.settle(&target, Vec::new(), now, &logged).unwrap();
        let rest: Vec<&str> = settled.aria_rest.iter().map(|j| j.rel.as_str()).collect();
        // the control file is never copied twice; the log always at the end
        assert_eq!(
            rest,
            [
                "aria_log.00000001",
                "db/rebuilt.MAD",
                "db/rebuilt.MAI",
                "db/moved.MAD",
                "db/moved.MAI",
                "db/logged.MAD",
                "db/logged.MAI",
                "db/emptied.MAD",
                "db/emptied.MAI",
            ]
        );
        assert_eq!(
            settled.taken_back,
            [
                "db/rebuilt.MAD",
                "db/rebuilt.MAI",
                "db/logged.MAD",
                "db/logged.MAI",
                "db/emptied.MAD",
                "db/emptied.MAI",
                "db/renamed.MAD",
                "db/renamed.MAI",
            ]
        );
        assert_eq!(*target.0.lock().unwrap(), settled.taken_back);
        assert_eq!(settled.aria_control, Some(control));
    }

    /// A MariaDB 10.11.18 server's `aria_log_control`: log file 1.
    pub(in crate::run) const CONTROL: [u8; 52] = [
        0xfe, 0xfe, 0x0c, 0x01, 0x7e, 0x88, 0xf7, 0x42, 0xee, 0xc1, 0x11, 0xf1, 0x82, 0x29, 0x02,
        0xfc, 0x00, 0x00, 0x00, 0x01, 0x1e, 0x00, 0x16, 0x00, 0x00, 0x20, 0x05, 0x7c, 0x26, 0xc5,
        0x1e, 0xe9, 0x19, 0x69, 0x01, 0x00, 0x00, 0x67, 0x4c, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00,
        0xe3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn stems_keep_partitions_apart() {
        assert_eq!(stem("db/t#P#p0.MAD"), "db/t#P#p0");
        assert_eq!(stem("db/t.MAI"), "db/t");
        assert_eq!(stem("aria_log_control"), "aria_log_control");
    }
}
