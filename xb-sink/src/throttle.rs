//! The throttling filter: all files together are written at no more than a
//! given number of bytes per second, so a backup does not starve the
//! server's own I/O. Writers sleep when they run ahead of the budget.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{Datasink, SinkError, SinkFile};

struct Budget {
    start: Instant,
    bytes: u64,
}

/// Wraps a sink and limits its total write rate.
pub struct Throttle {
    inner: Box<dyn Datasink>,
    rate: u64,
    budget: Arc<Mutex<Budget>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("bytes_per_sec", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// At most `bytes_per_sec` bytes per second into `inner` (0: unlimited).
    #[must_use]
    pub fn new(inner: Box<dyn Datasink>, bytes_per_sec: u64) -> Self {
        Throttle {
            inner,
            rate: bytes_per_sec,
            budget: Arc::new(Mutex::new(Budget {
                start: Instant::now(),
                bytes: 0,
            })),
        }
    }
}

struct ThrottleFile {
    down: Box<dyn SinkFile>,
    rate: u64,
    budget: Arc<Mutex<Budget>>,
}

impl SinkFile for ThrottleFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        if self.rate > 0 {
            let due = {
                let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
                b.bytes += buf.len() as u64;
                b.start + Duration::from_secs_f64(b.bytes as f64 / self.rate as f64)
            };
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        self.down.write(buf)
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        self.down.close()
    }
}

impl Datasink for Throttle {
    fn open(&self, path: &str, size_hint: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        Ok(Box::new(ThrottleFile {
            down: self.inner.open(path, size_hint)?,
            rate: self.rate,
            budget: Arc::clone(&self.budget),
        }))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.inner.remove(path)
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.inner.finish()
    }
}
