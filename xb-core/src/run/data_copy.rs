//! Parallel copy of data files: N worker threads take files from a shared
//! queue (largest first, so one big table does not end the run alone) and
//! stream each one through its reader into the target. Memory is bounded:
//! one chunk buffer per worker.
//!
//! The first error stops every worker and is returned; a file that vanished
//! between listing and copying (dropped by the server) is skipped and
//! reported, not an error.
//!
//! `copy_jobs` is the copy as the phases call it: the server's live files
//! through [`LiveReader`], stopped at once when the redo copier dies.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::local::LiveReader;
use super::redo_copy::RedoCopier;
use super::seams::{Reader, SeamError, Target};
use super::split_copy::{self, RangeEnd, Work};
use super::{Ctx, Progress};
use crate::error::BackupError;

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An InnoDB tablespace: pages validated, torn reads retried.
    Tablespace,
    /// A file of an Aria table the server may be writing: pages checked
    /// and torn reads retried (the Aria log makes the copy consistent).
    Aria,
    /// Any other file: copied as it is.
    Plain,
}

/// One file to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The live file.
    pub src: PathBuf,
    /// Its path in the backup.
    pub rel: String,
    /// How to read it.
    pub kind: Kind,
    /// Size when listed (for ordering and progress).
    pub size: u64,
}

/// What a copy run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Files copied.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Page re-reads (torn pages).
    pub retries: u64,
    /// Files that vanished before they could be copied.
    pub vanished: Vec<String>,
    /// Where those were read from, in no particular order.
    pub vanished_from: Vec<PathBuf>,
    /// Each tablespace copied (path in the backup) with the space id its
    /// page 0 held when it was read (`None`: page 0 not written yet). What
    /// was copied is what DDL during the copy is held against (see
    /// [`super::ddl_fix`]).
    pub spaces: Vec<CopiedSpace>,
}

/// A tablespace as it was copied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CopiedSpace {
    /// Its path in the backup.
    pub rel: String,
    /// The space id page 0 held (`None`: not written yet).
    pub id: Option<u32>,
    /// Device and inode of the file read.
    pub identity: Option<(u64, u64)>,
}

impl CopyStats {
    /// Adds another run's figures to these.
    pub fn add(&mut self, other: CopyStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.retries += other.retries;
        self.vanished.extend(other.vanished);
        self.vanished.sort();
        self.vanished_from.extend(other.vanished_from);
        // the first run's list is taken over, not copied: with 100,000
        // tablespaces a copy held both at once (11 MB)
        if self.spaces.is_empty() {
            self.spaces = other.spaces;
        } else {
            self.spaces.extend(other.spaces);
        }
    }
}

/// Why a copy run failed: the side that failed, with its seam error.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading a live file failed (corrupt page, I/O).
    #[error("{0}")]
    Read(SeamError),
    /// Writing into the backup failed (full disk, I/O).
    #[error("{0}")]
    Write(SeamError),
    /// Stopped because someone else set the cancel flag.
    #[error("data copy cancelled")]
    Cancelled,
}

/// Progress callback: (path in the backup, bytes just written).
pub type OnBytes<'a> = &'a (dyn Fn(&str, u64) + Sync);

/// How many workers copy, and from what size a tablespace is shared
/// between them in page ranges (see [`super::split_copy`]; 0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    /// Copy threads.
    pub parallel: usize,
    /// Tablespaces of this many bytes or more are copied in ranges.
    pub split_at: u64,
}

