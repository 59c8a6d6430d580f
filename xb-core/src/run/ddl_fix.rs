//! DDL that ran while tablespaces were copied, made good once DDL is
//! blocked (`--lock-ddl=reduced`).
//!
//! With DDL allowed during the InnoDB copy, a copied file may belong to a
//! table dropped, renamed, truncated or rebuilt since, and tables created
//! meanwhile were not copied at all. Once DDL is blocked, xb holds what it
//! copied (each file with the space id its page 0 held when read) against
//! the server's tablespaces now (space id and file), and:
//!
//! - a space copied under the name it has now is kept as it is: the copied
//!   redo carries every change since the copy's start checkpoint;
//! - a space copied under another name gets `<old>.ren` holding its new
//!   name, where renaming cannot clobber another copied file (otherwise it
//!   is copied again, as below);
//! - a copied space the server no longer has gets `<name>.del`;
//! - a space not copied (created during the copy, a truncate or rebuild
//!   that gave the table a new space), or one the flavour names as changed
//!   in a way the redo does not carry (MySQL's bulk index builds), is
//!   copied again now as `<name>.new`.
//!
//! Both `xb-cli prepare` and `mariadb-backup --prepare` apply the markers
//! before recovery: every `.del`, then every `.ren`, then every `.new`
//! (which replaces the `.ibd`). This is mariadb-backup's scheme; where it
//! follows the redo's FILE_* records as they are copied, xb compares the
//! two states, which needs no redo parser per server and sees the same
//! outcome. [`plan`] is the pure part, unit-tested here.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::data_copy::{CopiedSpace, Job, Kind};
use super::ddl_yield::marker;
use super::flavour::Step;
use super::meta;
use super::spaces::{self, ServerSpace};
use super::targets::take_back;
use crate::error::BackupError;

/// A tablespace the server has once DDL is blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSpace {
    /// Space id.
    pub id: u32,
    /// Where the backup keeps it.
    pub rel: String,
    /// The live file.
    pub src: PathBuf,
    /// Its size now.
    pub size: u64,
}

/// What to write so the backup holds the tablespaces as they are now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fix {
    /// Copied files to drop at prepare (`<rel>.del`).
    pub drop: Vec<String>,
    /// Copied files to rename at prepare: (copied path, path now).
    pub rename: Vec<(String, String)>,
    /// Tablespaces to copy now as `<rel>.new` (the jobs carry that name).
    pub copy: Vec<Job>,
}

impl Fix {
    /// Nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.rename.is_empty() && self.copy.is_empty()
    }

    /// Whether the fix drops, renames or copies again the copy at `rel`.
    #[must_use]
    pub fn touches(&self, rel: &str) -> bool {
        self.drop.iter().any(|d| d == rel)
            || self.rename.iter().any(|(from, _)| from == rel)
            || self.copy.iter().any(|j| j.rel == marker(rel, "new"))
    }
}

/// Only single-table and general tablespaces (`*.ibd`) have markers; the
/// system tablespace and undo files keep their space ids.
fn has_markers(rel: &str) -> bool {
    rel.ends_with(".ibd")
}

/// The space id of each copied tablespace: what its page 0 held, or for a
/// page 0 not written yet (a young table: MariaDB writes it at the first
/// flush), what the server reported before the copy for the same file
/// (device and inode; a rename keeps them, a rebuild makes a new file).
/// `None` where neither says: such a copy is replaced.
#[must_use]
pub fn copied_ids(
    copied: &[CopiedSpace],
    listed: &HashMap<(u64, u64), u32>,
) -> Vec<(String, Option<u32>)> {
    copied
        .iter()
        .map(|c| {
            let id =
                c.id.or_else(|| c.identity.and_then(|i| listed.get(&i).copied()));
            (c.rel.clone(), id)
        })
        .collect()
}

