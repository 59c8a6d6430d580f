//! The throttling filter: all files together are written at no more than a
//! given number of bytes per second, so a backup does not starve the
//! server's own I/O. Writers sleep when they run ahead of the budget.
//! [`Rate`], the budget itself, is shared with whatever else must keep to
//! it (the backup's reads of data files).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{Datasink, PartedFile, SinkError, SinkFile};

struct Budget {
    start: Instant,
    bytes: u64,
}

/// A byte budget shared by threads: together they take at most `rate`
/// bytes per second. Cloning shares the budget.
#[derive(Clone)]
pub struct Rate {
    rate: u64,
    budget: Arc<Mutex<Budget>>,
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rate")
            .field("bytes_per_sec", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Rate {
    /// At most `bytes_per_sec` bytes per second (0: unlimited), counted
    /// from now.
    #[must_use]
    pub fn new(bytes_per_sec: u64) -> Self {
        Rate {
            rate: bytes_per_sec,
            budget: Arc::new(Mutex::new(Budget {
                start: Instant::now(),
                bytes: 0,
            })),
        }
    }

    /// Counts `n` bytes, sleeping first while the budget is ahead.
    pub fn take(&self, n: u64) {
        if self.rate == 0 {
            return;
        }
        let due = {
            let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
            b.bytes += n;
            b.start + Duration::from_secs_f64(b.bytes as f64 / self.rate as f64)
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Wraps a sink and limits its total write rate.
pub struct Throttle {
    inner: Box<dyn Datasink>,
    rate: Rate,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// At most `bytes_per_sec` bytes per second into `inner` (0: unlimited).
    #[must_use]
    pub fn new(inner: Box<dyn Datasink>, bytes_per_sec: u64) -> Self {
        Throttle {
            inner,
            rate: Rate::new(bytes_per_sec),
        }
    }
}

struct ThrottleFile {
    down: Box<dyn SinkFile>,
    rate: Rate,
}

impl SinkFile for ThrottleFile {
    fn write(&mut self, buf: &[u8]) -> Result<(), SinkError> {
        self.rate.take(buf.len() as u64);
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
            rate: self.rate.clone(),
        }))
    }

    fn open_parted(
        &self,
        path: &str,
        size_hint: u64,
    ) -> Result<Option<Box<dyn PartedFile>>, SinkError> {
        Ok(self.inner.open_parted(path, size_hint)?.map(|inner| {
            Box::new(ThrottleParted {
                inner,
                rate: self.rate.clone(),
            }) as Box<dyn PartedFile>
        }))
    }

    fn remove(&self, path: &str) -> Result<bool, SinkError> {
        self.inner.remove(path)
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.inner.finish()
    }
}

/// A parted file whose parts share the throttle's one budget.
struct ThrottleParted {
    inner: Box<dyn PartedFile>,
    rate: Rate,
}

impl PartedFile for ThrottleParted {
    fn part(&self, offset: u64) -> Result<Box<dyn SinkFile>, SinkError> {
        Ok(Box::new(ThrottleFile {
            down: self.inner.part(offset)?,
            rate: self.rate.clone(),
        }))
    }

    fn close(self: Box<Self>) -> Result<(), SinkError> {
        self.inner.close()
    }
}
