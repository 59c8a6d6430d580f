//! Helpers shared by the runbook tests: a simulator connection that sends no
//! setup statements of its own, and copiers that misbehave on purpose.
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xb_tokudb::{FileCopier, LocalDirCopier};
use xb_tokusim::{SimConfig, TokuSim};

/// Start a simulator and wait until its writer has visibly changed files.
pub async fn busy_sim(config: SimConfig) -> Arc<TokuSim> {
    let sim = Arc::new(TokuSim::start(config).await.unwrap());
    assert!(
        sim.wait_for(Duration::from_secs(5), |s| {
            let (rewrites, appends) = s.activity();
            rewrites >= 5 && appends >= 5
        })
        .await,
        "simulator writer did not start"
    );
    sim
}

/// Connect with packet size and timeout given up front, so mysql_async sends
/// no `SELECT @@max_allowed_packet…` and the statement log holds only ours.
pub async fn connect(sim: &TokuSim) -> mysql_async::Conn {
    let opts =
        mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&sim.url()).unwrap())
            .max_allowed_packet(Some(64 << 20))
            .wait_timeout(Some(28800))
            .prefer_socket(false);
    mysql_async::Conn::new(opts).await.unwrap()
}

/// The statements of a full, successful run, in order.
pub fn six_steps() -> Vec<String> {
    [
        xb_tokudb::PLUGIN_PROBE,
        xb_tokudb::DIRS_QUERY,
        xb_tokudb::CHECKPOINT_LOCK_ON,
        xb_tokudb::READ_LOCK,
        xb_tokudb::UNLOCK_TABLES,
        xb_tokudb::CHECKPOINT_LOCK_OFF,
    ]
    .map(String::from)
    .to_vec()
}

/// What the server's locks looked like when one file was copied.
#[derive(Debug, Clone)]
pub struct CopyObservation {
    pub rel: String,
    pub checkpoint_locked: bool,
    pub read_locked: bool,
}

/// Copies into a directory, slowly (so a writer that ignored the locks would
/// be caught), noting the server's lock state at every file.
pub struct WatchingCopier {
    pub inner: LocalDirCopier,
    pub sim: Arc<TokuSim>,
    pub seen: Mutex<Vec<CopyObservation>>,
    pub delay: Duration,
    /// Before copying a data file, wait until the server has appended at
    /// least this many log records, so that a test can count on the log
    /// growing during the data copy without assuming the writer's rate.
    pub log_records_before_data: u64,
}

impl WatchingCopier {
    pub fn new(root: &Path, sim: Arc<TokuSim>) -> Self {
        Self {
            inner: LocalDirCopier::new(root),
            sim,
            seen: Mutex::new(Vec::new()),
            delay: Duration::from_millis(10),
            log_records_before_data: 0,
        }
    }
}

impl FileCopier for WatchingCopier {
    fn copy(&self, src: &Path, rel: &str) -> io::Result<u64> {
        std::thread::sleep(self.delay);
        if rel.ends_with(".tokudb") && self.log_records_before_data > 0 {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while self.sim.activity().1 < self.log_records_before_data {
                if std::time::Instant::now() > deadline {
                    return Err(io::Error::other("the simulator's log stopped growing"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.seen.lock().unwrap().push(CopyObservation {
            rel: rel.to_string(),
            checkpoint_locked: !self.sim.checkpoint_lock_holders().is_empty(),
            read_locked: !self.sim.read_lock_holders().is_empty(),
        });
        self.inner.copy(src, rel)
    }
}

/// Fails every file whose backup name satisfies `pred` with `make_error()`.
pub struct FailingCopier<F: Fn(&str) -> bool + Send + Sync> {
    pub inner: LocalDirCopier,
    pub pred: F,
    pub make_error: fn() -> io::Error,
}

impl<F: Fn(&str) -> bool + Send + Sync> FileCopier for FailingCopier<F> {
    fn copy(&self, src: &Path, rel: &str) -> io::Result<u64> {
        if (self.pred)(rel) {
            return Err((self.make_error)());
        }
        self.inner.copy(src, rel)
    }
}

/// ENOSPC, as a full backup target reports it.
pub fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

/// A generic copy failure.
pub fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}
