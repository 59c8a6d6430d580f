//! Writing a planned restore: marker, data with N workers, redo last (see
//! the `restore` module docs for why in this order).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::error::RestoreError;
use super::owner::Owner;
use super::plan::{Dirs, Item, Kind, Plan, Redo};
use super::{MARKER, Mode, RestoreOptions};

/// Mode of restored files: the server's user reads and writes them, its
/// group reads them (as the vendor tools leave a datadir).
const FILE_MODE: u32 = 0o640;
/// Mode of restored directories.
const DIR_MODE: u32 = 0o750;

/// What failed: the path and the error.
type Fail = (PathBuf, io::Error);

fn at(path: &Path) -> impl FnOnce(io::Error) -> Fail + '_ {
    move |e| (path.to_path_buf(), e)
}

/// The placeholder redo a MariaDB server refuses (its size is no multiple
/// of 512: "Log file ./ib_logfile0 size … is not a multiple of 512 bytes"
/// on 10.5, "Invalid log header checksum" on 10.11). Its first line says
/// what it is to whoever looks.
fn placeholder_log() -> Vec<u8> {
    let mut b =
        format!("xb: restore incomplete, see {MARKER} in the datadir; this is no redo log\n")
            .into_bytes();
    b.resize(b.len() + (1 << 20), 0);
    if b.len() % 512 == 0 {
        b.push(b'\n');
    }
    b
}

/// Room kept in the marker for the failure reason, so that writing it
/// needs no new block on a full disk.
const MARKER_ROOM: usize = 4096;

/// The directories a restore creates (given to the owner) and every
/// directory that got a new entry (to be fsynced).
struct Tree {
    owner: Option<Owner>,
    /// Held while directories are created, so two workers never race.
    mkdir: Mutex<()>,
    touched: Mutex<BTreeSet<PathBuf>>,
}

impl Tree {
    fn touch(&self, entry: &Path) {
        if let Some(parent) = entry.parent() {
            self.touched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(parent.to_path_buf());
        }
    }

    /// Creates `dir` and the missing directories above it, each with
    /// [`DIR_MODE`] and the owner.
    fn ensure(&self, dir: &Path) -> Result<(), Fail> {
        let _one_at_a_time = self.mkdir.lock().unwrap_or_else(PoisonError::into_inner);
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
        for d in missing.into_iter().rev() {
            match fs::DirBuilder::new().mode(DIR_MODE).create(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
                Err(e) => return Err((d.to_path_buf(), e)),
            }
            fs::set_permissions(d, Permissions::from_mode(DIR_MODE)).map_err(at(d))?;
            self.chown(d)?;
            self.touch(d);
        }
        Ok(())
    }

    fn chown(&self, p: &Path) -> Result<(), Fail> {
        match self.owner {
            Some(o) => std::os::unix::fs::chown(p, Some(o.uid), Some(o.gid)).map_err(at(p)),
            None => Ok(()),
        }
    }

    /// fsyncs every directory that got a new entry.
    fn sync(&self) -> Result<(), Fail> {
        let dirs: Vec<PathBuf> = self
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for d in dirs {
            File::open(&d).and_then(|f| f.sync_all()).map_err(at(&d))?;
        }
        Ok(())
    }
}

/// Copies `src` to the new file `dst` and syncs it.
fn copy(src: &Path, dst: &Path) -> Result<u64, Fail> {
    let mut from = File::open(src).map_err(at(src))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(dst)
        .map_err(at(dst))?;
    let n = io::copy(&mut from, &mut to).map_err(at(dst))?;
    to.sync_all().map_err(at(dst))?;
    Ok(n)
}

/// How a file was moved.
enum Moved {
    /// A hard link to the new name and an unlink of the old: a rename
    /// puts it back.
    Linked,
    /// Copied (across file systems, or where links are not allowed); the
    /// backup's file is removed only once the whole restore has succeeded.
    Copied,
}

