//! Parallel copy of data files: N worker threads take files from a shared
//! queue (largest first, so one big table does not end the run alone) and
//! stream each one through its reader into the target. Memory is bounded:
//! one chunk buffer per worker.
//!
//! The first error stops every worker and is returned; a file that vanished
//! between listing and copying (dropped by the server) is skipped and
//! reported, not an error.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::seams::{Reader, Target};

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
) -> Result<CopyStats, String> {
    jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.rel.cmp(&b.rel)));
    let queue = Mutex::new(VecDeque::from(jobs));
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let retries = AtomicU64::new(0);
    let vanished = Mutex::new(Vec::new());
    let first_err: Mutex<Option<String>> = Mutex::new(None);
    let fail = |e: String| {
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
                    match copy_one(&job, reader, target, on_bytes, cancel) {
                        Ok(Some((n, r))) => {
                            files.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(n, Ordering::Relaxed);
                            retries.fetch_add(r, Ordering::Relaxed);
                        }
                        Ok(None) => vanished
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(job.rel.clone()),
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
        return Err("data copy cancelled".into());
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

/// Copies one file; `None` when it vanished before it could be opened.
fn copy_one(
    job: &Job,
    reader: &dyn Reader,
    target: &dyn Target,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
) -> Result<Option<(u64, u64)>, String> {
    let src = match job.kind {
        Kind::Tablespace => reader.tablespace(&job.src)?,
        Kind::Plain => reader.plain(&job.src)?,
    };
    let Some(mut src) = src else {
        tracing::debug!(file = %job.src.display(), "vanished before copy");
        return Ok(None);
    };
    let mut out = target.create(&job.rel, job.size)?;
    let mut total = 0u64;
    loop {
        if cancel.load(Ordering::Acquire) {
            return Err(format!("copy of {} cancelled", job.rel));
        }
        let chunk = src.next_chunk()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len() as u64;
        out.write(chunk)?;
        total += n;
        on_bytes(&job.rel, n);
    }
    out.close()?;
    tracing::debug!(file = %job.rel, bytes = total, "copied");
    Ok(Some((total, src.retries())))
}
