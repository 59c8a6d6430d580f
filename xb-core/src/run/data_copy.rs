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
use super::{Ctx, Progress};
use crate::error::BackupError;

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An InnoDB tablespace: pages validated, torn reads retried.
    Tablespace,
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
}

impl CopyStats {
    /// Adds another run's figures to these.
    pub fn add(&mut self, other: CopyStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.retries += other.retries;
        self.vanished.extend(other.vanished);
        self.vanished.sort();
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

/// Copies `jobs` with `parallel` workers. Stops early (with the first error)
/// if `cancel` is set by someone else, e.g. the redo copier failing.
///
/// # Errors
/// The first failure, naming the file.
pub fn copy_all(
    mut jobs: Vec<Job>,
    parallel: usize,
    reader: &dyn Reader,
    target: &dyn Target,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
    delta: Option<DeltaPlan>,
) -> Result<CopyStats, CopyError> {
    jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.rel.cmp(&b.rel)));
    let queue = Mutex::new(VecDeque::from(jobs));
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let retries = AtomicU64::new(0);
    let vanished = Mutex::new(Vec::new());
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
                    let Some(job) = job else { return };
                    let copied = match &delta {
                        // a `.new` (a table copied again after DDL) is whole
                        Some(d) if job.kind == Kind::Tablespace && !job.rel.ends_with(".new") => {
                            copy_delta(&job, reader, target, on_bytes, cancel, d)
                        }
                        _ => copy_one(&job, reader, target, on_bytes, cancel),
                    };
                    match copied {
                        Ok((n, r)) => {
                            files.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(n, Ordering::Relaxed);
                            retries.fetch_add(r, Ordering::Relaxed);
                        }
                        Err(CopyError::Read(SeamError::Vanished { .. })) => {
                            tracing::debug!(file = %job.src.display(), "vanished before copy");
                            vanished
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(job.rel.clone());
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
    let mut vanished = vanished
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    vanished.sort();
    Ok(CopyStats {
        files: files.into_inner(),
        bytes: bytes.into_inner(),
        retries: retries.into_inner(),
        vanished,
    })
}

/// Copies one file: (bytes, page retries).
fn copy_one(
    job: &Job,
    reader: &dyn Reader,
    target: &dyn Target,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
) -> Result<(u64, u64), CopyError> {
    let mut src = match job.kind {
        Kind::Tablespace => reader.tablespace(&job.src),
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
    Ok((total, src.retries()))
}

/// Copies the pages of one tablespace whose `FIL_PAGE_LSN` is at least
/// `from_lsn` into `<rel>.delta`, and its `<rel>.meta` (space id, page
/// size) untransformed beside it: what an incremental backup holds of a
/// tablespace. Every page is still read and validated. A file whose page 0
/// is not written yet (created since the last checkpoint, so the copied
/// redo creates it) has no space id to put in a `.meta`; it is copied
/// whole as `<name>.new` instead, the DDL marker that both prepares
/// (xb's and mariadb-backup's) put in place of the base's file *before*
/// the redo is applied (a whole `.ibd` in an incremental would be copied
/// in after it, and the redo that fills the new file would be lost).
/// Returns (bytes read, page retries).
fn copy_delta(
    job: &Job,
    reader: &dyn Reader,
    target: &dyn Target,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
    plan: &DeltaPlan,
) -> Result<(u64, u64), CopyError> {
    let from_lsn = plan.from_lsn;
    let mut src = reader.tablespace(&job.src).map_err(CopyError::Read)?;
    let Some(space) = src.space() else {
        drop(src);
        let whole = match job.rel.strip_suffix(".ibd") {
            Some(stem) => Job {
                rel: format!("{stem}.new"),
                ..job.clone()
            },
            None => job.clone(),
        };
        return copy_one(&whole, reader, target, on_bytes, cancel);
    };
    let ps = space.physical_size;
    let bad_size = |e: xb_innodb::delta::DeltaError| {
        CopyError::Read(SeamError::Io {
            path: job.src.display().to_string(),
            message: format!("cannot write its delta: {e}"),
        })
    };
    let mut delta = xb_innodb::delta::DeltaWriter::new(ps).map_err(bad_size)?;
    let mut out = target
        .create(&format!("{}.delta", job.rel), 0)
        .map_err(CopyError::Write)?;
    let (mut total, mut page_no) = (0u64, 0u64);
    if let Some(changed) = &plan.changed {
        // only the pages the server listed; the LSN test still applies
        let max = (xb_innodb::pagereader::BATCH_BYTES / ps).max(1);
        for (first, n) in xb_innodb::pagetrack::runs(changed.of(space.space_id), max) {
            if cancel.load(Ordering::Acquire) {
                return Err(CopyError::Cancelled);
            }
            let chunk = src.pages_at(u64::from(first), n).map_err(CopyError::Read)?;
            for (i, page) in chunk.chunks_exact(ps).enumerate() {
                if xb_innodb::delta::page_lsn(page) >= from_lsn {
                    let no = first.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                    if let Some(block) = delta.push(no, page).map_err(bad_size)? {
                        out.write(&block).map_err(CopyError::Write)?;
                    }
                }
            }
            total += chunk.len() as u64;
        }
        // the progress counts the whole file as done
        on_bytes(&job.rel, job.size.max(total));
    }
    while plan.changed.is_none() {
        if cancel.load(Ordering::Acquire) {
            return Err(CopyError::Cancelled);
        }
        let chunk = src.next_chunk().map_err(CopyError::Read)?;
        if chunk.is_empty() {
            break;
        }
        for page in chunk.chunks_exact(ps) {
            if xb_innodb::delta::page_lsn(page) >= from_lsn {
                let no = u32::try_from(page_no).unwrap_or(u32::MAX);
                if let Some(block) = delta.push(no, page).map_err(bad_size)? {
                    out.write(&block).map_err(CopyError::Write)?;
                }
            }
            page_no += 1;
        }
        let n = chunk.len() as u64;
        total += n;
        on_bytes(&job.rel, n);
    }
    out.write(&delta.finish()).map_err(CopyError::Write)?;
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
    tracing::debug!(file = %job.rel, bytes = total, "delta copied");
    Ok((total, src.retries()))
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
    let reader = LiveReader::new(&ctx.facts);
    let on_bytes = |f: &str, n: u64| progress.bytes(f, n);
    let cancel = AtomicBool::new(false);
    let watch_stop = AtomicBool::new(false);
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
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
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let r = copy_all(
                jobs,
                ctx.parallel,
                &reader,
                ctx.target.as_ref(),
                &on_bytes,
                &cancel,
                ctx.incremental_lsn.map(|from_lsn| DeltaPlan {
                    from_lsn,
                    changed: ctx.changed.get().cloned(),
                }),
            );
            watch_stop.store(true, Ordering::Release);
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