/// Holds `copied` (path in the backup, space id) against `live`;
/// `changed` names spaces to copy again whatever their name.
#[must_use]
pub fn plan(copied: &[(String, Option<u32>)], live: &[LiveSpace], changed: &HashSet<u32>) -> Fix {
    let live: Vec<&LiveSpace> = live.iter().filter(|l| has_markers(&l.rel)).collect();
    let by_id: HashMap<u32, &LiveSpace> = live.iter().map(|l| (l.id, *l)).collect();
    let copied: Vec<&(String, Option<u32>)> =
        copied.iter().filter(|(rel, _)| has_markers(rel)).collect();
    let mut fix = Fix::default();
    // spaces whose copy stands as it is
    let mut settled: HashSet<u32> = HashSet::new();
    for (rel, id) in &copied {
        if let Some(l) = id.and_then(|i| by_id.get(&i)) {
            if l.rel == *rel && !changed.contains(&l.id) {
                settled.insert(l.id);
            }
        }
    }
    // copied files that stay where they are, for the clobber test
    let mut staying: HashSet<&str> = copied
        .iter()
        .filter(|(rel, id)| {
            id.and_then(|i| by_id.get(&i))
                .is_some_and(|l| l.rel == *rel && !changed.contains(&l.id))
        })
        .map(|(rel, _)| rel.as_str())
        .collect();
    let mut renames: Vec<(&str, &LiveSpace)> = Vec::new();
    for (rel, id) in &copied {
        let now = id.and_then(|i| by_id.get(&i)).copied();
        match now {
            Some(l) if l.rel == *rel && !changed.contains(&l.id) => {}
            Some(l) if !settled.contains(&l.id) && !changed.contains(&l.id) => {
                renames.push((rel.as_str(), l));
                staying.insert(rel.as_str());
            }
            _ => fix.drop.push(rel.clone()),
        }
    }
    // a rename onto a name another copied file keeps (or leaves only by
    // a rename of its own, whose order is not fixed) would clobber it
    let mut renamed: HashSet<u32> = HashSet::new();
    for (from, l) in renames {
        if renamed.contains(&l.id) || staying.contains(l.rel.as_str()) {
            fix.drop.push(from.to_string());
        } else {
            renamed.insert(l.id);
            fix.rename.push((from.to_string(), l.rel.clone()));
        }
    }
    for l in &live {
        if !settled.contains(&l.id) && !renamed.contains(&l.id) {
            fix.copy.push(Job {
                src: l.src.clone(),
                rel: marker(&l.rel, "new"),
                kind: Kind::Tablespace,
                size: l.size,
            });
        }
    }
    fix.drop.sort();
    fix.drop.dedup();
    fix.rename.sort();
    fix.copy.sort_by(|a, b| a.rel.cmp(&b.rel));
    fix
}

/// The `.ibd` a whole copy `<name>.new` stands for; `None` for another
/// name.
fn tablespace_of(rel: &str) -> Option<String> {
    rel.strip_suffix(".new").map(|stem| format!("{stem}.ibd"))
}

/// An incremental copies a tablespace whose page 0 is not written yet
/// whole, as `<name>.new` (see `data_copy::copy_delta`): held against the
/// server as the `.ibd` it stands for. Returns the copies so named, and
/// the `.ibd` names of those that were `.new`.
fn whole_copies_as_tablespaces(
    copied: Vec<(String, Option<u32>)>,
) -> (Vec<(String, Option<u32>)>, Vec<String>) {
    let mut young = Vec::new();
    let copied = copied
        .into_iter()
        .map(|(rel, id)| match tablespace_of(&rel) {
            Some(ibd) => {
                young.push(ibd.clone());
                (ibd, id)
            }
            None => (rel, id),
        })
        .collect();
    (copied, young)
}

/// An incremental's whole copies (`X.new`, of young tables) that `fix`
/// drops, renames or copies again: a marker would name `X.ibd`, which the
/// incremental does not hold. Each is taken back from the target instead
/// (the returned names), and a table that lives on under another name is
/// copied whole again under it; one copied again under its own name is
/// already in `fix.copy`.
fn retake_young(fix: &mut Fix, young: &[String], live: &[LiveSpace]) -> Vec<String> {
    let touched: Vec<&String> = young.iter().filter(|y| fix.touches(y)).collect();
    let mut stale = Vec::new();
    for y in touched {
        stale.push(marker(y, "new"));
        fix.drop.retain(|d| d != y);
        let Some(i) = fix.rename.iter().position(|(from, _)| from == y) else {
            continue;
        };
        let (_, to) = fix.rename.remove(i);
        let rel = marker(&to, "new");
        if fix.copy.iter().any(|j| j.rel == rel) {
            continue;
        }
        if let Some(l) = live.iter().find(|l| l.rel == to) {
            fix.copy.push(Job {
                src: l.src.clone(),
                rel,
                kind: Kind::Tablespace,
                size: l.size,
            });
        }
    }
    fix.copy.sort_by(|a, b| a.rel.cmp(&b.rel));
    stale
}

