//! A backup's progress as people see it: on a terminal a live bar (bytes,
//! throughput, ETA, files, the phase, the redo lag against the log's
//! capacity); elsewhere one line per phase and per 10 % of the copy. The
//! throughput and ETA are computed here once, and the `--status-file`
//! document is fed the same figures.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use xb_core::run::Progress;
use xb_core::run::lag::{LagNow, mib};

use crate::out;
use crate::status::StatusFile;

/// How often the bar's text is made again while bytes flow.
const REDRAW: Duration = Duration::from_millis(100);

/// The progress of one backup.
pub struct Report {
    total: AtomicU64,
    done: AtomicU64,
    files_total: AtomicU64,
    files_done: AtomicU64,
    /// The last 10 % step written as a line (logs only).
    last_step: AtomicU64,
    /// The redo lag and the log's capacity at the last sample (bytes; 0
    /// capacity: none yet).
    redo_lag: AtomicU64,
    redo_capacity: AtomicU64,
    phase: Mutex<String>,
    /// When the first data bytes were copied: the throughput's start.
    copy_started: std::sync::OnceLock<Instant>,
    /// Milliseconds after `created` of the bar's last new text.
    last_draw: AtomicU64,
    created: Instant,
    /// The live bar (a terminal), drawn once the total is known.
    bar: Option<ProgressBar>,
    status: Option<StatusFile>,
}

/// Throughput and time left, once a second of copying gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub bytes_per_s: u64,
    pub eta_s: Option<u64>,
}

