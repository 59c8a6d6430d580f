//! The object store's client is async; the copy threads are not. A small
//! runtime of its own runs every request, and [`Rt::run`] waits for one
//! from any thread, a runtime's worker included (where `block_on` would
//! panic), so the sink can be called from wherever a backup writes.

use std::future::Future;

use crate::SinkError;

pub(crate) struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    pub(crate) fn new() -> Result<Self, SinkError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("xb-object")
            .enable_all()
            .build()
            .map_err(|e| SinkError::io("the object store's runtime", e))?;
        Ok(Rt(Some(rt)))
    }

    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Runs `fut` on the runtime and waits for it. `None` when the runtime
    /// is gone (the sink is being dropped).
    pub(crate) fn run<T, F>(&self, fut: F) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle()?.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // dropping a runtime inside another one's worker panics; this does not
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