/// The text of a `.ren` marker: the new name as mariadb-backup writes it,
/// `db/table` (no `./`, no `.ibd`).
#[must_use]
pub fn rename_text(to: &str) -> String {
    to.strip_suffix(".ibd").unwrap_or(to).to_string()
}

/// The server's tablespaces now, where the backup keeps each. A space
/// with no file (discarded), or kept out by the backup's filter, is left
/// out, as at the start.
fn live(reported: &[ServerSpace], step: &Step<'_>) -> Vec<LiveSpace> {
    let facts = &step.ctx.facts;
    let datadir = spaces::canonical(Path::new(&facts.datadir));
    reported
        .iter()
        .filter_map(|s| {
            let path = spaces::canonical(&s.path);
            let size = std::fs::metadata(&path).ok().filter(|m| m.is_file())?.len();
            if !spaces::kept(&s.name, &path, &datadir, &step.ctx.filter) {
                return None;
            }
            let (rel, _) = spaces::backup_rel(s, &path, &datadir, facts.mariadb)?;
            Some(LiveSpace {
                id: s.id?,
                rel,
                src: path,
                size,
            })
        })
        .collect()
}

/// The copied tablespaces the server's list leaves out although their
/// files are still where they were copied from: MariaDB 10.6+ lists only
/// the tablespaces it has opened since it started, and one no statement
/// has touched since a restart is missing from it, not dropped. DDL is
/// blocked, so a file still at its place is the table's; the space id its
/// page 0 holds now says whether it is the same tablespace (a table
/// dropped and created again under the name has a new one, and is then
/// copied again like any other).
fn unopened(copied: &[(String, Option<u32>)], now: &[LiveSpace], datadir: &Path) -> Vec<LiveSpace> {
    let known_rels: HashSet<&str> = now.iter().map(|l| l.rel.as_str()).collect();
    let known_ids: HashSet<u32> = now.iter().map(|l| l.id).collect();
    copied
        .iter()
        .filter(|(rel, id)| {
            has_markers(rel)
                && !known_rels.contains(rel.as_str())
                && id.is_some_and(|id| !known_ids.contains(&id))
        })
        .filter_map(|(rel, _)| {
            let src = live_path(datadir, rel);
            let mut head = [0u8; 38];
            let f = std::fs::File::open(&src).ok()?;
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0).ok()?;
            let id = xb_innodb::pagecheck::space_id(&head)?;
            Some(LiveSpace {
                id,
                rel: rel.clone(),
                size: f.metadata().ok()?.len(),
                src,
            })
        })
        .collect()
}

/// Where the live file of backup path `rel` is: in the datadir, or where
/// its `.isl` (MariaDB `DATA DIRECTORY`) says.
fn live_path(datadir: &Path, rel: &str) -> PathBuf {
    let in_datadir = datadir.join(rel);
    let isl = in_datadir.with_extension("isl");
    match std::fs::read_to_string(isl) {
        Ok(named) if !named.trim_end().is_empty() => PathBuf::from(named.trim_end()),
        _ => in_datadir,
    }
}

