//! The redo copier: a thread that follows the server's redo log from the
//! start checkpoint and appends every validated piece to the backup, so the
//! server can never overwrite log we still need without us noticing.
//!
//! The thread polls (every `interval`, faster once a stop target is set)
//! until the orchestrator asks it to stop at an LSN. If the server overwrote
//! log before we copied it, the feed reports it and the backup fails loudly
//! (the copy would have a hole: never a backup that restores to garbage).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xb_innodb::redo::RedoError;

use super::seams::SeamError;

/// Where the redo comes from: the server's log, read and validated.
/// Implemented over `xb_innodb::redo` for each format.
pub trait RedoFeed: Send {
    /// LSN of the first byte the feed will hand out (the start checkpoint).
    fn start_lsn(&self) -> u64;
    /// Reads what the server wrote since the last call and passes validated
    /// log, in order, to `out`. Returns the LSN reached (end of valid log).
    ///
    /// `out` fails with a short text for the scanner; the copier keeps the
    /// typed error it stands for.
    ///
    /// # Errors
    /// Why the log cannot be followed (overwritten before it was copied,
    /// corrupt, I/O), or `out`'s failure.
    fn poll(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<u64, RedoError>;
    /// At the end of the copy: whatever the format keeps back while the
    /// server may still be writing it (the partly written last block).
    ///
    /// # Errors
    /// As for `poll`.
    fn tail(&mut self, _out: &mut dyn FnMut(&[u8]) -> Result<(), String>) -> Result<(), RedoError> {
        Ok(())
    }
    /// The server has written and flushed its log up to `lsn` (the
    /// backup's end point, read before `FLUSH ENGINE LOGS` or the like):
    /// log up to there is final wherever it lies.
    fn trust_up_to(&mut self, _lsn: u64) {}
    /// The copy ends exactly at `lsn`: no log past it is handed out (see
    /// [`xb_innodb::redo::RedoScanner::stop_at`]).
    fn stop_at(&mut self, _lsn: u64) {}
    /// Why the last poll ended where it did (for a copy that stops
    /// advancing: the error says what the log holds there).
    fn stopped_because(&self) -> &'static str {
        ""
    }
    /// Bytes appended after the log so the copy ends cleanly (padding).
    fn trailer(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// Where the copied redo goes (the backup's log file in the sink chain).
pub trait RedoOut: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// The sink's error (it names the file and the cause).
    fn write(&mut self, buf: &[u8]) -> Result<(), SeamError>;
    /// Finishes the file.
    ///
    /// # Errors
    /// The sink's error.
    fn close(self: Box<Self>) -> Result<(), SeamError>;
}

impl RedoOut for Box<dyn super::seams::OutFile> {
    fn write(&mut self, buf: &[u8]) -> Result<(), SeamError> {
        (**self).write(buf)
    }
    fn close(self: Box<Self>) -> Result<(), SeamError> {
        (*self).close()
    }
}

/// Why redo copying failed.
#[derive(Debug, thiserror::Error)]
pub enum RedoCopyError {
    /// The feed failed (overwritten log, corruption, I/O).
    #[error("redo copy stopped at LSN {lsn}: {source}")]
    Feed {
        /// LSN copied so far.
        lsn: u64,
        /// The feed's reason.
        source: RedoError,
    },
    /// Writing the copy failed.
    #[error("writing the redo copy failed at LSN {lsn}: {source}")]
    Out {
        /// LSN copied so far.
        lsn: u64,
        /// The sink's reason.
        source: SeamError,
    },
    /// The log did not reach the stop LSN in time.
    #[error("redo copy reached only LSN {reached}, the backup needs LSN {target}{}", because(*reached, why))]
    Short {
        /// Where copying ended.
        reached: u64,
        /// Where it had to reach.
        target: u64,
        /// What the log held at `reached` on the last read.
        why: &'static str,
    },
    /// The thread panicked (a bug; reported, never swallowed).
    #[error("the redo copy thread panicked")]
    Panicked,
}

impl RedoCopyError {
    /// The server overwrote log before it was copied.
    #[must_use]
    pub fn is_overwritten(&self) -> bool {
        matches!(self, RedoCopyError::Feed { source, .. } if source.is_overwritten())
    }

    /// The backup's redo file could not be written: the target is full.
    #[must_use]
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            RedoCopyError::Out {
                source: SeamError::NoSpace { .. },
                ..
            }
        )
    }
}

fn because(reached: u64, why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" (at LSN {reached} {why})")
    }
}