impl Report {
    /// A bar when `tty`, lines otherwise; `status` is fed as well.
    pub fn new(tty: bool, status: Option<StatusFile>) -> Self {
        let bar = tty.then(|| {
            // drawn once there is something to measure (`total`)
            let b = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::hidden());
            b.set_style(
                ProgressStyle::with_template("{wide_msg:.bold}\n[{bar:24}] {percent:>3}% {prefix}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Report {
            total: AtomicU64::new(1),
            done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            last_step: AtomicU64::new(0),
            redo_lag: AtomicU64::new(0),
            redo_capacity: AtomicU64::new(0),
            phase: Mutex::new(String::new()),
            copy_started: std::sync::OnceLock::new(),
            last_draw: AtomicU64::new(0),
            created: Instant::now(),
            bar,
            status,
        }
    }

    /// The status file, for the end of the run.
    pub fn status(&self) -> Option<&StatusFile> {
        self.status.as_ref()
    }

    /// Takes the bar off the terminal: the copy is over.
    pub fn end(&self) {
        if self.bar.is_some() {
            out::clear_bar();
        }
    }

    /// The pace of the copy so far, from the first copied byte.
    pub fn pace(&self, done: u64, total: u64) -> Option<Pace> {
        let secs = self.copy_started.get()?.elapsed().as_secs_f64();
        if secs < 1.0 || done == 0 {
            return None;
        }
        let bytes_per_s = (done as f64 / secs) as u64;
        Some(Pace {
            bytes_per_s,
            eta_s: (bytes_per_s > 0).then(|| total.saturating_sub(done) / bytes_per_s),
        })
    }

    /// `copied 1.20 GiB of 2.00 GiB (60%), 180 MiB/s, ETA 0m05s, 120 of 300
    /// files, redo lag 3 MiB of a 96 MiB log`: a line for logs.
    fn summary(&self, done: u64, total: u64, pace: Option<Pace>) -> String {
        let mut s = Self::copied(done, total, pace);
        let state = self.state();
        if !state.is_empty() {
            s.push_str(", ");
            s.push_str(&state);
        }
        s
    }

    /// `copied 1.20 GiB of 2.00 GiB (60%), 180 MiB/s, ETA 0m05s`.
    fn copied(done: u64, total: u64, pace: Option<Pace>) -> String {
        let pct = (done.min(total) * 100) / total.max(1);
        let mut s = format!(
            "copied {} of {} ({pct}%)",
            HumanBytes(done),
            HumanBytes(total)
        );
        if let Some(p) = pace {
            s.push_str(&format!(", {}/s", HumanBytes(p.bytes_per_s)));
            if let Some(eta) = p.eta_s {
                s.push_str(&format!(", ETA {}m{:02}s", eta / 60, eta % 60));
            }
        }
        s
    }

    /// `120 of 300 files, redo lag 3 MiB of a 96 MiB log`, as far as known.
    fn state(&self) -> String {
        let mut parts = Vec::new();
        let files = self.files_total.load(Ordering::Relaxed);
        if files > 0 {
            parts.push(format!(
                "{} of {files} files",
                self.files_done.load(Ordering::Relaxed).min(files)
            ));
        }
        if let cap @ 1.. = self.redo_capacity.load(Ordering::Relaxed) {
            parts.push(format!(
                "redo lag {} MiB of a {} MiB log",
                mib(self.redo_lag.load(Ordering::Relaxed)),
                mib(cap)
            ));
        }
        parts.join(", ")
    }

    /// The bar's text again, at most every [`REDRAW`] unless `now`.
    fn redraw(&self, now: bool) {
        let Some(bar) = &self.bar else { return };
        let at = self.created.elapsed().as_millis() as u64;
        let last = self.last_draw.load(Ordering::Relaxed);
        if !now && at.saturating_sub(last) < REDRAW.as_millis() as u64 {
            return;
        }
        self.last_draw.store(at, Ordering::Relaxed);
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let phase = self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        bar.set_length(total.max(1));
        bar.set_position(done.min(total));
        let state = self.state();
        bar.set_message(if state.is_empty() {
            phase
        } else {
            format!("{phase} ({state})")
        });
        bar.set_prefix(Self::copied(done, total, self.pace(done, total)));
    }
}

impl Progress for Report {
    fn phase(&self, name: &str) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name.to_string();
        out::line(name);
        self.redraw(true);
        if let Some(st) = &self.status {
            st.phase(name);
        }
    }
    fn total(&self, bytes: u64) {
        self.total.store(bytes.max(1), Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            out::show_bar(bar.clone());
            bar.enable_steady_tick(Duration::from_millis(500));
            self.redraw(true);
        }
        if let Some(st) = &self.status {
            st.total(bytes);
        }
    }
    fn files(&self, total: u64) {
        self.files_total.store(total, Ordering::Relaxed);
    }
    fn file_done(&self, _file: &str) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }
    fn bytes(&self, _file: &str, n: u64) {
        self.copy_started.get_or_init(Instant::now);
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let total = self.total.load(Ordering::Relaxed).max(1);
        if let Some(st) = &self.status {
            st.copied(done, self.pace(done, total));
        }
        if self.bar.is_some() {
            self.redraw(false);
            return;
        }
        let step = (done.min(total) * 10) / total;
        if step > self.last_step.swap(step, Ordering::Relaxed) {
            out::line(&self.summary(done, total, self.pace(done, total)));
        }
    }
    fn redo(&self, copied_lsn: u64) {
        if let Some(st) = &self.status {
            st.redo(Some(copied_lsn), None);
        }
    }
    fn redo_lag(&self, now: LagNow) {
        self.redo_lag.store(now.lag, Ordering::Relaxed);
        self.redo_capacity.store(now.capacity, Ordering::Relaxed);
        if let Some(st) = &self.status {
            st.redo(None, Some((now.lag, now.capacity)));
        }
    }
    fn warning(&self, text: &str) {
        out::warning(text);
        if let Some(st) = &self.status {
            st.warning(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_bytes_files_and_the_redo_margin() {
        let r = Report::new(false, None);
        r.total(4 << 30);
        r.files(300);
        for _ in 0..120 {
            r.file_done("db/t.ibd");
        }
        r.redo_lag(LagNow {
            lag: 3 << 20,
            capacity: 96 << 20,
        });
        let s = r.summary(
            3 << 30,
            4 << 30,
            Some(Pace {
                bytes_per_s: 180 << 20,
                eta_s: Some(65),
            }),
        );
        assert_eq!(
            s,
            "copied 3.00 GiB of 4.00 GiB (75%), 180.00 MiB/s, ETA 1m05s, \
             120 of 300 files, redo lag 3 MiB of a 96 MiB log"
        );
    }

    #[test]
    fn no_pace_before_a_second_of_copying() {
        let r = Report::new(false, None);
        assert_eq!(r.pace(10, 100), None, "nothing copied yet");
        r.bytes("a", 10);
        assert_eq!(r.pace(10, 100), None, "under a second");
    }
}