/// With DDL blocked: reads the server's tablespaces, writes the markers
/// and copies what must be copied again. `changed` names spaces the
/// flavour knows were changed outside the redo. Returns the fix applied.
///
/// # Errors
/// [`BackupError::Sql`] reading the list; as [`Step::copy`].
pub async fn apply(step: &mut Step<'_>, changed: &HashSet<u32>) -> Result<Fix, BackupError> {
    let reported = spaces::list(step.session.conn(), &step.ctx.facts).await?;
    let mut now = live(&reported, step);
    let copied = copied_ids(&step.found.stats.spaces, &step.found.listed_ids);
    let (copied, young) = whole_copies_as_tablespaces(copied);
    now.extend(unopened(&copied, &now, Path::new(&step.ctx.facts.datadir)));
    let mut fix = plan(&copied, &now, changed);
    if fix.is_empty() {
        return Ok(fix);
    }
    if step.ctx.refuse_ddl_during_copy {
        return Err(BackupError::DdlDuringCopy {
            changed: fix
                .copy
                .iter()
                .map(|j| tablespace_of(&j.rel).unwrap_or_else(|| j.rel.clone()))
                .collect(),
            renamed: fix
                .rename
                .iter()
                .map(|(f, t)| format!("{f} -> {t}"))
                .collect(),
            dropped: fix.drop.clone(),
        });
    }
    tracing::info!(
        copied = ?copied.iter().filter(|(r, _)| fix.drop.contains(r)).collect::<Vec<_>>(),
        live = ?now.iter().filter(|l| fix.copy.iter().any(|j| j.src == l.src)).map(|l| (&l.rel, l.id)).collect::<Vec<_>>(),
        dropped = ?fix.drop,
        renamed = ?fix.rename,
        copied_again = ?fix.copy.iter().map(|j| &j.rel).collect::<Vec<_>>(),
        "DDL during the copy"
    );
    let stale = retake_young(&mut fix, &young, &now);
    let target = step.ctx.target.as_ref();
    for rel in &stale {
        take_back(target, rel)?;
    }
    for rel in &fix.drop {
        meta::write(target, &marker(rel, "del"), "")?;
    }
    for (from, to) in &fix.rename {
        meta::write(target, &marker(from, "ren"), &rename_text(to))?;
        if let Some(l) = now.iter().find(|l| l.rel == *to) {
            step.found
                .tablespaces
                .insert(&super::spaces::canonical(&l.src));
        }
    }
    if !fix.copy.is_empty() {
        step.progress
            .phase("copy tablespaces created or changed during the copy");
        step.copy(fix.copy.clone())?;
    }
    step.progress.warning(&format!(
        "DDL ran during the copy: {} tablespace(s) copied again, {} renamed and {} dropped at prepare{}",
        fix.copy.len(),
        fix.rename.len(),
        fix.drop.len(),
        if stale.is_empty() {
            String::new()
        } else {
            format!(
                "; {} whole copies of new tables taken back",
                stale.len()
            )
        }
    ));
    Ok(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_the_server_has_not_opened_since_a_restart_are_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let page0 = |id: u32| {
            let mut p = vec![0u8; 16384];
            p[34..38].copy_from_slice(&id.to_be_bytes());
            p
        };
        // not opened since the restart: the same file, the same space
        std::fs::write(d.join("db/idle.ibd"), page0(5)).unwrap();
        // dropped and created again under the name: a new space
        std::fs::write(d.join("db/again.ibd"), page0(9)).unwrap();
        let copied = vec![
            ("db/idle.ibd".to_string(), Some(5)),
            ("db/again.ibd".to_string(), Some(6)),
            ("db/gone.ibd".to_string(), Some(7)),
            ("db/open.ibd".to_string(), Some(8)),
        ];
        let mut now = vec![live(8, "db/open.ibd")];
        let found = unopened(&copied, &now, d);
        let got: Vec<(u32, &str)> = found.iter().map(|l| (l.id, l.rel.as_str())).collect();
        assert_eq!(got, [(5, "db/idle.ibd"), (9, "db/again.ibd")]);
        now.extend(found);
        let fix = plan(&copied, &now, &HashSet::new());
        // the idle table is kept; the new space replaces the old (the old
        // copy dropped, the new one copied again), the one gone is dropped
        assert_eq!(fix.drop, ["db/again.ibd", "db/gone.ibd"]);
        let again: Vec<&str> = fix.copy.iter().map(|j| j.rel.as_str()).collect();
        assert_eq!(again, ["db/again.new"]);
        assert!(fix.rename.is_empty());
    }

    fn live(id: u32, rel: &str) -> LiveSpace {
        LiveSpace {
            id,
            rel: rel.into(),
            src: PathBuf::from("/data").join(rel),
            size: 65536,
        }
    }

    fn copied(v: &[(&str, Option<u32>)]) -> Vec<(String, Option<u32>)> {
        v.iter().map(|(r, i)| ((*r).to_string(), *i)).collect()
    }

    fn again(f: &Fix) -> Vec<&str> {
        f.copy.iter().map(|j| j.rel.as_str()).collect()
    }

    #[test]
    fn an_incrementals_whole_copy_stands_for_its_tablespace() {
        let (copied, young) = whole_copies_as_tablespaces(copied(&[
            ("db/young.new", Some(7)),
            ("db/old.ibd", Some(5)),
        ]));
        assert_eq!(
            copied,
            [
                ("db/young.ibd".to_string(), Some(7)),
                ("db/old.ibd".to_string(), Some(5))
            ]
        );
        assert_eq!(young, ["db/young.ibd"]);
        // untouched, it needs nothing
        let f = plan(
            &copied,
            &[live(7, "db/young.ibd"), live(5, "db/old.ibd")],
            &HashSet::new(),
        );
        assert!(f.is_empty(), "{f:?}");
        // renamed, dropped or rebuilt, the fix touches it
        for now in [
            vec![live(7, "db/grown_up.ibd"), live(5, "db/old.ibd")],
            vec![live(5, "db/old.ibd")],
            vec![live(9, "db/young.ibd"), live(5, "db/old.ibd")],
        ] {
            let f = plan(&copied, &now, &HashSet::new());
            assert!(f.touches("db/young.ibd"), "{now:?}: {f:?}");
            assert!(!f.touches("db/old.ibd"), "{now:?}: {f:?}");
        }
    }

    #[test]
    fn a_young_tables_whole_copy_that_ddl_touched_is_taken_back_not_marked() {
        let (copied, young) = whole_copies_as_tablespaces(copied(&[
            ("db/young.new", Some(7)),
            ("db/old.ibd", Some(5)),
        ]));
        // renamed: taken back, copied whole under the new name; the old
        // table's rename stays a marker
        let now = [live(7, "db/grown_up.ibd"), live(5, "db/old_renamed.ibd")];
        let mut f = plan(&copied, &now, &HashSet::new());
        assert_eq!(retake_young(&mut f, &young, &now), ["db/young.new"]);
        assert_eq!(again(&f), ["db/grown_up.new"]);
        assert_eq!(
            f.rename,
            [("db/old.ibd".to_string(), "db/old_renamed.ibd".to_string())]
        );
        assert!(f.drop.is_empty(), "{f:?}");
        // dropped: taken back, nothing else
        let now = [live(5, "db/old.ibd")];
        let mut f = plan(&copied, &now, &HashSet::new());
        assert_eq!(retake_young(&mut f, &young, &now), ["db/young.new"]);
        assert!(f.is_empty(), "{f:?}");
        // rebuilt under its name: taken back before it is copied again
        let now = [live(9, "db/young.ibd"), live(5, "db/old.ibd")];
        let mut f = plan(&copied, &now, &HashSet::new());
        assert_eq!(retake_young(&mut f, &young, &now), ["db/young.new"]);
        assert_eq!(again(&f), ["db/young.new"]);
        assert!(f.drop.is_empty(), "{f:?}");
        // untouched: nothing taken back
        let now = [live(7, "db/young.ibd"), live(5, "db/old.ibd")];
        let mut f = plan(&copied, &now, &HashSet::new());
        assert!(retake_young(&mut f, &young, &now).is_empty());
    }

    #[test]
    fn nothing_changed_means_nothing_to_do() {
        let f = plan(
            &copied(&[("db/a.ibd", Some(5)), ("ibdata1", Some(0))]),
            &[live(5, "db/a.ibd"), live(0, "ibdata1")],
            &HashSet::new(),
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn created_dropped_renamed_and_rebuilt_tables_get_their_markers() {
        let f = plan(
            &copied(&[
                ("db/keep.ibd", Some(5)),
                ("db/gone.ibd", Some(6)),
                ("db/old.ibd", Some(7)),
                // truncated or rebuilt: same name, new space
                ("db/rebuilt.ibd", Some(8)),
            ]),
            &[
                live(5, "db/keep.ibd"),
                live(7, "db/new_name.ibd"),
                live(9, "db/rebuilt.ibd"),
                live(10, "db/born.ibd"),
            ],
            &HashSet::new(),
        );
        assert_eq!(f.drop, vec!["db/gone.ibd", "db/rebuilt.ibd"]);
        assert_eq!(
            f.rename,
            vec![("db/old.ibd".to_string(), "db/new_name.ibd".to_string())]
        );
        assert_eq!(again(&f), vec!["db/born.new", "db/rebuilt.new"]);
        assert_eq!(f.copy[0].src, PathBuf::from("/data/db/born.ibd"));
    }

    #[test]
    fn a_swap_of_two_names_is_copied_again_rather_than_renamed_over_itself() {
        let f = plan(
            &copied(&[("db/t1.ibd", Some(5)), ("db/t2.ibd", Some(6))]),
            &[live(5, "db/t2.ibd"), live(6, "db/t1.ibd")],
            &HashSet::new(),
        );
        assert!(f.rename.is_empty(), "{f:?}");
        assert_eq!(f.drop, vec!["db/t1.ibd", "db/t2.ibd"]);
        assert_eq!(again(&f), vec!["db/t1.new", "db/t2.new"]);
    }

    #[test]
    fn a_rename_onto_a_dropped_tables_name_is_safe() {
        // DROP TABLE b; RENAME TABLE a TO b
        let f = plan(
            &copied(&[("db/a.ibd", Some(5)), ("db/b.ibd", Some(6))]),
            &[live(5, "db/b.ibd")],
            &HashSet::new(),
        );
        assert_eq!(f.drop, vec!["db/b.ibd"]);
        assert_eq!(
            f.rename,
            vec![("db/a.ibd".to_string(), "db/b.ibd".to_string())]
        );
        assert!(f.copy.is_empty());
    }

    #[test]
    fn a_space_copied_twice_keeps_the_copy_under_its_current_name() {
        // renamed between the walk and the server's list: copied as both
        let f = plan(
            &copied(&[("db/a.ibd", Some(5)), ("db/b.ibd", Some(5))]),
            &[live(5, "db/b.ibd")],
            &HashSet::new(),
        );
        assert_eq!(f.drop, vec!["db/a.ibd"]);
        assert!(f.rename.is_empty() && f.copy.is_empty(), "{f:?}");
    }

    #[test]
    fn an_unreadable_page_zero_or_a_change_outside_the_redo_means_a_new_copy() {
        let changed: HashSet<u32> = [5].into();
        let f = plan(
            &copied(&[("db/a.ibd", Some(5)), ("db/fresh.ibd", None)]),
            &[live(5, "db/a.ibd"), live(6, "db/fresh.ibd")],
            &changed,
        );
        assert_eq!(f.drop, vec!["db/a.ibd", "db/fresh.ibd"]);
        assert_eq!(again(&f), vec!["db/a.new", "db/fresh.new"]);
    }

    #[test]
    fn system_and_undo_files_never_get_markers() {
        let f = plan(
            &copied(&[("ibdata1", Some(0)), ("undo_001", Some(0xFFFF_FFEF))]),
            &[live(0, "ibdata1"), live(0xFFFF_FFEE, "undo_001")],
            &HashSet::new(),
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn a_copy_whose_page_zero_was_unwritten_takes_the_id_listed_for_its_file() {
        let listed: HashMap<(u64, u64), u32> = [((1, 10), 5)].into();
        let c = |rel: &str, id, ino| CopiedSpace {
            rel: rel.into(),
            id,
            identity: Some((1, ino)),
        };
        let ids = copied_ids(
            &[
                c("db/young.ibd", None, 10),
                c("db/old.ibd", Some(7), 11),
                c("db/unknown.ibd", None, 12),
            ],
            &listed,
        );
        assert_eq!(
            ids,
            vec![
                ("db/young.ibd".to_string(), Some(5)),
                ("db/old.ibd".to_string(), Some(7)),
                ("db/unknown.ibd".to_string(), None),
            ]
        );
    }

    #[test]
    fn a_ren_marker_names_the_table_as_mariadb_backup_does() {
        assert_eq!(rename_text("db/t2.ibd"), "db/t2");
        assert_eq!(rename_text("db/t#P#p1.ibd"), "db/t#P#p1");
    }
}