#[derive(Debug, Default)]
struct Shared {
    copied: AtomicU64,
    /// The feed's last [`RedoFeed::stopped_because`].
    stopped_because: Mutex<&'static str>,
    target: AtomicU64,
    /// An LSN the server reported as flushed before the log above the
    /// copy was read ([`RedoCopier::vouch`]): the log below it is final.
    vouched: AtomicU64,
    cancel: AtomicBool,
    /// Asked: hand out nothing more until a target is set.
    hold: AtomicBool,
    /// The thread is holding (no poll in flight).
    held: AtomicBool,
    wake: (Mutex<bool>, Condvar),
}

/// A running redo copier.
#[derive(Debug)]
pub struct RedoCopier {
    shared: Arc<Shared>,
    start_lsn: u64,
    thread: Option<JoinHandle<Result<u64, RedoCopyError>>>,
}

/// What the copier did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedoCopied {
    /// First LSN in the copy.
    pub start_lsn: u64,
    /// LSN the copy reaches (`last_lsn`).
    pub end_lsn: u64,
}

impl RedoCopier {
    /// Starts the thread. `header` is written first (the backup log file's
    /// own header), then everything the feed hands out.
    #[must_use]
    pub fn start(
        mut feed: Box<dyn RedoFeed>,
        mut out: Box<dyn RedoOut>,
        header: Vec<u8>,
        interval: Duration,
    ) -> RedoCopier {
        let shared = Arc::new(Shared::default());
        let start_lsn = feed.start_lsn();
        shared.copied.store(start_lsn, Ordering::Release);
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("xb-redo-copy".into())
            .spawn(move || {
                let lsn0 = feed.start_lsn();
                out.write(&header)
                    .map_err(|source| RedoCopyError::Out { lsn: lsn0, source })?;
                loop {
                    let target = sh.target.load(Ordering::Acquire);
                    if target == 0 && sh.hold.load(Ordering::Acquire) {
                        sh.held.store(true, Ordering::Release);
                        if sh.cancel.load(Ordering::Acquire) {
                            return Ok(sh.copied.load(Ordering::Acquire));
                        }
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    if target != 0 {
                        feed.trust_up_to(target);
                        feed.stop_at(target);
                    }
                    let vouched = sh.vouched.load(Ordering::Acquire);
                    if vouched != 0 {
                        feed.trust_up_to(vouched);
                    }
                    let mut out_err = None;
                    let reached = feed.poll(&mut |buf| keep_err(out.write(buf), &mut out_err));
                    let copied = sh.copied.load(Ordering::Acquire);
                    let reached = match (reached, out_err) {
                        (_, Some(source)) => {
                            return Err(RedoCopyError::Out {
                                lsn: copied,
                                source,
                            });
                        }
                        (Err(source), None) => {
                            return Err(RedoCopyError::Feed {
                                lsn: copied,
                                source,
                            });
                        }
                        (Ok(r), None) => r,
                    };
                    *sh.stopped_because
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        feed.stopped_because();
                    sh.copied.store(reached, Ordering::Release);
                    let target = sh.target.load(Ordering::Acquire);
                    if target != 0 && reached >= target {
                        let mut out_err = None;
                        feed.tail(&mut |buf| keep_err(out.write(buf), &mut out_err))
                            .map_err(|source| match out_err.take() {
                                Some(source) => RedoCopyError::Out {
                                    lsn: reached,
                                    source,
                                },
                                None => RedoCopyError::Feed {
                                    lsn: reached,
                                    source,
                                },
                            })?;
                        let trailer = feed.trailer();
                        let out_fail = |source| RedoCopyError::Out {
                            lsn: reached,
                            source,
                        };
                        if !trailer.is_empty() {
                            out.write(&trailer).map_err(out_fail)?;
                        }
                        out.close().map_err(out_fail)?;
                        return Ok(reached);
                    }
                    if sh.cancel.load(Ordering::Acquire) {
                        return Ok(reached);
                    }
                    let wait = if target != 0 {
                        interval.min(Duration::from_millis(5))
                    } else {
                        interval
                    };
                    let (lock, cv) = &sh.wake;
                    let guard = lock
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let _ = cv.wait_timeout(guard, wait);
                }
            });
        RedoCopier {
            shared,
            start_lsn,
            thread: thread.ok(),
        }
    }

    /// LSN copied so far (for progress: redo lag = server LSN − this).
    #[must_use]
    pub fn copied_lsn(&self) -> u64 {
        self.shared.copied.load(Ordering::Acquire)
    }

    /// A reader of [`Self::copied_lsn`] that outlives this handle (for the
    /// lag meter on the watcher's task).
    pub fn copied_source(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.copied.load(Ordering::Acquire)
    }

    /// True while the thread runs (false after it failed or finished).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The server reported its log flushed up to `lsn` (read before the
    /// copy reads that far): mini-transactions ending there are final, even
    /// in the block the log ends in, which the copy otherwise holds back
    /// until the end point. Without it a large last mini-transaction on a
    /// server that writes nothing more (mass DDL, then quiet) is never
    /// copied before the end, and a catch-up waits its patience out.
    pub fn vouch(&self, lsn: u64) {
        self.shared.vouched.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Waits until the copy has reached `lsn`, holding nothing on the
    /// server: a busy server's backlog of log is copied before a lock is
    /// taken, so under the lock only the last moments of log remain. Gives
    /// up when the copy makes no progress for `patience` or stops (the
    /// finish reports why). Returns whether `lsn` was reached.
    pub fn catch_up(&self, lsn: u64, patience: Duration) -> bool {
        self.kick();
        let mut stall = Stall::new(self.copied_lsn(), patience);
        while self.is_running() {
            let now = self.copied_lsn();
            if now >= lsn {
                return true;
            }
            if stall.stalled(now) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Stops handing out log until [`Self::finish_at`] names the end point,
    /// and returns once no read is in flight: everything copied so far was
    /// in the log before the end point is read, so the copy can end exactly
    /// at it. A read in flight ends at the end of the log written so far,
    /// so this waits for that read, however long a backlog it copies; a
    /// thread that has stopped or failed is not waited for (`finish_at`
    /// reports it).
    pub fn hold(&self) {
        self.shared.hold.store(true, Ordering::Release);
        while !self.shared.held.load(Ordering::Acquire) && self.is_running() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Asks the thread to copy up to `target` and stop; waits at most
    /// `patience` without progress.
    ///
    /// # Errors
    /// [`RedoCopyError`] if the copy failed or stalled before `target`.
    pub fn finish_at(
        mut self,
        target: u64,
        patience: Duration,
    ) -> Result<RedoCopied, RedoCopyError> {
        self.shared.target.store(target.max(1), Ordering::Release);
        self.kick();
        let mut stall = Stall::new(self.copied_lsn(), patience);
        let thread = self.thread.take().ok_or(RedoCopyError::Panicked)?;
        while !thread.is_finished() {
            std::thread::sleep(Duration::from_millis(2));
            let now = self.copied_lsn();
            if stall.stalled(now) {
                self.shared.cancel.store(true, Ordering::Release);
                self.kick();
                let _ = thread.join();
                let why = *self
                    .shared
                    .stopped_because
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                return Err(RedoCopyError::Short {
                    reached: now,
                    target,
                    why,
                });
            }
        }
        let end_lsn = thread.join().map_err(|_| RedoCopyError::Panicked)??;
        Ok(RedoCopied {
            start_lsn: self.start_lsn,
            end_lsn,
        })
    }

    /// Stops the thread without finishing the copy (the backup failed
    /// elsewhere). Returns the copier's own error if it had one.
    pub fn abort(mut self) -> Option<RedoCopyError> {
        self.shared.cancel.store(true, Ordering::Release);
        self.kick();
        match self.thread.take()?.join() {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(RedoCopyError::Panicked),
        }
    }

    fn kick(&self) {
        let (lock, cv) = &self.shared.wake;
        let mut g = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g = true;
        cv.notify_all();
    }
}

/// Keeps a sink failure's typed error for the copier and hands the scanner
/// only its text (the scanner stops on it; the copier reports the typed one).
fn keep_err(r: Result<(), SeamError>, slot: &mut Option<SeamError>) -> Result<(), String> {
    r.map_err(|e| {
        let text = e.to_string();
        *slot = Some(e);
        text
    })
}

impl Drop for RedoCopier {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.cancel.store(true, Ordering::Release);
            self.kick();
            let _ = t.join();
        }
    }
}

/// Tells when the copy has made no progress (the same copied LSN) for
/// `patience`: where waiting for it stops.
struct Stall {
    last: u64,
    since: Instant,
    patience: Duration,
}

impl Stall {
    fn new(at: u64, patience: Duration) -> Self {
        Stall {
            last: at,
            since: Instant::now(),
            patience,
        }
    }

    /// Notes the copied LSN `now`; true once it has not moved for the
    /// patience.
    fn stalled(&mut self, now: u64) -> bool {
        if now != self.last {
            self.last = now;
            self.since = Instant::now();
            false
        } else {
            self.since.elapsed() > self.patience
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// A feed that hands out `steps` chunks, then fails or stays at the end.
    struct Script {
        lsn: u64,
        steps: Vec<Result<Vec<u8>, RedoError>>,
    }
    impl RedoFeed for Script {
        fn start_lsn(&self) -> u64 {
            1000
        }
        fn poll(
            &mut self,
            out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
        ) -> Result<u64, RedoError> {
            if self.steps.is_empty() {
                return Ok(self.lsn);
            }
            let step = self.steps.remove(0)?;
            out(&step).map_err(|reason| RedoError::Io {
                file: "out".into(),
                reason,
            })?;
            self.lsn += step.len() as u64;
            Ok(self.lsn)
        }
        fn stopped_because(&self) -> &'static str {
            "fails its checksum"
        }
    }
    #[derive(Clone, Default)]
    struct Sink(Arc<StdMutex<Vec<u8>>>, Arc<AtomicBool>);
    impl RedoOut for Sink {
        fn write(&mut self, buf: &[u8]) -> Result<(), SeamError> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(())
        }
        fn close(self: Box<Self>) -> Result<(), SeamError> {
            self.1.store(true, Ordering::Release);
            Ok(())
        }
    }

    /// A feed whose last 10 bytes are final only once trusted (the block
    /// the log ends in).
    struct HeldTail {
        trusted: u64,
        lsn: u64,
    }
    impl RedoFeed for HeldTail {
        fn start_lsn(&self) -> u64 {
            1000
        }
        fn poll(
            &mut self,
            out: &mut dyn FnMut(&[u8]) -> Result<(), String>,
        ) -> Result<u64, RedoError> {
            if self.lsn < 1010 && self.trusted >= 1010 {
                out(&[7; 10]).map_err(|reason| RedoError::Io {
                    file: "out".into(),
                    reason,
                })?;
                self.lsn = 1010;
            }
            Ok(self.lsn)
        }
        fn trust_up_to(&mut self, lsn: u64) {
            self.trusted = self.trusted.max(lsn);
        }
        fn stopped_because(&self) -> &'static str {
            "ends in an unvouched block"
        }
    }

    #[test]
    fn a_flushed_lsn_the_server_reported_lets_the_held_tail_be_copied_before_the_end() {
        let c = RedoCopier::start(
            Box::new(HeldTail {
                trusted: 0,
                lsn: 1000,
            }),
            Box::new(Sink::default()),
            Vec::new(),
            Duration::from_millis(1),
        );
        assert!(
            !c.catch_up(1010, Duration::from_millis(200)),
            "held back while nobody vouches for it"
        );
        c.vouch(1010);
        assert!(c.catch_up(1010, Duration::from_secs(5)));
        c.finish_at(1010, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn copies_header_then_log_up_to_the_target_and_closes() {
        let sink = Sink::default();
        let feed = Script {
            lsn: 1000,
            steps: vec![Ok(vec![1; 10]), Ok(vec![2; 5])],
        };
        let c = RedoCopier::start(
            Box::new(feed),
            Box::new(sink.clone()),
            b"HDR".to_vec(),
            Duration::from_millis(1),
        );
        let done = c.finish_at(1015, Duration::from_secs(5)).unwrap();
        assert_eq!(
            done,
            RedoCopied {
                start_lsn: 1000,
                end_lsn: 1015
            }
        );
        let bytes = sink.0.lock().unwrap().clone();
        assert_eq!(&bytes[..3], b"HDR");
        assert_eq!(bytes.len(), 3 + 15);
        assert!(sink.1.load(Ordering::Acquire), "file closed");
    }

    #[test]
    fn a_feed_failure_fails_the_copy_with_its_reason() {
        let feed = Script {
            lsn: 1000,
            steps: vec![
                Ok(vec![1; 10]),
                Err(RedoError::MariaDb108(
                    xb_innodb::redo108::Redo108Error::Overwritten {
                        file: "ib_logfile0".into(),
                        needed: 1010,
                        checkpoint: 9000,
                    },
                )),
            ],
        };
        let c = RedoCopier::start(
            Box::new(feed),
            Box::new(Sink::default()),
            Vec::new(),
            Duration::from_millis(1),
        );
        let err = c.finish_at(5000, Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(err, RedoCopyError::Feed { lsn: 1010, .. }),
            "{err:?}"
        );
        assert!(err.is_overwritten(), "{err}");
    }

    #[test]
    fn a_log_that_stops_short_of_the_target_is_reported() {
        let feed = Script {
            lsn: 1000,
            steps: vec![Ok(vec![1; 10])],
        };
        let c = RedoCopier::start(
            Box::new(feed),
            Box::new(Sink::default()),
            Vec::new(),
            Duration::from_millis(1),
        );
        let err = c.finish_at(2000, Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(
                err,
                RedoCopyError::Short {
                    reached: 1010,
                    target: 2000,
                    ..
                }
            ),
            "{err:?}"
        );
        // the message says what the log holds where the copy stopped
        assert!(
            err.to_string()
                .ends_with("(at LSN 1010 fails its checksum)"),
            "{err}"
        );
        assert!(!err.is_overwritten());
    }
}
