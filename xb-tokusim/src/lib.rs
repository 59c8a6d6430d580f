//! A MySQL wire-protocol server that behaves like a Percona Server with the
//! TokuDB engine, for testing `xb-tokudb` where no TokuDB server can be
//! installed.
//!
//! What it simulates, and why each part matters to a backup:
//! * `information_schema.plugins` reports the TokuDB plugin (or not, or
//!   disabled), and `@@tokudb_data_dir` / `@@tokudb_log_dir` / `@@datadir`
//!   answer from a temp directory tree;
//! * `SET TOKUDB_CHECKPOINT_LOCK=ON|OFF` is session scoped: while any session
//!   holds it, a background writer stops rewriting the data files; the lock
//!   dies with the session, as on the real server;
//! * `FLUSH TABLES WITH READ LOCK` stops the writer appending to the
//!   `.tokulog` files until `UNLOCK TABLES` or the session ends;
//! * every statement is recorded in order with a timestamp and its outcome,
//!   and failures can be injected ([`Fault`]);
//! * any statement it does not know gets an error naming it.
//!
//! The file formats the writer produces are documented in [`engine`].

mod backend;
pub mod engine;
mod session;

pub use backend::Backend;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use engine::{Engine, Layout};
use opensrv_mysql::AsyncMysqlIntermediary;
use tokio::net::TcpListener;

/// Whether the server has the TokuDB plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PluginState {
    /// Loaded and ACTIVE: the tokudb variables exist.
    #[default]
    Active,
    /// Listed in `information_schema.plugins` with status DISABLED; no variables.
    Disabled,
    /// Not installed at all.
    Absent,
}

/// A failure to inject; each fires once, on the first statement it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer the first statement containing `needle` (case-insensitive) with an
    /// error, without executing it.
    ErrorOn {
        /// Text to look for in the normalized statement.
        needle: String,
    },
    /// Execute the first statement containing `needle`, then close the
    /// connection without replying.
    DropAfter {
        /// Text to look for in the normalized statement.
        needle: String,
    },
    /// Execute the `n`-th statement the server receives (1-based, over all
    /// sessions), then close that connection without replying.
    DropAfterNth(usize),
}

/// How a recorded statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Executed and answered.
    Ok,
    /// Answered with this error message.
    Error(String),
    /// Executed, then the connection was dropped by an injected fault.
    Dropped,
}

/// One entry of the server's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A text-protocol statement, normalized (whitespace collapsed, no `;`).
    Statement {
        /// Connection id.
        session: u32,
        /// When the server received it.
        at: SystemTime,
        /// The statement.
        sql: String,
        /// What happened.
        outcome: Outcome,
    },
    /// A connection ended (client quit, network drop or injected drop).
    SessionEnded {
        /// Connection id.
        session: u32,
        /// When the server noticed.
        at: SystemTime,
        /// The session still held FLUSH TABLES WITH READ LOCK.
        released_read_lock: bool,
        /// The session still held the TokuDB checkpoint lock.
        released_checkpoint_lock: bool,
    },
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Plugin presence.
    pub plugin: PluginState,
    /// Put the TokuDB data files in their own `tokudb_data_dir` outside the datadir.
    pub separate_data_dir: bool,
    /// Put the TokuDB log files in their own `tokudb_log_dir` outside the datadir.
    pub separate_log_dir: bool,
    /// Interval of the background writer.
    pub tick: Duration,
    /// Failures to inject.
    pub faults: Vec<Fault>,
    /// Proxy mode: forward every non-TokuDB statement to this real server
    /// and keep the TokuDB files in its datadir (see [`Backend`]).
    pub backend: Option<Backend>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            plugin: PluginState::Active,
            separate_data_dir: false,
            separate_log_dir: false,
            tick: Duration::from_millis(2),
            faults: Vec::new(),
            backend: None,
        }
    }
}

/// State shared by the sessions, the writer and the test.
pub(crate) struct Shared {
    engine: Mutex<Engine>,
    config: SimConfig,
    faults: Mutex<Vec<Fault>>,
    statements_seen: Mutex<usize>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic in a test thread must not hide the simulator's state.
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count the statement and pop the first fault it triggers.
    fn take_fault(&self, sql: &str) -> Option<Fault> {
        let n = {
            let mut seen = self
                .statements_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *seen += 1;
            *seen
        };
        let upper = sql.to_ascii_uppercase();
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let pos = faults.iter().position(|f| match f {
            Fault::ErrorOn { needle } | Fault::DropAfter { needle } => {
                upper.contains(&needle.to_ascii_uppercase())
            }
            Fault::DropAfterNth(k) => *k == n,
        })?;
        Some(faults.remove(pos))
    }
}

