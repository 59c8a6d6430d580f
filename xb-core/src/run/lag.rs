//! How far the redo copy is behind the server, measured against the log's
//! capacity.
//!
//! The server writes its redo log in a ring: it overwrites the bytes of
//! LSN `l` when it writes LSN `l + capacity`. The copy is safe while the
//! server's LSN minus the copied LSN (the lag) stays below the capacity;
//! the margin is what is left. A copy that is merely behind catches up,
//! but a margin that shrinks under half of the log is worth a warning
//! while there is still time to act (a slow target, a stalled host), and
//! when log is overwritten after all, the rates at which the server wrote
//! redo and the copy kept up tell the user which of the two to change.
//!
//! The watcher ([`super::watch`]) samples the server's LSN once a second;
//! the copy loop reads the latest figure for progress and warnings.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// One sample: the server's LSN and the copied LSN at the same moment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: Instant,
    server: u64,
    copied: u64,
}

/// The redo lag now, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagNow {
    /// Bytes of redo the server has written that are not copied yet.
    pub lag: u64,
    /// Bytes the log holds before the server overwrites them.
    pub capacity: u64,
}

impl LagNow {
    /// What is left before the server could overwrite log the copy needs.
    #[must_use]
    pub fn margin(&self) -> u64 {
        self.capacity.saturating_sub(self.lag)
    }
}

/// The redo copy over the whole backup, for the summary and for the hint
/// on an overwritten log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagReport {
    /// The log's capacity in bytes.
    pub capacity: u64,
    /// The largest lag seen, in bytes.
    pub max_lag: u64,
    /// The smallest margin seen (`capacity − max_lag`), in bytes.
    pub min_margin: u64,
    /// Bytes per second the server wrote redo, between the first and the
    /// last sample.
    pub server_rate: f64,
    /// Bytes per second the copy advanced over the same time.
    pub copy_rate: f64,
    /// Samples taken.
    pub samples: u64,
}

#[derive(Debug, Default)]
struct State {
    capacity: u64,
    first: Option<Sample>,
    last: Option<Sample>,
    max_lag: u64,
    samples: u64,
    /// The margin was under half when last sampled.
    low: bool,
    /// A warning waits to be shown.
    warning: Option<String>,
}

/// Samples of the redo lag, shared by the watcher (which writes them) and
/// the copy loop and the summary (which read them).
#[derive(Default)]
pub struct LagMeter {
    state: Mutex<State>,
    /// Reads the copied LSN (the redo copier's), set by [`Self::arm`]:
    /// the meter measures once it is there.
    copied: OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
}

impl std::fmt::Debug for LagMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagMeter")
            .field("state", &self.state)
            .field("armed", &self.is_armed())
            .finish_non_exhaustive()
    }
}

impl LagMeter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts measuring against a log of `capacity` bytes; `copied` reads
    /// the LSN the redo copy has reached. A capacity of 0 (unknown) leaves
    /// the meter off.
    pub fn arm(&self, capacity: u64, copied: impl Fn() -> u64 + Send + Sync + 'static) {
        if capacity == 0 {
            return;
        }
        self.lock().capacity = capacity;
        let _ = self.copied.set(Box::new(copied));
    }

    /// Records the server's LSN `server`, read just now, against the
    /// copied LSN of this moment.
    pub fn sample(&self, server: u64) {
        if let Some(copied) = self.copied.get() {
            self.observe(Instant::now(), server, copied());
        }
    }

    /// True once [`Self::arm`]ed: the watcher samples only then.
    #[must_use]
    pub fn is_armed(&self) -> bool {
        self.copied.get().is_some()
    }

    /// Records the server's LSN `server` and the copied LSN `copied`, read
    /// at `at`. A margin that falls under half of the log leaves a warning
    /// for [`Self::take_warning`], once per fall.
    pub fn observe(&self, at: Instant, server: u64, copied: u64) {
        let mut s = self.lock();
        let sample = Sample { at, server, copied };
        s.first.get_or_insert(sample);
        s.last = Some(sample);
        s.samples += 1;
        let lag = server.saturating_sub(copied);
        s.max_lag = s.max_lag.max(lag);
        let capacity = s.capacity;
        let low = capacity > 0 && lag > capacity / 2;
        if low && !s.low {
            s.warning = Some(format!(
                "the redo copy is {} MiB behind the server, more than half of the redo log's {} MiB: \
                 if the server writes the rest before the copy catches up, the backup fails \
                 (a slow or throttled target, or a host short of CPU, slows the copy)",
                mib(lag),
                mib(capacity)
            ));
        }
        s.low = low;
    }

    /// The lag at the last sample.
    #[must_use]
    pub fn now(&self) -> Option<LagNow> {
        let s = self.lock();
        s.last.map(|l| LagNow {
            lag: l.server.saturating_sub(l.copied),
            capacity: s.capacity,
        })
    }

    /// A warning left by [`Self::observe`], once.
    pub fn take_warning(&self) -> Option<String> {
        self.lock().warning.take()
    }

    /// The figures so far; `None` before two samples.
    #[must_use]
    pub fn report(&self) -> Option<LagReport> {
        let s = self.lock();
        let (first, last) = (s.first?, s.last?);
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if s.samples < 2 || secs <= 0.0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        Some(LagReport {
            capacity: s.capacity,
            max_lag: s.max_lag,
            min_margin: s.capacity.saturating_sub(s.max_lag),
            server_rate: rate(first.server, last.server),
            copy_rate: rate(first.copied, last.copied),
            samples: s.samples,
        })
    }
}