/// Moves `src` to the new name `dst`: a hard link and an unlink, which
/// never replaces an existing `dst` (a rename would); across file systems
/// (or where links are not allowed) a copy, the unlink left to the caller.
fn relocate(src: &Path, dst: &Path) -> Result<(u64, Moved), Fail> {
    match fs::hard_link(src, dst) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err((dst.to_path_buf(), e)),
        Err(_) => return Ok((copy(src, dst)?, Moved::Copied)),
    }
    let f = File::open(dst).map_err(at(dst))?;
    f.sync_all().map_err(at(dst))?;
    let n = f.metadata().map_err(at(dst))?.len();
    fs::remove_file(src).map_err(at(src))?;
    Ok((n, Moved::Linked))
}

/// One restore in progress.
struct Job<'a> {
    backup: &'a Path,
    plan: &'a Plan,
    mode: Mode,
    tree: Tree,
    /// Files moved by a link, `(from, to)`: put back after a failure.
    moved: Mutex<Vec<(PathBuf, PathBuf)>>,
    /// Backup files a move copied: removed once everything is in place.
    copied: Mutex<Vec<PathBuf>>,
    bytes: AtomicU64,
    total: u64,
    done: AtomicUsize,
}

impl Job<'_> {
    /// Restores one item to `dest` (its place, or its staging name).
    fn item(&self, item: &Item, dest: &Path) -> Result<(), Fail> {
        if let Some(parent) = dest.parent() {
            self.tree.ensure(parent)?;
        }
        let src = self.backup.join(&item.src);
        let n = match self.mode {
            Mode::Copy => copy(&src, dest)?,
            Mode::Move => {
                let (n, how) = relocate(&src, dest)?;
                match how {
                    Moved::Linked => self
                        .moved
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((src, dest.to_path_buf())),
                    Moved::Copied => self
                        .copied
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(src),
                }
                n
            }
        };
        fs::set_permissions(dest, Permissions::from_mode(FILE_MODE)).map_err(at(dest))?;
        self.tree.chown(dest)?;
        self.tree.touch(dest);
        let bytes = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let pct = (bytes * 100).checked_div(self.total).unwrap_or(100);
        tracing::info!(file = %dest.display(), bytes = n, done, of = self.plan.len(), pct, "restored");
        Ok(())
    }

    /// Restores `items` with `parallel` workers, largest first; stops at
    /// the first failure.
    fn items(&self, items: &[&Item], parallel: usize) -> Result<(), Fail> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let failed: Mutex<Option<Fail>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..parallel.clamp(1, items.len().max(1)) {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        let dest = self.plan.staged(item);
                        if let Err(f) = self.item(item, &dest) {
                            stop.store(true, Ordering::Relaxed);
                            failed
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(f);
                        }
                    }
                });
            }
        });
        match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// After a failed move: every file moved by a link goes back to the
    /// backup by a rename (same file system); returns those that could not.
    fn put_back(&self) -> Vec<PathBuf> {
        let moved = std::mem::take(&mut *self.moved.lock().unwrap_or_else(PoisonError::into_inner));
        let mut left = Vec::new();
        for (from, to) in moved.into_iter().rev() {
            if from.exists() || fs::rename(&to, &from).is_err() {
                left.push(to);
            }
        }
        left
    }
}

/// Size of each source file, for the progress percentage.
fn total_bytes(backup: &Path, plan: &Plan) -> u64 {
    plan.items
        .iter()
        .filter_map(|i| fs::metadata(backup.join(&i.src)).ok())
        .map(|m| m.len())
        .sum()
}

/// Writes the marker with room for a failure reason.
fn write_marker(path: &Path, backup: &Path, tree: &Tree) -> Result<(), Fail> {
    let mut text = format!(
        "xb: restore of {} into this directory has not finished: do not start a server on it.\n",
        backup.display()
    );
    text.push_str(&" ".repeat(MARKER_ROOM));
    text.push('\n');
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(at(path))?;
    f.write_all(text.as_bytes()).map_err(at(path))?;
    f.sync_all().map_err(at(path))?;
    tree.chown(path)?;
    tree.touch(path);
    Ok(())
}

/// Puts the failure into the marker, over its reserved room (no new block
/// needed on a full disk); best effort: the marker is there either way.
fn record_failure(path: &Path, why: &str) {
    let text =
        format!("xb: restore failed: {why}\nRemove this directory's contents and restore again.\n");
    let r = OpenOptions::new().write(true).open(path).and_then(|mut f| {
        f.seek(io::SeekFrom::Start(0))?;
        f.write_all(text.as_bytes())?;
        f.set_len(text.len() as u64)?;
        f.sync_all()
    });
    if let Err(e) = r {
        tracing::warn!(marker = %path.display(), error = %e, "could not record the failure in the marker");
    }
}

