//! A large tablespace copied in page ranges by several workers at once,
//! so one huge table does not leave the other workers idle.
//!
//! Each range is read with its own reader (page 0 read for the page size,
//! pages validated and torn ones re-read exactly as for a whole file:
//! `ChunkReader::pages_at`) and written through its own writer from the
//! range's offset ([`PartedOut`]: positioned writes into one file). The
//! last range reads on to the end of the file as its reader found it, as a
//! whole-file copy does. Only a target that takes positioned writes (a
//! directory without compression or encryption) gets ranges; every other
//! target, and an incremental's delta, copies each file whole.
//!
//! When the last range is done the file is closed, and it counts as copied
//! only if every range read the same file (device and inode): a table
//! dropped and created again under the same name between two ranges'
//! opens would mix two files, so it is copied again whole. A range that
//! finds the file gone makes the whole file vanished, as for a whole copy.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::data_copy::{CopyError, Done, Job, Kind, OnBytes};
use super::seams::{PartedOut, Reader, SeamError, Target};

/// Tablespaces at least this large are copied in ranges, by default
/// (`--split-at`): below it a file is copied about as fast whole as the
/// other workers copy the rest.
pub const SPLIT_AT: u64 = 256 << 20;

/// The length of a range for tablespaces split from `split_at` on: a
/// quarter of it, whole MiB (whole pages at every page size), 1 to 64 MiB.
#[must_use]
pub fn range_len(split_at: u64) -> u64 {
    (split_at / 4).clamp(1 << 20, 64 << 20) >> 20 << 20
}

/// What the ranges of one file found.
#[derive(Debug, Default)]
struct Seen {
    space_id: Option<u32>,
    identities: Vec<Option<(u64, u64)>>,
    vanished: bool,
    /// A range found no page size to go by (page 0 not written yet).
    unsplit: bool,
}

/// The file of a split copy in the target: opened by the first range
/// that runs (ranges of one file are queued together, so about `parallel`
/// files are open at once however many are large), closed by the last.
enum Out {
    NotYet,
    Open(Box<dyn PartedOut>),
    Closed,
}

/// One file being copied in ranges.
pub struct Split {
    job: Job,
    out: Mutex<Out>,
    left: AtomicUsize,
    bytes: AtomicU64,
    retries: AtomicU64,
    seen: Mutex<Seen>,
}

/// One piece of work of a copy run.
pub enum Work {
    /// A file copied whole by one worker.
    Whole(Job),
    /// One range of a file copied in ranges: its start, and its end
    /// (`None`: to the end of the file).
    Range(Arc<Split>, u64, Option<u64>),
}

/// How a range ended.
pub enum RangeEnd {
    /// Other ranges of the file are still to finish.
    More,
    /// The file is complete.
    Done(Done),
    /// The ranges read different files (or could not be split): copy it
    /// whole; its ranges were taken back.
    Again(Job),
    /// The file vanished; what was written was taken back.
    Vanished(PathBuf, String),
}

