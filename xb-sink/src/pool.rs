//! A small fixed pool of worker threads for CPU-heavy filter work
//! (compression). Jobs queue on a bounded channel, so a fast producer waits
//! instead of piling up buffers: that is the backpressure.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// Worker threads fed from one bounded queue.
pub(crate) struct Pool {
    tx: Option<SyncSender<Job>>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
}

impl Pool {
    /// `threads` workers (at least one) and a queue twice as deep.
    pub(crate) fn new(threads: usize, name: &str) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .filter_map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            match job {
                                Ok(job) => job(),
                                Err(_) => break,
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        Pool {
            tx: Some(tx),
            handles,
            threads,
        }
    }

    /// Number of workers asked for.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `f`; its result arrives on the returned receiver. Blocks while
    /// the queue is full. When no worker thread could be started the job
    /// runs on the caller's thread.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<T> {
        let (rtx, rrx) = sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = rtx.send(f());
        });
        match &self.tx {
            Some(tx) if !self.handles.is_empty() => {
                if let Err(e) = tx.send(job) {
                    (e.0)();
                }
            }
            _ => job(),
        }
        rrx
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
