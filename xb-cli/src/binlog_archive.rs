//! `xb-cli binlog-archive`: follows a server's binary log into a directory,
//! file for file as the server writes it, until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use xb_core::binlog::{ArchiveError, ArchiveOptions, ArchiveStatus};

use crate::out;

/// `binlog-archive` options.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Directory the binlog files are written to (created if absent); an
    /// archive already there is continued from its last whole event.
    #[arg(long, value_name = "DIR")]
    pub target_dir: PathBuf,
    #[command(flatten)]
    pub conn: crate::connect::ConnectArgs,
    /// Server id to register as: unique among the source's replicas.
    #[arg(long, default_value_t = 4_242_001)]
    pub server_id: u32,
    /// With an empty archive, the binlog file to start from (default: the
    /// oldest the server has).
    #[arg(long, value_name = "FILE")]
    pub start_file: Option<String>,
    /// Seconds a lost server may stay away (a restart) before the archiver
    /// gives up.
    #[arg(long, default_value_t = 300)]
    pub reconnect_for: u64,
    /// A JSON file rewritten about once a second with where the archive
    /// stands, and at the end with how it ended.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
}

/// The status document.
#[derive(Debug, Serialize)]
struct Doc<'a> {
    /// `running`, `stopped` or `failed`.
    state: &'a str,
    pid: u32,
    updated_at: u64,
    #[serde(flatten)]
    archive: &'a ArchiveStatus,
    /// Seconds between now and the last archived event's timestamp.
    last_event_age: u64,
    error: Option<String>,
}

fn write_status(path: Option<&PathBuf>, state: &str, s: &ArchiveStatus, error: Option<String>) {
    let Some(path) = path else { return };
    let now = crate::status::unix_now();
    let doc = Doc {
        state,
        pid: std::process::id(),
        updated_at: now,
        archive: s,
        last_event_age: now.saturating_sub(u64::from(s.last_event_time)),
        error,
    };
    let written = serde_json::to_vec_pretty(&doc)
        .map_err(std::io::Error::other)
        .and_then(|json| crate::status::replace_file(path, &json));
    if let Err(e) = written {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            out::warning(&format!(
                "cannot write the status file {}: {e}",
                path.display()
            ));
        });
    }
}

/// Runs the archiver; returns the exit code.
pub fn run(args: ArchiveArgs) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out::error(&format!("cannot start the async runtime: {e}"), None);
            return 1;
        }
    };
    rt.block_on(archive(args))
}

async fn archive(args: ArchiveArgs) -> u8 {
    let connect = match args.conn.options(&["client"]) {
        Ok(c) => c,
        Err(e) => {
            out::error(&format!("{e:#}"), None);
            return 2;
        }
    };
    let opts = ArchiveOptions {
        connect,
        dir: args.target_dir.clone(),
        server_id: args.server_id,
        start_file: args.start_file.clone(),
        reconnect_for: Duration::from_secs(args.reconnect_for),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signals = async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
        std::future::pending::<()>().await;
    };
    let status_path = args.status_file.clone();
    write_status(
        status_path.as_ref(),
        "running",
        &ArchiveStatus::default(),
        None,
    );
    out::line(&format!(
        "archiving the binlog of {} into {}",
        opts.connect.endpoint(),
        opts.dir.display()
    ));
    let last = std::sync::Mutex::new(ArchiveStatus::default());
    let on_status = |s: &ArchiveStatus| {
        write_status(status_path.as_ref(), "running", s, None);
        *last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s.clone();
    };
    let result = tokio::select! {
        r = xb_core::binlog::run(&opts, rx, &on_status) => r,
        () = signals => unreachable_stop(),
    };
    match result {
        Ok(s) => {
            write_status(status_path.as_ref(), "stopped", &s, None);
            out::line(&format!(
                "binlog archive stopped at {}:{} ({} events, {} bytes this run)",
                s.file, s.durable_pos, s.events, s.bytes
            ));
            0
        }
        Err(e) => {
            let s = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            write_status(status_path.as_ref(), "failed", &s, Some(e.to_string()));
            report(&e);
            e.code()
        }
    }
}

/// The signal future never ends (it waits on after sending the stop).
fn unreachable_stop() -> Result<ArchiveStatus, ArchiveError> {
    Ok(ArchiveStatus::default())
}

fn report(e: &ArchiveError) {
    out::error(&format!("binlog archive failed: {e}"), Some(&e.hint()));
}