/// The steps of the module docs after the marker.
fn run(job: &Job<'_>, dirs: &Dirs, parallel: usize) -> Result<(), Fail> {
    let plan = job.plan;
    if let Redo::File { dest } = &plan.redo {
        // before any data: a datadir with data and no log is one MariaDB
        // 10.5 would start on
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(dest)
            .map_err(at(dest))?;
        f.write_all(&placeholder_log()).map_err(at(dest))?;
        f.sync_all().map_err(at(dest))?;
        job.tree.chown(dest)?;
        job.tree.touch(dest);
    }
    let mut data: Vec<&Item> = plan.items.iter().filter(|i| i.kind == Kind::Data).collect();
    data.sort_by_cached_key(|i| {
        std::cmp::Reverse(fs::metadata(job.backup.join(&i.src)).map_or(0, |m| m.len()))
    });
    job.items(&data, parallel)?;
    for d in &plan.empty_dirs {
        job.tree.ensure(d)?;
    }
    job.tree.sync()?;
    let redo: Vec<&Item> = plan.items.iter().filter(|i| i.kind == Kind::Redo).collect();
    job.items(&redo, parallel)?;
    job.tree.sync()?;
    if let (Redo::File { dest } | Redo::Dir { dest }, Some(stage)) =
        (&plan.redo, plan.redo.staging())
    {
        fs::rename(&stage, dest).map_err(at(dest))?;
        File::open(&dirs.log_home)
            .and_then(|f| f.sync_all())
            .map_err(at(&dirs.log_home))?;
    }
    // a move across file systems gives up the backup's copies only now
    let copied = std::mem::take(&mut *job.copied.lock().unwrap_or_else(PoisonError::into_inner));
    for src in copied {
        fs::remove_file(&src).map_err(at(&src))?;
    }
    fs::remove_file(&plan.marker).map_err(at(&plan.marker))?;
    File::open(&dirs.datadir)
        .and_then(|f| f.sync_all())
        .map_err(at(&dirs.datadir))?;
    Ok(())
}

/// Writes `plan` (see the module docs); returns the bytes restored.
///
/// # Errors
/// [`RestoreError::Failed`] naming the file, after the datadir was marked.
pub(super) fn write(
    backup: &Path,
    plan: &Plan,
    dirs: &Dirs,
    opts: &RestoreOptions,
    owner: Option<Owner>,
) -> Result<u64, RestoreError> {
    let job = Job {
        backup,
        plan,
        mode: opts.mode,
        tree: Tree {
            owner,
            mkdir: Mutex::new(()),
            touched: Mutex::new(BTreeSet::new()),
        },
        moved: Mutex::new(Vec::new()),
        copied: Mutex::new(Vec::new()),
        bytes: AtomicU64::new(0),
        total: total_bytes(backup, plan),
        done: AtomicUsize::new(0),
    };
    let failed = |(path, source): Fail| RestoreError::Failed {
        path,
        source,
        datadir: dirs.datadir.clone(),
    };
    for d in dirs.distinct() {
        job.tree.ensure(d).map_err(failed)?;
    }
    write_marker(&plan.marker, backup, &job.tree).map_err(failed)?;
    match run(&job, dirs, opts.parallel) {
        Ok(()) => Ok(job.bytes.load(Ordering::Relaxed)),
        Err((path, source)) => {
            let left = if opts.mode == Mode::Move {
                job.put_back()
            } else {
                Vec::new()
            };
            let mut why = format!("{}: {source}", path.display());
            if !left.is_empty() {
                why.push_str(&format!(
                    "; {} file(s) moved out of the backup could not be put back, first {}",
                    left.len(),
                    left[0].display()
                ));
            }
            tracing::error!(marker = %plan.marker.display(), "{why}");
            record_failure(&plan.marker, &why);
            Err(RestoreError::Failed {
                path,
                source,
                datadir: dirs.datadir.clone(),
            })
        }
    }
}
