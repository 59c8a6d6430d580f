//! An ordered parallel filter file: bytes are cut into jobs of a fixed size,
//! each job is transformed on a pool worker (compressed, encrypted), and the
//! results go downstream in the original order. At most `threads + 1` jobs
//! per file are in flight, which bounds memory to about
//! `(threads + 2) × job size` per open file.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::pool::Pool;
use crate::{SinkError, SinkFile};

/// Turns one job's bytes into what goes downstream.
pub(crate) type Transform = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// A [`SinkFile`] that transforms its bytes in parallel, in order.
pub(crate) struct OrderedFile {
    pub(crate) down: Box<dyn SinkFile>,
    pub(crate) path: String,
    pub(crate) pool: Arc<Pool>,
    pub(crate) transform: Transform,
    pub(crate) job: usize,
    /// Whether an empty file still gets one transformed (empty) job, so
    /// that e.g. an empty `.zst` is a valid frame.
    pub(crate) empty_job: bool,
    pub(crate) buf: Vec<u8>,
    pub(crate) inflight: VecDeque<Receiver<Result<Vec<u8>, String>>>,
    pub(crate) jobs: u64,
}

impl OrderedFile {
    pub(crate) fn new(
        down: Box<dyn SinkFile>,
        path: String,
        pool: Arc<Pool>,
        transform: Transform,
        job: usize,
        empty_job: bool,
    ) -> Self {
        OrderedFile {
            down,
            path,
            pool,
            transform,
            job: job.max(1),
            empty_job,
            buf: Vec::new(),
            inflight: VecDeque::new(),
            jobs: 0,
        }
    }

    fn wait_one(&mut self) -> Result<(), SinkError> {
        if let Some(rx) = self.inflight.pop_front() {
            let out = rx
                .recv()
                .map_err(|_| SinkError::Compress {
                    path: self.path.clone(),
                    what: "a filter worker stopped".into(),
                })?
                .map_err(|what| SinkError::Compress {
                    path: self.path.clone(),
                    what,
                })?;
            self.down.write(&out)?;
        }
        Ok(())
    }

    fn submit(&mut self, data: Vec<u8>) -> Result<(), SinkError> {
        while self.inflight.len() > self.pool.threads() {
            self.wait_one()?;
        }
        let t = Arc::clone(&self.transform);
        self.inflight.push_back(self.pool.submit(move || t(&data)));
        self.jobs += 1;
        Ok(())
    }
}

impl SinkFile for OrderedFile {
    fn write(&mut self, mut buf: &[u8]) -> Result<(), SinkError> {
        while !buf.is_empty() {
            let take = (self.job - self.buf.len()).min(buf.len());
            self.buf.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.buf.len() == self.job {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.job));
                self.submit(full)?;
            }
        }
        Ok(())
    }

    fn close(mut self: Box<Self>) -> Result<(), SinkError> {
        if !self.buf.is_empty() || (self.jobs == 0 && self.empty_job) {
            let rest = std::mem::take(&mut self.buf);
            self.submit(rest)?;
        }
        while !self.inflight.is_empty() {
            self.wait_one()?;
        }
        self.down.close()
    }
}
