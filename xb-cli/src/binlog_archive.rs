//! `xb-cli binlog-archive`: follows a server's binary log into a directory,
//! file for file as the server writes it, until SIGTERM or SIGINT; with
//! `--upload-to`, mirrors that directory into object storage as it goes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use xb_core::binlog::remote::Uploader;
use xb_core::binlog::{ArchiveError, ArchiveOptions, ArchiveStatus};
use xb_sink::object::ObjectFiles;

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
    /// Also keep the archive in object storage (s3://BUCKET/PREFIX,
    /// azure://…, gs://…, file:///…): closed files whole, the open one in
    /// segments of what each upload interval added. The directory stays
    /// the working copy the archiver resumes from.
    #[arg(long, value_name = "URL")]
    pub upload_to: Option<String>,
    /// Seconds between uploads: the store lags the archive by at most this.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub upload_interval: u64,
    #[command(flatten)]
    pub store: crate::objects::StoreArgs,
}

/// Where the upload stands, for the status document.
#[derive(Debug, Clone, Default, Serialize)]
struct UploadState {
    url: String,
    /// The open file and how much of it the store holds.
    file: String,
    pos: u64,
    /// When the last pass ended without an error (seconds since the epoch).
    at: u64,
    /// Why the last pass failed, until one succeeds.
    error: Option<String>,
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
    /// Seconds between now and the last archived event's timestamp (none
    /// before this run has archived an event).
    last_event_age: Option<u64>,
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<UploadState>,
}

fn write_status(
    path: Option<&PathBuf>,
    state: &str,
    s: &ArchiveStatus,
    error: Option<String>,
    upload: Option<&Mutex<UploadState>>,
) {
    let Some(path) = path else { return };
    let now = crate::status::unix_now();
    let doc = Doc {
        state,
        pid: std::process::id(),
        updated_at: now,
        archive: s,
        last_event_age: (s.last_event_time != 0)
            .then(|| now.saturating_sub(u64::from(s.last_event_time))),
        error,
        upload: upload.map(|u| lock(u).clone()),
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The store behind `--upload-to`, checked before anything is archived.
fn open_uploader(args: &ArchiveArgs, url: &str) -> Result<Uploader, ArchiveError> {
    let upload = |source| ArchiveError::Upload { source };
    let loc = args.store.location(url).map_err(upload)?;
    let files =
        ObjectFiles::open(loc, usize::from(args.store.object_part_size) << 20).map_err(upload)?;
    Uploader::open(files, &args.target_dir)
}

/// One upload pass of what `status` says is durable; the outcome goes
/// into `state`.
fn upload_pass(
    up: &mut Uploader,
    status: &ArchiveStatus,
    state: &Mutex<UploadState>,
) -> Result<(), ArchiveError> {
    let open = (!status.file.is_empty()).then_some((status.file.as_str(), status.durable_pos));
    let r = up.pass(open);
    let mut st = lock(state);
    match &r {
        Ok(_) => {
            if let Some((file, pos)) = open {
                st.file = file.to_string();
                st.pos = pos;
            }
            st.at = crate::status::unix_now();
            st.error = None;
        }
        Err(e) => st.error = Some(e.to_string()),
    }
    r.map(|_| ())
}

async fn archive(args: ArchiveArgs) -> u8 {
    // taken over first: a SIGTERM while the store is checked or the server
    // connected ends the run cleanly, not by the default action
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
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
    let uploader = match &args.upload_to {
        Some(url) => match open_uploader(&args, url) {
            Ok(u) => Some(u),
            Err(e) => {
                report(&e);
                return e.code();
            }
        },
        None => None,
    };
    let upload_state = uploader.as_ref().map(|u| {
        Arc::new(Mutex::new(UploadState {
            url: u.url().to_string(),
            ..UploadState::default()
        }))
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signals = async move {
        let (Some(mut term), Some(mut int)) = handlers else {
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
    let upload_ref = upload_state.as_deref();
    write_status(
        status_path.as_ref(),
        "running",
        &ArchiveStatus::default(),
        None,
        upload_ref,
    );
    out::line(&format!(
        "archiving the binlog of {} into {}{}",
        opts.connect.endpoint(),
        opts.dir.display(),
        uploader
            .as_ref()
            .map(|u| format!(" and {}", u.url()))
            .unwrap_or_default()
    ));
    let last = Arc::new(Mutex::new(ArchiveStatus::default()));
    // uploads run on a thread of their own, every --upload-interval, from
    // what the archiver last reported durable; a failed pass is reported
    // and tried again at the next, while the archive goes on locally
    let (stop_uploads, stopped) = std::sync::mpsc::channel::<()>();
    let upload_thread = uploader.map(|mut up| {
        let (last, state) = (Arc::clone(&last), upload_state.clone());
        let every = Duration::from_secs(args.upload_interval);
        std::thread::spawn(move || {
            let mut warned = false;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                let status = lock(&last).clone();
                let Some(state) = state.as_deref() else { break };
                if let Err(e) = upload_pass(&mut up, &status, state) {
                    if !warned {
                        out::warning(&format!(
                            "upload failed, trying again in {}s: {e}",
                            every.as_secs()
                        ));
                        warned = true;
                    }
                } else {
                    warned = false;
                }
            }
            up
        })
    });
    let on_status = |s: &ArchiveStatus| {
        write_status(status_path.as_ref(), "running", s, None, upload_ref);
        *lock(&last) = s.clone();
    };
    let result = tokio::select! {
        r = xb_core::binlog::run(&opts, rx, &on_status) => r,
        () = signals => unreachable_stop(),
    };
    // the last upload: everything the archive made durable
    let _ = stop_uploads.send(());
    let final_status = match &result {
        Ok(s) => s.clone(),
        Err(_) => lock(&last).clone(),
    };
    let upload_result = match (upload_thread, upload_ref) {
        (Some(t), Some(state)) => match t.join() {
            Ok(mut up) => upload_pass(&mut up, &final_status, state),
            Err(_) => Ok(()),
        },
        _ => Ok(()),
    };
    match (result, upload_result) {
        (Ok(s), Ok(())) => {
            write_status(status_path.as_ref(), "stopped", &s, None, upload_ref);
            out::line(&format!(
                "binlog archive stopped at {}:{} ({} events, {} bytes this run)",
                s.file, s.durable_pos, s.events, s.bytes
            ));
            0
        }
        (Ok(s), Err(e)) => {
            write_status(
                status_path.as_ref(),
                "failed",
                &s,
                Some(e.to_string()),
                upload_ref,
            );
            report(&e);
            e.code()
        }
        (Err(e), up) => {
            write_status(
                status_path.as_ref(),
                "failed",
                &final_status,
                Some(e.to_string()),
                upload_ref,
            );
            if let Err(u) = up {
                out::warning(&format!("the last upload failed too: {u}"));
            }
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