/// `n` bytes in whole MiB, rounded to the nearest (a 4 MiB log holds
/// 4 MiB less its 12 KiB header, which is still "4 MiB" to its owner).
#[must_use]
pub fn mib(n: u64) -> u64 {
    (n + (1 << 19)) >> 20
}

/// `n` bytes per second in MiB/s, for messages.
#[must_use]
pub fn mib_per_s(n: f64) -> String {
    format!("{:.1} MiB/s", n / f64::from(1u32 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_margin_under_half_the_log_warns_once_per_fall_and_the_report_has_the_rates() {
        let m = LagMeter::default();
        assert!(!m.is_armed());
        m.arm(96 * MIB, || 0);
        assert!(m.is_armed());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // the copy keeps pace: no warning
        m.observe(at(0), 10 * MIB, 10 * MIB);
        m.observe(at(1), 20 * MIB, 19 * MIB);
        assert_eq!(m.take_warning(), None);
        assert_eq!(
            m.now(),
            Some(LagNow {
                lag: MIB,
                capacity: 96 * MIB
            })
        );
        // the copy stalls: 50 MiB behind is more than half of 96
        m.observe(at(2), 70 * MIB, 20 * MIB);
        let w = m.take_warning().expect("a warning");
        assert!(w.contains("50 MiB behind") && w.contains("96 MiB"), "{w}");
        assert_eq!(m.take_warning(), None, "once");
        m.observe(at(3), 80 * MIB, 25 * MIB);
        assert_eq!(m.take_warning(), None, "still low: no second warning");
        assert_eq!(m.now().map(|n| n.margin()), Some(41 * MIB));
        // caught up, then low again: a new warning
        m.observe(at(4), 81 * MIB, 80 * MIB);
        m.observe(at(5), 150 * MIB, 90 * MIB);
        assert!(m.take_warning().is_some());
        let r = m.report().unwrap();
        assert_eq!((r.capacity, r.max_lag, r.samples), (96 * MIB, 60 * MIB, 6));
        assert_eq!(r.min_margin, 36 * MIB);
        assert!((r.server_rate - 28.0 * MIB as f64).abs() < 1.0, "{r:?}");
        assert!((r.copy_rate - 16.0 * MIB as f64).abs() < 1.0, "{r:?}");
        assert_eq!(mib_per_s(r.server_rate), "28.0 MiB/s");
    }

    #[test]
    fn no_report_from_fewer_than_two_samples() {
        let m = LagMeter::default();
        m.arm(MIB, || 5);
        assert_eq!(m.report(), None);
        m.sample(5);
        assert_eq!(m.report(), None);
        assert_eq!(
            m.now(),
            Some(LagNow {
                lag: 0,
                capacity: MIB
            })
        );
        assert_eq!(m.report(), None, "one sample gives no rate");
    }

    #[test]
    fn an_unknown_capacity_leaves_the_meter_off() {
        let m = LagMeter::default();
        m.arm(0, || 5);
        assert!(!m.is_armed());
    }
}
