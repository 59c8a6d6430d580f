//! Real object-storage servers on 127.0.0.1, started by the project's own
//! `scripts/objstore.sh`, one per test: s3s-fs for S3 and Azurite for Azure
//! Blob. Stopped on drop.

use std::path::PathBuf;
use std::process::Command;

use crate::server::{ServerError, free_port, repo_root};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// s3s-fs: S3's API over a directory per bucket.
    S3,
    /// Azurite: Azure Blob's API.
    Azure,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Azure => "azure",
        }
    }
}

/// Access key of the S3 server.
pub const S3_ACCESS_KEY: &str = "AK";
/// Secret key of the S3 server.
pub const S3_SECRET_KEY: &str = "SK";

/// A running object-storage server that belongs to one test.
#[derive(Debug)]
pub struct StoreServer {
    kind: StoreKind,
    dir: tempfile::TempDir,
    port: u16,
}

fn script(kind: StoreKind, args: &[&str]) -> Result<(), ServerError> {
    let what = format!("scripts/objstore.sh {} {}", kind.name(), args.join(" "));
    let out = Command::new(repo_root().join("scripts/objstore.sh"))
        .arg(kind.name())
        .args(args)
        .output()
        .map_err(|source| ServerError::Spawn {
            what: what.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ServerError::Failed {
            what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl StoreServer {
    /// Starts a fresh, empty server.
    ///
    /// # Errors
    /// When the script fails (its stderr is in the error).
    pub fn start(kind: StoreKind) -> Result<Self, ServerError> {
        let base = std::env::var_os("XB_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        std::fs::create_dir_all(&base)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("xb-{}-", kind.name()))
            .tempdir_in(base)?;
        let root = dir.path().display().to_string();
        // a port picked free may be taken by another test's server before
        // ours binds it: the script says so, and a new port is tried
        let mut tries = 0;
        loop {
            let port = free_port()?;
            match script(kind, &["start", &root, &port.to_string()]) {
                Ok(()) => return Ok(StoreServer { kind, dir, port }),
                Err(e) if tries >= 3 => return Err(e),
                Err(_) => tries += 1,
            }
        }
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes a bucket (an Azure container).
    ///
    /// # Errors
    /// When it cannot be made.
    pub fn make_bucket(&self, name: &str) -> Result<(), ServerError> {
        let root = self.dir.path().display().to_string();
        script(self.kind, &["bucket", &root, &self.port.to_string(), name])
    }

    /// The directory where s3s-fs keeps a bucket's objects, one file each
    /// (to damage one on purpose).
    #[must_use]
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join("data").join(bucket)
    }

    /// The environment a client of this server needs: endpoint and
    /// credentials, as each cloud's own tools read them.
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self.kind {
            StoreKind::S3 => vec![
                (
                    "AWS_ENDPOINT_URL",
                    format!("http://127.0.0.1:{}", self.port),
                ),
                ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
                ("AWS_REGION", "us-east-1".into()),
            ],
            StoreKind::Azure => vec![
                ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
                (
                    "AZURITE_BLOB_STORAGE_URL",
                    format!("http://127.0.0.1:{}", self.port),
                ),
            ],
        }
    }

    /// What the server printed, and whether its process is alive: for a
    /// test's failure message.
    #[must_use]
    pub fn diagnosis(&self) -> String {
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).unwrap_or_default();
        let alive = Command::new("kill")
            .args(["-0", pid.trim()])
            .status()
            .is_ok_and(|s| s.success());
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        format!(
            "{:?} server pid {} alive: {alive}; port {}; log:\n{log}",
            self.kind,
            pid.trim(),
            self.port
        )
    }

    /// Starts the server again on its data and port (after [`Self::kill`]).
    ///
    /// # Errors
    /// When the script fails.
    pub fn restart(&self) -> Result<(), ServerError> {
        let root = self.dir.path().display().to_string();
        script(self.kind, &["stop", &root])?;
        script(self.kind, &["start", &root, &self.port.to_string()])
    }

    /// Kills the server at once (SIGKILL), as a crash or a cut link would.
    ///
    /// # Errors
    /// When there is no pid file or the signal cannot be sent.
    pub fn kill(&self) -> Result<(), ServerError> {
        let pid = std::fs::read_to_string(self.dir.path().join("pid"))?;
        let st = Command::new("kill").args(["-9", pid.trim()]).status()?;
        if st.success() {
            Ok(())
        } else {
            Err(ServerError::Io(std::io::Error::other(format!(
                "kill -9 {} failed",
                pid.trim()
            ))))
        }
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        let root = self.dir.path().display().to_string();
        let _ = script(self.kind, &["stop", &root]);
    }
}

/// A slow network link in front of a server: a TCP proxy on 127.0.0.1 that
/// carries at most `bytes_per_sec` in each direction over all its
/// connections together, as a shared uplink would. Stops when dropped.
#[derive(Debug)]
pub struct SlowLink {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// When the next byte may pass, for one direction of the link.
type Pace = std::sync::Arc<std::sync::Mutex<std::time::Instant>>;

impl SlowLink {
    /// Starts the proxy to `127.0.0.1:to_port`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start(to_port: u16, bytes_per_sec: u64) -> Result<Self, ServerError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let up: Pace = Arc::new(Mutex::new(std::time::Instant::now()));
        let down: Pace = Arc::new(Mutex::new(std::time::Instant::now()));
        let halt = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to_port))
                        else {
                            continue;
                        };
                        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                            continue;
                        };
                        let (up, down) = (Arc::clone(&up), Arc::clone(&down));
                        std::thread::spawn(move || pump(client, server, &up, bytes_per_sec));
                        std::thread::spawn(move || pump(s2, c2, &down, bytes_per_sec));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Ok(SlowLink { port, stop })
    }

    /// The port clients connect to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Copies `from` to `to` in pieces of at most 16 KiB, each waiting for its
/// turn on the direction's shared pace.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, pace: &Pace, rate: u64) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let wait = {
            let mut next = pace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            let start = (*next).max(now);
            *next = start + std::time::Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
            start - now
        };
        std::thread::sleep(wait);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
