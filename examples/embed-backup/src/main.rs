//! Embedding xb: a Rust program that takes a hot backup of a MariaDB server
//! into a directory, with its own progress reporting.
//!
//! ```sh
//! cargo run -p embed-backup -- 127.0.0.1 3306 backup_user /backups/today
//! ```
//! The password is read from `XB_PASSWORD`.

use std::sync::atomic::{AtomicU64, Ordering};

use xb_core::plan::BackupPlan;
use xb_core::run::{ConnectOptions, Progress};

/// Counts bytes and prints each phase: an operator would export these as
/// metrics or events instead.
#[derive(Default)]
struct Metrics {
    bytes: AtomicU64,
}

impl Progress for Metrics {
    fn phase(&self, name: &str) {
        println!(
            "phase: {name} ({} MiB so far)",
            self.bytes.load(Ordering::Relaxed) >> 20
        );
    }
    fn bytes(&self, _file: &str, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, user, target] = args.as_slice() else {
        eprintln!("usage: embed-backup HOST PORT USER TARGET_DIR   (password in XB_PASSWORD)");
        return std::process::ExitCode::from(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("port {port:?} is not a number");
        return std::process::ExitCode::from(2);
    };
    let mut connect = ConnectOptions::default();
    connect.host = Some(host.clone());
    connect.port = Some(port);
    connect.user = user.clone();
    connect.password = std::env::var("XB_PASSWORD").ok();
    let plan = match BackupPlan::builder(connect).target_dir(target).build() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("cannot back up: {e}\nhint: {}", e.hint());
            return std::process::ExitCode::from(e.code());
        }
    };
    let metrics = Metrics::default();
    match plan.run(&metrics).await {
        Ok(summary) => {
            println!(
                "backup complete: restores to LSN {}, binlog {:?}",
                summary.last_lsn, summary.binlog
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backup failed: {e}\nhint: {}", e.hint());
            std::process::ExitCode::from(e.code())
        }
    }
}