/// Copies `jobs` with `workers`, large tablespaces in ranges where the
/// target allows.
/// Stops early (with the first error) if `cancel` is set by someone else,
/// e.g. the redo copier failing.
///
/// # Errors
/// The first failure, naming the file.
pub fn copy_all(
    mut jobs: Vec<Job>,
    workers: Workers,
    reader: &dyn Reader,
    target: &dyn Target,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    delta: Option<DeltaPlan>,
) -> Result<CopyStats, CopyError> {
    let on_bytes = &|f: &str, n: u64| progress.bytes(f, n);
    jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.rel.cmp(&b.rel)));
    let Workers { parallel, split_at } = workers;
    let work = split_copy::plan(jobs, parallel, split_at, delta.is_some(), target)?;
    let queue = Mutex::new(VecDeque::from(work));
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let retries = AtomicU64::new(0);
    let vanished = Mutex::new(Vec::new());
    let spaces = Mutex::new(Vec::new());
    let first_err: Mutex<Option<CopyError>> = Mutex::new(None);
    let fail = |e: CopyError| {
        let mut g = first_err
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get_or_insert(e);
        cancel.store(true, Ordering::Release);
    };
    std::thread::scope(|s| {
        for _ in 0..parallel.max(1) {
            s.spawn(|| {
                loop {
                    if cancel.load(Ordering::Acquire) {
                        return;
                    }
                    let job = {
                        let mut q = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        q.pop_front()
                    };
                    let Some(work) = job else { return };
                    let record = |done: Done, kind: Kind| {
                        progress.file_done(&done.rel);
                        files.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(done.bytes, Ordering::Relaxed);
                        retries.fetch_add(done.retries, Ordering::Relaxed);
                        if kind == Kind::Tablespace {
                            spaces
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(CopiedSpace {
                                    rel: done.rel,
                                    id: done.space_id,
                                    identity: done.identity,
                                });
                        }
                    };
                    let gone = |src: PathBuf, rel: String| {
                        vanished
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((rel, src));
                    };
                    let job = match work {
                        Work::Whole(job) => job,
                        Work::Range(split, start, end) => {
                            match split_copy::copy_range(
                                &split, start, end, reader, on_bytes, cancel, target,
                            ) {
                                Ok(RangeEnd::More) => {}
                                Ok(RangeEnd::Done(done)) => record(done, Kind::Tablespace),
                                Ok(RangeEnd::Vanished(src, rel)) => gone(src, rel),
                                Ok(RangeEnd::Again(job)) => queue
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .push_front(Work::Whole(job)),
                                Err(e) => fail(e),
                            }
                            continue;
                        }
                    };
                    let copied = match &delta {
                        // a `.new` (a table copied again after DDL) is whole
                        Some(d) if job.kind == Kind::Tablespace && !job.rel.ends_with(".new") => {
                            copy_delta(&job, reader, target, on_bytes, cancel, d)
                        }
                        _ => copy_one(&job, reader, target, on_bytes, cancel),
                    };
                    match copied {
                        Ok(done) => record(done, job.kind),
                        Err(CopyError::Read(SeamError::Vanished { .. })) => {
                            tracing::debug!(file = %job.src.display(), "vanished before copy");
                            gone(job.src.clone(), job.rel.clone());
                        }
                        Err(e) => fail(e),
                    }
                }
            });
        }
    });
    if let Some(e) = first_err
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    if cancel.load(Ordering::Acquire) {
        return Err(CopyError::Cancelled);
    }
    let (mut vanished, vanished_from): (Vec<String>, Vec<PathBuf>) = vanished
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .unzip();
    vanished.sort();
    let mut spaces = spaces
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    spaces.sort();
    Ok(CopyStats {
        files: files.into_inner(),
        bytes: bytes.into_inner(),
        retries: retries.into_inner(),
        vanished,
        vanished_from,
        spaces,
    })
}

/// One file copied.
pub struct Done {
    /// Where it went in the backup (a delta copy may have chosen `.new`).
    pub rel: String,
    /// Bytes read.
    pub bytes: u64,
    /// Page re-reads.
    pub retries: u64,
    /// The space id page 0 held, for a tablespace.
    pub space_id: Option<u32>,
    /// Device and inode of the file read.
    pub identity: Option<(u64, u64)>,
}

/// Copies one file.
fn copy_one(
    job: &Job,
    reader: &dyn Reader,
    target: &dyn Target,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
) -> Result<Done, CopyError> {
    let mut src = match job.kind {
        Kind::Tablespace => reader.tablespace(&job.src),
        Kind::Aria => reader.aria(&job.src),
        Kind::Plain => reader.plain(&job.src),
    }
    .map_err(CopyError::Read)?;
    let mut out = target
        .create(&job.rel, job.size)
        .map_err(CopyError::Write)?;
    let mut total = 0u64;
    loop {
        if cancel.load(Ordering::Acquire) {
            return Err(CopyError::Cancelled);
        }
        let chunk = src.next_chunk().map_err(CopyError::Read)?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len() as u64;
        out.write(chunk).map_err(CopyError::Write)?;
        total += n;
        on_bytes(&job.rel, n);
    }
    out.close().map_err(CopyError::Write)?;
    tracing::debug!(file = %job.rel, bytes = total, "copied");
    Ok(Done {
        rel: job.rel.clone(),
        bytes: total,
        retries: src.retries(),
        space_id: src.space().map(|m| m.space_id),
        identity: src.identity(),
    })
}

