//! `--status-file FILE`: a JSON document that says, while the backup runs,
//! where it is (phase, bytes done of the total, throughput, ETA, the redo
//! copy's LSN and lag, locks, warnings) and, at the end, how it ended. It is
//! rewritten whole and renamed into place, so a cron job or an operator
//! reading it from another process never sees half a document.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The document.
#[derive(Debug, Clone, Serialize)]
struct Status {
    /// `running`, `completed` or `failed`.
    state: &'static str,
    pid: u32,
    started_at: u64,
    updated_at: u64,
    phase: String,
    bytes_done: u64,
    bytes_total: u64,
    /// Bytes per second over the data copy so far.
    throughput: u64,
    /// Seconds left at that throughput, once known.
    eta_seconds: Option<u64>,
    redo_copied_lsn: u64,
    redo_lag_bytes: u64,
    redo_capacity_bytes: u64,
    /// Locks taken so far, by the phase that took them.
    locks: Vec<String>,
    warnings: Vec<String>,
    error: Option<String>,
}

/// The status file of one backup.
pub struct StatusFile {
    path: PathBuf,
    /// The document and when it was last written.
    state: Mutex<(Status, Instant)>,
}

/// Rewrites at most this often while bytes flow; phases, warnings and the
/// end are written at once.
const EVERY: Duration = Duration::from_secs(1);

/// Writes `bytes` beside `path` and renames them over it: a reader never
/// sees half a document.
///
/// # Errors
/// The write or the rename failed.
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.to_path_buf().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Seconds since the epoch now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl StatusFile {
    /// Starts the file at `path` (written at once).
    ///
    /// # Errors
    /// It cannot be written (a directory that does not exist, no rights).
    pub fn create(path: PathBuf) -> anyhow::Result<Self> {
        let now = unix_now();
        let s = StatusFile {
            path,
            state: Mutex::new((
                Status {
                    state: "running",
                    pid: std::process::id(),
                    started_at: now,
                    updated_at: now,
                    phase: "connect".into(),
                    bytes_done: 0,
                    bytes_total: 0,
                    throughput: 0,
                    eta_seconds: None,
                    redo_copied_lsn: 0,
                    redo_lag_bytes: 0,
                    redo_capacity_bytes: 0,
                    locks: Vec::new(),
                    warnings: Vec::new(),
                    error: None,
                },
                Instant::now(),
            )),
        };
        s.update(true, |_| {})?;
        Ok(s)
    }

    /// Changes the document; writes it when `now` or when the last write is
    /// a second old.
    fn update(&self, now: bool, f: impl FnOnce(&mut Status)) -> anyhow::Result<()> {
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (status, last_write) = &mut *g;
        f(status);
        if !now && last_write.elapsed() < EVERY {
            return Ok(());
        }
        status.updated_at = unix_now();
        *last_write = Instant::now();
        let json = serde_json::to_vec_pretty(&*status)?;
        replace_file(&self.path, &json)?;
        Ok(())
    }

    /// Records, never failing the backup: a status file that cannot be
    /// written is reported once as a warning on standard error.
    fn record(&self, now: bool, f: impl FnOnce(&mut Status)) {
        if let Err(e) = self.update(now, f) {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                crate::out::warning(&format!(
                    "cannot write the status file {}: {e}",
                    self.path.display()
                ));
            });
        }
    }

    /// A phase began; phases that take a lock are kept in `locks`.
    pub fn phase(&self, name: &str) {
        self.record(true, |s| {
            if name.starts_with("BACKUP STAGE")
                || name.contains("LOCK")
                || name.starts_with("FLUSH TABLES")
            {
                s.locks.push(name.to_string());
            }
            s.phase = name.to_string();
        });
    }

    /// The bytes to copy.
    pub fn total(&self, bytes: u64) {
        self.record(false, |s| s.bytes_total = bytes);
    }

    /// Bytes copied so far, and the pace the progress report computed.
    pub fn copied(&self, bytes: u64, pace: Option<crate::progress::Pace>) {
        self.record(false, |s| {
            s.bytes_done = bytes;
            if let Some(p) = pace {
                s.throughput = p.bytes_per_s;
                s.eta_seconds = p.eta_s;
            }
        });
    }

    /// The redo copy's position and lag.
    pub fn redo(&self, copied_lsn: Option<u64>, lag: Option<(u64, u64)>) {
        self.record(false, |s| {
            if let Some(l) = copied_lsn {
                s.redo_copied_lsn = l;
            }
            if let Some((lag, cap)) = lag {
                s.redo_lag_bytes = lag;
                s.redo_capacity_bytes = cap;
            }
        });
    }

    /// A warning.
    pub fn warning(&self, text: &str) {
        self.record(true, |s| s.warnings.push(text.to_string()));
    }

    /// The end: `completed`, or `failed` with the error.
    pub fn finish(&self, error: Option<String>) {
        self.record(true, |s| {
            s.state = if error.is_some() {
                "failed"
            } else {
                "completed"
            };
            s.phase = if error.is_some() {
                "failed"
            } else {
                "completed"
            }
            .into();
            if error.is_none() {
                s.bytes_done = s.bytes_done.max(s.bytes_total);
                s.eta_seconds = Some(0);
            }
            s.error = error;
        });
    }
}