/// A running simulator. Dropping it stops the writer and the listener and
/// deletes its directories.
pub struct TokuSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    accept: tokio::task::JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl TokuSim {
    /// Create the directory tree, start the writer thread and listen on a free
    /// port of 127.0.0.1. Must be called inside a tokio runtime.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        let root = tempfile::Builder::new().prefix("tokusim").tempdir()?;
        let datadir = match &config.backend {
            Some(b) => b.datadir.clone(),
            None => root.path().join("datadir"),
        };
        let layout = Layout {
            data_dir: if config.separate_data_dir {
                root.path().join("tokudb_data")
            } else {
                datadir.clone()
            },
            log_dir: if config.separate_log_dir {
                root.path().join("tokudb_log")
            } else {
                datadir.clone()
            },
            datadir,
        };
        let engine = Engine::create(layout, config.backend.is_none())?;
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            faults: Mutex::new(config.faults.clone()),
            config,
            statements_seen: Mutex::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = shared.lock().tick() {
                        tracing::error!("tokusim writer stopped: {e}");
                        return;
                    }
                    std::thread::sleep(shared.config.tick);
                }
            })
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let next_id = AtomicU32::new(1);
                while let Ok((stream, _)) = listener.accept().await {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let (r, w) = stream.into_split();
                        let backend = Arc::new(tokio::sync::Mutex::new(None));
                        let shim = session::Session {
                            id,
                            shared: shared.clone(),
                            backend: backend.clone(),
                        };
                        let _ = AsyncMysqlIntermediary::run_on(shim, r, w).await;
                        // the client is gone: so is its backend session, and
                        // with it the locks it held on the real server
                        if let Some(conn) = backend.lock().await.take() {
                            let _ = conn.disconnect().await;
                        }
                        shared.lock().end_session(id);
                    });
                }
            })
        };
        Ok(Self {
            addr,
            shared,
            stop,
            writer: Some(writer),
            accept,
            _root: root,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `mysql://` URL for `mysql_async::Opts::from_url` (user root, no password).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.addr.port())
    }

    /// Where the simulated server keeps its files.
    pub fn layout(&self) -> Layout {
        self.shared.lock().layout.clone()
    }

    /// Add a fault after start.
    pub fn inject(&self, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.shared.lock().events.clone()
    }

    /// The text of every statement received so far, in order.
    pub fn statements(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Statement { sql, .. } => Some(sql),
                Event::SessionEnded { .. } => None,
            })
            .collect()
    }

    /// Sessions holding the checkpoint lock right now.
    pub fn checkpoint_lock_holders(&self) -> Vec<u32> {
        self.shared.lock().checkpoint_lock.clone()
    }

    /// Sessions holding FLUSH TABLES WITH READ LOCK right now.
    pub fn read_lock_holders(&self) -> Vec<u32> {
        self.shared.lock().read_lock.clone()
    }

    /// Data-file generations at the first time the checkpoint lock was taken.
    pub fn generations_at_checkpoint_lock(&self) -> Option<BTreeMap<String, u64>> {
        self.shared.lock().generations_at_lock.first().cloned()
    }

    /// Data-file generations now.
    pub fn generations_now(&self) -> BTreeMap<String, u64> {
        self.shared.lock().data_files.clone()
    }

    /// The last log record written before the first FTWRL was granted.
    pub fn log_seq_at_read_lock(&self) -> Option<u64> {
        self.shared.lock().seq_at_read_lock.first().copied()
    }

    /// Number of data rewrites and log appends since start.
    pub fn activity(&self) -> (u64, u64) {
        let e = self.shared.lock();
        (e.rewrites, e.appends)
    }

    /// Poll `cond` every few milliseconds until it holds or `timeout` passes;
    /// returns whether it held. For waiting on asynchronous server-side effects
    /// such as a session ending after a drop.
    pub async fn wait_for(&self, timeout: Duration, cond: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for TokuSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.accept.abort();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