/// Notes `page` for the delta when it changed since `from` (page 0 always
/// goes in: it carries the space's flags and size), holding its bytes
/// while the budget of [`HELD_BYTES`] lasts so they need no second read.
fn keep_page(found: &mut Vec<u32>, held: &mut Vec<u8>, page_no: u32, page: &[u8], from: u64) {
    if page_no == 0 || xb_innodb::delta::page_lsn(page) >= from {
        found.push(page_no);
        if held.len() + page.len() <= HELD_BYTES {
            // one allocation of the whole budget
            if held.capacity() == 0 {
                held.reserve_exact(HELD_BYTES);
            }
            held.extend_from_slice(page);
        }
    }
}

/// Copies the pages of one tablespace whose `FIL_PAGE_LSN` is at least
/// the base LSN into `<rel>.delta`, and its `<rel>.meta` (space id, page
/// size) untransformed beside it: what an incremental backup holds of a
/// tablespace. Every page is read and validated.
///
/// Page 0 is always in the delta: it carries the space's id, flags and
/// size, which the apply step needs for a tablespace the base does not
/// have (MySQL writes a new file's page 0 at creation with LSN 0, and its
/// other pages only later), and when its LSN is older than the base it is
/// the page the base already has.
///
/// A delta block lists its pages in a header before them, and every block
/// but the last holds a fixed number (4095 at 16 KiB: 64 MiB), so a
/// one-pass writer must hold a whole block. Instead the pages are found
/// first (a scan, or the server's changed-page list), then the blocks are
/// written: the scan keeps the first [`HELD_BYTES`] of changed pages it
/// meets (all of them, for a table with a night's changes), and only the
/// rest are read again, each run going straight from the read buffer to
/// the target. A page read the second time may be newer, never older
/// (LSNs only grow); a page that was below the base LSN in the scan and
/// changed since changed after the redo copy's start, so the copied redo
/// carries it.
///
/// A file whose page 0 is not written yet (created since the last
/// checkpoint, so the copied redo creates it) has no space id to put in a
/// `.meta`; it is copied whole as `<name>.new` instead, the DDL marker
/// that both prepares (xb's and mariadb-backup's) put in place of the
/// base's file *before* the redo is applied (a whole `.ibd` in an
/// incremental would be copied in after it, and the redo that fills the
/// new file would be lost). Returns (bytes read, page retries).
fn copy_delta(
    job: &Job,
    reader: &dyn Reader,
    target: &dyn Target,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
    plan: &DeltaPlan,
) -> Result<Done, CopyError> {
    let mut src = reader.tablespace(&job.src).map_err(CopyError::Read)?;
    let Some(space) = src.space() else {
        drop(src);
        let whole = if job.rel.ends_with(".ibd") {
            Job {
                rel: super::ddl_yield::marker(&job.rel, "new"),
                ..job.clone()
            }
        } else {
            job.clone()
        };
        return copy_one(&whole, reader, target, on_bytes, cancel);
    };
    let ps = space.physical_size;
    let stopped = || {
        if cancel.load(Ordering::Acquire) {
            Err(CopyError::Cancelled)
        } else {
            Ok(())
        }
    };
    let mut total = 0u64;
    // 1. which pages; the first ones found are kept
    let mut held: Vec<u8> = Vec::new();
    // the system, dictionary and undo tablespaces are always scanned: the
    // apply-log-only recovery server writes a few of their pages past the
    // copied log (ibdata1 page 5, the dynamic-metadata root in mysql.ibd),
    // and only a page copied from the source replaces such a page; a
    // changed-page list does not name a page flushed after its end
    let listed = plan
        .changed
        .as_ref()
        .filter(|c| !is_system_space(space.space_id) && c.covers(space.space_id));
    let per_read = (xb_innodb::pagereader::BATCH_BYTES / ps).max(1);
    let mut found = Vec::new();
    match listed {
        Some(changed) => {
            // the progress counts the file as read
            on_bytes(&job.rel, job.size);
            // the list names every page the server wrote since a point at
            // or before the base, so the LSN test still picks the changed
            // ones among them
            let listed = changed.of(space.space_id);
            let mut candidates = Vec::with_capacity(listed.len() + 1);
            if listed.first() != Some(&0) {
                candidates.push(0);
            }
            candidates.extend_from_slice(listed);
            for (first, n) in xb_innodb::pagetrack::runs(&candidates, per_read) {
                stopped()?;
                let chunk = src.pages_at(u64::from(first), n).map_err(CopyError::Read)?;
                total += chunk.len() as u64;
                for (page_no, page) in (first..).zip(chunk.chunks_exact(ps)) {
                    keep_page(&mut found, &mut held, page_no, page, plan.from_lsn);
                }
            }
        }
        None => {
            let mut page_no = 0u32;
            loop {
                stopped()?;
                let chunk = src.next_chunk().map_err(CopyError::Read)?;
                if chunk.is_empty() {
                    break;
                }
                for page in chunk.chunks_exact(ps) {
                    keep_page(&mut found, &mut held, page_no, page, plan.from_lsn);
                    page_no = page_no.saturating_add(1);
                }
                total += chunk.len() as u64;
                on_bytes(&job.rel, chunk.len() as u64);
            }
        }
    }
    let pages = found;
    let held_pages = held.len() / ps;
    // 2. the delta, block by block
    let bad = |e: xb_innodb::delta::DeltaError| {
        CopyError::Read(SeamError::Io {
            path: job.src.display().to_string(),
            message: format!("cannot write its delta: {e}"),
        })
    };
    let mut out = target
        .create(&format!("{}.delta", job.rel), 0)
        .map_err(CopyError::Write)?;
    let cap = xb_innodb::delta::block_capacity(ps);
    let mut blocks: Vec<&[u32]> = pages.chunks(cap).collect();
    if blocks.last().is_none_or(|b| b.len() == cap) {
        blocks.push(&[]);
    }
    let zero = vec![0u8; ps];
    let mut written = 0usize;
    for (i, block) in blocks.iter().enumerate() {
        let last = i + 1 == blocks.len();
        let header = xb_innodb::delta::block_header(ps, block, last).map_err(bad)?;
        out.write(&header).map_err(CopyError::Write)?;
        // the pages the scan kept come first
        let kept = held_pages.saturating_sub(written).min(block.len());
        if kept > 0 {
            out.write(&held[written * ps..(written + kept) * ps])
                .map_err(CopyError::Write)?;
        }
        written += block.len();
        for (first, n) in xb_innodb::pagetrack::runs(&block[kept..], per_read) {
            stopped()?;
            let chunk = src.pages_at(u64::from(first), n).map_err(CopyError::Read)?;
            total += chunk.len() as u64;
            let whole = chunk.len() / ps * ps;
            out.write(&chunk[..whole]).map_err(CopyError::Write)?;
            // listed but gone (an undo tablespace truncated meanwhile): a
            // page never written, which the redo initialises again
            for _ in whole / ps..n {
                tracing::warn!(file = %job.rel, "a changed page is past the end of the file now; written as an empty page");
                out.write(&zero).map_err(CopyError::Write)?;
            }
        }
    }
    out.close().map_err(CopyError::Write)?;
    let meta = xb_innodb::delta::DeltaMeta {
        page_size: u32::try_from(ps).unwrap_or(u32::MAX),
        zip_size: if space.compressed {
            u32::try_from(ps).unwrap_or(u32::MAX)
        } else {
            0
        },
        space_id: space.space_id,
        space_flags: space.flags,
    };
    let mut m = target
        .create_plain(&format!("{}.meta", job.rel))
        .map_err(CopyError::Write)?;
    m.write(meta.render().as_bytes())
        .map_err(CopyError::Write)?;
    m.close().map_err(CopyError::Write)?;
    tracing::debug!(file = %job.rel, bytes = total, pages = pages.len(), "delta copied");
    Ok(Done {
        rel: job.rel.clone(),
        bytes: total,
        retries: src.retries(),
        space_id: Some(space.space_id),
        identity: src.identity(),
    })
}