/// The work for `jobs` (largest first): the tablespaces of `split_at`
/// bytes or more (0: none) in ranges when `parallel` workers can share
/// them and the target takes positioned writes, everything else whole.
///
/// # Errors
/// [`CopyError::Write`] when the target cannot create a file.
pub fn plan(
    jobs: Vec<Job>,
    parallel: usize,
    split_at: u64,
    whole_only: bool,
    target: &dyn Target,
) -> Result<Vec<Work>, CopyError> {
    let mut whole_only = whole_only || parallel < 2 || split_at == 0;
    let range = range_len(split_at);
    // whether the target takes ranges is learned from the first large file
    let mut takes_ranges = false;
    let mut work = Vec::with_capacity(jobs.len());
    for job in jobs {
        if whole_only || job.kind != Kind::Tablespace || job.size < split_at {
            work.push(Work::Whole(job));
            continue;
        }
        let out = if takes_ranges {
            Out::NotYet
        } else if let Some(out) = target
            .create_parted(&job.rel, job.size)
            .map_err(CopyError::Write)?
        {
            takes_ranges = true;
            Out::Open(out)
        } else {
            // this target writes in order only: so for every file
            whole_only = true;
            work.push(Work::Whole(job));
            continue;
        };
        let n = usize::try_from(job.size.div_ceil(range)).unwrap_or(usize::MAX);
        let split = Arc::new(Split {
            job,
            out: Mutex::new(out),
            left: AtomicUsize::new(n),
            bytes: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            seen: Mutex::new(Seen::default()),
        });
        for i in 0..n as u64 {
            let end = (i + 1 < n as u64).then(|| (i + 1) * range);
            work.push(Work::Range(Arc::clone(&split), i * range, end));
        }
    }
    Ok(work)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Copies the range `start..end` of `split`'s file; the worker that
/// finishes its last range closes the file and says how it ended.
///
/// # Errors
/// A read or write failure other than the file vanishing (the backup then
/// fails, and the target stays marked incomplete).
pub fn copy_range(
    split: &Split,
    start: u64,
    end: Option<u64>,
    reader: &dyn Reader,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
    target: &dyn Target,
) -> Result<RangeEnd, CopyError> {
    match read_range(split, start, end, reader, on_bytes, cancel, target) {
        Ok(()) => {}
        Err(CopyError::Read(SeamError::Vanished { .. })) => lock(&split.seen).vanished = true,
        Err(e) => return Err(e),
    }
    if split.left.fetch_sub(1, Ordering::AcqRel) != 1 {
        return Ok(RangeEnd::More);
    }
    // the last range: every other one is closed
    let opened = match std::mem::replace(&mut *lock(&split.out), Out::Closed) {
        Out::Open(out) => {
            out.close().map_err(CopyError::Write)?;
            true
        }
        Out::NotYet | Out::Closed => false,
    };
    let seen = std::mem::take(&mut *lock(&split.seen));
    let rel = split.job.rel.clone();
    let first = seen.identities.first().copied().flatten();
    let one_file = seen.identities.iter().all(|i| *i == first);
    if seen.vanished || seen.unsplit || !one_file {
        if opened {
            target.remove(&rel).map_err(CopyError::Write)?;
        }
        if seen.vanished {
            return Ok(RangeEnd::Vanished(split.job.src.clone(), rel));
        }
        tracing::info!(file = %rel, "its ranges read different files (dropped and created again?): copied again whole");
        return Ok(RangeEnd::Again(split.job.clone()));
    }
    Ok(RangeEnd::Done(Done {
        rel,
        bytes: split.bytes.load(Ordering::Acquire),
        retries: split.retries.load(Ordering::Acquire),
        space_id: seen.space_id,
        identity: first,
    }))
}

/// Reads one range into its writer.
fn read_range(
    split: &Split,
    start: u64,
    end: Option<u64>,
    reader: &dyn Reader,
    on_bytes: OnBytes<'_>,
    cancel: &AtomicBool,
    target: &dyn Target,
) -> Result<(), CopyError> {
    let job = &split.job;
    let mut src = reader.tablespace(&job.src).map_err(CopyError::Read)?;
    let Some(space) = src.space() else {
        lock(&split.seen).unsplit = true;
        return Ok(());
    };
    let mut out = {
        let mut slot = lock(&split.out);
        if matches!(*slot, Out::NotYet) {
            let parted = target
                .create_parted(&job.rel, job.size)
                .map_err(CopyError::Write)?
                .ok_or_else(|| {
                    CopyError::Write(SeamError::Io {
                        path: job.rel.clone(),
                        message: "the target stopped taking files in ranges".into(),
                    })
                })?;
            *slot = Out::Open(parted);
        }
        match &*slot {
            Out::Open(o) => o.part(start).map_err(CopyError::Write)?,
            _ => return Ok(()),
        }
    };
    let ps = space.physical_size as u64;
    let per_read = (xb_innodb::pagereader::BATCH_BYTES as u64 / ps).max(1);
    let mut page = start / ps;
    let end_page = end.map(|e| e / ps);
    let mut total = 0u64;
    let mut first = true;
    loop {
        if cancel.load(Ordering::Acquire) {
            return Err(CopyError::Cancelled);
        }
        let chunk = match end_page {
            Some(e) if page >= e => break,
            Some(e) => src.pages_at(page, usize::try_from(per_read.min(e - page)).unwrap_or(1)),
            // the last range: positioned once, then on to the end as read
            None if first => src.pages_at(page, usize::try_from(per_read).unwrap_or(1)),
            None => src.next_chunk(),
        }
        .map_err(CopyError::Read)?;
        first = false;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len() as u64;
        out.write(chunk).map_err(CopyError::Write)?;
        page += n / ps;
        total += n;
        on_bytes(&job.rel, n);
    }
    out.close().map_err(CopyError::Write)?;
    split.bytes.fetch_add(total, Ordering::AcqRel);
    split.retries.fetch_add(src.retries(), Ordering::AcqRel);
    let mut seen = lock(&split.seen);
    seen.space_id.get_or_insert(space.space_id);
    seen.identities.push(src.identity());
    Ok(())
}