/// Changed pages a delta copy keeps from its scan per worker, so that a
/// table with few changes is read once; the rest are read again.
const HELD_BYTES: usize = 4 << 20;

/// The system tablespace (0), MySQL's data dictionary (`mysql.ibd`,
/// 0xFFFFFFFE) and undo tablespaces (ids from 0xFFFFFFF0 down).
fn is_system_space(id: u32) -> bool {
    id == 0 || id >= 0xFFFF_FF00
}

/// What an incremental copies of each tablespace.
#[derive(Debug, Clone)]
pub struct DeltaPlan {
    /// Pages with an LSN at least this go into the delta.
    pub from_lsn: u64,
    /// Only these pages are read, when the server listed them.
    pub changed: Option<std::sync::Arc<xb_innodb::pagetrack::ChangedPages>>,
}

/// Copies `jobs` from the server's live files with the configured workers.
/// The copy stops as soon as the backup is lost anyway: while `copier` is
/// given, when the redo copier dies (its error says why:
/// [`BackupError::RedoStopped`], which the phase that owns the copier
/// replaces with that error); and always when the watcher found a session
/// killed or the server gone ([`super::watch`]), instead of copying on
/// for hours after the locks were lost.
///
/// # Errors
/// [`BackupError::Read`], [`BackupError::Target`],
/// [`BackupError::SessionLost`] or [`BackupError::RedoStopped`].
pub(super) fn copy_jobs(
    ctx: &Ctx,
    progress: &dyn Progress,
    jobs: Vec<Job>,
    copier: Option<&RedoCopier>,
) -> Result<CopyStats, BackupError> {
    let live = LiveReader::new(&ctx.facts);
    let throttled;
    let reader: &dyn Reader = match &ctx.read_rate {
        Some(rate) => {
            throttled = super::read_throttle::Throttled::new(live, rate.clone());
            &throttled
        }
        None => &live,
    };
    let cancel = AtomicBool::new(false);
    let watch_stop = AtomicBool::new(false);
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                while !watch_stop.load(Ordering::Acquire) {
                    if ctx.watch.lost().is_some() || copier.is_some_and(|c| !c.is_running()) {
                        cancel.store(true, Ordering::Release);
                        return;
                    }
                    if let Some(c) = copier {
                        progress.redo(c.copied_lsn());
                    }
                    if let Some(now) = ctx.lag.now() {
                        progress.redo_lag(now);
                    }
                    // through progress only: the CLI prints it as `xb: warning:`,
                    // a second copy by tracing would print it twice
                    if let Some(w) = ctx.lag.take_warning() {
                        progress.warning(&w);
                    }
                    // woken at once when the copy ends: a copy of one small
                    // table (one per BACKUP LOCK) must not wait out the nap
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            });
            let r = copy_all(
                jobs,
                Workers {
                    parallel: ctx.parallel,
                    split_at: ctx.split_at,
                },
                reader,
                ctx.target.as_ref(),
                progress,
                &cancel,
                ctx.incremental_lsn.map(|from_lsn| DeltaPlan {
                    from_lsn,
                    changed: ctx.changed.get().cloned(),
                }),
            );
            watch_stop.store(true, Ordering::Release);
            watcher.thread().unpark();
            r
        })
    })
    .map_err(|e| match e {
        CopyError::Read(e) => BackupError::Read(e),
        CopyError::Write(e) => BackupError::Target(e),
        CopyError::Cancelled => match ctx.watch.lost() {
            Some(lost) => lost.error(),
            None => BackupError::RedoStopped,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::seams::ChunkReader;
    use crate::run::targets::{SinkOptions, SinkTarget};
    use std::path::Path;
    use xb_innodb::pagecheck::SpaceMeta;
    use xb_innodb::pagetrack::ChangedPages;

    const PS: usize = 4096;

    /// An in-memory tablespace of `PS`-byte pages whose page `i` has LSN
    /// `lsn(i)` and its number in every other byte.
    struct Pages {
        bytes: Vec<u8>,
        at: usize,
        identity: Option<(u64, u64)>,
        unwritten: bool,
    }

    impl ChunkReader for Pages {
        fn next_chunk(&mut self) -> Result<&[u8], SeamError> {
            let end = (self.at + 64 * PS).min(self.bytes.len());
            let chunk = &self.bytes[self.at..end];
            self.at = end;
            Ok(chunk)
        }
        fn pages_at(&mut self, first: u64, count: usize) -> Result<&[u8], SeamError> {
            let start = (first as usize * PS).min(self.bytes.len());
            let end = (start + count * PS).min(self.bytes.len());
            // reading goes on after them, as the real reader's does
            self.at = end;
            Ok(&self.bytes[start..end])
        }
        fn identity(&self) -> Option<(u64, u64)> {
            self.identity
        }
        fn space(&self) -> Option<SpaceMeta> {
            if self.unwritten {
                return None;
            }
            Some(SpaceMeta {
                space_id: 7,
                flags: 21,
                physical_size: PS,
                full_crc32: true,
                compressed: false,
                page_compressed: false,
            })
        }
    }

    struct Stub {
        bytes: Vec<u8>,
        /// Opens so far; with `replaced`, each open reads "another file"
        /// (a new inode), as when a table is dropped and created again.
        opens: AtomicU64,
        replaced: bool,
        /// Page 0 not written yet: no page size to split by.
        unwritten: bool,
    }

    impl Stub {
        fn of(bytes: Vec<u8>) -> Self {
            Stub {
                bytes,
                opens: AtomicU64::new(0),
                replaced: false,
                unwritten: false,
            }
        }
    }

    impl Reader for Stub {
        fn tablespace(&self, _: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
            let n = self.opens.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(Pages {
                bytes: self.bytes.clone(),
                at: 0,
                identity: Some((1, if self.replaced { n } else { 0 })),
                unwritten: self.unwritten,
            }))
        }
        fn plain(&self, _: &Path) -> Result<Box<dyn ChunkReader>, SeamError> {
            unreachable!("only tablespaces here")
        }
    }

    fn tablespace(n: u32, lsn: impl Fn(u32) -> u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(n as usize * PS);
        for i in 0..n {
            let mut page = vec![(i % 251) as u8; PS];
            page[16..24].copy_from_slice(&lsn(i).to_be_bytes());
            bytes.extend_from_slice(&page);
        }
        bytes
    }

    fn delta_of(bytes: Vec<u8>, plan: DeltaPlan) -> (Vec<(u32, Vec<u8>)>, String) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        let target = SinkTarget::dir(&out, &SinkOptions::default()).unwrap();
        let job = Job {
            src: "/live/db/t.ibd".into(),
            rel: "db/t.ibd".into(),
            kind: Kind::Tablespace,
            size: bytes.len() as u64,
        };
        let cancel = AtomicBool::new(false);
        copy_all(
            vec![job],
            Workers {
                parallel: 2,
                split_at: 1 << 20,
            },
            &Stub::of(bytes),
            &target,
            &crate::run::NoProgress,
            &cancel,
            Some(plan),
        )
        .unwrap();
        target.finish().unwrap();
        let delta = std::fs::read(out.join("db/t.ibd.delta")).unwrap();
        let pages = xb_innodb::delta::read(&delta, PS)
            .unwrap()
            .into_iter()
            .map(|(n, p)| (n, p.to_vec()))
            .collect();
        let meta = std::fs::read_to_string(out.join("db/t.ibd.meta")).unwrap();
        (pages, meta)
    }

    fn copy_to(dir: &Path, opts: &SinkOptions, stub: &Stub, parallel: usize) -> CopyStats {
        let target = SinkTarget::dir(dir, opts).unwrap();
        let job = Job {
            src: "/live/db/big.ibd".into(),
            rel: "db/big.ibd".into(),
            kind: Kind::Tablespace,
            size: stub.bytes.len() as u64,
        };
        let cancel = AtomicBool::new(false);
        let stats = copy_all(
            vec![job],
            Workers {
                parallel,
                split_at: 1 << 20,
            },
            stub,
            &target,
            &crate::run::NoProgress,
            &cancel,
            None,
        )
        .unwrap();
        target.finish().unwrap();
        stats
    }

    #[test]
    fn a_large_tablespace_is_copied_in_ranges_by_several_workers_byte_for_byte() {
        // past the split size (1 MiB here), and not a whole number of ranges
        let range = super::super::split_copy::range_len(1 << 20);
        let n = u32::try_from((3 << 20) / PS as u64).unwrap() + 3;
        let stub = Stub::of(tablespace(n, |i| u64::from(i) + 100));
        let dir = tempfile::tempdir().unwrap();
        let stats = copy_to(&dir.path().join("b"), &SinkOptions::default(), &stub, 3);
        let ranges = (stub.bytes.len() as u64).div_ceil(range);
        assert!(ranges > 3);
        assert_eq!(
            stub.opens.load(Ordering::Relaxed),
            ranges,
            "a reader per range"
        );
        assert_eq!(
            std::fs::read(dir.path().join("b/db/big.ibd")).unwrap(),
            stub.bytes
        );
        assert_eq!((stats.files, stats.bytes), (1, stub.bytes.len() as u64));
        assert_eq!(stats.spaces[0].id, Some(7));

        // ranges that read different files: copied again, whole
        let mut replaced = Stub::of(stub.bytes.clone());
        replaced.replaced = true;
        let stats = copy_to(&dir.path().join("c"), &SinkOptions::default(), &replaced, 3);
        assert_eq!(replaced.opens.load(Ordering::Relaxed), ranges + 1);
        assert_eq!(
            std::fs::read(dir.path().join("c/db/big.ibd")).unwrap(),
            stub.bytes
        );
        assert_eq!(stats.files, 1);

        // no page 0 to go by: nothing written in ranges, copied whole
        let mut unwritten = Stub::of(stub.bytes.clone());
        unwritten.unwritten = true;
        copy_to(
            &dir.path().join("u"),
            &SinkOptions::default(),
            &unwritten,
            3,
        );
        assert_eq!(unwritten.opens.load(Ordering::Relaxed), ranges + 1);
        assert_eq!(
            std::fs::read(dir.path().join("u/db/big.ibd")).unwrap(),
            stub.bytes
        );

        // a target that writes in order only (compressed): one reader, whole
        let z = Stub::of(stub.bytes.clone());
        let opts = SinkOptions {
            compression: Some(xb_sink::Compression::Zstd { level: 1 }),
            ..SinkOptions::default()
        };
        copy_to(&dir.path().join("z"), &opts, &z, 3);
        assert_eq!(z.opens.load(Ordering::Relaxed), 1);
        assert!(dir.path().join("z/db/big.ibd.zst").exists());
    }

    #[test]
    fn a_delta_holds_exactly_the_pages_at_or_after_the_base_across_full_blocks() {
        let cap = xb_innodb::delta::block_capacity(PS) as u32;
        // every other page changed: two full blocks and a short last one
        let n = 2 * (2 * cap) + 10;
        // page 0 is old, and in the delta all the same
        let bytes = tablespace(n, |i| {
            if i % 2 == 0 && i > 0 {
                5000 + u64::from(i)
            } else {
                10
            }
        });
        let (pages, meta) = delta_of(
            bytes.clone(),
            DeltaPlan {
                from_lsn: 5000,
                changed: None,
            },
        );
        let want: Vec<u32> = (0..n).filter(|i| i % 2 == 0).collect();
        let got: Vec<u32> = pages.iter().map(|(n, _)| *n).collect();
        assert_eq!(got, want);
        for (no, page) in &pages {
            let at = *no as usize * PS;
            assert_eq!(page[..], bytes[at..at + PS], "page {no} is the file's");
        }
        assert!(
            meta.contains("space_id = 7\n") && meta.contains("page_size = 4096\n"),
            "{meta}"
        );
    }

    #[test]
    fn exactly_full_blocks_end_with_an_empty_last_block() {
        let cap = xb_innodb::delta::block_capacity(PS) as u32;
        let bytes = tablespace(cap, |_| 9000);
        let (pages, _) = delta_of(
            bytes,
            DeltaPlan {
                from_lsn: 1,
                changed: None,
            },
        );
        assert_eq!(pages.len(), cap as usize);
    }

    #[test]
    fn with_a_changed_page_list_only_the_listed_pages_that_changed_are_kept() {
        // page 4 was written since the list's start but before the base
        let bytes = tablespace(50, |p| if p == 4 { 50 } else { 9000 });
        let mut list = Vec::new();
        for p in [3u32, 4, 5, 40, 49, 60] {
            list.extend_from_slice(&7u32.to_be_bytes());
            list.extend_from_slice(&p.to_be_bytes());
        }
        // another space's pages are not this file's
        list.extend_from_slice(&8u32.to_be_bytes());
        list.extend_from_slice(&1u32.to_be_bytes());
        let changed = ChangedPages::parse(&list).unwrap();
        let (pages, _) = delta_of(
            bytes,
            DeltaPlan {
                from_lsn: 100,
                changed: Some(std::sync::Arc::new(changed)),
            },
        );
        let got: Vec<u32> = pages.iter().map(|(n, _)| *n).collect();
        // page 0 always; page 4 is older than the base; page 60 is past
        // the end of the file
        assert_eq!(got, vec![0, 3, 5, 40, 49]);
    }
}
